"""The Upstox emulator's market data feed v3 (skeleton: the contract the REST emulator mixes in)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators.stream_common import StreamHub


class UpstoxStreamHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator


class UpstoxStreamMixin:
    """Mixed into UpstoxEmulator: the feed's authorize route, its WebSocket and the fault hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = UpstoxStreamHub(self)

    def feed_authorize(self, request: Request) -> Response:
        raise NotImplementedError

    def ticker(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        self.stream.silence(seconds)
