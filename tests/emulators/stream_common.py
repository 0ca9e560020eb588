"""What the emulated market-data streams share: the WebSocket upgrade on the werkzeug dev server, one
loop per connection, and the fault hooks tests use.

A broker's hub (kite_stream.py, sharekhan_stream.py) subclasses `StreamHub` and fills in the hooks:
`authenticate` (refuse the upgrade with an HTTP answer, or name the account), `on_open`, `on_message`
(a client message, in the connection's own thread), `frames` (what to push for the connection's
subscriptions every `tick_interval` seconds) and `heartbeat` (sent when nothing else went out for
`heartbeat_interval` seconds).

Each connection runs in its werkzeug request thread: it waits for client messages until the next
tick is due, then pushes the frames. Tests talk to hubs from their own thread through thread-safe
hooks: `broadcast` (queued, sent by the connection's thread), `drop_all` (shut every socket down
with no close frame: the client sees the TCP connection end), `silence` (the connections stay open
and send nothing, answer nothing: the silent-dead socket) and `shutdown` (drop all and wait).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from simple_websocket import ConnectionClosed, Server
from werkzeug.wrappers import Request, Response


class DaemonThread(threading.Thread):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, daemon=True, **kwargs)


class Upgraded(Response):
    """A view's answer once its WebSocket is over: the socket was taken over, so no HTTP answer is
    written; werkzeug treats the ConnectionError as a dropped connection and stays quiet."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        raise ConnectionError("websocket finished")


@dataclass(frozen=True)
class StreamQuote:
    """What an emulated stream pushes for one instrument: the emulator's current numbers, the same its
    REST quote answers. A broker's stream mixin asks its emulator for these (`stream_quote(key)`) and
    encodes them in the broker's own wire format. Depth levels are (price, quantity, orders), best first."""

    last_price: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal  # the previous close
    volume: int = 0
    last_quantity: int = 0
    bids: tuple[tuple[Decimal, int, int], ...] = ()
    asks: tuple[tuple[Decimal, int, int], ...] = ()


@dataclass(eq=False)
class StreamConn:
    ws: Server
    account: str
    subscriptions: dict[Any, str] = field(default_factory=dict)  # broker key -> mode
    modules: set[str] = field(default_factory=set)
    silent_until: float = 0.0
    received: list[str | bytes] = field(default_factory=list)  # client messages, for tests
    outbox: deque[str | bytes] = field(default_factory=deque)  # from other threads
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def silent(self) -> bool:
        return time.monotonic() < self.silent_until

    def send(self, data: str | bytes) -> None:
        """Only from the connection's own thread."""
        self.ws.send(data)


class StreamHub:
    def __init__(self, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        self.tick_interval, self.heartbeat_interval = tick_interval, heartbeat_interval
        self.lock = threading.Lock()
        self.conns: list[StreamConn] = []
        self.accepted = 0  # upgrades accepted, ever
        self.refused = 0  # upgrades refused, ever
        self.handshakes: list[dict[str, str]] = []  # request headers of every accepted upgrade

    # ------------------------------------------------------------------ hooks for brokers

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        """(account id, None) to accept, or ("", an HTTP answer) to refuse the upgrade."""
        raise NotImplementedError

    def on_open(self, conn: StreamConn) -> None:
        """Called once the socket is open, in the connection's thread."""

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        raise NotImplementedError

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        raise NotImplementedError

    def heartbeat(self) -> str | bytes | None:
        return None

    # ------------------------------------------------------------------ test hooks

    def connections(self) -> list[StreamConn]:
        with self.lock:
            return list(self.conns)

    def wait_for(self, count: int = 1, account: str | None = None, within: float = 2.0) -> list[StreamConn]:
        """The open connections (of `account`) once there are `count` of them: a client's connect
        returns when it has the 101 answer, a moment before the server lists the connection."""
        deadline = time.monotonic() + within
        while True:
            conns = [c for c in self.connections() if account is None or c.account == account]
            if len(conns) >= count or time.monotonic() > deadline:
                return conns
            time.sleep(0.005)

    def broadcast(self, data: str | bytes, account: str | None = None) -> None:
        for conn in self.connections():
            if account is None or conn.account == account:
                conn.outbox.append(data)

    def silence(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        for conn in self.connections():
            conn.silent_until = until

    def drop_all(self, wait: float = 2.0) -> None:
        conns = self.connections()
        for conn in conns:
            try:
                conn.ws.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for conn in conns:
            conn.done.wait(wait)

    def shutdown(self) -> None:
        self.drop_all()

    # ------------------------------------------------------------------ serving

    def serve(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Response("websocket upgrade required", status=400)
        account, refusal = self.authenticate(request)
        if refusal is not None:
            with self.lock:
                self.refused += 1
            return refusal
        conn = StreamConn(Server(request.environ, thread_class=DaemonThread), account)
        with self.lock:
            self.conns.append(conn)
            self.accepted += 1
            self.handshakes.append(dict(request.headers))
        try:
            self.on_open(conn)
            self._loop(conn)
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self.lock:
                self.conns.remove(conn)
            try:
                conn.ws.close()
            except (ConnectionClosed, OSError):
                pass
            conn.done.set()
        return Upgraded()

    def _loop(self, conn: StreamConn) -> None:
        next_tick = last_sent = time.monotonic()
        while conn.ws.connected:
            message = conn.ws.receive(timeout=max(next_tick - time.monotonic(), 0.0))
            if message is not None and not conn.silent:
                conn.received.append(message)
                self.on_message(conn, message)
            while conn.outbox and not conn.silent:
                conn.send(conn.outbox.popleft())
            now = time.monotonic()
            if now < next_tick:
                continue
            next_tick = now + self.tick_interval
            if conn.silent:
                continue
            out = self.frames(conn)
            beat = self.heartbeat() if not out and now - last_sent >= self.heartbeat_interval else None
            for data in out or ([beat] if beat is not None else []):
                conn.send(data)
                last_sent = now
