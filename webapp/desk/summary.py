"""Per-client figures for the desk table, from the desk's own book (no broker call)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import FundsSnapshot, Order, Position
from webapp.trading import states


@dataclass(frozen=True)
class ClientSummary:
    available_margin: Decimal | None = None
    margin_used: Decimal | None = None
    open_positions: int = 0
    open_orders: int = 0
    realized_pnl: Decimal = Decimal(0)


def client_summaries(client_ids: list[int]) -> dict[int, ClientSummary]:
    funds = {f.client_id: f for f in db.session.execute(
        sa.select(FundsSnapshot).where(FundsSnapshot.client_id.in_(client_ids))).scalars()}
    positions = dict(db.session.execute(
        sa.select(Position.client_id, sa.func.count()).where(Position.client_id.in_(client_ids), Position.quantity != 0)
        .group_by(Position.client_id)).all())
    realized = dict(db.session.execute(
        sa.select(Position.client_id, sa.func.sum(Position.realized_pnl)).where(Position.client_id.in_(client_ids))
        .group_by(Position.client_id)).all())
    orders = dict(db.session.execute(
        sa.select(Order.client_id, sa.func.count()).where(Order.client_id.in_(client_ids),
                                                           Order.status.in_(states.AT_BROKER))
        .group_by(Order.client_id)).all())
    return {cid: ClientSummary(
        available_margin=funds[cid].available_margin if cid in funds else None,
        margin_used=funds[cid].margin_used if cid in funds else None,
        open_positions=positions.get(cid, 0), open_orders=orders.get(cid, 0),
        realized_pnl=Decimal(realized.get(cid) or 0)) for cid in client_ids}
