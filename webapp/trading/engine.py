"""Sending child orders: concurrently, throttled per account, never blindly retried (DESIGN §5).

A batch is sent in one pass: its children are locked (a Redis lock each, taken in one script call),
given a slot in their account's rate window, and claimed NEW → SUBMITTING with one committed UPDATE
before any broker call. The calls then run concurrently, one pool per broker, and their answers are
written in groups as they come back. A clear answer makes a child PLACED / REJECTED / FAILED; an
unclear one (timeout, dropped connection, 5xx, malformed) makes it UNKNOWN, and it is resolved by
reading the broker's order book: found → PLACED, provably absent → sent again, can't tell → stays
UNKNOWN for the reconcile cron. Anything that needs waiting or a second look (a 429, an UNKNOWN, a
child left over by a crashed worker) goes through `send_child`, one child at a time.

No late sends (webapp/trading/unsent.py): the claim NEW → SUBMITTING only takes children within
their send deadline, and fails the rest "not sent in time"; a provably absent child past it is
failed the same way instead of being sent again.

A dead worker's children are found within seconds (`reclaim_orphans`, every 2 s): each child lock's
token names the RQ worker holding it, and an orders worker's RQ heartbeat lapses a few seconds after
it dies (jobs/worker.py), so a lock whose worker is gone is broken and the child resolved by tag at
once, instead of waiting for the lock to expire.

Around it: the child locks and send marks (webapp/trading/locks.py), one child's writes, the
mapping from a broker's exception to its next state and the lock → load → adapter → close helper
(webapp/trading/children.py), cancel / modify / convert (webapp/trading/order_actions.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from webapp.brokers.base import Broker, BrokerError, OrderRequest, OrderType, Product, Side, Validity
from webapp.events import publish, publish_many
from webapp.extensions import db
from webapp.models import Client, Instrument, Order
from webapp.models.base import in_ids
from webapp.timeutil import utcnow
from webapp.trading import states, unsent
from webapp.trading.accounts import adapter_for
from webapp.trading.children import (
    answer_to,
    child_event,
    log_child,
    on_child,
    run_concurrently,
    write_child,
    write_children,
)
from webapp.trading.context import Context
from webapp.trading.locks import ChildLocks, break_locks, dead_holders, holder_of, lock_name

log = logging.getLogger(__name__)

MAX_PLACE_ATTEMPTS = 3  # a child provably absent after this many sends is FAILED
MAX_RATE_LIMIT_WAITS = 20
STUCK_AFTER = timedelta(seconds=30)  # a SUBMITTING child older than this lost its worker
CLOCK_SKEW = timedelta(seconds=5)
ARRIVAL_GRACE = timedelta(seconds=30)  # a send with an unclear outcome may still reach the broker this late
GROUP_SECONDS = 0.005  # how long answers are gathered into one write
DEFAULT_POOL = 64  # broker calls at once per broker when BROKER_POOL_SIZE is not set


def order_request(order: Order) -> OrderRequest:
    return _request(order, order.instrument, order.client.algo_id)


def _request(order: Any, instrument: Any, algo_id: str | None) -> OrderRequest:
    """From an Order and its Instrument, or from one row holding the columns of both."""
    return OrderRequest(
        exchange=instrument.exchange,
        tradingsymbol=instrument.tradingsymbol,
        exchange_token=instrument.exchange_token,
        instrument_token=instrument.instrument_token,
        isin=instrument.isin,
        side=Side(order.side),
        quantity=order.quantity,
        product=Product(order.product),
        order_type=OrderType(order.order_type),
        price=order.price,
        trigger_price=order.trigger_price,
        validity=Validity(order.validity),
        tag=order.tag,
        algo_id=algo_id,
    )


_CHILD_COLUMNS = (
    Order.id,
    Order.batch_id,
    Order.client_id,
    Order.status,
    Order.attempts,
    Order.side,
    Order.quantity,
    Order.product,
    Order.order_type,
    Order.price,
    Order.trigger_price,
    Order.validity,
    Order.tag,
    Instrument.exchange,
    Instrument.tradingsymbol,
    Instrument.exchange_token,
    Instrument.instrument_token,
    Instrument.isin,
)
_CLIENT_COLUMNS = (
    Client.id,
    Client.broker,
    Client.client_code,
    Client.credentials_enc,
    Client.session_enc,
    Client.algo_id,
)


# ---------------------------------------------------------------------------------------- a batch


@dataclass
class Send:
    """One claimed child on its way to the broker: everything the call needs, no ORM object."""

    order_id: int
    batch_id: int
    client_id: int
    attempts: int
    request: OrderRequest
    adapter: Broker


@dataclass
class Outcome:
    send: Send
    status: str
    reason: str = ""
    broker_order_id: str | None = None
    acknowledged_at: datetime | None = None
    attempts_back: int = 0  # a 429 was not an attempt
    wait: float = 0.0  # seconds to wait before the follow-up (429)

    @property
    def follow_up(self) -> bool:
        """Left for `send_child`: a 429 to send again, an UNKNOWN to look up by tag."""
        return self.status in (states.NEW, states.UNKNOWN)


def children_to_send(batch_id: int, order_ids: Iterable[int] | None = None) -> list[int]:
    """The batch's children still in flight (of these only, when given)."""
    query = sa.select(Order.id).where(Order.batch_id == batch_id, Order.status.in_(states.IN_FLIGHT))
    if order_ids is not None:
        query = query.where(in_ids(Order.id, order_ids))
    ids = list(db.session.execute(query.order_by(Order.id)).scalars())
    db.session.commit()
    return ids


