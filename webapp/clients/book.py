"""What a client page shows of the client's book: positions, holdings, open orders, funds, P&L."""

from __future__ import annotations

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import FundsSnapshot, Holding, Order, Position
from webapp.trading import states
from webapp.trading.pnl import Totals, client_totals


def client_book(client_id: int) -> dict:
    positions = (
        db.session.execute(
            sa.select(Position).where(Position.client_id == client_id).order_by(Position.quantity == 0, Position.id)
        )
        .scalars()
        .all()
    )
    holdings = db.session.execute(sa.select(Holding).where(Holding.client_id == client_id)).scalars().all()
    return {
        "client_id": client_id,
        "positions": positions,
        "holdings": holdings,
        "orders": recent_orders(client_id),
        "states": states,
        "funds": db.session.get(FundsSnapshot, client_id),
        "totals": client_totals([client_id]).get(client_id, Totals()),
    }


def recent_orders(client_id: int) -> list[Order]:
    """The client's last 50 orders, newest first (its page's "Recent orders")."""
    return list(
        db.session.execute(
            sa.select(Order).where(Order.client_id == client_id).order_by(Order.id.desc()).limit(50)
        ).scalars()
    )
