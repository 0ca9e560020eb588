"""Bringing the desk's book in line with a broker's: child order states and fills from the order
book and trade book, the position ledger from new fills, holdings and funds mirrored."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from webapp.brokers.base import BrokerError
from webapp.events import publish_many
from webapp.extensions import db
from webapp.models import Client, FundsSnapshot, Holding, Instrument, Order, Position, Trade
from webapp.models.base import in_ids
from webapp.timeutil import utcnow
from webapp.trading import order_actions, states
from webapp.trading.accounts import adapter_for
from webapp.trading.children import child_event, write_children
from webapp.trading.context import Context
from webapp.trading.ledger import Book, apply_fill, unrealized
from webapp.trading.locks import sends_in_flight

log = logging.getLogger(__name__)


def _instruments(keys: set[tuple[str, str]]) -> dict[tuple[str, str], Instrument]:
    if not keys:
        return {}
    rows = db.session.execute(
        sa.select(Instrument).where(sa.tuple_(Instrument.exchange, Instrument.tradingsymbol).in_(list(keys)))
    ).scalars()
    return {(i.exchange, i.tradingsymbol): i for i in rows}


SYNC_POOL = 16  # clients read at once: each sync is a few reads, well inside every broker's read limits
WRITE_GROUP = 10  # clients written per transaction: a short hold of SQLite's one write lock
YIELD_SECONDS = 2.0  # longest a sync read waits for batches being sent


def sync_client(client_id: int, ctx: Context) -> bool:
    """Everything for one client (the position sync cron); False when the broker could not be
    read (nothing changed)."""
    return client_id in sync_clients([client_id], ctx, full=True)


def sync_orders(client_id: int, ctx: Context) -> bool:
    """What an order changes: its state, its fills (and so the positions), the funds. After a send
    and while orders are open; holdings and the position check wait for the full sync."""
    return client_id in sync_clients([client_id], ctx, full=False)


@dataclass
class _Read:
    client_id: int
    book: list = field(default_factory=list)
    fills: list = field(default_factory=list)
    funds: Any = None
    holdings: list | None = None
    positions: list | None = None


def sync_clients(client_ids: list[int], ctx: Context, *, full: bool) -> set[int]:
    """Sync these clients; returns the ones whose broker could be read (the others are unchanged).

    Their books are read concurrently, in threads that only talk to brokers. The answers are
    written here, in this thread, a few clients per transaction as they arrive: the database is
    written by one thread, and each write transaction is one short flush and commit (on SQLite,
    sixteen threads each holding the one write lock from their first UPDATE to their commit kept
    the ticket POST and the send waiting)."""
    adapters = {}
    if client_ids:
        for client in db.session.execute(sa.select(Client).where(in_ids(Client.id, client_ids))).scalars():
            if client.session_state() != "connected":
                continue
            try:
                adapters[client.id] = adapter_for(client, ctx.config, ctx.vault)
            except Exception:  # one client's bad stored data must not stop the others
                log.exception("op=sync client=%s result=failed reason=unreadable-broker-details", client.id)
        db.session.commit()  # ends the read: nothing is held while the brokers answer
    if not adapters:
        return set()

    def read(client_id: int) -> _Read | None:
        adapter = adapters[client_id]

        def call(method):
            _yield_to_sends(ctx.redis)
            return method()

        try:
            got = _Read(client_id, call(adapter.order_book), call(adapter.trades), call(adapter.funds))
            if full:
                got.holdings, got.positions = call(adapter.holdings), call(adapter.positions)
            return got
        except BrokerError as exc:
            log.warning("op=sync client=%s broker=%s result=failed reason=%r", client_id, adapter.name, exc.message)
            return None
        finally:
            adapter.close()

    synced: set[int] = set()
    with ThreadPoolExecutor(max_workers=min(SYNC_POOL, len(adapters)), thread_name_prefix="sync") as pool:
        group: list[_Read] = []
        for future in as_completed([pool.submit(read, client_id) for client_id in adapters]):
            if (got := future.result()) is not None:
                group.append(got)
            if len(group) >= WRITE_GROUP:
                synced |= _write(group, ctx, full)
                group = []
        if group:
            synced |= _write(group, ctx, full)
    return synced


def _yield_to_sends(redis) -> None:
    """Wait, a bounded while, for the batches being sent: a background read must not compete with
    a trader's orders for the desk's CPU, the database or the broker's front end."""
    deadline = time.monotonic() + YIELD_SECONDS
    try:
        while sends_in_flight(redis) and time.monotonic() < deadline:
            time.sleep(0.025)  # 16 threads polling: ~640 Redis reads a second, a few % of a core
    except RedisError:  # no Redis: nothing to yield to that we can see
        pass