def send_batch(batch_id: int, ctx: Context, order_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Send every child of the batch (or these of its children) that still needs it; returns the
    count per resulting state ("busy": another process is sending that child)."""
    ids = children_to_send(batch_id, order_ids)
    locks = ChildLocks(ctx.redis, ctx.holder)
    held = locks.acquire(ids)
    results: dict[int, str] = {order_id: "busy" for order_id in ids if order_id not in held}
    adapters: dict[int, Broker] = {}
    try:
        sends, later = _prepare(held, adapters, ctx)
        outcomes = _claim_and_call(sends, ctx)
        results.update({o.send.order_id: o.status for o in outcomes})
        waits = {o.send.order_id: o.wait for o in outcomes if o.follow_up}
        later += list(waits)
    finally:
        locks.release()
        for adapter in adapters.values():
            adapter.close()
    if later:  # one child at a time, each under its own lock again
        results.update(zip(later, run_concurrently(later, ctx, _follow_up, waits)))
    counts: dict[str, int] = {}
    for status in results.values():
        counts[status] = counts.get(status, 0) + 1
    publish(ctx.redis, "batch.progress", batch_id=batch_id, counts=counts)
    return counts


def _prepare(order_ids: set[int], adapters: dict[int, Broker], ctx: Context) -> tuple[list[Send], list[int]]:
    """Read the locked children with their clients and instruments in one query, build each
    client's adapter once, and take a rate slot for every NEW child. Children that are not NEW, or
    whose account has no slot free right now, are returned to go through `send_child`."""
    if not order_ids:
        return [], []
    # plain rows, not ORM objects: building 3 objects per child cost more than its broker call
    rows = db.session.execute(
        sa.select(*_CHILD_COLUMNS)
        .join(Instrument, Order.instrument_id == Instrument.id)
        .where(in_ids(Order.id, order_ids), Order.status.in_(states.IN_FLIGHT))
    ).all()
    clients = {
        c.id: c
        for c in db.session.execute(
            sa.select(*_CLIENT_COLUMNS).where(in_ids(Client.id, {row.client_id for row in rows}))
        ).all()
    }
    db.session.commit()  # ends the read
    ready, later, broken = [], [], []
    for row in rows:
        if row.status != states.NEW:
            later.append(row.id)
            continue
        client = clients[row.client_id]
        try:
            if client.id not in adapters:
                adapters[client.id] = adapter_for(client, ctx.config, ctx.vault)
            request = _request(row, row, client.algo_id)
        except Exception:  # one client's bad stored data must not hold up the batch
            log.exception("op=child order=%s client=%s prepare=failed", row.id, client.id)
            broken.append(row)
            continue
        ready.append(Send(row.id, row.batch_id, row.client_id, row.attempts, request, adapters[client.id]))
    if broken:
        unsent.fail_unsent(
            "Not sent: this client's stored broker details could not be read; check the client's "
            "settings and reconnect",
            redis=ctx.redis,
            order_ids=[row.id for row in broken],
        )
    waits = ctx.throttle.try_acquire_many([(s.client_id, s.adapter.rate_limits) for s in ready])
    later += [s.order_id for s, w in zip(ready, waits) if w > 0]
    return [s for s, w in zip(ready, waits) if w <= 0], later


def _claim(order_ids: list[int], ctx: Context, now: datetime | None = None) -> tuple[set[int], list[int]]:
    """NEW → SUBMITTING in one committed UPDATE, only for children still within their send deadline;
    those past it are FAILED "not sent in time". Both UPDATEs are conditional on NEW, so whichever
    of this and any other process's (reconcile, a failed enqueue) comes first wins: never both."""
    table, at = Order.__table__, utcnow()
    late_before = unsent.late_before(ctx.config, now or at)
    claimed = set(
        db.session.execute(
            states.guarded_update(table, states.SUBMITTING, from_states=[states.NEW])
            .where(in_ids(table.c.id, order_ids), table.c.created_at >= late_before)
            .values(attempts=table.c.attempts + 1, submitted_at=at, reason="", updated_at=at)
            .returning(table.c.id)
        ).scalars()
    )
    db.session.commit()
    late: list[int] = []
    if len(claimed) < len(order_ids):  # the rest are past the deadline, or no longer NEW (left alone)
        late = unsent.fail_unsent(
            unsent.NOT_SENT_IN_TIME,
            redis=ctx.redis,
            created_before=late_before,
            order_ids=[i for i in order_ids if i not in claimed],
        )
    return claimed, late


def _claim_and_call(sends: list[Send], ctx: Context) -> list[Outcome]:
    """NEW → SUBMITTING for all of them in one committed UPDATE, then the broker calls, concurrently
    per broker; answers are written in groups as they arrive."""
    if not sends:
        return []
    claimed, failed = _claim([s.order_id for s in sends], ctx)
    late = set(failed)
    outcomes = [Outcome(s, states.FAILED, unsent.NOT_SENT_IN_TIME) for s in sends if s.order_id in late]
    sends = [s for s in sends if s.order_id in claimed]
    for send in sends:
        send.attempts += 1
    pool_size = int(ctx.config.get("BROKER_POOL_SIZE") or DEFAULT_POOL)
    pending = {_pool(send.adapter.name, pool_size).submit(_call_place, send) for send in sends}
    log.debug("op=claim batch=%s children=%s status=SUBMITTING", sends[0].batch_id if sends else None, len(sends))
    _announce([(s, states.SUBMITTING) for s in sends], ctx)  # while the calls are out
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        if pending:  # answers come back together: a few ms more make one write of many, not many of one
            more, pending = wait(pending, timeout=GROUP_SECONDS)
            done |= more
        answered = [future.result() for future in done]
        _record(answered, ctx)
        outcomes += answered
    return outcomes


_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(broker: str, size: int) -> ThreadPoolExecutor:
    """The process's pool of threads for one broker's calls, kept between batches (starting 64
    threads for every batch cost more than the calls' own Python work)."""
    with _pools_lock:
        pool = _pools.get((broker, size))
        if pool is None:
            pool = _pools[(broker, size)] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"send-{broker}")
        return pool


