"""One child order at a time: writing its state (through the state machine), what a broker's
exception makes of it, and the one way to act on it at its broker (lock → load → adapter → close).

Used by the engine's one-child send and reconcile, and by cancel / modify / convert
(webapp/trading/order_actions.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis as redis_lib
import sqlalchemy as sa

from webapp.brokers.base import AuthExpired, Broker, BrokerError, InvalidInput, RateLimited, Rejected, Unavailable
from webapp.events import publish
from webapp.extensions import db
from webapp.models import Order
from webapp.models.base import in_ids
from webapp.timeutil import utcnow
from webapp.trading import states
from webapp.trading.accounts import adapter_for
from webapp.trading.context import Context
from webapp.trading.locks import child_lock, lock_token

log = logging.getLogger(__name__)

DEFAULT_POOL = 64  # concurrent cancels / modifies / follow-ups (batch sends use BROKER_POOL_SIZE)


def child_event(order_id: int, batch_id: int | None, client_id: int, status: str) -> dict[str, Any]:
    """A child's order.updated payload, which its log line names too."""
    return {"order_id": order_id, "batch_id": batch_id, "client_id": client_id, "status": status}


def log_child(event: Mapping[str, Any], broker_order_id: str | None, reason: str) -> None:
    """Every state a child moves to, at DEBUG: the INFO line per sent child is the send job's
    (jobs/orders.py, one per outcome, with the client's code, broker and latency)."""
    log.debug(
        "op=child order=%s batch=%s client=%s status=%s broker_order_id=%s reason=%r",
        event["order_id"],
        event["batch_id"],
        event["client_id"],
        event["status"],
        broker_order_id,
        reason,
    )


def write_child(order: Order, status: str, ctx: Context, **fields: Any) -> bool:
    """Move the child to `status` with these column values, committed, logged and published; False
    (and nothing written) when the state machine refuses it, from the state read here or from
    the one the row has by now (the UPDATE is conditional on it)."""
    # read before the commit: touching an expired attribute after it would check a database
    # connection out again and hold it through the broker call that follows
    order_id, current = order.id, order.status
    event = child_event(order_id, order.batch_id, order.client_id, status)
    detail = (fields.get("broker_order_id", order.broker_order_id), fields.get("reason", order.reason))
    written = states.check(order_id, current, status) and not write_children(status, [{"id": order_id, **fields}])
    db.session.commit()  # expires `order`: its next read loads what was written
    if written:
        log_child(event, *detail)
        publish(ctx.redis, "order.updated", **event)
    return bool(written)


def write_children(status: str, rows: list[dict[str, Any]], from_states: Iterable[str] | None = None) -> set[int]:
    """Move these children to `status` with one executemany (not committed), each conditional on the
    state machine (and on being in `from_states`, when given). Each row holds the child's "id" and
    the columns to set, the same ones in every row. Returns the ids refused, each logged."""
    if not rows:
        return set()
    table, columns = Order.__table__, [name for name in rows[0] if name != "id"]
    query = (
        states.guarded_update(table, status, from_states)
        .where(table.c.id == sa.bindparam("p_id"))
        .values({**{name: sa.bindparam(f"p_{name}") for name in columns}, "updated_at": utcnow()})
    )
    written = db.session.execute(query, [{f"p_{name}": value for name, value in row.items()} for row in rows]).rowcount
    if written == len(rows):
        return set()
    # some child was moved by another process since it was read (or is not where the caller
    # expected): not overwritten; rowcount may also be unknown (-1), hence the look
    refused = db.session.execute(
        sa.select(Order.id, Order.status).where(in_ids(Order.id, [row["id"] for row in rows]), Order.status != status)
    ).all()
    for row in refused:
        states.refuse(row.id, row.status, status)
    return {row.id for row in refused}


@dataclass(frozen=True)
class Answer:
    """What a broker's exception to a place makes of the child."""

    status: str
    reason: str
    not_an_attempt: bool = False  # a 429: the request was not accepted
    wait: float = 0.0  # seconds to wait before sending again (the broker's Retry-After)


def answer_to(exc: BrokerError) -> Answer:
    """The one mapping from a place's exception to the child's next state: a 429 waits and is sent
    again, a lapsed login fails it, a refusal rejects it, and anything unclear (a timeout, a 5xx,
    an error of no known kind) leaves it UNKNOWN, to be looked up by tag, never sent blindly."""
    if isinstance(exc, RateLimited):
        return Answer(states.NEW, f"Rate limited by the broker; retrying ({exc.message})", True, exc.retry_after or 1.0)
    if isinstance(exc, AuthExpired):
        return Answer(states.FAILED, f"Login needed: {exc.message}")
    if isinstance(exc, (Rejected, InvalidInput)):
        return Answer(states.REJECTED, exc.message)
    if isinstance(exc, Unavailable):
        return Answer(states.UNKNOWN, exc.message)
    return Answer(states.UNKNOWN, f"Unclear answer from the broker ({exc.message}); checking its order book")


def on_child(
    order_id: int, ctx: Context, ready: Callable[[Order], bool], action: Callable[[Order, Broker], str]
) -> str:
    """Every single-child action at a broker: take the child's lock, load it, and when `ready(it)`,
    run `action(it, adapter)` with its client's adapter, closed after; returns what the action
    returns, the child's state when it is not ready, "busy" when another process holds the lock."""
    lock = child_lock(ctx.redis, order_id)
    if not lock.acquire(token=lock_token(ctx.holder)):
        return "busy"  # another process is talking to the broker about this child
    try:
        order = db.session.get(Order, order_id)
        if order is None or not ready(order):
            return order.status if order else "missing"
        adapter = adapter_for(order.client, ctx.config, ctx.vault)
        try:
            return action(order, adapter)
        finally:
            adapter.close()
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.LockError:
            log.warning("op=child order=%s lock=expired-before-release", order_id)


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
