"""GET /api/v1/stream/orders: the key's user's order updates as server-sent events (text/event-stream).

The stream rides the web process's one Redis subscription (webapp/feed/hub.py), like the pages'
sockets: the hub hands it the order.updated events of the clients its user may see (re-read when the
user's grants change, and every RECHECK_SECONDS, which also closes it when its key is revoked), and
the stream reads each order's row, so what it sends is the database's state, not the event's.

A stream holds one of gunicorn's threads for its life, so a key holds at most MAX_STREAMS_PER_KEY at
once, counted in Redis across the web processes (a lease each, renewed with every keepalive, so a
process that dies frees its streams' places within LEASE_SECONDS).
"""

from __future__ import annotations

import json
import logging
import queue
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import redis as redis_lib
import sqlalchemy as sa
from flask import current_app, g
from pydantic import BaseModel, Field
from spectree import Response as Replies
from spectree.utils import get_model_key
from werkzeug.wrappers import Response as WerkzeugResponse

from webapp.access import accessible_client_ids
from webapp.api import bp
from webapp.api.core import ApiError, Id, Money, Strict, operation, replies
from webapp.extensions import db, get_redis
from webapp.feed import hub as feed_hub  # a module, its names read at call time (see below)
from webapp.models import Order
from webapp.models.base import in_ids
from webapp.orders.batches import batch_for
from webapp.trading import states

# The hub's names are read through its module, when called: importing the hub imports webapp.auth, which
# imports webapp.api and so this module, while the hub is half-loaded (`from ... import API_PAGE` would fail).
log = logging.getLogger(__name__)

MAX_STREAMS_PER_KEY = 4
KEEPALIVE_SECONDS = 15.0
LEASE_SECONDS = 60  # a stream's place is renewed every KEEPALIVE_SECONDS; a dead process's lapses after this
SUBSCRIBE_WAIT_SECONDS = 2.0  # the hub's first subscription: events after the snapshot must not be lost
MAX_TRACKED = 10_000  # children remembered (for sending each state once) by a stream of every batch

# atomically: drop lapsed places, refuse when the key holds the cap, else take one
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamQuery(Strict):
    batch_id: Id | None = Field(
        None,
        description="Follow this batch only: its children's current state first, then `event: end` once all are "
        "acknowledged.",
    )
    max_seconds: int = Field(300, ge=1, le=3600, description="End the stream after this many seconds (1-3600).")


class OrderEvent(BaseModel):
    """The `data:` of an `event: order` line (the child's row as the database holds it)."""

    child_id: int
    batch_id: int | None
    client_id: int
    status: str
    filled_quantity: int
    average_price: Money | None
    broker_order_id: str | None
    reason: str
    at: datetime = Field(description="When the child last changed (UTC).")


def order_event(child: Order) -> OrderEvent:
    return OrderEvent(
        child_id=child.id,
        batch_id=child.batch_id,
        client_id=child.client_id,
        status=child.status,
        filled_quantity=child.filled_quantity,
        average_price=child.average_price,
        broker_order_id=child.broker_order_id,
        reason=child.reason or "",
        at=child.updated_at,
    )