def _call_place(send: Send) -> Outcome:
    """The broker call alone: no database, no Redis. Every answer becomes an Outcome, logged here
    (in the call's own thread: the thread that writes the outcomes has enough to do)."""
    outcome = _place_once(send)
    event = child_event(send.order_id, send.batch_id, send.client_id, outcome.status)
    log_child(event, outcome.broker_order_id, outcome.reason)
    return outcome


def _place_once(send: Send) -> Outcome:
    try:
        broker_order_id = send.adapter.place(send.request)
    except BrokerError as exc:
        answer = answer_to(exc)
        return Outcome(send, answer.status, answer.reason, attempts_back=int(answer.not_an_attempt), wait=answer.wait)
    except Exception:  # a bug after the claim: the order may have gone out; look it up, never resend blindly
        log.exception("op=child order=%s place=crashed", send.order_id)
        return Outcome(send, states.UNKNOWN, "The send failed inside the desk; checking the broker's order book")
    return Outcome(send, states.PLACED, broker_order_id=broker_order_id, acknowledged_at=utcnow())


def _record(outcomes: list[Outcome], ctx: Context) -> None:
    """Write a group of answers with one executemany per resulting state (usually one) and one
    commit, each conditional on the child still being SUBMITTING (as this send claimed it), then
    publish them."""
    by_status: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        outcome.send.attempts -= outcome.attempts_back
        by_status[outcome.status].append(outcome)
    refused: set[int] = set()
    for status, group in by_status.items():
        refused |= write_children(
            status,
            [
                {
                    "id": o.send.order_id,
                    "reason": o.reason[:300],
                    "broker_order_id": o.broker_order_id,
                    "acknowledged_at": o.acknowledged_at,
                    "attempts": o.send.attempts,
                }
                for o in group
            ],
            from_states=[states.SUBMITTING],
        )
    db.session.commit()
    _announce([(o.send, o.status) for o in outcomes if o.send.order_id not in refused], ctx)


