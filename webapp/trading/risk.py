"""Pre-trade risk, checked before anything is sent: per client, per user, the kill switches and the
broker session. A breach blocks that client's child with the reason; the others go on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Client, DeskState, FundsSnapshot, Order, Position, User
from webapp.models.base import in_ids
from webapp.money import rupees
from webapp.timeutil import IST, utcnow
from webapp.trading.pnl import client_totals

# margin the desk expects a broker to block, by product, for the preview (brokers compute their own)
MARGIN_RATE = {"CNC": Decimal("1"), "MIS": Decimal("0.2"), "MTF": Decimal("0.25"), "NRML": Decimal("1")}


def start_of_day(now: datetime | None = None) -> datetime:
    local = (now or utcnow()).astimezone(IST)
    return datetime.combine(local.date(), time(0), IST)


def desk_killed() -> bool:
    state = db.session.get(DeskState, 1)
    return bool(state and state.kill_switch)


def orders_today(client_ids: list[int], now: datetime | None = None) -> dict[int, int]:
    if not client_ids:
        return {}
    rows = db.session.execute(
        sa.select(Order.client_id, sa.func.count())
        .where(in_ids(Order.client_id, client_ids), Order.created_at >= start_of_day(now))
        .group_by(Order.client_id)
    ).all()
    return dict(rows)


def day_pnl(client_ids: list[int]) -> dict[int, Decimal]:
    """Realized + unrealized per client: the desk's client totals (exact sums on SQLite too)."""
    return {cid: totals.day for cid, totals in client_totals(client_ids).items()} if client_ids else {}


def open_positions(client_ids: list[int]) -> dict[int, set[int]]:
    if not client_ids:
        return {}
    rows = db.session.execute(
        sa.select(Position.client_id, Position.instrument_id).where(
            in_ids(Position.client_id, client_ids), Position.quantity != 0
        )
    ).all()
    result: dict[int, set[int]] = {}
    for client_id, instrument_id in rows:
        result.setdefault(client_id, set()).add(instrument_id)
    return result


@dataclass(frozen=True)
class ChildCheck:
    client: Client
    quantity: int
    value: Decimal
    margin: Decimal
    available: Decimal | None  # None: funds not synced yet
    block: str = ""  # why the child may not be sent; "" when it may


def check_children(
    user: User | None,
    clients: list[Client],
    quantities: dict[int, int],
    *,
    instrument_id: int,
    product: str,
    unit_price: Decimal,
    reduces: dict[int, bool] | None = None,
) -> list[ChildCheck]:
    """Every limit for every client with a quantity. `reduces[client_id]` is True when the order
    only reduces an existing position (exits need no margin and open no new position). `user` None:
    the desk acts by itself (a stop, a breaker, the square-off): no person's own limits apply."""
    reduces = reduces or {}
    ids = [c.id for c in clients]

    def limited(limit: str) -> list[int]:  # only clients with that limit set need its query
        return [c.id for c in clients if getattr(c, limit)]

    today, pnl = orders_today(limited("max_orders_per_day")), day_pnl(limited("max_daily_loss"))
    held = open_positions(limited("max_open_positions"))
    f = FundsSnapshot  # rows, not objects (loading ORM objects cost more): the model's own formula applied to each
    available_margin = {
        row.client_id: f.available_margin.fget(row)
        for row in db.session.execute(
            sa.select(f.client_id, f.available_cash, f.collateral, f.margin_used).where(in_ids(f.client_id, ids))
        )
    }
    killed = desk_killed()
    user_orders = _user_orders_today(user) if user else 0
    new_orders = sum(1 for c in clients if quantities.get(c.id))
    user_loss = user_day_loss_blocked(user, ids) if user else ""
    # read once, not once per client
    user_limits = (user.max_position_value, user.max_orders_per_day) if user else (None, None)
    checks = []
    for client in clients:
        qty = quantities.get(client.id, 0)
        if not qty:
            continue
        value = unit_price * qty
        margin = (
            Decimal(0)
            if reduces.get(client.id)
            else (value * MARGIN_RATE.get(product, Decimal(1))).quantize(Decimal("0.01"))
        )
        available = available_margin.get(client.id)
        block = _client_block(
            client,
            qty,
            value,
            margin,
            available,
            product,
            instrument_id,
            killed,
            today.get(client.id, 0),
            pnl.get(client.id),
            held.get(client.id, set()),
            reduces.get(client.id, False),
        )
        block = block or user_loss or _user_block(*user_limits, value, user_orders + new_orders)
        checks.append(ChildCheck(client, qty, value, margin, available, block))
    return checks


def _user_orders_today(user: User) -> int:
    from webapp.models import Batch

    # by the batches' day, not the children's: children are written with their batch, and the count
    # then needs only the orders' batch_id index (measured: docs/BENCHMARKS.md)
    return db.session.execute(
        sa.select(sa.func.count())
        .select_from(Order)
        .join(Batch, Order.batch_id == Batch.id)
        .where(Batch.user_id == user.id, Batch.created_at >= start_of_day())
    ).scalar_one()


def _client_block(
    client: Client,
    qty: int,
    value: Decimal,
    margin: Decimal,
    available: Decimal | None,
    product: str,
    instrument_id: int,
    killed: bool,
    orders_today: int,
    pnl: Decimal | None,
    held: set[int],
    reduces: bool,
) -> str:
    if killed and not reduces:  # exits still go out under a kill switch: that is what it is for
        return "The desk kill switch is on: no new orders until an admin re-arms it."
    if client.kill_switch and not reduces:
        return "This client's kill switch is on."
    if not client.enabled:
        return "This client is disabled."
    if client.session_state() != "connected":
        return "Broker login needed: connect this client first."
    if product not in client.allowed_product_list:
        return f"{product} is not allowed for this client."
    if client.max_quantity and qty > client.max_quantity:
        return f"Quantity {qty} is above this client's limit of {client.max_quantity}."
    if client.max_order_value and value > client.max_order_value:
        return f"Order value ₹{rupees(value)} is above this client's limit of ₹{rupees(client.max_order_value)}."
    if client.max_orders_per_day and orders_today + 1 > client.max_orders_per_day:
        return f"This client has reached its {client.max_orders_per_day} orders for today."
    # an exit is what a client past its loss limit needs: the limit refuses new exposure only
    if not reduces and client.max_daily_loss and pnl is not None and pnl <= -client.max_daily_loss:
        return f"Today's loss ₹{rupees(-pnl)} has reached this client's limit of ₹{rupees(client.max_daily_loss)}."
    if (
        not reduces
        and client.max_open_positions
        and instrument_id not in held
        and len(held) >= client.max_open_positions
    ):
        return f"This client already holds its limit of {client.max_open_positions} open positions."
    if available is not None and margin > available:
        return f"Needs ₹{rupees(margin)} margin; ₹{rupees(available)} available."
    return ""


def _user_block(
    max_position_value: Decimal | None, max_orders_per_day: int | None, value: Decimal, orders_today: int
) -> str:
    if max_position_value and value > max_position_value:
        return f"Order value ₹{rupees(value)} is above your limit of ₹{rupees(max_position_value)}."
    if max_orders_per_day and orders_today > max_orders_per_day:
        return f"You have reached your {max_orders_per_day} orders for today."
    return ""


def user_day_loss_blocked(user: User, client_ids: list[int]) -> str:
    if not user.max_daily_loss:
        return ""
    total = sum(day_pnl(client_ids).values(), Decimal(0))
    if total <= -user.max_daily_loss:
        return f"Your clients' loss today ₹{rupees(-total)} has reached your limit of ₹{rupees(user.max_daily_loss)}."
    return ""
