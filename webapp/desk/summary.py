"""The desk's figures, from its own book (no broker call): per client and for the whole desk."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from webapp.extensions import db, get_redis
from webapp.marketdata.feed import HEARTBEAT_KEY
from webapp.models import Client, FundsSnapshot, Order, Position
from webapp.timeutil import utcnow
from webapp.trading import states

ZERO = Decimal(0)
STALE_AFTER_SECONDS = 5


@dataclass(frozen=True)
class ClientRow:
    client: Client
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    available_margin: Decimal | None = None
    margin_used: Decimal | None = None
    open_positions: int = 0
    open_orders: int = 0

    @property
    def day_pnl(self) -> Decimal:
        return self.realized + self.unrealized


@dataclass(frozen=True)
class DeskTotals:
    realized: Decimal
    unrealized: Decimal  # the desk's mark to market
    margin_used: Decimal
    open_orders: int
    prices_age: float | None  # seconds since the feed's last tick; None: never

    @property
    def day_pnl(self) -> Decimal:
        return self.realized + self.unrealized

    @property
    def stale(self) -> bool:
        return self.prices_age is None or self.prices_age > STALE_AFTER_SECONDS


@dataclass(frozen=True)
class DeskView:
    rows: list[ClientRow]
    totals: DeskTotals


def _grouped(query) -> dict:
    return {row[0]: row[1:] for row in db.session.execute(query).all()}


def desk_view(client_ids: list[int] | None) -> DeskView:
    """client_ids None: every client (an admin's desk)."""
    clients = db.session.execute(sa.select(Client).where(Client.id.in_(client_ids)) if client_ids is not None
                                 else sa.select(Client)).scalars().all()
    clients = sorted(clients, key=lambda c: c.name)
    ids = [c.id for c in clients]
    pnl = _grouped(sa.select(Position.client_id, sa.func.sum(Position.realized_pnl), sa.func.sum(Position.unrealized_pnl),
                             sa.func.sum(sa.case((Position.quantity != 0, 1), else_=0)))
                   .where(Position.client_id.in_(ids)).group_by(Position.client_id))
    funds = {f.client_id: f for f in db.session.execute(sa.select(FundsSnapshot).where(FundsSnapshot.client_id.in_(ids))).scalars()}
    orders = _grouped(sa.select(Order.client_id, sa.func.count()).where(
        Order.client_id.in_(ids), Order.status.in_(states.AT_BROKER)).group_by(Order.client_id))
    rows = []
    for c in clients:
        realized, unrealized, positions = pnl.get(c.id, (ZERO, ZERO, 0))
        f = funds.get(c.id)
        rows.append(ClientRow(c, Decimal(realized or 0), Decimal(unrealized or 0),
                              f.available_margin if f else None, f.margin_used if f else None,
                              int(positions or 0), orders.get(c.id, (0,))[0]))
    return DeskView(rows, DeskTotals(
        realized=sum((r.realized for r in rows), ZERO), unrealized=sum((r.unrealized for r in rows), ZERO),
        margin_used=sum((r.margin_used or ZERO for r in rows), ZERO), open_orders=sum(r.open_orders for r in rows),
        prices_age=prices_age()))


def prices_age() -> float | None:
    from datetime import datetime

    beat = get_redis().get(HEARTBEAT_KEY)
    return None if beat is None else (utcnow() - datetime.fromisoformat(beat)).total_seconds()
