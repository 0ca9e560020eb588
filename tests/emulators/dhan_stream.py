"""The Dhan emulator's live market feed v2 (reference/brokers-upstox-dhan.md §2.8;
https://dhanhq.co/docs/v2/live-market-feed/), served at "/feed" on the REST emulator's server:

    ws://127.0.0.1:<port>/feed?version=2&token=<access token>&clientId=<client id>&authType=2

- The upgrade always succeeds (101), as the real feed's does (dhan-oss/DhanHQ-py#102); a refused
  session then gets one disconnect packet (code 50) with Dhan's reason and the socket is cut without
  a close frame: 807 (token not live: unknown or expired), 808 (the clientId is not the token's
  account), 814 (version/authType not 2). `refused` counts them.
- Client text: {"RequestCode":15|17|21,"InstrumentCount":n,"InstrumentList":[{"ExchangeSegment",
  "SecurityId"}]} subscribes in ticker/quote/full mode (a later code re-modes), 16/18/22 unsubscribe,
  12 asks the server to disconnect. More than 100 instruments in a message or 5000 on a connection:
  disconnect 804; a message that is not such JSON: disconnect 814.
- On subscribe, a prev-close packet (code 6) per known instrument; then every `tick_interval` one
  packet per frame per subscription (ticker 2, quote 4, full 8, from the emulator's `stream_quote`,
  the numbers its REST quote answers; OI packets (5) follow quote packets for F&O only).
  Unknown instruments get nothing.
- A sixth connection of one account makes the oldest get disconnect 805 (the documented limit of five).
- A session expired while a socket is open (`expire_sessions`) gets disconnect 807 on the next tick.
- The server pings every `ping_interval` seconds (Dhan: 10) and cuts a socket whose pong has not come
  within `pong_timeout` (Dhan: 40); `pongs` counts the answers.
- Fault hooks on the emulator: drop_stream(), silence_stream(seconds) (no packets, no pings).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any
from weakref import WeakKeyDictionary

from werkzeug.wrappers import Request, Response
from wsproto.events import Ping

from tests.emulators import dhan_stream_codec as codec
from tests.emulators.stream_common import StreamConn, StreamHub, StreamQuote

MODES = {15: "ticker", 17: "quote", 21: "full"}
UNSUBSCRIBE = {16, 18, 22}
DISCONNECT_REQUEST = 12
MAX_PER_MESSAGE, MAX_PER_CONNECTION, MAX_CONNECTIONS = 100, 5000, 5
REFUSED = "refused:"  # account marker of a socket accepted only to be told why it is refused


class Cut(ConnectionAbortedError):
    """Raised in a connection's thread to end it after its disconnect packet went out."""