def _write(reads: list[_Read], ctx: Context, full: bool) -> set[int]:
    """One transaction for these clients' answers: the reads first (no autoflush), then one flush
    and commit, so the write lock is held only for those. Events go out after the commit. If
    another process recorded one of these trades first, each client is written alone instead."""
    moves: list[_Move] = []
    touched: list[Position] = []
    try:
        with db.session.no_autoflush:
            for got in reads:
                moves += _order_moves(got.client_id, got.book)
                touched += _apply_trades(got.client_id, got.fills)
                _mirror_funds(got.client_id, got.funds)
                if full:
                    _mirror_holdings(got.client_id, got.holdings)
        db.session.flush()
        changed = _move_children(moves)
        # read before the commit expires them: afterwards each would be loaded again, a query apiece
        events = [("order.updated", event) for event in changed] + [
            ("position.updated", {"position_id": p.id, "client_id": p.client_id}) for p in touched
        ]
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if len(reads) == 1:
            log.warning("op=sync client=%s result=conflict (written by another process; next sync)", reads[0].client_id)
            return set()
        return set().union(*(_write([got], ctx, full) for got in reads))
    if full:
        for got in reads:
            flag_position_differences(ctx.redis, got.client_id, _differences(got.client_id, got.positions))
        db.session.commit()
    publish_many(ctx.redis, events)
    return {got.client_id for got in reads}


@dataclass
class _Move:
    """A child's state and fills as its broker's book shows them, to be written."""

    status: str
    batch_id: int | None
    client_id: int
    row: dict[str, Any]


def _order_moves(client_id: int, book) -> list[_Move]:
    """What the broker's book changes of the client's children, read now and written later (with the
    rest of the group's writes): states and fills, through the state machine (a stale read that
    would move a final child, a COMPLETE one seen OPEN, is refused and logged)."""
    by_id = {o.order_id: o for o in book}
    children = (
        db.session.execute(
            sa.select(
                Order.id, Order.batch_id, Order.status, Order.filled_quantity, Order.reason, Order.broker_order_id
            ).where(Order.client_id == client_id, Order.broker_order_id.in_(list(by_id)))
        ).all()
        if by_id
        else []
    )
    moves = []
    for child in children:
        at_broker = by_id[child.broker_order_id]
        status = states.FROM_BROKER[at_broker.status]
        if status == states.PLACED and child.status != states.PLACED:
            continue  # a lagging "pending" never moves a child backwards
        if (status, at_broker.filled_quantity) == (child.status, child.filled_quantity):
            continue
        if not states.check(child.id, child.status, status):
            continue
        reason = child.reason
        if status == states.CANCELLED and (ours := order_actions.cancelled_reason(child.reason)):
            reason = ours  # the desk asked: say who, not the broker's "cancelled on request"
        elif status in (states.REJECTED, states.CANCELLED) and at_broker.status_message:
            reason = at_broker.status_message
        moves.append(
            _Move(
                status,
                child.batch_id,
                client_id,
                {
                    "id": child.id,
                    "filled_quantity": at_broker.filled_quantity,
                    "average_price": at_broker.average_price,
                    "reason": reason,
                },
            )
        )
    return moves


def _move_children(moves: list[_Move]) -> list[dict[str, Any]]:
    """Write the moves, one conditional executemany per state (another process may have moved a
    child since it was read: that one is refused, not overwritten); their order.updated events."""
    by_status: dict[str, list[_Move]] = {}
    for move in moves:
        by_status.setdefault(move.status, []).append(move)
    events = []
    for status, group in by_status.items():
        refused = write_children(status, [move.row for move in group])
        events += [
            child_event(m.row["id"], m.batch_id, m.client_id, status) for m in group if m.row["id"] not in refused
        ]
    return events


def _apply_trades(client_id: int, fills) -> list[Position]:
    """New fills become trades and move the client's positions (in this session, unflushed)."""
    ids = list({f.trade_id for f in fills})
    known = (
        set(
            db.session.execute(
                sa.select(Trade.broker_trade_id).where(Trade.client_id == client_id, Trade.broker_trade_id.in_(ids))
            ).scalars()
        )
        if ids
        else set()
    )
    fresh = [f for f in fills if f.trade_id not in known]
    if not fresh:
        return []
    instruments = _instruments({(f.exchange, f.tradingsymbol) for f in fresh})
    children = dict(
        db.session.execute(
            sa.select(Order.broker_order_id, Order.id).where(
                Order.client_id == client_id, Order.broker_order_id.in_([f.order_id for f in fresh])
            )
        ).all()
    )
    positions = {
        (p.instrument_id, p.product): p
        for p in db.session.execute(
            sa.select(Position).where(
                Position.client_id == client_id, Position.instrument_id.in_([i.id for i in instruments.values()])
            )
        ).scalars()
    }
    touched: dict[tuple[int, str], Position] = {}
    for fill in sorted(fresh, key=lambda f: (f.filled_at or utcnow(), f.trade_id)):
        instrument = instruments.get((fill.exchange, fill.tradingsymbol))
        if instrument is None:
            log.warning(
                "op=sync client=%s trade=%s unknown_instrument=%s", client_id, fill.trade_id, fill.tradingsymbol
            )
            continue
        db.session.add(
            Trade(
                order_id=children.get(fill.order_id),
                client_id=client_id,
                instrument_id=instrument.id,
                broker_trade_id=fill.trade_id,
                broker_order_id=fill.order_id,
                side=fill.side.value,
                product=fill.product.value,
                quantity=fill.quantity,
                price=fill.price,
                filled_at=fill.filled_at or utcnow(),
            )
        )
        key = (instrument.id, fill.product.value)
        position = positions.get(key)
        if position is None:
            position = positions[key] = Position(
                client_id=client_id,
                instrument_id=instrument.id,
                product=fill.product.value,
                quantity=0,
                buy_quantity=0,
                sell_quantity=0,
                cost=0,
                average_price=0,
                realized_pnl=0,
                unrealized_pnl=0,
            )
            db.session.add(position)
        book = apply_fill(
            Book(position.quantity, position.cost, position.realized_pnl), fill.side.value, fill.quantity, fill.price
        )
        position.quantity, position.cost, position.realized_pnl = book.quantity, book.cost, book.realized_pnl
        position.average_price = book.average_price
        position.unrealized_pnl = unrealized(book, position.last_price)  # a closed position has none left
        if fill.side.value == "BUY":
            position.buy_quantity += fill.quantity
        else:
            position.sell_quantity += fill.quantity
        touched[key] = position
    return list(touched.values())


