"""What the deployment pages show, read in a few queries: today's counts per deployment, and one
deployment's clients (with their paper twins), signals with each batch's children, and P&L.

P&L is the deployment's own: the fills of the orders in its batches, walked through the ledger's
average-cost book per (client, instrument), marked to the feed's last price. In paper mode those
orders are the twins', so this is the twins' paper-exchange P&L, and a live client's manual trades in
the same stock are not counted as the deployment's."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from webapp.automation.twins import is_paper
from webapp.extensions import db
from webapp.models import Batch, Deployment, Instrument, Order, StrategySignal, Trade
from webapp.models.base import in_ids
from webapp.trading.ledger import Book, apply_fill
from webapp.trading.risk import start_of_day
from webapp.trading.tickets import reference_price

ZERO = Decimal("0")
SIGNALS_SHOWN = 50


@dataclass
class Today:
    signals: int = 0
    orders: int = 0


def today_counts(ids: list[int]) -> dict[int, Today]:
    counts = {i: Today() for i in ids}
    if not ids:
        return counts
    since = start_of_day()
    for deployment_id, n in db.session.execute(
        sa.select(StrategySignal.deployment_id, sa.func.count())
        .where(in_ids(StrategySignal.deployment_id, ids), StrategySignal.created_at >= since)
        .group_by(StrategySignal.deployment_id)
    ):
        counts[deployment_id].signals = n
    for deployment_id, n in db.session.execute(
        sa.select(Batch.deployment_id, sa.func.count(Order.id))
        .join(Order, Order.batch_id == Batch.id)
        .where(in_ids(Batch.deployment_id, ids), Order.created_at >= since)
        .group_by(Batch.deployment_id)
    ):
        counts[deployment_id].orders = n
    return counts


@dataclass
class ClientPnl:
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    open_quantity: int = 0

    @property
    def total(self) -> Decimal:
        return self.realized + self.unrealized


def pnl(deployment_ids: list[int], redis) -> dict[int, dict[int, ClientPnl]]:
    """Per deployment, per trading account (the client, or its twin in paper mode): P&L of its fills."""
    result: dict[int, dict[int, ClientPnl]] = defaultdict(dict)
    if not deployment_ids:
        return result
    rows = db.session.execute(
        sa.select(Batch.deployment_id, Trade.client_id, Trade.instrument_id, Trade.side, Trade.quantity, Trade.price)
        .join(Order, Order.id == Trade.order_id)
        .join(Batch, Batch.id == Order.batch_id)
        .where(in_ids(Batch.deployment_id, deployment_ids))
        .order_by(Trade.filled_at, Trade.id)
    ).all()
    books: dict[tuple[int, int, int], Book] = {}
    for deployment_id, client_id, instrument_id, side, quantity, price in rows:
        key = (deployment_id, client_id, instrument_id)
        books[key] = apply_fill(books.get(key, Book()), side, quantity, price)
    instruments = {
        i.id: i
        for i in db.session.execute(
            sa.select(Instrument).where(in_ids(Instrument.id, list({k[2] for k in books})))
        ).scalars()
    }
    prices = {i: reference_price(instrument, redis) for i, instrument in instruments.items()}
    for (deployment_id, client_id, instrument_id), book in books.items():
        line = result[deployment_id].setdefault(client_id, ClientPnl())
        line.realized += book.realized_pnl
        price = prices.get(instrument_id)
        if book.quantity and price is not None:
            line.unrealized += book.quantity * price - (book.cost if book.quantity > 0 else -book.cost)
        line.open_quantity += abs(book.quantity)
    return result


@dataclass
class ClientRow:
    client: object
    twin: object | None
    sizing_value: Decimal
    capital: Decimal | None
    pnl: ClientPnl


@dataclass
class SignalRow:
    signal: StrategySignal
    children: list[Order] = field(default_factory=list)


def detail(deployment: Deployment, redis) -> dict:
    """Everything the deployment page and its live partial show."""
    by_account = pnl([deployment.id], redis).get(deployment.id, {})
    paper = is_paper(deployment)
    rows = []
    for dc in sorted(deployment.clients, key=lambda dc: dc.client.name):
        account = dc.twin_id if paper and dc.twin_id else dc.client_id
        rows.append(
            ClientRow(
                client=dc.client,
                twin=dc.twin,
                sizing_value=dc.sizing_value if dc.sizing_value is not None else deployment.sizing_value,
                capital=dc.capital,
                pnl=by_account.get(account, ClientPnl()),
            )
        )
    total = ClientPnl(
        realized=sum((r.pnl.realized for r in rows), ZERO),
        unrealized=sum((r.pnl.unrealized for r in rows), ZERO),
        open_quantity=sum(r.pnl.open_quantity for r in rows),
    )
    signals = list(
        db.session.execute(
            sa.select(StrategySignal)
            .where(StrategySignal.deployment_id == deployment.id)
            .order_by(StrategySignal.bar_time.desc(), StrategySignal.id.desc())
            .limit(SIGNALS_SHOWN)
        ).scalars()
    )
    children: dict[int, list[Order]] = defaultdict(list)
    batch_ids = [s.batch_id for s in signals if s.batch_id]
    if batch_ids:
        for order in db.session.execute(
            sa.select(Order).where(in_ids(Order.batch_id, batch_ids)).order_by(Order.id)
        ).scalars():
            children[order.batch_id].append(order)
    names = {dc.client_id: dc.client.name for dc in deployment.clients}
    names.update({dc.twin_id: f"{dc.client.name} (paper twin)" for dc in deployment.clients if dc.twin_id})
    return {
        "deployment": deployment,
        "paper_mode": paper,
        "rows": rows,
        "total": total,
        "signals": [SignalRow(s, children.get(s.batch_id, [])) for s in signals],
        "account_names": names,
        "today": today_counts([deployment.id])[deployment.id],
    }
