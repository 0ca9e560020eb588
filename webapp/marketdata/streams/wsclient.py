"""A WebSocket client for the tick streams: simple-websocket's client with bounded connects.

simple_websocket.Client connects and handshakes with no timeout, loops forever when the server
hangs up mid-handshake, and leaks its socket when the handshake fails. `WebSocket` fixes those
three things and maps every failure to the stream port's errors:

- the server refused the upgrade with 401/403 -> AuthExpired (log in again);
- unreachable, timed out, refused with another status, or hung up -> Unavailable;
- the open socket died -> StreamClosed.

The reader thread is a daemon and is joined on close, so a long-lived feed process does not
collect threads across reconnects. Never log the URL: it carries the access token.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from simple_websocket import ConnectionClosed
from simple_websocket import ConnectionError as UpgradeRefused
from simple_websocket.ws import Base
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import ProtocolError

from webapp.brokers.base import AuthExpired, Unavailable
from webapp.marketdata.streams.base import StreamClosed

AUTH_STATUSES = (401, 403)
MAX_DRAIN = 1000  # messages handled by one read after the first result, so a flood cannot starve the caller
T = TypeVar("T")


class _DaemonThread(threading.Thread):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, daemon=True, **kwargs)


class WebSocket(Base):
    """A connected client socket. `open` is the constructor to use."""

    def __init__(self, sock: socket.socket, host: str, target: str, headers: list[tuple[str, str]], timeout: float):
        self._host, self._target, self._headers, self._timeout = host, target, headers, timeout
        super().__init__(sock, connection_type=ConnectionType.CLIENT, receive_bytes=65536, thread_class=_DaemonThread)

    @classmethod
    def open(
        cls, url: str, headers: dict[str, str] | None = None, timeout: float = 10.0, what: str = "stream"
    ) -> WebSocket:
        """Connect and handshake within `timeout` seconds each; typed errors on failure."""
        parts = urlsplit(url)
        secure = parts.scheme in ("wss", "https")
        host = parts.hostname or ""
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            sock = socket.create_connection((host, parts.port or (443 if secure else 80)), timeout=timeout)
        except OSError as exc:
            raise Unavailable(f"Could not reach the {what} ({type(exc).__name__}).") from None
        try:
            if secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            return cls(sock, host, target, list((headers or {}).items()), timeout)
        except UpgradeRefused as exc:
            sock.close()
            if exc.status_code in AUTH_STATUSES:
                raise AuthExpired(f"The {what} refused the session (HTTP {exc.status_code}).") from None
            raise Unavailable(f"The {what} refused the connection (HTTP {exc.status_code}).") from None
        except (OSError, ProtocolError) as exc:
            sock.close()
            raise Unavailable(f"The {what} handshake failed ({type(exc).__name__}).") from None

    def handshake(self) -> None:
        """Base.__init__ calls this; bounded by the timeout, raises UpgradeRefused on a refusal."""
        self.sock.settimeout(self._timeout)
        self.sock.sendall(self.ws.send(Request(host=self._host, target=self._target, extra_headers=self._headers)))
        event = None
        while event is None:
            data = self.sock.recv(self.receive_bytes)
            if not data:
                raise UpgradeRefused(None)
            self.ws.receive_data(data)
            event = next(iter(self.ws.events()), None)
        if isinstance(event, RejectConnection):
            raise UpgradeRefused(event.status_code)
        if not isinstance(event, AcceptConnection):
            raise UpgradeRefused(400)
        self.sock.settimeout(None)
        self.connected = True
        self.connected = self._handle_events()  # frames that came in the same segment as the 101

    def send_text(self, text: str) -> None:
        self._send(text)

    def send_bytes(self, data: bytes) -> None:
        self._send(data)

    def _send(self, data: str | bytes) -> None:
        try:
            self.send(data)
        except (ConnectionClosed, OSError, ProtocolError) as exc:
            raise StreamClosed(f"send failed ({type(exc).__name__})") from None

    def next_message(self, timeout: float) -> str | bytes | None:
        """One message, waiting up to `timeout` seconds; None when none came. StreamClosed when dead."""
        try:
            message = self.receive(timeout=max(timeout, 0.0))
        except ConnectionClosed as exc:
            raise StreamClosed(f"closed by peer (code={exc.reason})") from None
        if message is None and not self.connected and not self.input_buffer:
            raise StreamClosed(f"closed by peer (code={self.close_reason})")
        return message

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Send a close frame if still open, then tear the socket down and join the reader thread."""
        if self.connected:
            try:
                super().close(reason, message)
            except (ConnectionClosed, OSError, ProtocolError):
                pass
        self.connected = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=2.0)


def drain(ws: WebSocket, timeout: float, handle: Callable[[str | bytes], list[T]]) -> list[T]:
    """Wait up to `timeout` for messages that yield results, then take whatever else is already queued.

    Messages that yield nothing (heartbeats, acks) do not end the wait. When the socket dies after
    some results were gathered they are returned; the next call raises StreamClosed.
    """
    deadline = time.monotonic() + timeout
    results: list[T] = []
    for _ in range(MAX_DRAIN):
        wait = 0.0 if results else max(deadline - time.monotonic(), 0.0)
        try:
            message = ws.next_message(wait)
        except StreamClosed:
            if results:
                return results
            raise
        if message is None:
            break
        results.extend(handle(message))
    return results
