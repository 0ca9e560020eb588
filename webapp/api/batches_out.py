"""The batch as the API shows it: one shape for tickets, exits, square-offs, kill switches, retries
and hook alerts (every write that makes orders answers with it), and for GET /batches/{id}."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from webapp.api.core import Money
from webapp.models import Batch, Instrument, Order
from webapp.trading import states


class InstrumentRef(BaseModel):
    id: int
    exchange: str
    symbol: str


class ChildOut(BaseModel):
    id: int
    client_id: int
    side: str
    quantity: int
    status: str = Field(
        description="NEW, SUBMITTING, UNKNOWN, PLACED, OPEN, PARTIAL, COMPLETE, CANCELLED, REJECTED or FAILED"
    )
    acknowledged: bool = Field(description="The broker has answered for this child: it is no longer in flight.")
    filled_quantity: int
    average_price: Money | None
    broker_order_id: str | None
    reason: str
    updated_at: datetime


class BatchHeader(BaseModel):
    """What a batch is (a list of batches shows this much; one batch adds its children)."""

    id: int
    kind: str = Field(description="ticket, exit, square_off, kill_switch, retry, signal, ...")
    action: str = Field(description="BUY, SELL or EXIT")
    instrument: InstrumentRef | None
    product: str | None
    order_type: str | None
    price: Money | None
    trigger_price: Money | None
    validity: str
    note: str
    created_at: datetime
    counts: dict[str, int] = Field(description="Children you may see, by status (only the statuses present).")
    acknowledged: bool = Field(description="Every child you may see has been answered by its broker (or failed).")


class BatchOut(BatchHeader):
    children: list[ChildOut]


def instrument_ref(instrument: Instrument | None) -> InstrumentRef | None:
    if instrument is None:
        return None
    return InstrumentRef(id=instrument.id, exchange=instrument.exchange, symbol=instrument.tradingsymbol)


def header_fields(batch: Batch) -> dict:
    """BatchHeader's fields of this batch, but for `counts` and `acknowledged` (they depend on the children)."""
    return dict(
        id=batch.id,
        kind=batch.kind,
        action=batch.action,
        instrument=instrument_ref(batch.instrument),
        product=batch.product,
        order_type=batch.order_type,
        price=batch.price,
        trigger_price=batch.trigger_price,
        validity=batch.validity,
        note=batch.note or "",
        created_at=batch.created_at,
    )


def child_out(child: Order) -> ChildOut:
    return ChildOut(
        id=child.id,
        client_id=child.client_id,
        side=child.side,
        quantity=child.quantity,
        status=child.status,
        acknowledged=child.status not in states.IN_FLIGHT,
        filled_quantity=child.filled_quantity,
        average_price=child.average_price,
        broker_order_id=child.broker_order_id,
        reason=child.reason or "",
        updated_at=child.updated_at,
    )


def batch_out(batch: Batch, children: list[Order]) -> BatchOut:
    """`children`: the ones the caller may see (webapp.orders.batches.batch_for decides)."""
    counts: dict[str, int] = {}
    for child in children:
        counts[child.status] = counts.get(child.status, 0) + 1
    return BatchOut(
        **header_fields(batch),
        counts=counts,
        acknowledged=all(c.status not in states.IN_FLIGHT for c in children),
        children=[child_out(c) for c in children],
    )