def _rolled_by_desk(row: Holding, now) -> bool:
    """The desk's day-end rolled today's delivery buys into this row (automation/dayend.py): it is
    the desk's until 09:00 IST the next day, by when every broker's own overnight roll shows them."""
    from datetime import datetime, time, timedelta

    from webapp.timeutil import IST

    return row.rolled_day is not None and now < datetime.combine(row.rolled_day + timedelta(days=1), time(9), IST)


def _mirror_holdings(client_id: int, holdings) -> None:
    instruments = _instruments({(h.exchange, h.tradingsymbol) for h in holdings})
    current = {
        h.instrument_id: h
        for h in db.session.execute(sa.select(Holding).where(Holding.client_id == client_id)).scalars()
    }
    now = utcnow()
    kept = {i for i, row in current.items() if _rolled_by_desk(row, now)}  # neither overwritten nor deleted
    seen = set(kept)
    for item in holdings:
        instrument = instruments.get((item.exchange, item.tradingsymbol))
        if instrument is None or instrument.id in kept:
            continue
        seen.add(instrument.id)
        row = current.get(instrument.id) or Holding(client_id=client_id, instrument_id=instrument.id)
        row.rolled_day = None
        row.quantity, row.t1_quantity, row.average_price = item.quantity, item.t1_quantity, item.average_price
        row.last_price, row.synced_at = item.last_price, utcnow()
        db.session.add(row)
    for instrument_id, row in current.items():
        if instrument_id not in seen:
            db.session.delete(row)


def _mirror_funds(client_id: int, funds) -> None:
    row = db.session.get(FundsSnapshot, client_id) or FundsSnapshot(client_id=client_id)
    row.available_cash, row.margin_used, row.collateral = funds.available_cash, funds.margin_used, funds.collateral
    row.synced_at = utcnow()
    db.session.add(row)


def clients_with_open_orders() -> list[int]:
    return list(
        db.session.execute(sa.select(Order.client_id).where(Order.status.in_(states.AT_BROKER)).distinct()).scalars()
    )


def connected_clients() -> list[int]:
    clients = db.session.execute(sa.select(Client).where(Client.enabled.is_(True))).scalars()
    return [c.id for c in clients if c.session_state() == "connected"]


DIFF_KEY = "fanout:position-diff:{client_id}"


def _differences(client_id: int, at_broker) -> list[dict]:
    """Net quantity per instrument and product: the desk's ledger against the broker's positions."""
    broker = {}
    for p in at_broker:
        key = (p.exchange, p.tradingsymbol, p.product.value)
        broker[key] = broker.get(key, 0) + p.quantity
    desk = {}
    for position, instrument in db.session.execute(
        sa.select(Position, Instrument)
        .join(Instrument, Position.instrument_id == Instrument.id)
        .where(Position.client_id == client_id)
    ).all():
        desk[(instrument.exchange, instrument.tradingsymbol, position.product)] = position.quantity
    return [
        {"instrument": f"{k[0]}:{k[1]}", "product": k[2], "desk": desk.get(k, 0), "broker": broker.get(k, 0)}
        for k in sorted(set(broker) | set(desk))
        if desk.get(k, 0) != broker.get(k, 0)
    ]


def flag_position_differences(redis, client_id: int, differences: list[dict]) -> None:
    key = DIFF_KEY.format(client_id=client_id)
    if differences:
        log.warning("op=position_sync client=%s differences=%s", client_id, len(differences))
        redis.set(key, json.dumps(differences), ex=3600)
    else:
        redis.delete(key)


def position_differences(redis, client_ids: list[int]) -> dict[int, list[dict]]:
    if not client_ids:
        return {}
    raws = redis.mget([DIFF_KEY.format(client_id=c) for c in client_ids])
    return {c: json.loads(raw) for c, raw in zip(client_ids, raws) if raw}