class DhanStreamHub(StreamHub):
    def __init__(
        self,
        emulator: Any,
        tick_interval: float = 1.0,
        heartbeat_interval: float = 1.0,
        ping_interval: float = 10.0,
        pong_timeout: float = 40.0,
    ):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator
        self.ping_interval, self.pong_timeout = ping_interval, pong_timeout
        self.pongs = 0
        self.disconnects: list[tuple[str, int]] = []  # (account, reason) of every disconnect packet sent
        self.queries: list[dict[str, str]] = []  # the query of every upgrade, for tests
        self._local = threading.local()  # authenticate -> on_open, in the connection's thread
        # per connection: its access token, a reason to disconnect it with, its keepalive times
        self._tokens: WeakKeyDictionary[StreamConn, str] = WeakKeyDictionary()
        self._doomed: WeakKeyDictionary[StreamConn, int] = WeakKeyDictionary()
        self._pinged: WeakKeyDictionary[StreamConn, float] = WeakKeyDictionary()  # unanswered ping sent at
        self._last_ping: WeakKeyDictionary[StreamConn, float] = WeakKeyDictionary()

    # ------------------------------------------------------------------ StreamHub hooks

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        args = request.args
        with self.lock:
            self.queries.append(dict(args))
        token, client_id = args.get("token", ""), args.get("clientId", "")
        self._local.token = token
        if args.get("version") != "2" or args.get("authType") != "2":
            return f"{REFUSED}814", None
        account = self.emulator.stream_account(token) if token else None
        if account is None:
            return f"{REFUSED}807", None
        if client_id != account:
            return f"{REFUSED}808", None
        return account, None

    def on_open(self, conn: StreamConn) -> None:
        if conn.account.startswith(REFUSED):
            with self.lock:
                self.refused += 1
            self._cut(conn, int(conn.account[len(REFUSED) :]))
        with self.lock:
            self._tokens[conn] = self._local.token
            self._last_ping[conn] = time.monotonic()
            mine = [c for c in self.conns if c.account == conn.account]
            if len(mine) > MAX_CONNECTIONS:
                self._doomed[mine[0]] = 805

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        try:
            payload = json.loads(message)
            code = int(payload["RequestCode"])
            if code == DISCONNECT_REQUEST:
                raise Cut("client asked to disconnect")
            if code not in MODES and code not in UNSUBSCRIBE:
                raise ValueError(code)
            keys = [(str(i["ExchangeSegment"]), int(str(i["SecurityId"]))) for i in payload["InstrumentList"]]
            if any(segment not in codec.SEGMENTS for segment, _ in keys):
                raise ValueError("segment")
        except Cut:
            raise
        except (ValueError, TypeError, KeyError):
            self._cut(conn, 814)
        if len(keys) > MAX_PER_MESSAGE:
            self._cut(conn, 804)
        if code in UNSUBSCRIBE:
            for key in keys:
                conn.subscriptions.pop(key, None)
            return
        if len(set(conn.subscriptions) | set(keys)) > MAX_PER_CONNECTION:
            self._cut(conn, 804)
        for key in keys:
            conn.subscriptions[key] = MODES[code]
            numbers = self.emulator.stream_quote(key[0], token=key[1])
            if numbers is not None:
                conn.send(codec.prev_close(key[0], key[1], numbers.close))

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        with self.lock:
            reason = self._doomed.pop(conn, None)
            token = self._tokens.get(conn, "")
        if reason is None and self.emulator.stream_account(token) != conn.account:
            reason = 807
        if reason is not None:
            self._cut(conn, reason)
        self._keepalive(conn)
        now = int(time.time())
        out: list[str | bytes] = []
        for (segment, security_id), mode in sorted(conn.subscriptions.items()):
            numbers = self.emulator.stream_quote(segment, token=security_id)
            if numbers is not None:
                out.extend(self.packets(segment, security_id, mode, numbers, now))
        return out

    # ------------------------------------------------------------------ internals

    @staticmethod
    def packets(segment: str, security_id: int, mode: str, q: StreamQuote, now: int) -> list[bytes]:
        if mode == "ticker":
            return [codec.ticker(segment, security_id, q.last_price, now)]
        fields = {
            "ltp": q.last_price,
            "ltq": q.last_quantity,
            "ltt": now,
            "atp": q.last_price,
            "volume": q.volume,
            "sell_qty": sum(level[1] for level in q.asks),
            "buy_qty": sum(level[1] for level in q.bids),
            "open": q.open,
            "high": q.high,
            "low": q.low,
        }
        if mode == "quote":
            packets = [codec.quote(segment, security_id, **fields)]
            return packets + ([codec.open_interest(segment, security_id, 0)] if "FNO" in segment else [])
        return [codec.full(segment, security_id, bids=q.bids, asks=q.asks, **fields)]

    def _keepalive(self, conn: StreamConn) -> None:
        """Ping every ping_interval; a ping unanswered for pong_timeout ends the socket."""
        now = time.monotonic()
        with self.lock:
            sent, last = self._pinged.get(conn, 0.0), self._last_ping.get(conn, now)
            if sent and conn.ws.pong_received:
                self.pongs += 1
                self._pinged[conn] = sent = 0.0
        if sent and now - sent >= self.pong_timeout:
            raise Cut("no pong")
        if not sent and now - last >= self.ping_interval:
            conn.ws.pong_received = False
            conn.ws.sock.send(conn.ws.ws.send(Ping(b"dhan")))
            with self.lock:
                self._pinged[conn] = self._last_ping[conn] = now

    def _cut(self, conn: StreamConn, reason: int) -> None:
        """Send the disconnect packet, then end the socket with no close frame."""
        with self.lock:
            self.disconnects.append((conn.account, reason))
        try:
            conn.send(codec.disconnect(reason))
        finally:
            try:
                conn.ws.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise Cut(f"disconnect {reason}")


class DhanStreamMixin:
    """Mixed into DhanEmulator: the feed view and its fault hooks. `self.stream` is the hub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = DhanStreamHub(self)

    def ticker(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        """Close every feed socket abruptly (no close frame, no disconnect packet)."""
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        """Open feed sockets stay connected but send (and answer) nothing for `seconds`."""
        self.stream.silence(seconds)
