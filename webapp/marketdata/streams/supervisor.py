"""Keeps one tick stream alive: reconnect with backoff, resubscribe, and a no-tick watchdog.

Synchronous and thread-free: the feed process calls `run_once(timeout)` in its loop and gets the
ticks that arrived. Around that call the supervisor

- connects on the first call, asking its factory for a fresh TickStream on every (re)connect, so
  the factory can hand out the latest access token;
- keeps the desired subscription set itself and subscribes all of it after every connect
  (reference/market.md §3.6: the client must keep its own list);
- after StreamClosed, an unreachable broker, or a watchdog trip (no tick for `watchdog_seconds`
  while subscribed and `watchdog_active()` says ticks are expected, e.g. market hours) waits a
  backoff with full jitter, uniform(0, min(cap, base * 2**attempt)), then reconnects; the attempt
  count goes back to 0 when a tick arrives;
- stops on AuthExpired: the error is raised from run_once, and raised again by every later call,
  until `reset()` (after the client logged in again).

`run_once` never blocks much longer than its timeout (plus one bounded connect): a pending backoff
is slept in slices of at most `timeout`.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from webapp.brokers.base import AuthExpired, BrokerError
from webapp.marketdata.streams.base import StreamClosed, Tick, TickStream
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)


def _token(value: int | str) -> int | str:
    """A stream token as the broker keys it: a number (Kite, ShareKhan; "2885" from a form is 2885) or
    the broker's own string (Upstox's "NSE_EQ|<ISIN>")."""
    if isinstance(value, str) and not value.isdigit():
        return value
    return int(value)


class StreamState(str, enum.Enum):
    IDLE = "idle"  # not connected yet
    CONNECTED = "connected"
    BACKOFF = "backoff"  # lost or never reached; waiting to reconnect
    AUTH_FAILED = "auth_failed"  # the broker refused the session; reset() after a new login
    CLOSED = "closed"


@dataclass(frozen=True)
class SupervisorStats:
    state: StreamState
    connects: int  # successful connects, the first included
    reconnects: int  # successful connects after the first
    failures: int  # connect attempts that failed
    drops: int  # connections lost (closed, reset) after they were up
    watchdog_trips: int
    last_tick_at: datetime | None
    last_error: str | None
    subscribed: int
    next_retry_in: float | None  # seconds, while in BACKOFF


class StreamSupervisor:
    def __init__(
        self,
        factory: Callable[[], TickStream],
        *,
        name: str = "stream",
        watchdog_seconds: float = 30.0,
        watchdog_active: Callable[[], bool] = lambda: True,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ):
        self.factory, self.name = factory, name
        self.watchdog_seconds, self.watchdog_active = watchdog_seconds, watchdog_active
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.rng = rng or random.Random(seed)
        self._sleep, self._clock, self._now = sleep, clock, now
        self._desired: set[int | str] = set()
        self._stream: TickStream | None = None
        self._state = StreamState.IDLE
        self._attempt = 0
        self._retry_at: float | None = None
        self._last_activity = clock()
        self._auth_error: AuthExpired | None = None
        self._counts = {"connects": 0, "failures": 0, "drops": 0, "watchdog_trips": 0}
        self._last_tick_at: datetime | None = None
        self._last_error: str | None = None

    # ------------------------------------------------------------------ the caller's API

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def subscriptions(self) -> frozenset[int | str]:
        return frozenset(self._desired)

    def subscribe(self, tokens: Iterable[int | str]) -> None:
        new = {_token(t) for t in tokens} - self._desired
        if not new:
            return
        if not self._desired:
            self._last_activity = self._clock()  # the watchdog counts from the first subscription
        self._desired |= new
        self._forward("subscribe", new)

    def unsubscribe(self, tokens: Iterable[int | str]) -> None:
        gone = {_token(t) for t in tokens} & self._desired
        if gone:
            self._desired -= gone
            self._forward("unsubscribe", gone)

    def run_once(self, timeout: float = 1.0) -> list[Tick]:
        """Ticks that arrived within about `timeout` seconds, reconnecting as needed.

        Raises AuthExpired when the broker refused the session (and on every call after, until reset()).
        """
        if self._state is StreamState.AUTH_FAILED and self._auth_error is not None:
            raise self._auth_error
        if self._state is StreamState.CLOSED:
            return []
        if self._stream is None and not (self._retry_due(timeout) and self._connect()):
            return []
        return self._read(timeout)

    def stats(self) -> SupervisorStats:
        retry = None
        if self._state is StreamState.BACKOFF and self._retry_at is not None:
            retry = max(self._retry_at - self._clock(), 0.0)
        connects = self._counts["connects"]
        return SupervisorStats(
            self._state,
            connects,
            max(connects - 1, 0),
            self._counts["failures"],
            self._counts["drops"],
            self._counts["watchdog_trips"],
            self._last_tick_at,
            self._last_error,
            len(self._desired),
            retry,
        )

    def reset(self) -> None:
        """Forget an AuthExpired (the client logged in again): the next run_once connects at once."""
        self._auth_error, self._retry_at, self._attempt = None, None, 0
        if self._state in (StreamState.AUTH_FAILED, StreamState.CLOSED):
            self._state = StreamState.IDLE

    def close(self) -> None:
        self._drop_stream()
        self._state = StreamState.CLOSED
        log.info("stream=%s event=closed", self.name)

    # ------------------------------------------------------------------ internals

    def _retry_due(self, timeout: float) -> bool:
        if self._retry_at is None:
            return True
        remaining = self._retry_at - self._clock()
        if remaining > 0:
            self._sleep(min(remaining, max(timeout, 0.0)))
            remaining = self._retry_at - self._clock()
        return remaining <= 0

    def _connect(self) -> bool:
        """One attempt. The factory may raise too (say AuthExpired when there is no session)."""
        stream: TickStream | None = None
        try:
            stream = self.factory()
            stream.connect()
        except AuthExpired as exc:
            self._close(stream)
            self._auth_failed(exc)
            raise
        except (BrokerError, OSError) as exc:
            self._close(stream)
            self._counts["failures"] += 1
            self._schedule_retry("connect_failed", str(exc))
            return False
        self._stream, self._state = stream, StreamState.CONNECTED
        self._retry_at, self._last_activity = None, self._clock()
        self._counts["connects"] += 1
        log.info(
            "stream=%s event=connected connects=%d subscribed=%d",
            self.name,
            self._counts["connects"],
            len(self._desired),
        )
        if self._desired:
            self._forward("subscribe", set(self._desired))
        return self._stream is not None

    def _read(self, timeout: float) -> list[Tick]:
        stream = self._stream
        if stream is None:
            return []
        try:
            ticks = stream.read(timeout)
        except AuthExpired as exc:
            self._drop_stream()
            self._auth_failed(exc)
            raise
        except (StreamClosed, BrokerError, OSError) as exc:
            self._lost("closed", str(exc))
            return []
        if ticks:
            self._last_activity, self._last_tick_at, self._attempt = self._clock(), self._now(), 0
        elif self._watchdog_tripped():
            self._counts["watchdog_trips"] += 1
            self._lost("watchdog", f"no tick for {self.watchdog_seconds:g}s", counted=False)
        return ticks

    def _watchdog_tripped(self) -> bool:
        now = self._clock()
        if not self._desired or not self.watchdog_active():
            self._last_activity = now
            return False
        return now - self._last_activity >= self.watchdog_seconds

    def _forward(self, action: str, tokens: set[int]) -> None:
        """Pass a subscription change to the live stream; a dead socket turns into a reconnect."""
        if self._stream is None:
            return
        try:
            getattr(self._stream, action)(tokens)
        except (StreamClosed, BrokerError, OSError) as exc:
            self._lost(f"{action}_failed", str(exc))

    def _lost(self, reason: str, detail: str, counted: bool = True) -> None:
        self._drop_stream()
        if counted:
            self._counts["drops"] += 1
        self._schedule_retry(reason, detail)

    def _schedule_retry(self, reason: str, detail: str) -> None:
        """reason: a short code for logs; detail: what happened, for stats and logs."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(self._attempt, 32))
        delay = self.rng.uniform(0, ceiling)
        self._attempt += 1
        self._retry_at, self._state = self._clock() + delay, StreamState.BACKOFF
        self._last_error = f"{reason}: {detail}"
        log.warning(
            "stream=%s event=reconnect_scheduled reason=%s attempt=%d delay=%.3f detail=%s",
            self.name,
            reason,
            self._attempt,
            delay,
            json.dumps(detail),
        )

    def _auth_failed(self, exc: AuthExpired) -> None:
        self._auth_error, self._state, self._last_error = exc, StreamState.AUTH_FAILED, exc.message
        log.error("stream=%s event=auth_failed detail=%s", self.name, json.dumps(exc.message))

    def _drop_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._close(stream)

    def _close(self, stream: TickStream | None) -> None:
        if stream is None:
            return
        try:
            stream.close()
        except (BrokerError, OSError) as exc:
            log.warning("stream=%s event=close_failed error=%s", self.name, type(exc).__name__)
