"""The Dhan emulator's live market feed v2 (skeleton; being built)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators.stream_common import StreamConn, StreamHub


class DhanStreamHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        token = request.args.get("token", "")
        account = self.emulator.stream_account(token)
        if account is None or request.args.get("clientId", "") != account:
            return "", Response("", status=401)
        return account, None

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        pass

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        return []


class DhanStreamMixin:
    """Mixed into DhanEmulator: the feed view and its fault hooks. `self.stream` is the hub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = DhanStreamHub(self)

    def ticker(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        self.stream.silence(seconds)
