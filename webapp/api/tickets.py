"""POST /api/v1/tickets and /tickets/preview: one order for many clients, by per-client quantities or a
sizing rule. The same path as the web ticket (webapp.orders.placing.place_ticket): the same review,
stop levels, batch and send job; the request never calls a broker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

import sqlalchemy as sa
from flask import g, request, url_for
from pydantic import BaseModel, Field, StringConstraints

from webapp import inputs
from webapp.access import accessible_clients
from webapp.api import bp
from webapp.api.batches_out import BatchOut, InstrumentRef, batch_out, instrument_ref
from webapp.api.core import ApiError, DecimalIn, Id, Money, Quantity, Strict, operation, replies
from webapp.extensions import db, get_redis
from webapp.models import Client, Instrument, User
from webapp.orders.batches import batch_for
from webapp.orders.placing import (
    StopLevels,
    place_ticket,
    review_with_levels,
    sized_quantities,
    sizing_price,
)
from webapp.tasks import QUEUE_UNAVAILABLE
from webapp.trading.tickets import Review, Ticket

MAX_CLIENTS = 500  # per ticket: a few KiB of JSON, one INSERT
# an API ticket's id is derived from (user, Idempotency-Key): the batches table's unique ticket_id then
# makes a second batch for the same key impossible, even if the stored reply were bypassed
TICKET_NAMESPACE = uuid.UUID("5b0f7d1e-3c39-4d6c-9f53-2a4e0f6c8d11")

ClientKey = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,9}$")]
PriceIn = DecimalIn(14, 4)
PriceOrNone = Annotated[PriceIn | None, Field(description="Rupees: a decimal string or a JSON number.")]


class SizingIn(Strict):
    rule: Literal["fixed", "multiplier", "capital_pct"] = Field(
        description="fixed: `value` shares; multiplier: `value` lots; capital_pct: `value` % of each client's "
        "capital (its last synced funds) at the price. Rounded down to the lot, capped by each client's limits."
    )
    value: DecimalIn(12, 4) = Field(description="Shares, lots or a percentage (above zero).")
    client_ids: list[Id] = Field(min_length=1, max_length=MAX_CLIENTS)


class ChaseIn(Strict):
    seconds: int = Field(5, ge=2, le=300, strict=True, description="Re-price unfilled children this often.")
    max_ticks: int = Field(10, ge=1, le=500, strict=True, description="At most this many ticks from the price.")
    then: Literal["leave", "market"] = Field("leave", description="After the last tick: leave them or go market.")


class TicketIn(Strict):
    instrument_id: Id | None = Field(None, description="The instrument's id; or give `symbol`.")
    symbol: str | None = Field(None, min_length=3, max_length=80, description="EXCHANGE:SYMBOL, e.g. NSE:SBIN.")
    action: Literal["BUY", "SELL"]
    product: Literal["MIS", "CNC", "MTF"] = "MIS"
    order_type: Literal["MARKET", "LIMIT", "SL", "SL-M"] = "MARKET"
    price: PriceOrNone = None
    trigger_price: PriceOrNone = None
    validity: Literal["DAY", "IOC"] = "DAY"
    quantities: Annotated[dict[ClientKey, Quantity], Field(max_length=MAX_CLIENTS)] | None = Field(
        None, description="Client id → quantity (0 skips that client). Or give `sizing`."
    )
    sizing: SizingIn | None = None
    stop: PriceOrNone = None
    target: PriceOrNone = None
    trail: PriceOrNone = None
    chase: ChaseIn | None = Field(None, description="Chase unfilled LIMIT children toward the price.")


class PreviewChild(BaseModel):
    client_id: int
    quantity: int
    value: Money
    margin: Money
    available: Money | None = Field(description="The client's available margin last synced (null: never).")
    sends: bool = Field(description="False: risk refuses this child (see `reason`).")
    reason: str


class TicketPreview(BaseModel):
    ok: bool = Field(description="Placing this ticket now would send at least one child, and nothing is wrong.")
    instrument: InstrumentRef
    unit_price: Money | None = Field(description="The limit price, else the last traded price.")
    errors: dict[str, str] = Field(description="A message per field, as POST /tickets would refuse it.")
    skipped: dict[str, str] = Field(description="Client id → why the sizing rule gave it 0 shares.")
    children: list[PreviewChild]


@dataclass
class Parsed:
    ticket: Ticket
    clients: list[Client]  # every client the user may trade: the review refuses any other
    levels: StopLevels
    field: str  # where the per-client values came from: "quantities" or "sizing.client_ids"
    skipped: dict[int, str]


def _instrument(body: TicketIn) -> Instrument:
    if (body.instrument_id is None) == (body.symbol is None):
        message = "Give exactly one of `instrument_id` and `symbol`."
        raise ApiError(422, "invalid", message, {"instrument_id": message, "symbol": message})
    if body.instrument_id is not None:
        found = db.session.get(Instrument, body.instrument_id)
        if found is None:
            raise ApiError(422, "invalid", "No such instrument.", {"instrument_id": "No such instrument."})
        return found
    exchange, _, symbol = body.symbol.strip().upper().partition(":")
    found = (
        db.session.execute(
            sa.select(Instrument).where(Instrument.exchange == exchange, Instrument.tradingsymbol == symbol)
        ).scalar_one_or_none()
        if exchange and symbol
        else None
    )
    if found is None:
        raise ApiError(422, "invalid", "No such instrument.", {"symbol": "No such instrument."})
    return found


def _tradable(user: User, field: str, ids: list[int]) -> list[Client]:
    """The clients the user may trade; a requested id that is not one of them: 404 (whether it exists or
    is someone else's is not told), a disabled one: 422."""
    clients = {c.id: c for c in accessible_clients(user)}
    hidden = {f"{field}.{i}": "No such client, or not one you may trade." for i in ids if i not in clients}
    if hidden:
        raise ApiError(404, "not_found", "A client on this ticket is not one you may trade.", hidden)
    disabled = {f"{field}.{i}": "This client is disabled: it takes no orders." for i in ids if not clients[i].enabled}
    if disabled:
        raise ApiError(422, "invalid", "A client on this ticket is disabled.", disabled)
    return [c for c in clients.values() if c.enabled]


def parse(body: TicketIn, user: User, ticket_id: str) -> Parsed:
    """The request as the ticket the review takes: ApiError for what the schema cannot say."""
    instrument = _instrument(body)
    if (body.quantities is None) == (body.sizing is None):
        message = "Give exactly one of `quantities` and `sizing`."
        raise ApiError(422, "invalid", message, {"quantities": message, "sizing": message})
    field = "quantities" if body.sizing is None else "sizing.client_ids"
    ids = [int(k) for k in body.quantities] if body.sizing is None else list(dict.fromkeys(body.sizing.client_ids))
    clients = _tradable(user, field, ids)
    chase = body.chase
    ticket = Ticket(
        ticket_id=ticket_id,
        action=body.action,
        instrument_id=instrument.id,
        product=body.product,
        order_type=body.order_type,
        validity=body.validity,
        price=body.price,
        trigger_price=body.trigger_price,
        quantities={int(k): v for k, v in (body.quantities or {}).items()},
        chase_seconds=chase.seconds if chase else None,
        chase_max_ticks=chase.max_ticks if chase else None,
        chase_then=chase.then if chase else None,
    )
    skipped: dict[int, str] = {}
    if body.sizing is not None:
        ticket.quantities, skipped = _sized(body.sizing, ticket, [c for c in clients if c.id in set(ids)], instrument)
    return Parsed(ticket, clients, StopLevels(body.stop, body.target, body.trail), field, skipped)


def _sized(rule: SizingIn, ticket: Ticket, clients: list[Client], instrument: Instrument):
    if rule.rule == "capital_pct" and rule.value > 100:
        raise ApiError(422, "invalid", "Some fields are not valid; see `fields`.", {"sizing.value": PCT_MAX})
    quantities, skipped = sized_quantities(
        rule.rule, rule.value, clients, instrument, sizing_price(ticket, instrument, get_redis())
    )
    too_many = {f"sizing.client_ids.{k}": TOO_MANY for k, q in quantities.items() if q > inputs.MAX_INT}
    if too_many:
        raise ApiError(422, "invalid", "Some fields are not valid; see `fields`.", too_many)
    return quantities, skipped


PCT_MAX = "A percentage of capital is at most 100."
TOO_MANY = f"This sizing gives more than {inputs.MAX_INT} shares, more than one order can hold."
REVIEW_FIELDS = {"instrument": "instrument_id"}


def review_fields(parsed: Parsed, review: Review, stop_errors: dict[str, str]) -> dict[str, str]:
    """The review's messages by the request's own field paths (`quantities.12`, `price`, `stop`)."""
    fields = {parsed.field if k == "clients" else REVIEW_FIELDS.get(k, k): v for k, v in review.errors.items()}
    fields.update({f"{parsed.field}.{k}": v for k, v in review.quantity_errors.items()})
    if not review.ok:  # why each child was refused, when risk refused them all
        fields.update({f"{parsed.field}.{c.client.id}": c.block for c in review.checks if c.block})
    if parsed.skipped and not any(q > 0 for q in parsed.ticket.quantities.values()):
        fields.update({f"{parsed.field}.{k}": v for k, v in parsed.skipped.items()})
    fields.update(stop_errors)
    return fields


def _ticket_id(user: User) -> str:
    key = request.headers.get("Idempotency-Key")
    return str(uuid.uuid5(TICKET_NAMESPACE, f"{user.id}:{key}") if key else uuid.uuid4())


@bp.post("/tickets/preview")
@operation("orders.place", scope="trade", replies=replies(TicketPreview), tag="tickets")
def preview_ticket(json: TicketIn):
    """Review a ticket without placing it: each client's quantity, value, margin and risk verdict."""
    user = g.api_user
    parsed = parse(json, user, ticket_id="")
    review, stop_errors = review_with_levels(user, parsed.ticket, parsed.clients, parsed.levels, get_redis())
    errors = review_fields(parsed, review, stop_errors)
    db.session.rollback()  # a preview writes nothing
    instrument = review.instrument
    return TicketPreview(
        ok=review.ok and not stop_errors,
        instrument=instrument_ref(instrument),
        unit_price=review.unit_price,
        errors=errors,
        skipped={str(k): v for k, v in parsed.skipped.items()},
        children=[
            PreviewChild(
                client_id=check.client.id,
                quantity=check.quantity,
                value=check.value,
                margin=check.margin,
                available=check.available,
                sends=not check.block,
                reason=check.block,
            )
            for check in review.checks
        ],
    )


@bp.post("/tickets")
@operation(
    "orders.place", scope="trade", replies=replies(BatchOut, status=201, extra=(409,)), tag="tickets", idempotent=True
)
def place_ticket_api(json: TicketIn):
    """Place one order for many clients: reviewed as the web ticket, written as one batch, sent by a worker."""
    user = g.api_user
    parsed = parse(json, user, _ticket_id(user))
    placed = place_ticket(user, parsed.ticket, parsed.clients, parsed.levels, ip=request.remote_addr)
    if placed.unavailable:
        raise ApiError(503, "unavailable", QUEUE_UNAVAILABLE, headers={"Retry-After": "5"})
    if placed.duplicate:
        raise ApiError(
            409, "duplicate", "This Idempotency-Key already placed a ticket: look its batch up in GET /api/v1/batches."
        )
    if placed.batch is None:
        raise ApiError(
            422,
            "refused",
            "The ticket was refused; nothing was placed. See `fields`.",
            review_fields(parsed, placed.review, placed.stop_errors),
        )
    batch, children = batch_for(user, placed.batch.id)
    return batch_out(batch, children), 201, {"Location": url_for("api.get_batch", batch_id=batch.id)}