def _announce(changes: list[tuple[Send, str]], ctx: Context) -> None:
    publish_many(
        ctx.redis,
        [
            ("order.updated", child_event(send.order_id, send.batch_id, send.client_id, status))
            for send, status in changes
        ],
    )


def _follow_up(order_id: int, waits: Mapping[int, float], ctx: Context) -> str:
    if waits.get(order_id):
        time.sleep(waits[order_id])  # the broker's Retry-After
    return send_child(order_id, ctx)


# ---------------------------------------------------------------------------------- one child


def _send_in_context(order_id: int, ctx: Context, now=None) -> str:
    with ctx.app.app_context():
        try:
            return send_child(order_id, ctx, now)
        finally:
            db.session.remove()


def send_child(order_id: int, ctx: Context, now=None) -> str:
    """Send one child, or find it at the broker by its tag; returns its state after."""

    def action(order: Order, adapter: Broker) -> str:
        if order.status == states.NEW:
            _place(order, adapter, ctx, now)
        else:
            resolve_unknown(order, adapter, ctx, now)
        return order.status

    return on_child(order_id, ctx, lambda order: order.status in states.IN_FLIGHT, action)


def _place(order: Order, adapter: Broker, ctx: Context, now=None) -> None:
    request = order_request(order)
    for _ in range(MAX_RATE_LIMIT_WAITS):
        if not ctx.throttle.acquire(order.client_id, adapter.rate_limits):
            write_child(order, states.NEW, ctx, reason="Waiting for the account's order rate limit")
            return
        # read before the claim's commit expires the object (a reload would hold a connection through the call)
        claiming = child_event(order.id, order.batch_id, order.client_id, states.SUBMITTING)
        if not _claim([order.id], ctx, now)[0]:
            return  # past its send deadline (FAILED now), or no longer NEW
        log_child(claiming, None, "")
        publish(ctx.redis, "order.updated", **claiming)
        try:
            broker_order_id = adapter.place(request)
        except BrokerError as exc:
            answer = answer_to(exc)
            attempts = {"attempts": order.attempts - 1} if answer.not_an_attempt else {}
            write_child(order, answer.status, ctx, reason=answer.reason, **attempts)
            if answer.status == states.NEW:  # a 429: wait for the window and send again
                time.sleep(answer.wait)
                continue
            if answer.status == states.UNKNOWN:
                resolve_unknown(order, adapter, ctx, now)
        else:
            write_child(order, states.PLACED, ctx, broker_order_id=broker_order_id, acknowledged_at=utcnow())
        return
    write_child(order, states.NEW, ctx, reason="The broker kept answering 'too many requests'; will retry")


def resolve_unknown(order: Order, adapter: Broker, ctx: Context, now=None) -> None:
    """Find the child at the broker by its tag; re-place only when it is provably absent: not in the
    book, and the last send is older than ARRIVAL_GRACE (a request that timed out may still be queued
    on its way to the broker's OMS and land after we looked), and only within its send deadline
    (a re-place is a new send: past the deadline the child is FAILED "not sent in time")."""
    placed_after = (order.submitted_at or order.created_at) - CLOCK_SKEW
    try:
        found = adapter.find_order(order_request(order), placed_after)
    except BrokerError as exc:
        write_child(order, states.UNKNOWN, ctx, reason=f"Could not check the broker's order book: {exc.message}")
        return
    taken = set(
        db.session.execute(
            sa.select(Order.broker_order_id).where(
                Order.client_id == order.client_id, Order.id != order.id, Order.broker_order_id.is_not(None)
            )
        ).scalars()
    )
    candidates = [o for o in found if o.order_id not in taken]
    if len(candidates) == 1:
        match = candidates[0]
        write_child(
            order,
            states.FROM_BROKER[match.status],
            ctx,
            broker_order_id=match.order_id,
            acknowledged_at=order.acknowledged_at or utcnow(),
            filled_quantity=match.filled_quantity,
            average_price=match.average_price,
            reason=match.status_message or "Found at the broker after an unclear answer",
        )
    elif candidates:
        write_child(
            order,
            states.UNKNOWN,
            ctx,
            reason=f"{len(candidates)} orders at the broker could be this one; check the broker's order book",
        )
    elif order.submitted_at and (now or utcnow()) - order.submitted_at < ARRIVAL_GRACE:
        write_child(
            order,
            states.UNKNOWN,
            ctx,
            reason="Not at the broker yet, but the last send may still arrive; checking again before sending again",
        )
    elif order.attempts >= MAX_PLACE_ATTEMPTS:
        write_child(order, states.FAILED, ctx, reason=f"Not at the broker after {order.attempts} attempts: not placed")
    elif unsent.is_late(order.created_at, ctx.config, now):
        write_child(order, states.FAILED, ctx, reason=unsent.NOT_SENT_IN_TIME)
    else:
        write_child(order, states.NEW, ctx, reason="Not at the broker: sending again")
        _place(order, adapter, ctx, now)


