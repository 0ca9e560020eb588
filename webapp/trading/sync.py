"""Bringing the desk's book in line with a broker's: child order states and fills from the order
book and trade book, the position ledger from new fills, holdings and funds mirrored."""
from __future__ import annotations

import json
import logging

import sqlalchemy as sa

from webapp.brokers.base import BrokerError
from webapp.events import publish
from webapp.extensions import db
from webapp.models import Client, FundsSnapshot, Holding, Instrument, Order, Position, Trade
from webapp.timeutil import utcnow
from webapp.trading import states
from webapp.trading.accounts import adapter_for
from webapp.trading.engine import Context
from webapp.trading.ledger import Book, apply_fill, unrealized

log = logging.getLogger(__name__)


def _instruments(keys: set[tuple[str, str]]) -> dict[tuple[str, str], Instrument]:
    if not keys:
        return {}
    rows = db.session.execute(sa.select(Instrument).where(
        sa.tuple_(Instrument.exchange, Instrument.tradingsymbol).in_(list(keys)))).scalars()
    return {(i.exchange, i.tradingsymbol): i for i in rows}


def sync_client(client_id: int, ctx: Context) -> bool:
    """Everything for one client (the position sync cron); False when the broker could not be
    read (nothing changed)."""
    return _sync(client_id, ctx, full=True)


def sync_orders(client_id: int, ctx: Context) -> bool:
    """What an order changes: its state, its fills (and so the positions), the funds. After a send
    and while orders are open; holdings and the position check wait for the full sync."""
    return _sync(client_id, ctx, full=False)


def _sync(client_id: int, ctx: Context, full: bool) -> bool:
    client = db.session.get(Client, client_id)
    if client is None or client.session_state() != "connected":
        return False
    adapter = adapter_for(client, ctx.config, ctx.vault)
    try:
        book, fills, funds = adapter.order_book(), adapter.trades(), adapter.funds()
        holdings, positions = (adapter.holdings(), adapter.positions()) if full else (None, None)
    except BrokerError as exc:
        log.warning("op=sync client=%s broker=%s result=failed reason=%r", client.id, client.broker, exc.message)
        return False
    finally:
        adapter.close()
    changed = _apply_orders(client, book)
    touched = _apply_trades(client, fills)
    _mirror_funds(client, funds)
    if full:
        _mirror_holdings(client, holdings)
    db.session.commit()
    if full:
        flag_position_differences(ctx.redis, client.id, _differences(client.id, positions))
    for order in changed:
        publish(ctx.redis, "order.updated", order_id=order.id, batch_id=order.batch_id, client_id=client.id,
                status=order.status)
    for position in touched:
        publish(ctx.redis, "position.updated", position_id=position.id, client_id=client.id)
    return True


def _apply_orders(client: Client, book) -> list[Order]:
    by_id = {o.order_id: o for o in book}
    children = db.session.execute(sa.select(Order).where(
        Order.client_id == client.id, Order.broker_order_id.in_(list(by_id)))).scalars().all() if by_id else []
    changed = []
    for child in children:
        at_broker = by_id[child.broker_order_id]
        status = states.FROM_BROKER[at_broker.status]
        if status == states.PLACED and child.status != states.PLACED:
            continue  # a lagging "pending" never moves a child backwards
        if (status, at_broker.filled_quantity) == (child.status, child.filled_quantity):
            continue
        child.status, child.filled_quantity = status, at_broker.filled_quantity
        child.average_price = at_broker.average_price
        if status in (states.REJECTED, states.CANCELLED) and at_broker.status_message:
            child.reason = at_broker.status_message
        changed.append(child)
    return changed


