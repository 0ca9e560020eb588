"""StreamSupervisor: backoff, resubscribe, watchdog and auth failure, first with scripted streams and
a fake clock, then against the emulators over real sockets (backoff sleeps recorded, not slept)."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterable
from decimal import Decimal

import pytest

from tests.streams.conftest import StreamEnv
from webapp.brokers.base import AuthExpired, Quote, Unavailable
from webapp.marketdata.streams import StreamClosed, StreamState, StreamSupervisor, TickStream

QUOTE = Quote("NSE", "INFY", Decimal("1512.40"))


class FakeClock:
    """Time moves only when slept or read through."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedStream(TickStream):
    """connect() and read() follow a script shared by every stream one factory makes."""

    def __init__(self, script: Script):
        self.script, self.subscribed, self.closed = script, [], False

    def connect(self) -> None:
        outcome = self.script.connects.popleft() if self.script.connects else "ok"
        if isinstance(outcome, Exception):
            raise outcome

    def subscribe(self, tokens: Iterable[int]) -> None:
        self.subscribed.append(("subscribe", set(tokens)))

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        self.subscribed.append(("unsubscribe", set(tokens)))

    def read(self, timeout: float):
        self.script.clock.now += timeout
        outcome = self.script.reads.popleft() if self.script.reads else []
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        self.closed = True


class Script:
    def __init__(self, clock: FakeClock, connects=(), reads=()):
        self.clock, self.connects, self.reads = clock, deque(connects), deque(reads)
        self.streams: list[ScriptedStream] = []

    def factory(self) -> ScriptedStream:
        self.streams.append(ScriptedStream(self))
        return self.streams[-1]


def supervisor(script: Script, **kwargs) -> StreamSupervisor:
    options = {"seed": 7, "sleep": script.clock.sleep, "clock": script.clock, "watchdog_seconds": 5.0, **kwargs}
    return StreamSupervisor(script.factory, **options)


def test_backoff_is_full_jitter_doubling_from_1s_capped_at_30s():
    clock = FakeClock()
    script = Script(clock, connects=[Unavailable("down")] * 8)
    sup = supervisor(script)
    delays = []
    for _ in range(8):
        assert sup.run_once(timeout=100.0) == []
        delays.append(sup.stats().next_retry_in)
    rng = random.Random(7)
    expected = [rng.uniform(0, min(30.0, 2.0**n)) for n in range(8)]
    assert delays == pytest.approx(expected) and max(expected[5:]) <= 30.0
    assert sup.state is StreamState.BACKOFF and sup.stats().failures == 8
    assert clock.sleeps == pytest.approx(delays[:7])  # each wait slept in full (timeout is larger)
    assert all(stream.closed for stream in script.streams)


def test_same_seed_same_delays_and_waits_are_sliced_by_timeout():
    runs = []
    for _ in range(2):
        clock = FakeClock()
        sup = supervisor(Script(clock, connects=[Unavailable("down")] * 6), backoff_base=10.0)
        for _ in range(200):
            sup.run_once(timeout=0.5)
            if sup.stats().failures == 6:
                break
        assert max(clock.sleeps) <= 0.5
        runs.append(sum(clock.sleeps))
    assert runs[0] == pytest.approx(runs[1]) and runs[0] > 0


def test_auth_expired_stops_retrying_until_reset():
    clock = FakeClock()
    script = Script(clock, connects=[AuthExpired("refused")])
    sup = supervisor(script)
    with pytest.raises(AuthExpired):
        sup.run_once(1.0)
    with pytest.raises(AuthExpired):
        sup.run_once(1.0)
    assert len(script.streams) == 1 and script.streams[0].closed
    assert sup.state is StreamState.AUTH_FAILED and sup.stats().last_error == "refused"
    sup.reset()
    sup.run_once(1.0)
    assert sup.state is StreamState.CONNECTED and len(script.streams) == 2


def test_a_failing_factory_is_a_failed_attempt_or_an_auth_failure():
    clock = FakeClock()
    outcomes = deque([Unavailable("vault down"), AuthExpired("no session")])

    def factory():
        raise outcomes.popleft()

    sup = StreamSupervisor(factory, seed=1, sleep=clock.sleep, clock=clock)
    assert sup.run_once(1.0) == [] and sup.stats().failures == 1 and sup.state is StreamState.BACKOFF
    with pytest.raises(AuthExpired):
        for _ in range(5):
            sup.run_once(1.0)
    assert sup.state is StreamState.AUTH_FAILED and not outcomes


def test_reconnect_resubscribes_the_whole_desired_set():
    clock = FakeClock()
    script = Script(clock, reads=[[(1, QUOTE)], StreamClosed("reset")])
    sup = supervisor(script)
    sup.subscribe({1, 2})
    assert sup.run_once(1.0) == [(1, QUOTE)]
    sup.subscribe({3})
    sup.unsubscribe({2})
    assert script.streams[0].subscribed == [("subscribe", {1, 2}), ("subscribe", {3}), ("unsubscribe", {2})]
    assert sup.run_once(1.0) == []  # the socket died
    assert sup.state is StreamState.BACKOFF and sup.stats().drops == 1
    while sup.state is not StreamState.CONNECTED:
        sup.run_once(1.0)
    assert script.streams[1].subscribed == [("subscribe", {1, 3})]
    stats = sup.stats()
    assert (stats.connects, stats.reconnects, stats.subscribed) == (2, 1, 2)


