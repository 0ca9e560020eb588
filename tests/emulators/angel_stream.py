"""The Angel emulator's SmartWebSocket v2 stream (skeleton; filled in next)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators.stream_common import StreamHub


class AngelStreamHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator


class AngelStreamMixin:
    """Mixed into AngelEmulator: the stream view and its fault hooks. `self.stream` is the hub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = AngelStreamHub(self)

    def ticker(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        self.stream.silence(seconds)