def _apply_trades(client: Client, fills) -> list[Position]:
    known = set(db.session.execute(sa.select(Trade.broker_trade_id).where(Trade.client_id == client.id)).scalars())
    fresh = [f for f in fills if f.trade_id not in known]
    instruments = _instruments({(f.exchange, f.tradingsymbol) for f in fresh})
    children = dict(db.session.execute(sa.select(Order.broker_order_id, Order.id).where(
        Order.client_id == client.id, Order.broker_order_id.in_([f.order_id for f in fresh]))).all()) if fresh else {}
    touched: dict[int, Position] = {}
    for fill in sorted(fresh, key=lambda f: (f.filled_at or utcnow(), f.trade_id)):
        instrument = instruments.get((fill.exchange, fill.tradingsymbol))
        if instrument is None:
            log.warning("op=sync client=%s trade=%s unknown_instrument=%s", client.id, fill.trade_id, fill.tradingsymbol)
            continue
        db.session.add(Trade(order_id=children.get(fill.order_id), client_id=client.id, instrument_id=instrument.id,
                             broker_trade_id=fill.trade_id, broker_order_id=fill.order_id, side=fill.side.value,
                             product=fill.product.value, quantity=fill.quantity, price=fill.price,
                             filled_at=fill.filled_at or utcnow()))
        position = _position(client.id, instrument.id, fill.product.value)
        book = apply_fill(Book(position.quantity, position.cost, position.realized_pnl),
                          fill.side.value, fill.quantity, fill.price)
        position.quantity, position.cost, position.realized_pnl = book.quantity, book.cost, book.realized_pnl
        position.average_price = book.average_price
        position.unrealized_pnl = unrealized(book, position.last_price)  # a closed position has none left
        if fill.side.value == "BUY":
            position.buy_quantity += fill.quantity
        else:
            position.sell_quantity += fill.quantity
        touched[position.id] = position
    db.session.flush()
    return list(touched.values())


def _position(client_id: int, instrument_id: int, product: str) -> Position:
    position = db.session.execute(sa.select(Position).where(
        Position.client_id == client_id, Position.instrument_id == instrument_id,
        Position.product == product)).scalar_one_or_none()
    if position is None:
        position = Position(client_id=client_id, instrument_id=instrument_id, product=product, quantity=0,
                            buy_quantity=0, sell_quantity=0)
        position.cost = position.average_price = position.realized_pnl = position.unrealized_pnl = 0
        db.session.add(position)
        db.session.flush()
    return position


def _mirror_holdings(client: Client, holdings) -> None:
    instruments = _instruments({(h.exchange, h.tradingsymbol) for h in holdings})
    current = {h.instrument_id: h for h in db.session.execute(sa.select(Holding).where(Holding.client_id == client.id)).scalars()}
    seen = set()
    for item in holdings:
        instrument = instruments.get((item.exchange, item.tradingsymbol))
        if instrument is None:
            continue
        seen.add(instrument.id)
        row = current.get(instrument.id) or Holding(client_id=client.id, instrument_id=instrument.id)
        row.quantity, row.t1_quantity, row.average_price = item.quantity, item.t1_quantity, item.average_price
        row.last_price, row.synced_at = item.last_price, utcnow()
        db.session.add(row)
    for instrument_id, row in current.items():
        if instrument_id not in seen:
            db.session.delete(row)


def _mirror_funds(client: Client, funds) -> None:
    row = db.session.get(FundsSnapshot, client.id) or FundsSnapshot(client_id=client.id)
    row.available_cash, row.margin_used, row.collateral = funds.available_cash, funds.margin_used, funds.collateral
    row.synced_at = utcnow()
    db.session.add(row)


def clients_with_open_orders() -> list[int]:
    return list(db.session.execute(sa.select(Order.client_id).where(
        Order.status.in_(states.AT_BROKER)).distinct()).scalars())


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
    for position, instrument in db.session.execute(sa.select(Position, Instrument).join(
            Instrument, Position.instrument_id == Instrument.id).where(Position.client_id == client_id)).all():
        desk[(instrument.exchange, instrument.tradingsymbol, position.product)] = position.quantity
    return [{"instrument": f"{k[0]}:{k[1]}", "product": k[2], "desk": desk.get(k, 0), "broker": broker.get(k, 0)}
            for k in sorted(set(broker) | set(desk)) if desk.get(k, 0) != broker.get(k, 0)]


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