class EventStreamReplies(Replies):
    """replies(None) whose 200 is documented as text/event-stream: spectree writes every body it
    documents as application/json, so this one reply's entry is written here."""

    DESCRIPTION = "A text/event-stream of `event: order` and a final `event: end` (see the description)."

    @classmethod
    def of(cls, documented: Replies) -> EventStreamReplies:
        made = cls.__new__(cls)
        made.__dict__.update(documented.__dict__)
        return made

    def generate_spec(self, naming_strategy=get_model_key) -> dict:
        spec = super().generate_spec(naming_strategy)
        spec["200"] = {
            "description": self.DESCRIPTION,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
        return spec


class Lease:
    """One of a key's MAX_STREAMS_PER_KEY places, in Redis (so every web process counts)."""

    def __init__(self, redis: redis_lib.Redis, key_id: int):
        self.redis, self.name, self.member = redis, f"fanout:api-streams:{key_id}", uuid.uuid4().hex
        self.released = False

    def claim(self) -> bool:
        now = time.time()
        taken = self.redis.eval(
            _CLAIM, 1, self.name, now, MAX_STREAMS_PER_KEY, now + LEASE_SECONDS, self.member, LEASE_SECONDS * 2
        )
        return bool(taken)

    def renew(self) -> None:
        try:
            self.redis.zadd(self.name, {self.member: time.time() + LEASE_SECONDS}, xx=True)
        except redis_lib.RedisError as exc:  # the place lapses at worst: the stream goes on
            log.warning("op=api-stream lease=%s renew=failed error=%s", self.member, exc)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            self.redis.zrem(self.name, self.member)
        except redis_lib.RedisError as exc:  # it lapses within LEASE_SECONDS
            log.warning("op=api-stream lease=%s release=failed error=%s", self.member, exc)


@bp.get("/stream/orders")
@operation("desk.view", scope="read", replies=EventStreamReplies.of(replies(None)), tag="stream")
def stream_orders(query: StreamQuery):
    """Follow your clients' order updates live, as server-sent events (text/event-stream).

    Each update of a child order of a client you may see is one event (a child of any other client is
    never sent); the data is the child as the database holds it when the event is sent:

        id: 7
        event: order
        data: {"child_id": 5521, "batch_id": 981, "client_id": 12, "status": "PLACED", "filled_quantity": 0,
               "average_price": null, "broker_order_id": "2512050001", "reason": "", "at": "2026-12-05T04:01:07.611Z"}

    `id` numbers the stream's events from 1. `average_price` is a decimal string (or null). A
    `: keepalive` comment comes every 15 seconds. With `batch_id` the stream first sends the current
    state of each of that batch's children you may see, then their updates, and ends with
    `event: end` (`data: {"reason": "acknowledged"}`) once none is in flight (NEW, SUBMITTING,
    UNKNOWN). Every stream ends after `max_seconds` (`"reason": "max_seconds"`); it also ends when
    its key is revoked or expired (within 30 seconds) or its user is deactivated (at once), and when
    it falls too far behind (`"reason": "too slow"`: reconnect; with `batch_id` nothing is missed).
    A key holds at most 4 streams at once: a fifth answers 429 `too_many_streams` (a stream you close
    gives its place back at its next keepalive, within 15 seconds; one that ends does at once).
    """
    key, user = g.api_key, g.api_user
    child_ids: list[int] = []
    if query.batch_id is not None:
        _, children = batch_for(user, query.batch_id)  # 404 for a batch the user may not see
        child_ids = [child.id for child in children]
    follow = Follow(
        hub=feed_hub.get_hub(current_app._get_current_object()),
        user_id=user.id,
        role=user.role,
        client_ids=frozenset(accessible_client_ids(user)),
        key_id=key.id,
        batch_id=query.batch_id,
        child_ids=child_ids,
        seconds=query.max_seconds,
    )
    lease = Lease(get_redis(), key.id)
    try:
        claimed = lease.claim()
    except redis_lib.RedisError:
        raise ApiError(503, "unavailable", "Live updates are unavailable just now; try again shortly.") from None
    if not claimed:
        raise ApiError(
            429,
            "too_many_streams",
            f"This key already holds {MAX_STREAMS_PER_KEY} open streams; close one first.",
            headers={"Retry-After": str(int(KEEPALIVE_SECONDS))},
        )
    # a werkzeug Response, not Flask's: spectree reads a Flask Response's whole body to validate it (it
    # would wait for the stream to end); this one it passes through, and Flask adopts it as it is
    response = WerkzeugResponse(follow.events(lease), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy must not hold the events back
    response.call_on_close(lease.release)  # also when the body is never read (a HEAD, a refused write)
    return response


def sse(event: str, data: str, event_id: int) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n"


class Follow:
    """One stream's state: the children it has sent (each state once) and, with a batch, the ones it waits on."""

    def __init__(
        self,
        *,
        hub: feed_hub.Hub,
        user_id: int,
        role: str,
        client_ids: frozenset[int],
        key_id: int,
        batch_id: int | None,
        child_ids: list[int],
        seconds: int,
    ):
        self.hub, self.batch_id, self.child_ids, self.seconds = hub, batch_id, child_ids, seconds
        self.fields = {"user_id": user_id, "role": role, "client_ids": client_ids, "key_id": key_id}
        self.sent: dict[int, OrderEvent] = {}  # child id → what was last sent of it
        self.count = 0

    def events(self, lease: Lease) -> Iterator[str]:
        """The body. Registered with the hub before the first read, so nothing falls between the two."""
        subscriber = self.hub.register(page=feed_hub.API_PAGE, target=self.batch_id, **self.fields)
        try:
            self.hub.subscribed.wait(timeout=SUBSCRIBE_WAIT_SECONDS)
            self.hub.recheck([subscriber])  # revoked between the request's check and the register
            yield ": connected\n\n"
            yield from self._follow(subscriber, lease)
        finally:
            self.hub.unregister(subscriber)
            lease.release()  # before the server ends the response: a client may open the next one at once

    def _follow(self, subscriber: feed_hub.Subscriber, lease: Lease) -> Iterator[str]:
        try:
            yield from self._updates(subscriber, lease)
        except sa.exc.SQLAlchemyError:  # the database away: say so and end; the client reconnects later
            log.exception("op=api-stream key=%s state=read-failed", self.fields["key_id"])
            yield self._end("unavailable")

    def _updates(self, subscriber: feed_hub.Subscriber, lease: Lease) -> Iterator[str]:
        deadline = time.monotonic() + self.seconds
        next_tick = time.monotonic() + KEEPALIVE_SECONDS
        if self.batch_id is not None and self.hub.active(subscriber):
            yield self._send(self._read(subscriber, self.child_ids), subscriber, every=True)
        while True:
            if not self.hub.active(subscriber):
                yield self._end(subscriber.closed_because or "too slow")
                return
            if self.batch_id is not None and self._acknowledged(subscriber):
                yield self._end("acknowledged")
                return
            now = time.monotonic()
            if now >= deadline:
                yield self._end("max_seconds")
                return
            try:
                first = subscriber.queue.get(timeout=max(0.0, min(deadline, next_tick) - now))
            except queue.Empty:
                first = feed_hub.CLOSE
            wanted = self._drain(subscriber, first)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + KEEPALIVE_SECONDS
                lease.renew()
                yield ": keepalive\n\n"
                if self.batch_id is not None:  # the safety net for an event lost (Redis away): read the waiting ones
                    wanted |= {cid for cid, sent in self.sent.items() if sent.status in states.IN_FLIGHT}
            if wanted and self.hub.active(subscriber):
                text = self._send(self._read(subscriber, wanted), subscriber)
                if text:
                    yield text

    def _drain(self, subscriber: feed_hub.Subscriber, first) -> set[int]:
        """The order ids of this event and of every one already queued behind it (read in one query)."""
        items = [first]
        while True:
            try:
                items.append(subscriber.queue.get_nowait())
            except queue.Empty:
                break
        return {item["order_id"] for item in items if isinstance(item, dict)}

    def _read(self, subscriber: feed_hub.Subscriber, ids) -> list[OrderEvent]:
        """These children's rows, as events, in the hub's app (a session of its own, removed at once:
        a long stream pins no database connection)."""
        ids = list(ids)
        if not ids:
            return []
        with self.hub.app.app_context():
            query = sa.select(Order).where(in_ids(Order.id, ids)).order_by(Order.id)
            rows = [order_event(row) for row in db.session.execute(query).scalars()]
        return [
            row
            for row in rows
            if subscriber.can_see(row.client_id) and (self.batch_id is None or row.batch_id == self.batch_id)
        ]

    def _send(self, rows: list[OrderEvent], subscriber: feed_hub.Subscriber, every: bool = False) -> str:
        out = []
        for row in rows:
            previous = self.sent.get(row.child_id)
            if (
                not every
                and previous is not None
                and previous.model_dump(exclude={"at"}) == row.model_dump(exclude={"at"})
            ):
                continue  # this state was sent already (the snapshot, or an earlier event's read)
            if len(self.sent) >= MAX_TRACKED and row.child_id not in self.sent and self.batch_id is None:
                self.sent.pop(next(iter(self.sent)))
            self.sent[row.child_id] = row
            self.count += 1
            out.append(sse("order", row.model_dump_json(), self.count))
        return "".join(out)

    def _acknowledged(self, subscriber: feed_hub.Subscriber) -> bool:
        return all(
            sent.status not in states.IN_FLIGHT for sent in self.sent.values() if subscriber.can_see(sent.client_id)
        )

    def _end(self, reason: str) -> str:
        self.count += 1
        return sse("end", json.dumps({"reason": reason}), self.count)
