"""The Upstox emulator's market data feed v3 (reference/brokers-upstox-dhan.md §1.8), on the REST
emulator's server:

    GET /v3/feed/market-data-feed/authorize        Authorization: Bearer <access token>
    -> {"status":"success","data":{"authorized_redirect_uri": "ws://<this server>/v3/feed/socket?requestId=…&code=…",
                                   "authorizedRedirectUri": <the same>}}
       or HTTP 401 with Upstox's error envelope (UDAPI100050) when the token names no live session.
    ws://<this server>/v3/feed/socket?requestId=…&code=…     (the real one: wss://…upstox.com/…/feeds?…)

- The code is single-use: the upgrade consumes it, and an unknown or used code, or a session that
  expired since the authorize call, is refused with HTTP 401 (Upstox's status for this is not
  documented; 401 is the status of its other token refusals). Open sockets are not cut by expiry.
- On open the server sends a `market_info` frame (segment statuses). Client requests are JSON in
  BINARY frames: {"guid","method":"sub"|"change_mode"|"unsub","data":{"mode","instrumentKeys"}}; a
  bare sub is ltpc. Text frames and malformed requests are ignored (counted in `ignored`): Upstox
  documents no error frame. Each sub is answered at once by an `initial_feed` frame for its keys.
- Every `tick_interval` seconds one `live_feed` frame carries a Feed per subscribed key the emulator
  knows ("NSE_EQ|<ISIN>", "BSE_EQ|<ISIN>", or "<segment>|<exchange token>"), from the emulator's
  current numbers (`stream_quote`, which set_price moves): ltpc mode = LTPC; full = MarketFullFeed
  with five depth levels, an "I1" and a "1d" OHLC bar, vtt, tbq and tsq. Keys it does not know (and
  index keys) get nothing. Frames are built by upstox_stream_codec, by hand.
- When a socket has had nothing to send for `heartbeat_interval` seconds the server sends a
  WebSocket ping (as Upstox does on an idle feed); `pings` and `pongs` count them.
- Fault hooks on the emulator: drop_stream(), silence_stream(seconds), fail_authorize(status, times)
  (the next authorize calls answer 429 UDAPI10005 or a 5xx UDAPI100500 in Upstox's envelope).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
import weakref
from collections import deque
from itertools import zip_longest
from typing import Any

from werkzeug.wrappers import Request, Response
from wsproto.events import Ping

from tests.emulators import upstox_stream_codec as codec
from tests.emulators.stream_common import StreamConn, StreamHub, StreamQuote

MODES = ("ltpc", "full", "option_greeks", "full_d30")
SEGMENT_EXCHANGES = {"NSE_EQ": "NSE", "BSE_EQ": "BSE", "NSE_FO": "NFO", "BSE_FO": "BFO"}
MARKET_STATUS = {"NSE_EQ": "NORMAL_OPEN", "BSE_EQ": "NORMAL_OPEN", "NSE_INDEX": "NORMAL_OPEN", "NSE_FO": "NORMAL_OPEN"}
INVALID_TOKEN = "UDAPI100050"
AUTHORIZE_FAULTS = {429: ("UDAPI10005", "Too Many Request Sent"), 500: ("UDAPI100500", "Something went wrong")}
DAY_MS = 86_400_000
IST_OFFSET_MS = 19_800_000


def error_envelope(code: str, message: str) -> dict[str, Any]:
    """Upstox's error body (documented camelCase keys, repeated in snake_case as live answers do)."""
    error = {"errorCode": code, "message": message, "propertyPath": None, "invalidValue": None}
    error.update({"error_code": code, "property_path": None, "invalid_value": None})
    return {"status": "error", "errors": [error]}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class UpstoxStreamHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator
        self.codes: dict[str, tuple[str, str]] = {}  # one-time code -> (account, access token)
        self.authorized = 0  # authorize calls answered with a socket address
        self.ignored = 0  # client frames that were not a valid binary request
        self.pings = self.pongs = 0
        self._last_sent: weakref.WeakKeyDictionary[StreamConn, float] = weakref.WeakKeyDictionary()
        self._awaiting_pong: weakref.WeakSet[StreamConn] = weakref.WeakSet()
        self.authorize_faults: deque[int] = deque()  # HTTP statuses the next authorize calls answer

    def fail_authorize(self, status: int, times: int = 1) -> None:
        with self.lock:
            self.authorize_faults.extend([status] * times)

    # ------------------------------------------------------------------ the authorize call

    def authorize(self, request: Request) -> Response:
        with self.lock:
            fault = self.authorize_faults.popleft() if self.authorize_faults else None
        if fault is not None:
            code, message = AUTHORIZE_FAULTS.get(fault, AUTHORIZE_FAULTS[500])
            return Response(json.dumps(error_envelope(code, message)), status=fault, content_type="application/json")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        account = self.emulator.stream_account(token) if scheme.lower() == "bearer" and token else None
        if account is None:
            body = error_envelope(INVALID_TOKEN, "Invalid token used to access API")
            return Response(json.dumps(body), status=401, content_type="application/json")
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = (account, token)
            self.authorized += 1
        uri = f"ws://{request.host}/v3/feed/socket?requestId={uuid.uuid4()}&code={code}"
        body = {"status": "success", "data": {"authorized_redirect_uri": uri, "authorizedRedirectUri": uri}}
        return Response(json.dumps(body), content_type="application/json")

    # ------------------------------------------------------------------ StreamHub hooks

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        with self.lock:
            account, token = self.codes.pop(request.args.get("code", ""), ("", ""))
        if not account or self.emulator.stream_account(token) != account:
            body = error_envelope(INVALID_TOKEN, "Invalid token used to access API")
            return "", Response(json.dumps(body), status=401, content_type="application/json")
        return account, None

    def on_open(self, conn: StreamConn) -> None:
        conn.send(codec.market_info(MARKET_STATUS, now_ms()))
        self._last_sent[conn] = time.monotonic()

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        try:
            if isinstance(message, str):
                raise ValueError("requests are binary frames")
            request = json.loads(bytes(message))
            method, data = request["method"], request["data"]
            keys = [str(k) for k in data["instrumentKeys"]]
            mode = data.get("mode")
            if method == "sub":
                mode = mode or "ltpc"
            if method not in ("sub", "change_mode", "unsub") or (method != "unsub" and mode not in MODES):
                raise ValueError(method)
        except (ValueError, TypeError, KeyError, AttributeError):
            self.ignored += 1
            return
        if method == "sub":
            for key in keys:
                conn.subscriptions[key] = mode
            frame = self._frame(conn, "initial_feed", keys)
            if frame is not None:
                conn.send(frame)
                self._last_sent[conn] = time.monotonic()
        elif method == "unsub":
            for key in keys:
                conn.subscriptions.pop(key, None)
        else:
            for key in keys:
                if key in conn.subscriptions:
                    conn.subscriptions[key] = mode

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        frame = self._frame(conn, "live_feed", list(conn.subscriptions))
        now = time.monotonic()
        if frame is not None:
            self._last_sent[conn] = now
            return [frame]
        if now - self._last_sent.get(conn, now) >= self.heartbeat_interval:
            self._ping(conn)
            self._last_sent[conn] = now
        return []

    # ------------------------------------------------------------------ internals

    def _ping(self, conn: StreamConn) -> None:
        """A WebSocket ping (not a data frame); a pong since the last ping is counted."""
        if conn in self._awaiting_pong and conn.ws.pong_received:
            self.pongs += 1
        conn.ws.pong_received = False
        conn.ws.sock.send(conn.ws.ws.send(Ping(b"upstox")))
        self._awaiting_pong.add(conn)
        self.pings += 1

    def _frame(self, conn: StreamConn, kind: str, keys: list[str]) -> bytes | None:
        stamp = now_ms()
        feeds: dict[str, bytes] = {}
        for key in sorted(keys):
            mode = conn.subscriptions.get(key)
            quote = self._quote(key)
            if mode is not None and quote is not None:
                feeds[key] = self.feed(mode, quote, stamp)
        return codec.feed_response(kind, feeds, stamp) if feeds else None

    def _quote(self, key: str) -> StreamQuote | None:
        segment, _, ident = key.partition("|")
        exchange = SEGMENT_EXCHANGES.get(segment)
        if exchange is None or not ident:
            return None
        if ident.isdigit():
            return self.emulator.stream_quote(exchange, token=int(ident))
        return self.emulator.stream_quote(exchange, isin=ident)

    @staticmethod
    def feed(mode: str, quote: StreamQuote, stamp: int) -> bytes:
        """One encoded Feed for `quote` in `mode` (ltpc, or the full market feed for the others)."""
        ltpc = codec.ltpc(quote.last_price, stamp, quote.last_quantity, quote.close)
        if mode == "ltpc":
            return codec.feed_ltpc(ltpc)
        levels = [
            codec.quote_level(
                bid[1] if bid else 0, bid[0] if bid else None, ask[1] if ask else 0, ask[0] if ask else None
            )
            for bid, ask in zip_longest(quote.bids[:5], quote.asks[:5])
        ]
        day_start = (stamp + IST_OFFSET_MS) // DAY_MS * DAY_MS - IST_OFFSET_MS
        minute = stamp // 60_000 * 60_000
        last = quote.last_price
        bars = [
            codec.ohlc("I1", last, last, last, last, quote.last_quantity, minute),
            codec.ohlc("1d", quote.open, quote.high, quote.low, last, quote.volume, day_start),
        ]
        return codec.feed_market(
            codec.market_full_feed(
                ltpc,
                levels,
                bars,
                vtt=quote.volume,
                tbq=sum(b[1] for b in quote.bids),
                tsq=sum(a[1] for a in quote.asks),
            )
        )


class UpstoxStreamMixin:
    """Mixed into UpstoxEmulator: the feed's authorize route, its WebSocket and the fault hooks.
    `self.stream` is the hub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = UpstoxStreamHub(self)

    def feed_authorize(self, request: Request) -> Response:
        return self.stream.authorize(request)

    def ticker(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        """Close every feed socket abruptly (no close frame)."""
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        """Open feed sockets stay connected but send (and answer) nothing for `seconds`."""
        self.stream.silence(seconds)

    def fail_authorize(self, status: int, times: int = 1) -> None:
        """The next `times` authorize calls answer `status` (429 or a 5xx) with Upstox's error body."""
        self.stream.fail_authorize(status, times)
