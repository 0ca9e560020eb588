"""How each process talks to Redis when Redis goes away: the web gives up fast, RQ waits it out.

Web requests (and the app code jobs and the feed run) use a fail-fast client: connect and read time
out after WAIT_SECONDS, nothing is retried, and after one failure every connection of the process to
that Redis refuses at once for COOL_DOWN_SECONDS (a small circuit breaker). A page that asks Redis
five things while Redis is paused so waits one timeout, not five; the page draws what the database
has and the POSTs that need a queue refuse (`webapp.tasks.require_queue`).

The RQ processes (`rq worker`, `rq cron`, the RQ scheduler) use `PatientRedis`
(`--connection-class webapp.redisconn.PatientRedis`): every command that fails on a lost or timed-out
connection is retried for ever with exponential backoff, so no ConnectionError or TimeoutError
escapes RQ's loops (where it would end the process: `rq cron` catches nothing, `rq worker` quits on
a TimeoutError or on a ConnectionError outside its dequeue). A command then waits for Redis to come
back, which for these processes is the right thing to do.
"""

from __future__ import annotations

import threading
import time

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import Connection, SSLConnection
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

WAIT_SECONDS = 0.75  # the longest one web request waits on Redis (connect or read)
COOL_DOWN_SECONDS = 2.0  # after a failure, refuse at once for this long, then try again

_open_until: dict[tuple, float] = {}  # (host, port) → monotonic time the breaker closes again
_breaker_lock = threading.Lock()


class _FailFast:
    """A connection that refuses at once while its Redis failed within the last COOL_DOWN_SECONDS."""

    def _breaker_key(self) -> tuple:
        return getattr(self, "host", None), getattr(self, "port", None), getattr(self, "path", None)

    def _trip(self) -> None:
        with _breaker_lock:
            _open_until[self._breaker_key()] = time.monotonic() + COOL_DOWN_SECONDS

    def connect_check_health(self, *args, **kwargs):
        if not self._sock and time.monotonic() < _open_until.get(self._breaker_key(), 0.0):
            raise ConnectionError("Redis is unavailable (a recent attempt failed; retrying shortly)")
        try:
            return super().connect_check_health(*args, **kwargs)
        except (ConnectionError, TimeoutError):
            self._trip()
            raise

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except (ConnectionError, TimeoutError):
            self._trip()
            raise


class FailFastConnection(_FailFast, Connection):
    pass


class FailFastSSLConnection(_FailFast, SSLConnection):
    pass


def fail_fast_options(url: str) -> dict:
    """Keyword arguments for `redis.Redis.from_url(url, **…)` (and Flask-Limiter's storage options)."""
    return {
        "socket_connect_timeout": WAIT_SECONDS,
        "socket_timeout": WAIT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
        "connection_class": FailFastSSLConnection if url.startswith("rediss:") else FailFastConnection,
    }


def fail_fast_client(url: str, **options) -> redis.Redis:
    return redis.Redis.from_url(url, **fail_fast_options(url), **options)


def reset_breaker() -> None:
    """Forget past failures (tests that bring Redis back and want the next call to try at once)."""
    with _breaker_lock:
        _open_until.clear()


class PatientRedis(redis.Redis):
    """RQ's connection class: retries a lost or timed-out connection for ever, backing off to 10 s."""

    @classmethod
    def from_url(cls, url: str, **kwargs):
        kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=10, base=0.5), -1))
        kwargs.setdefault("socket_connect_timeout", 5)
        kwargs.setdefault(
            "socket_timeout", 30
        )  # a paused Redis: time out and retry (RQ raises it above its dequeue wait)
        kwargs.setdefault("socket_keepalive", True)
        return super().from_url(url, **kwargs)