def stuck_children(now=None) -> list[int]:
    """Children a dead worker left behind: NEW or SUBMITTING for too long, and every UNKNOWN."""
    cutoff = (now or utcnow()) - STUCK_AFTER
    return list(
        db.session.execute(
            sa.select(Order.id).where(
                sa.or_(
                    Order.status == states.UNKNOWN,
                    sa.and_(Order.status == states.SUBMITTING, Order.submitted_at < cutoff),
                    sa.and_(Order.status == states.NEW, Order.updated_at < cutoff),
                )
            )
        ).scalars()
    )


def reconcile(ctx: Context, now=None, abandoned_batches: Iterable[int] = ()) -> dict[str, int]:
    """The reconcile cron: fail NEW children past their send deadline, then finish what crashed
    workers left, one child after another. Each child is lock-protected."""
    unsent.expire_late(ctx.config, ctx.redis, now)
    orphans = set(orphaned_children(ctx, abandoned_batches))
    counts: dict[str, int] = {}
    for order_id in sorted(set(stuck_children(now)) | orphans):
        status = _finish(order_id, now, ctx)
        counts[status] = counts.get(status, 0) + 1
    return counts


def reclaim_orphans(ctx: Context, abandoned_batches: Iterable[int] = ()) -> dict[str, int]:
    """Every few seconds: fail NEW children past their deadline, and resolve at once (by tag, all
    together) the children of workers that died, without waiting for STUCK_AFTER or LOCK_SECONDS."""
    unsent.expire_late(ctx.config, ctx.redis)
    orphans = orphaned_children(ctx, abandoned_batches)
    counts: dict[str, int] = {}
    for status in run_concurrently(orphans, ctx, _finish, None):
        counts[status] = counts.get(status, 0) + 1
    if orphans:
        log.info("op=reclaim children=%s result=%s", len(orphans), counts)
    return counts


def _finish(order_id: int, now, ctx: Context) -> str:
    try:
        return _send_in_context(order_id, ctx, now)
    except Exception:  # one child's trouble must not stop the others being finished
        log.exception("op=reconcile order=%s result=error", order_id)
        return "error"


def orphaned_children(ctx: Context, abandoned_batches: Iterable[int] = ()) -> list[int]:
    """In-flight children nobody is working on, found without waiting: those whose lock a dead
    worker holds (the lock is broken here), SUBMITTING ones with no lock at all (whoever claimed
    them is gone: a live sender holds the lock from before its claim until after the answer is
    written), and the unlocked ones of send jobs whose worker died (`abandoned_batches`) before it
    got to them."""
    rows = db.session.execute(
        sa.select(Order.id, Order.status, Order.batch_id).where(Order.status.in_(states.IN_FLIGHT)).order_by(Order.id)
    ).all()
    db.session.commit()
    if not rows:
        return []
    tokens = ctx.redis.mget([lock_name(row.id) for row in rows])
    dead = dead_holders(ctx.redis, {holder_of(t) for t in tokens if t} - {""})
    abandoned, found, broken = set(abandoned_batches), [], []
    for row, token in zip(rows, tokens):
        if token and holder_of(token) in dead:
            broken.append((row.id, token))
            found.append(row.id)
        elif not token and (row.status == states.SUBMITTING or row.batch_id in abandoned):
            found.append(row.id)
    if broken:
        break_locks(ctx.redis, broken)
        log.warning("op=reclaim locks_broken=%s holders=%s", len(broken), ",".join(sorted(dead)))
    return found


def client_ids_of(order_ids: list[int]) -> list[int]:
    return list(db.session.execute(sa.select(Order.client_id).where(in_ids(Order.id, order_ids)).distinct()).scalars())
