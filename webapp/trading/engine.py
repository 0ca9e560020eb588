"""Sending child orders: concurrently, throttled per account, never blindly retried (DESIGN §5).

Each child is claimed NEW → SUBMITTING in its own committed transaction before the broker call.
A clear answer makes it PLACED / REJECTED / FAILED; an unclear one (timeout, dropped connection,
5xx, malformed) makes it UNKNOWN, and it is resolved by reading the broker's order book: found →
PLACED, provably absent → sent again, can't tell → stays UNKNOWN for the reconcile cron.
A Redis lock per child makes sure one process at a time talks to the broker about it.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

import redis as redis_lib
import sqlalchemy as sa
from flask import Flask

from webapp.brokers.base import (AuthExpired, Broker, BrokerError, InvalidInput, OrderRequest, OrderType, Product,
                                 RateLimited, Rejected, Side, Unavailable, Validity)
from webapp.events import publish
from webapp.extensions import db
from webapp.models import Client, Order
from webapp.timeutil import utcnow
from webapp.trading import states
from webapp.trading.accounts import adapter_for
from webapp.trading.ratelimit import OrderThrottle
from webapp.vault import Vault

log = logging.getLogger(__name__)

MAX_PLACE_ATTEMPTS = 3  # a child provably absent after this many sends is FAILED
MAX_RATE_LIMIT_WAITS = 20
LOCK_SECONDS = 60  # longer than any broker timeout: a dead worker's lock frees itself
STUCK_AFTER = timedelta(seconds=30)  # a SUBMITTING child older than this lost its worker
CLOCK_SKEW = timedelta(seconds=5)
ARRIVAL_GRACE = timedelta(seconds=30)  # a send with an unclear outcome may still reach the broker this late
DEFAULT_POOL = 64  # concurrent broker calls per broker per batch


@dataclass
class Context:
    """What a send needs besides the database: settings, secrets, Redis."""

    app: Flask
    config: Mapping[str, Any]
    vault: Vault
    redis: redis_lib.Redis
    throttle: OrderThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = OrderThrottle(self.redis)  # one registered script for every child of the batch


def order_request(order: Order) -> OrderRequest:
    instrument = order.instrument
    return OrderRequest(
        exchange=instrument.exchange, tradingsymbol=instrument.tradingsymbol,
        exchange_token=instrument.exchange_token, instrument_token=instrument.instrument_token,
        side=Side(order.side), quantity=order.quantity, product=Product(order.product),
        order_type=OrderType(order.order_type), price=order.price, trigger_price=order.trigger_price,
        validity=Validity(order.validity), tag=order.tag, algo_id=order.client.algo_id)


def _lock(redis: redis_lib.Redis, order_id: int):
    return redis.lock(f"fanout:lock:child:{order_id}", timeout=LOCK_SECONDS, blocking=False)


def _set(order: Order, status: str, ctx: Context, **fields: Any) -> None:
    order.status = status
    for name, value in fields.items():
        setattr(order, name, value)
    # read before the commit: touching an expired attribute after it would check a database
    # connection out again and hold it through the broker call that follows
    event = {"order_id": order.id, "batch_id": order.batch_id, "client_id": order.client_id, "status": status}
    detail = (order.broker_order_id, order.reason)
    db.session.commit()
    log.info("op=child order=%s batch=%s client=%s status=%s broker_order_id=%s reason=%r", event["order_id"],
             event["batch_id"], event["client_id"], status, *detail)
    publish(ctx.redis, "order.updated", **event)


def send_batch(batch_id: int, ctx: Context) -> dict[str, int]:
    """Send every child of the batch that still needs it; returns the count per final state."""
    rows = db.session.execute(sa.select(Order.id, Client.broker).join(Client, Order.client_id == Client.id)
                              .where(Order.batch_id == batch_id, Order.status.in_(states.IN_FLIGHT))).all()
    by_broker: dict[str, list[int]] = {}
    for order_id, broker in rows:
        by_broker.setdefault(broker, []).append(order_id)
    pool_size = int(ctx.config.get("BROKER_POOL_SIZE", DEFAULT_POOL))
    pools = [ThreadPoolExecutor(max_workers=min(pool_size, len(ids)), thread_name_prefix=f"send-{broker}")
             for broker, ids in by_broker.items()]
    try:
        futures = [pool.submit(_send_in_context, order_id, ctx)
                   for pool, ids in zip(pools, by_broker.values()) for order_id in ids]
        results = [f.result() for f in futures]
    finally:
        for pool in pools:
            pool.shutdown(wait=True)
    counts: dict[str, int] = {}
    for status in results:
        counts[status] = counts.get(status, 0) + 1
    publish(ctx.redis, "batch.progress", batch_id=batch_id, counts=counts)
    return counts


def _send_in_context(order_id: int, ctx: Context, now=None) -> str:
    with ctx.app.app_context():
        try:
            return send_child(order_id, ctx, now)
        finally:
            db.session.remove()


def send_child(order_id: int, ctx: Context, now=None) -> str:
    lock = _lock(ctx.redis, order_id)
    if not lock.acquire():
        return "busy"  # another process is talking to the broker about this child
    try:
        order = db.session.get(Order, order_id)
        if order is None or order.status not in states.IN_FLIGHT:
            return order.status if order else "missing"
        adapter = adapter_for(order.client, ctx.config, ctx.vault)
        try:
            if order.status == states.NEW:
                _place(order, adapter, ctx)
            else:
                resolve_unknown(order, adapter, ctx, now)
        finally:
            adapter.close()
        return order.status
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.LockError:
            log.warning("op=child order=%s lock=expired-before-release", order_id)


def _place(order: Order, adapter: Broker, ctx: Context) -> None:
    request = order_request(order)
    for _ in range(MAX_RATE_LIMIT_WAITS):
        if not ctx.throttle.acquire(order.client_id, adapter.rate_limits):
            _set(order, states.NEW, ctx, reason="Waiting for the account's order rate limit")
            return
        _set(order, states.SUBMITTING, ctx, attempts=order.attempts + 1, submitted_at=utcnow(), reason="")
        try:
            broker_order_id = adapter.place(request)
        except RateLimited as exc:  # not accepted: wait for the bucket and send again (not an attempt)
            _set(order, states.NEW, ctx, attempts=order.attempts - 1,
                 reason=f"Rate limited by the broker; retrying ({exc.message})")
            time.sleep(exc.retry_after or 1.0)
            continue
        except AuthExpired as exc:
            _set(order, states.FAILED, ctx, reason=f"Login needed: {exc.message}")
        except (Rejected, InvalidInput) as exc:
            _set(order, states.REJECTED, ctx, reason=exc.message)
        except Unavailable as exc:
            _set(order, states.UNKNOWN, ctx, reason=exc.message)
            resolve_unknown(order, adapter, ctx)
        else:
            _set(order, states.PLACED, ctx, broker_order_id=broker_order_id, acknowledged_at=utcnow())
        return
    _set(order, states.NEW, ctx, reason="The broker kept answering 'too many requests'; will retry")


def resolve_unknown(order: Order, adapter: Broker, ctx: Context, now=None) -> None:
    """Find the child at the broker by its tag; re-place only when it is provably absent: not in the
    book, and the last send is older than ARRIVAL_GRACE (a request that timed out may still be queued
    on its way to the broker's OMS and land after we looked)."""
    placed_after = (order.submitted_at or order.created_at) - CLOCK_SKEW
    try:
        found = adapter.find_order(order_request(order), placed_after)
    except BrokerError as exc:
        _set(order, states.UNKNOWN, ctx, reason=f"Could not check the broker's order book: {exc.message}")
        return
    taken = set(db.session.execute(sa.select(Order.broker_order_id).where(
        Order.client_id == order.client_id, Order.id != order.id, Order.broker_order_id.is_not(None))).scalars())
    candidates = [o for o in found if o.order_id not in taken]
    if len(candidates) == 1:
        match = candidates[0]
        _set(order, states.FROM_BROKER[match.status], ctx, broker_order_id=match.order_id,
             acknowledged_at=order.acknowledged_at or utcnow(), filled_quantity=match.filled_quantity,
             average_price=match.average_price,
             reason=match.status_message or "Found at the broker after an unclear answer")
    elif candidates:
        _set(order, states.UNKNOWN, ctx, reason=f"{len(candidates)} orders at the broker could be this one; "
                                                "check the broker's order book")
    elif order.submitted_at and (now or utcnow()) - order.submitted_at < ARRIVAL_GRACE:
        _set(order, states.UNKNOWN, ctx, reason="Not at the broker yet, but the last send may still arrive; "
                                                "checking again before sending again")
    elif order.attempts >= MAX_PLACE_ATTEMPTS:
        _set(order, states.FAILED, ctx, reason=f"Not at the broker after {order.attempts} attempts: not placed")
    else:
        _set(order, states.NEW, ctx, reason="Not at the broker: sending again")
        _place(order, adapter, ctx)


def stuck_children(now=None) -> list[int]:
    """Children a dead worker left behind: NEW or SUBMITTING for too long, and every UNKNOWN."""
    cutoff = (now or utcnow()) - STUCK_AFTER
    return list(db.session.execute(sa.select(Order.id).where(sa.or_(
        Order.status == states.UNKNOWN,
        sa.and_(Order.status == states.SUBMITTING, Order.submitted_at < cutoff),
        sa.and_(Order.status == states.NEW, Order.updated_at < cutoff)))).scalars())


def reconcile(ctx: Context, now=None) -> dict[str, int]:
    """The reconcile cron: finish what crashed workers left. Each child is lock-protected."""
    counts: dict[str, int] = {}
    for order_id in stuck_children(now):
        status = _send_in_context(order_id, ctx, now)
        counts[status] = counts.get(status, 0) + 1
    return counts



def batch_client_ids(batch_id: int) -> list[int]:
    return list(db.session.execute(sa.select(Order.client_id).where(Order.batch_id == batch_id).distinct()).scalars())


def _child_call(order_id: int, ctx: Context, call) -> str:
    """Run a cancel/modify for one child under its lock; the answer updates its reason, the
    sync that follows updates its state."""
    lock = _lock(ctx.redis, order_id)
    if not lock.acquire():
        return "busy"
    try:
        order = db.session.get(Order, order_id)
        if order is None or order.status not in states.AT_BROKER or not order.broker_order_id:
            return order.status if order else "missing"
        adapter = adapter_for(order.client, ctx.config, ctx.vault)
        try:
            call(adapter, order)
        except BrokerError as exc:
            _set(order, order.status, ctx, reason=exc.message)
            return "error"
        finally:
            adapter.close()
        return "ok"
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.LockError:
            pass


def cancel_child(order_id: int, ctx: Context) -> str:
    def call(adapter: Broker, order: Order) -> None:
        adapter.cancel(order.broker_order_id)
        _set(order, order.status, ctx, reason="Cancel sent")
    return _child_call(order_id, ctx, call)


def modify_child(order_id: int, price, ctx: Context) -> str:
    def call(adapter: Broker, order: Order) -> None:
        adapter.modify(order.broker_order_id, price=price)
        _set(order, order.status, ctx, price=price, reason=f"Price changed to {price}")
    return _child_call(order_id, ctx, call)


def run_concurrently(order_ids: list[int], ctx: Context, fn, *args) -> list[str]:
    """fn(order_id, *args, ctx) for each child, on a bounded pool, each in its own app context."""
    if not order_ids:
        return []

    def one(order_id: int) -> str:
        with ctx.app.app_context():
            try:
                return fn(order_id, *args, ctx)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=min(DEFAULT_POOL, len(order_ids))) as pool:
        return list(pool.map(one, order_ids))


def client_ids_of(order_ids: list[int]) -> list[int]:
    return list(db.session.execute(sa.select(Order.client_id).where(Order.id.in_(order_ids)).distinct()).scalars())


def convert_to_market(order_id: int, ctx: Context) -> str:
    def call(adapter: Broker, order: Order) -> None:
        adapter.modify(order.broker_order_id, order_type=OrderType.MARKET)
        _set(order, order.status, ctx, order_type="MARKET", price=None, reason="Chase limit reached: converted to market")
    return _child_call(order_id, ctx, call)


SYNC_POOL = 16  # clients synced at once: each sync is a few reads, well inside every broker's read limits


def run_for_clients(client_ids: list[int], ctx: Context, fn) -> list:
    """fn(client_id, ctx) for each client on a bounded pool, each in its own app context."""
    if not client_ids:
        return []

    def one(client_id: int):
        with ctx.app.app_context():
            try:
                return fn(client_id, ctx)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=min(SYNC_POOL, len(client_ids))) as pool:
        return list(pool.map(one, client_ids))