def test_watchdog_trips_only_when_subscribed_and_active():
    clock = FakeClock()
    active = [False]
    script = Script(clock)
    sup = supervisor(script, watchdog_active=lambda: active[0])
    for _ in range(10):
        sup.run_once(1.0)  # connected, nothing subscribed: no trip
    sup.subscribe({1})
    for _ in range(10):
        sup.run_once(1.0)  # subscribed but outside market hours: no trip
    assert sup.stats().watchdog_trips == 0 and len(script.streams) == 1
    active[0] = True
    for _ in range(4):
        sup.run_once(1.0)
    assert sup.state is StreamState.CONNECTED  # 4 s of silence < 5 s
    sup.run_once(1.0)
    assert sup.stats().watchdog_trips == 1 and sup.state is StreamState.BACKOFF
    assert script.streams[0].closed


def test_a_tick_resets_the_backoff_attempts():
    clock = FakeClock()
    script = Script(
        clock,
        connects=[Unavailable("x"), Unavailable("x"), "ok", Unavailable("x")],
        reads=[[(1, QUOTE)], StreamClosed("gone")],
    )
    sup = supervisor(script, backoff_base=1.0, rng=random.Random(1))
    for _ in range(20):
        sup.run_once(100.0)
        if sup.stats().failures == 3:
            break
    rng = random.Random(1)
    expected = [rng.uniform(0, 1), rng.uniform(0, 2), rng.uniform(0, 1), rng.uniform(0, 2)]
    assert clock.sleeps == pytest.approx(expected[:3]) and sup.stats().next_retry_in == pytest.approx(expected[3])


def test_close_closes_the_stream_and_stops():
    clock = FakeClock()
    script = Script(clock)
    sup = supervisor(script)
    sup.run_once(1.0)
    sup.close()
    assert script.streams[0].closed and sup.state is StreamState.CLOSED
    assert sup.run_once(1.0) == [] and len(script.streams) == 1


# ---------------------------------------------------------------- over real sockets


class SkewClock:
    """Real monotonic time, plus whatever the supervisor 'slept': backoff costs no wall time."""

    def __init__(self) -> None:
        self.skew, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return time.monotonic() + self.skew

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.skew += seconds


def live_supervisor(env: StreamEnv, clock: SkewClock, **kwargs) -> StreamSupervisor:
    options = {"seed": 3, "sleep": clock.sleep, "clock": clock, "watchdog_seconds": 0.3, **kwargs}
    sup = StreamSupervisor(lambda: env.stream(), name=type(env.emulator).__name__, **options)
    return sup


def run_until(sup: StreamSupervisor, done, within: float = 4.0) -> list:
    deadline = time.monotonic() + within
    ticks: list = []
    while time.monotonic() < deadline:
        ticks.extend(sup.run_once(0.1))
        if done(ticks):
            return ticks
    raise AssertionError(f"not done within {within}s: {sup.stats()}")


@pytest.mark.parametrize("broker", ["kite", "sharekhan"])
def test_drop_reconnects_with_backoff_and_resubscribes(broker, request):
    env = request.getfixturevalue(broker)
    token = env.emulator.book.instrument("NSE", "INFY").instrument_token if broker == "kite" else 1594
    clock = SkewClock()
    sup = live_supervisor(env, clock)
    sup.subscribe({token})
    run_until(sup, bool)
    env.emulator.drop_stream()
    env.emulator.set_price("INFY", "1501.10") if broker == "kite" else env.emulator.set_ltp("INFY", "1501.10")
    ticks = run_until(sup, lambda ts: any(q.last_price == Decimal("1501.10") for _, q in ts))
    assert {t for t, _ in ticks} == {token}
    stats = sup.stats()
    assert (stats.connects, stats.reconnects, stats.drops, stats.state) == (2, 1, 1, StreamState.CONNECTED)
    assert env.hub.accepted >= 2 and len(env.opened) == 2
    assert len(clock.sleeps) >= 1 and all(0 <= s <= 1.0 for s in clock.sleeps)  # attempt 0: uniform(0, 1 s)
    assert stats.last_tick_at is not None and stats.last_tick_at.tzinfo is not None
    sup.close()


def test_silent_socket_trips_the_watchdog_and_reconnects(kite):
    token = kite.emulator.book.instrument("NSE", "TCS").instrument_token
    clock = SkewClock()
    sup = live_supervisor(kite, clock)
    sup.subscribe({token})
    run_until(sup, bool)
    kite.emulator.silence_stream(10.0)
    run_until(sup, lambda _: sup.stats().watchdog_trips == 1)
    run_until(sup, bool)  # ticks again, from a new socket
    stats = sup.stats()
    assert (stats.watchdog_trips, stats.reconnects, stats.drops) == (1, 1, 0)
    assert kite.hub.accepted >= 2
    sup.close()


def test_token_expired_during_a_drop_surfaces_auth_expired(kite):
    token = kite.emulator.book.instrument("NSE", "SBIN").instrument_token
    clock = SkewClock()
    sup = live_supervisor(kite, clock)
    sup.subscribe({token})
    run_until(sup, bool)
    refused_before = kite.hub.refused
    kite.emulator.expire_sessions(kite.creds["user_id"])
    kite.emulator.drop_stream()
    with pytest.raises(AuthExpired):
        run_until(sup, lambda _: False)
    assert sup.state is StreamState.AUTH_FAILED
    for _ in range(3):
        with pytest.raises(AuthExpired):
            sup.run_once(0.1)
    assert kite.hub.refused == refused_before + 1  # one refusal, no retry loop
    sup.close()
