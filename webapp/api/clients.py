"""/api/v1/clients: the clients this key's user may see, and each one's book (funds, positions,
holdings, orders, trades). The same reads as the client pages (webapp.clients.book) and the same
grants (webapp.access): a client that is not granted answers 404 on every path, as if it did not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from flask import g
from pydantic import BaseModel, Field

from webapp.access import accessible_clients_select, client_for
from webapp.api import bp
from webapp.api.batches_out import InstrumentRef, instrument_ref
from webapp.api.core import Money, Page, PageQuery, operation, paged, replies
from webapp.clients import book
from webapp.extensions import page_redis
from webapp.models import Client, Holding, Order, Position, Trade
from webapp.trading import states
from webapp.trading.pnl import Totals

TAG = "clients"

# --- replies ---------------------------------------------------------------------------------------


class TotalsOut(BaseModel):
    realized: Money = Field(description="Today's realized P&L, rupees.")
    unrealized: Money = Field(description="Open positions marked to the latest price, rupees.")
    day: Money = Field(description="realized + unrealized.")


class ClientOut(BaseModel):
    id: int
    name: str
    broker: str
    client_code: str
    enabled: bool
    killed: bool = Field(description="The client's kill switch is on: no new orders until re-armed.")
    kill_reason: str = Field(description="Who or what engaged the kill switch (empty when off).")
    session: Literal["connected", "expired", "none"] = Field(description="The broker session's state.")
    session_expires_at: datetime | None
    totals: TotalsOut


class FundsOut(BaseModel):
    client_id: int
    available_cash: Money | None = Field(description="Null before the broker's funds were first synced.")
    margin_used: Money | None
    collateral: Money | None
    available_margin: Money | None = Field(description="cash + collateral − margin used.")
    synced_at: datetime | None


class PositionOut(BaseModel):
    id: int
    instrument: InstrumentRef
    product: str
    quantity: int = Field(description="Net: positive long, negative short.")
    average_price: Money
    last_price: Money | None
    unrealized_pnl: Money
    realized_pnl: Money
    price_at: datetime | None = Field(description="When the last price was observed.")
    stale: bool = Field(description="The last price is not a live tick (a broker quote, an old mark or the close).")


class PositionList(BaseModel):
    client_id: int
    items: list[PositionOut]


class HoldingOut(BaseModel):
    id: int
    instrument: InstrumentRef
    quantity: int
    t1_quantity: int
    average_price: Money
    last_price: Money | None
    pnl: Money | None = Field(description="(last − average) × (quantity + T1); null without a last price.")
    synced_at: datetime


class HoldingList(BaseModel):
    client_id: int
    items: list[HoldingOut]


class OrderOut(BaseModel):
    id: int
    batch_id: int | None
    instrument: InstrumentRef
    side: str
    quantity: int
    product: str
    order_type: str
    price: Money | None
    trigger_price: Money | None
    validity: str
    status: str = Field(description=", ".join(states.ALL))
    filled_quantity: int
    average_price: Money | None
    broker_order_id: str | None
    tag: str
    reason: str
    created_at: datetime
    updated_at: datetime


class TradeOut(BaseModel):
    id: int
    order_id: int | None
    instrument: InstrumentRef
    side: str
    product: str
    quantity: int
    price: Money
    broker_trade_id: str
    broker_order_id: str
    filled_at: datetime


# --- queries ---------------------------------------------------------------------------------------


class ClientsQuery(PageQuery):
    q: str | None = Field(None, max_length=64, description="Only clients whose name or client code contains this.")
    enabled: bool | None = Field(None, description="Only enabled (true) or disabled (false) clients.")


class OrdersQuery(PageQuery):
    status: Literal[states.ALL] | None = Field(None, description="Only orders in this state.")


# --- conversions -----------------------------------------------------------------------------------


def client_out(client: Client, totals: Totals) -> ClientOut:
    return ClientOut(
        id=client.id,
        name=client.name,
        broker=client.broker,
        client_code=client.client_code,
        enabled=client.enabled,
        killed=client.kill_switch,
        kill_reason=client.kill_reason or "",
        session=client.session_state(),
        session_expires_at=client.session_expires_at,
        totals=TotalsOut(realized=totals.realized, unrealized=totals.unrealized, day=totals.day),
    )


def position_out(position: Position, live: bool) -> PositionOut:
    return PositionOut(
        id=position.id,
        instrument=instrument_ref(position.instrument),
        product=position.product,
        quantity=position.quantity,
        average_price=position.average_price,
        last_price=position.last_price,
        unrealized_pnl=position.unrealized_pnl,
        realized_pnl=position.realized_pnl,
        price_at=position.price_at,
        stale=position.stale_age(live=live) is not None,
    )


def holding_out(holding: Holding) -> HoldingOut:
    return HoldingOut(
        id=holding.id,
        instrument=instrument_ref(holding.instrument),
        quantity=holding.quantity,
        t1_quantity=holding.t1_quantity,
        average_price=holding.average_price,
        last_price=holding.last_price,
        pnl=book.holding_pnl(holding),
        synced_at=holding.synced_at,
    )


def order_out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        batch_id=order.batch_id,
        instrument=instrument_ref(order.instrument),
        side=order.side,
        quantity=order.quantity,
        product=order.product,
        order_type=order.order_type,
        price=order.price,
        trigger_price=order.trigger_price,
        validity=order.validity,
        status=order.status,
        filled_quantity=order.filled_quantity,
        average_price=order.average_price,
        broker_order_id=order.broker_order_id,
        tag=order.tag,
        reason=order.reason or "",
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def trade_out(trade: Trade) -> TradeOut:
    return TradeOut(
        id=trade.id,
        order_id=trade.order_id,
        instrument=instrument_ref(trade.instrument),
        side=trade.side,
        product=trade.product,
        quantity=trade.quantity,
        price=trade.price,
        broker_trade_id=trade.broker_trade_id,
        broker_order_id=trade.broker_order_id,
        filled_at=trade.filled_at,
    )


# --- operations ------------------------------------------------------------------------------------


@bp.get("/clients")
@operation("desk.view", scope="read", replies=replies(Page[ClientOut]), tag=TAG)
def list_clients(query: ClientsQuery):
    """List the clients you may see, with today's P&L totals."""
    select = accessible_clients_select(g.api_user).order_by(Client.id)
    text = (query.q or "").strip()
    if text:
        select = select.where(
            sa.or_(Client.name.icontains(text, autoescape=True), Client.client_code.icontains(text, autoescape=True))
        )
    if query.enabled is not None:
        select = select.where(Client.enabled.is_(query.enabled))
    rows = paged(select, query, object, convert=lambda client: client)  # the page's clients, then their totals
    totals = book.totals(client.id for client in rows.items)
    return Page[ClientOut](
        items=[client_out(client, totals[client.id]) for client in rows.items], **rows.model_dump(exclude={"items"})
    )


