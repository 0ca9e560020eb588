"""One Redis subscriber per web process, fanning events out to per-socket queues (CTFd's pattern).

Workers and the feed publish small JSON events; this thread turns them into HTML fragments
(`webapp.feed.fragments`) for each socket allowed to see them. Each socket's own handler thread is
its only writer. The thread starts lazily with the first socket (threads do not survive a fork).

The API's order streams (webapp/api/stream.py) subscribe here too, as `page=API_PAGE` with their key:
they get the order.updated events themselves (dicts, not HTML) for the clients they may see, and
since a key is not a login session, the re-check asks whether the key is still live instead.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import redis as redis_lib
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from webapp.access import granted_scope, may_see
from webapp.apikeys import live_key_ids
from webapp.auth.sessions import SESSIONS_ENDED, USER_EVENTS, user_access
from webapp.events import CHANNEL
from webapp.marketdata.store import TICKS_CHANNEL

log = logging.getLogger(__name__)
RECONNECT_MAX_SECONDS = 5.0  # Redis back: the pages' live updates resume within this
QUEUE_LIMIT = 200  # a socket this far behind is dropped rather than slowing everyone
RECHECK_SECONDS = 30.0  # safety net: every socket's user is re-read this often, in case an event was lost
CLOSE = None  # queued to wake a socket's handler when the hub closes it
API_PAGE = "api"  # an API order stream: order.updated events as dicts (webapp/api/stream.py)


@dataclass
class Subscriber:
    id: int
    user_id: int
    role: str
    client_ids: frozenset[int]
    page: str  # desk | client | batch | instrument | book | watchlist
    target: int | None
    tokens: set[int] = field(default_factory=set)  # instruments whose prices this page shows
    shown: frozenset[int] = frozenset()  # desk: the clients whose rows the page shows (a page of them)
    session_version: int = 0  # of the login session that opened the socket (webapp/auth/sessions.py)
    closed_because: str | None = None  # set when the hub closes the socket (its session ended)
    key_id: int | None = None  # an API stream's key: it has no login session, the key's liveness is checked
    queue: queue.Queue[str | dict | None] = field(default_factory=lambda: queue.Queue(QUEUE_LIMIT))

    def can_see(self, client_id: int | None) -> bool:
        return may_see(self.role, self.client_ids, client_id)


class Hub:
    def __init__(self, app: Flask):
        self.app = app
        self.subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.subscribed = threading.Event()  # set while the Redis subscription is live

    def register(self, **fields) -> Subscriber:
        subscriber = Subscriber(id=next(self._ids), **fields)
        with self._lock:
            self.subscribers[subscriber.id] = subscriber
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="fanout-hub", daemon=True)
                self._thread.start()
        return subscriber

    def unregister(self, subscriber: Subscriber) -> None:
        with self._lock:
            self.subscribers.pop(subscriber.id, None)

    def active(self, subscriber: Subscriber) -> bool:
        """Still registered (not dropped as a slow consumer)? A dict lookup: each socket asks per message."""
        return subscriber.id in self.subscribers

    def snapshot(self) -> list[Subscriber]:
        with self._lock:
            return list(self.subscribers.values())

    def close(self, subscriber: Subscriber, because: str) -> None:
        """Stop the socket's fragments now and wake its handler, which closes it."""
        subscriber.closed_because = because
        self.unregister(subscriber)
        try:
            subscriber.queue.put_nowait(CLOSE)
        except queue.Full:
            pass  # its handler is awake anyway, and stops at the next message: it is no longer registered
        log.info("op=hub socket=%s user=%s state=closed reason=%s", subscriber.id, subscriber.user_id, because)

    def user_event(self, event: dict) -> None:
        """A user's sessions ended, or their role or grants changed (which ends them too): their
        sockets in this process close. The page then falls back to its plain requests, which take
        an ended session to the login page; a socket never streams for a session that has ended.
        An API stream is not a session: its user is re-read at once (deactivated: it closes; new
        grants: it follows them from the next event on)."""
        streams = []
        for subscriber in self.snapshot():
            if subscriber.user_id != event.get("user_id"):
                continue
            if subscriber.key_id is not None:
                streams.append(subscriber)
            else:
                self.close(subscriber, "session ended" if event["event"] == SESSIONS_ENDED else "access changed")
        if streams:
            self.recheck(streams)

    def recheck(self, subscribers: list[Subscriber] | None = None) -> None:
        """Re-read the users of these sockets (default: all) from the database, the safety net for
        an event this process missed: a socket whose user is inactive or whose session has ended is
        closed; the others take the user's current role and grants. An API stream closes when its
        key is revoked or expired (no event announces that: within RECHECK_SECONDS)."""
        subscribers = self.snapshot() if subscribers is None else subscribers
        if not subscribers:
            return
        try:
            with self.app.app_context():  # its own database session, removed when the context ends
                access = user_access({s.user_id for s in subscribers})
                keys = live_key_ids({s.key_id for s in subscribers if s.key_id is not None})
        except Exception:  # the database away: keep the sockets, the next recheck tries again
            log.exception("op=hub state=recheck-failed")
            return
        for subscriber in subscribers:
            current = access.get(subscriber.user_id)
            if current is None or not current.active:
                self.close(subscriber, "deactivated")
            elif subscriber.key_id is not None:
                if subscriber.key_id in keys:
                    subscriber.role, subscriber.client_ids = current.role, current.client_ids
                else:
                    self.close(subscriber, "key revoked or expired")
            elif current.session_version == subscriber.session_version:
                subscriber.role, subscriber.client_ids = current.role, current.client_ids
                if (scope := granted_scope(current.role, current.client_ids)) is not None:
                    subscriber.shown = subscriber.shown & scope
            else:
                self.close(subscriber, "session ended")

    def _listen(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            # bounded waits: a reconnect to a paused or unreachable Redis fails and backs off, never hangs
            client = redis_lib.Redis.from_url(
                self.app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5, retry=Retry(NoBackoff(), 0)
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # neither connects yet
            try:
                pubsub.subscribe(CHANNEL, TICKS_CHANNEL)
                pubsub.get_message(timeout=1.0)  # the subscribe confirmation: from here nothing is missed
                self.subscribed.set()
                backoff = 1.0
                self.recheck()  # events published while we were not subscribed are lost: re-read now
                next_check = time.monotonic() + RECHECK_SECONDS
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.dispatch(message["channel"], message["data"])
                    if time.monotonic() >= next_check:
                        self.recheck()
                        next_check = time.monotonic() + RECHECK_SECONDS
            except redis_lib.RedisError as exc:
                self.subscribed.clear()
                log.warning("op=hub state=reconnecting error=%s backoff=%.0f", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
            finally:  # a reconnect opens new connections: the broken ones go now, not at garbage collection
                pubsub.close()
                client.close()

    def dispatch(self, channel: bytes | str, data: bytes | str) -> None:
        from webapp.feed import fragments

        channel = channel.decode() if isinstance(channel, bytes) else channel
        subscribers = self.snapshot()
        if not subscribers:
            return
        pages = [s for s in subscribers if s.page != API_PAGE]
        streams = [s for s in subscribers if s.page == API_PAGE]
        deliveries: list[tuple[Subscriber, str | dict]]
        # a request context of its own: templates build URLs; no session is read or written here
        with self.app.test_request_context("/"):
            try:
                if channel == TICKS_CHANNEL:
                    deliveries = fragments.for_ticks(data, pages) if pages else []
                elif (event := json.loads(data)).get("event") in USER_EVENTS:
                    self.user_event(event)
                    return
                else:
                    deliveries = (fragments.for_event(event, pages) if pages else []) + for_streams(event, streams)
            except Exception:  # one bad event must not stop the process's only subscriber
                log.exception("op=hub state=render-failed channel=%s", channel)
                return
            finally:
                from webapp.extensions import db

                db.session.remove()
        for subscriber, html in deliveries:
            try:
                subscriber.queue.put_nowait(html)
            except queue.Full:
                log.warning("op=hub socket=%s state=dropped reason=slow-consumer", subscriber.id)
                self.unregister(subscriber)

    def stop(self, wait: float = 0) -> None:
        """Stop listening; `wait`: seconds to wait for the listener thread to end (tests, before the
        app's database engine goes)."""
        self._stop.set()
        for subscriber in self.snapshot():  # an API stream ends now (its thread writes its `end`), not at a keepalive
            if subscriber.page == API_PAGE:
                self.close(subscriber, "server stopping")
        if wait and self._thread is not None:
            self._thread.join(wait)


def for_streams(event: dict, streams: list[Subscriber]) -> list[tuple[Subscriber, dict]]:
    """An order.updated event, as it came, to the API streams that follow its batch (or every batch)
    and may see its client; the stream reads the order's row itself (the event is thin)."""
    if not streams or event.get("event") != "order.updated" or not isinstance(event.get("order_id"), int):
        return []
    client_id, batch_id = event.get("client_id"), event.get("batch_id")
    return [(s, event) for s in streams if s.target in (None, batch_id) and s.can_see(client_id)]


def get_hub(app: Flask) -> Hub:
    hub = app.extensions.get("fanout_hub")
    if hub is None:
        hub = app.extensions["fanout_hub"] = Hub(app)
    return hub
