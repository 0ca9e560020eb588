"""A client's book as the desk shows it — its page, the feed's fragments and /api/v1/clients read it
here: positions, holdings, orders, trades, funds and today's P&L totals."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import FundsSnapshot, Holding, Order, Position, Trade
from webapp.trading import states
from webapp.trading.pnl import Totals, client_totals

RECENT_ORDERS = 50  # the client page's "Recent orders"


def client_book(client_id: int) -> dict:
    return {
        "client_id": client_id,
        "positions": positions(client_id),
        "holdings": holdings(client_id),
        "orders": recent_orders(client_id),
        "states": states,
        "funds": funds(client_id),
        "totals": totals([client_id])[client_id],
    }


def positions(client_id: int, *, open_only: bool = False) -> list[Position]:
    """Today's positions, open ones first (`open_only`: only those with a net quantity)."""
    query = sa.select(Position).where(Position.client_id == client_id)
    if open_only:
        query = query.where(Position.quantity != 0)
    return list(db.session.execute(query.order_by(Position.quantity == 0, Position.id)).scalars())


def holdings(client_id: int) -> list[Holding]:
    return list(
        db.session.execute(sa.select(Holding).where(Holding.client_id == client_id).order_by(Holding.id)).scalars()
    )


def holding_pnl(holding: Holding) -> Decimal | None:
    """(last − average) × every share held, settled or T1; None before the broker reports a last price."""
    if holding.last_price is None:
        return None
    return (holding.last_price - holding.average_price) * (holding.quantity + holding.t1_quantity)


def funds(client_id: int) -> FundsSnapshot | None:
    """The broker's funds as last synced, or None before the first sync."""
    return db.session.get(FundsSnapshot, client_id)


def totals(client_ids: Iterable[int]) -> dict[int, Totals]:
    """Today's realized and unrealized P&L per client; a client without positions is flat (zeros)."""
    ids = list(client_ids)
    found = client_totals(ids) if ids else {}
    return {client_id: found.get(client_id, Totals()) for client_id in ids}


def orders_select(client_id: int, status: str | None = None) -> sa.Select:
    """The client's orders, newest first; `status`: only those in that state (webapp.trading.states)."""
    query = sa.select(Order).where(Order.client_id == client_id)
    if status is not None:
        query = query.where(Order.status == status)
    return query.order_by(Order.id.desc())


def recent_orders(client_id: int) -> list[Order]:
    """The client's last RECENT_ORDERS orders, newest first (its page's "Recent orders")."""
    return list(db.session.execute(orders_select(client_id).limit(RECENT_ORDERS)).scalars())


def trades_select(client_id: int) -> sa.Select:
    """The client's fills, newest first."""
    return sa.select(Trade).where(Trade.client_id == client_id).order_by(Trade.filled_at.desc(), Trade.id.desc())