@bp.get("/clients/<int:client_id>")
@operation("desk.view", scope="read", replies=replies(ClientOut), tag=TAG)
def get_client(client_id: int):
    """One client you may see, with today's P&L totals."""
    client = client_for(g.api_user, client_id)
    return client_out(client, book.totals([client.id])[client.id])


@bp.get("/clients/<int:client_id>/funds")
@operation("desk.view", scope="read", replies=replies(FundsOut), tag=TAG)
def client_funds(client_id: int):
    """A client's funds at its broker as last synced (nulls before the first sync)."""
    client = client_for(g.api_user, client_id)
    funds = book.funds(client.id)
    if funds is None:
        return FundsOut(
            client_id=client.id,
            available_cash=None,
            margin_used=None,
            collateral=None,
            available_margin=None,
            synced_at=None,
        )
    return FundsOut(
        client_id=client.id,
        available_cash=funds.available_cash,
        margin_used=funds.margin_used,
        collateral=funds.collateral,
        available_margin=funds.available_margin,
        synced_at=funds.synced_at,
    )


@bp.get("/clients/<int:client_id>/positions")
@operation("desk.view", scope="read", replies=replies(PositionList), tag=TAG)
def client_positions(client_id: int):
    """A client's open positions, marked to market, with their P&L."""
    client = client_for(g.api_user, client_id)
    live = page_redis() is not None  # Redis away: the stored marks are all stale
    return PositionList(
        client_id=client.id, items=[position_out(p, live) for p in book.positions(client.id, open_only=True)]
    )


@bp.get("/clients/<int:client_id>/holdings")
@operation("desk.view", scope="read", replies=replies(HoldingList), tag=TAG)
def client_holdings(client_id: int):
    """A client's delivery holdings as its broker reports them, with their P&L."""
    client = client_for(g.api_user, client_id)
    return HoldingList(client_id=client.id, items=[holding_out(h) for h in book.holdings(client.id)])


@bp.get("/clients/<int:client_id>/orders")
@operation("desk.view", scope="read", replies=replies(Page[OrderOut]), tag=TAG)
def client_orders(client_id: int, query: OrdersQuery):
    """A client's orders, newest first, optionally in one state."""
    client = client_for(g.api_user, client_id)
    return paged(book.orders_select(client.id, query.status), query, OrderOut, convert=order_out)


@bp.get("/clients/<int:client_id>/trades")
@operation("desk.view", scope="read", replies=replies(Page[TradeOut]), tag=TAG)
def client_trades(client_id: int, query: PageQuery):
    """A client's fills, newest first."""
    client = client_for(g.api_user, client_id)
    return paged(book.trades_select(client.id), query, TradeOut, convert=trade_out)
