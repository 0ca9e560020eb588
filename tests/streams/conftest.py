"""Emulator servers for the stream tests: one per module (stopping one costs half a second), a
fresh account per test, ticks every 50 ms, and every socket a test opened closed at its end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.emulators.common import EmulatorServer
from tests.emulators.kite import KiteEmulator
from tests.emulators.sharekhan import ShareKhanEmulator
from webapp.brokers.kite.ticker import KiteTicker
from webapp.brokers.sharekhan.stream import ShareKhanStream
from webapp.marketdata.streams import Tick, TickStream

TICK_INTERVAL = 0.05


@dataclass
class StreamEnv:
    emulator: Any
    creds: dict[str, Any]
    ws_url: str
    make: Callable[..., TickStream]
    opened: list[TickStream] = field(default_factory=list)

    def stream(self, **kwargs: Any) -> TickStream:
        """A stream for this test's account (kwargs override), closed at the end of the test."""
        stream = self.make(self, **kwargs)
        self.opened.append(stream)
        return stream

    @property
    def hub(self):
        return self.emulator.stream


def read_until(stream: TickStream, done: Callable[[list[Tick]], bool], within: float = 3.0) -> list[Tick]:
    """Read ticks until `done(all ticks so far)` holds; fails the test after `within` seconds."""
    ticks: list[Tick] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ticks.extend(stream.read(0.2))
        if done(ticks):
            return ticks
    raise AssertionError(f"condition not met within {within}s; got {len(ticks)} ticks")


def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def read_for(stream: TickStream, seconds: float) -> list[Tick]:
    ticks: list[Tick] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ticks.extend(stream.read(left))
    return ticks


def _env(server: EmulatorServer, creds: dict[str, Any], path: str, make: Callable[..., TickStream]):
    hub = server.app.stream
    hub.tick_interval, hub.heartbeat_interval = TICK_INTERVAL, 1.0
    env = StreamEnv(server.app, creds, server.url.replace("http://", "ws://") + path, make)
    yield env
    for stream in env.opened:
        stream.close()
    hub.shutdown()


@pytest.fixture(scope="module")
def kite_server():
    with EmulatorServer(KiteEmulator()) as server:
        yield server
        server.app.stream.shutdown()


@pytest.fixture(scope="module")
def sharekhan_server():
    with EmulatorServer(ShareKhanEmulator()) as server:
        yield server
        server.app.stream.shutdown()


def _kite_stream(env: StreamEnv, **kwargs: Any) -> KiteTicker:
    options = {
        "api_key": env.creds["api_key"],
        "access_token": env.creds["access_token"],
        "ws_url": env.ws_url,
        "connect_timeout": 2.0,
        **kwargs,
    }
    return KiteTicker(options.pop("api_key"), options.pop("access_token"), **options)


def _sharekhan_stream(env: StreamEnv, **kwargs: Any) -> ShareKhanStream:
    options = {
        "api_key": env.creds["api_key"],
        "access_token": env.creds["access_token"],
        "ws_url": env.ws_url,
        "customer_id": env.creds["customer_id"],
        "connect_timeout": 2.0,
        **kwargs,
    }
    return ShareKhanStream(options.pop("api_key"), options.pop("access_token"), **options)


@pytest.fixture
def kite(kite_server):
    yield from _env(kite_server, kite_server.app.add_account(), "/", _kite_stream)


@pytest.fixture
def sharekhan(sharekhan_server):
    yield from _env(sharekhan_server, sharekhan_server.app.add_account(), "/skstream/api/stream", _sharekhan_stream)
