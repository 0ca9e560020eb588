"""The Angel emulator's SmartWebSocket v2 market-data stream (reference/brokers.md §4.1), on the same
server as the REST emulator:

    ws://127.0.0.1:<port>/smart-stream       (the real one: wss://smartapisocket.angelone.in/smart-stream)
    headers  Authorization: Bearer <jwt>, x-api-key, x-client-code, x-feed-token

- The upgrade is refused with HTTP 401 and an x-error-message header (as Angel's docs say: "Invalid
  Feed Token", "Invalid Client Code", ...) when a header is missing, the feed token is not a live
  session's (`stream_account`, so `expire_sessions` refuses the next connect; open sockets are not
  cut) or x-client-code is not that session's account.
- Client text: {"correlationID","action":1|0,"params":{"mode":1|2|3,"tokenList":[{"exchangeType":1,
  "tokens":["2885"]}]}}. Subscriptions are per (exchange type, token, mode); duplicates are ignored.
  A malformed request is answered {"correlationID","errorCode":"E1001","errorMessage":"Invalid
  Request Payload"}; more than 1000 subscriptions {"errorCode":"E1002",...,"Subscription Limit
  Exceeded"} (Angel's documented error frames) and nothing of that request is taken.
- The text "ping" is answered "pong". No unprompted heartbeats.
- Every `tick_interval` seconds one binary message per subscription, built by angel_stream_codec
  from the emulator's `stream_quote` (the REST quote's numbers); instruments it does not know get
  nothing. SnapQuote carries up to five bids (flag 1) and five asks (flag 0); the emulator has no
  circuit or 52-week numbers, so those fields are 0.
- Fault hooks on the emulator: drop_stream(), silence_stream(seconds).

The emulator this is mixed into provides `lock`, `stream_account(feed_token)` and
`stream_quote(exchange, token=...)`.
"""

from __future__ import annotations

import itertools
import json
import time
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators import angel_stream_codec as codec
from tests.emulators.stream_common import StreamConn, StreamHub, StreamQuote

EXCHANGES = {1: "NSE", 3: "BSE"}  # the exchange types the emulator has instruments for
KNOWN_TYPES = {1, 2, 3, 4, 5, 7, 13}  # Angel's exchange types; others are an invalid payload
MAX_SUBSCRIPTIONS = 1000
AUTH_HEADERS = ("Authorization", "x-api-key", "x-client-code", "x-feed-token")


def paise(value: Decimal) -> int:
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} is not a whole number of paise")
    return int(scaled)


def refuse(reason: str) -> Response:
    return Response("", status=401, headers={"x-error-message": reason})


class AngelStreamHub(StreamHub):
    def __init__(self, emulator: Any, tick_interval: float = 1.0, heartbeat_interval: float = 1.0):
        super().__init__(tick_interval, heartbeat_interval)
        self.emulator = emulator
        self.errors: list[dict[str, str]] = []  # error frames sent, for tests
        self.sequence = itertools.count(1)  # packet sequence numbers

    def authenticate(self, request: Request) -> tuple[str, Response | None]:
        headers = request.headers
        missing = [name for name in AUTH_HEADERS if not headers.get(name)]
        if missing:
            return "", refuse(f"Missing {missing[0]}")
        if not headers["Authorization"].startswith("Bearer "):
            return "", refuse("Invalid Auth token")
        with self.emulator.lock:
            account = self.emulator.stream_account(headers["x-feed-token"])
        if account is None:
            return "", refuse("Invalid Feed Token")
        if account != headers["x-client-code"]:
            return "", refuse("Invalid Client Code")
        return account, None

    def on_message(self, conn: StreamConn, message: str | bytes) -> None:
        if message == "ping":
            conn.send("pong")
            return
        correlation = ""
        try:
            payload = json.loads(message)
            correlation = str(payload.get("correlationID", ""))
            action, params = payload["action"], payload["params"]
            mode = params["mode"]
            if action not in (0, 1) or mode not in codec.SIZES or not isinstance(params["tokenList"], list):
                raise ValueError("action or mode")
            keys = set()
            for entry in params["tokenList"]:
                kind, tokens = entry["exchangeType"], entry["tokens"]
                if kind not in KNOWN_TYPES or not isinstance(tokens, list):
                    raise ValueError("exchangeType")
                keys.update((kind, str(token), mode) for token in tokens)
        except (ValueError, TypeError, KeyError, AttributeError):
            self._error(conn, correlation, "E1001", "Invalid Request Payload")
            return
        if action == 1:
            if len(conn.subscriptions.keys() | keys) > MAX_SUBSCRIPTIONS:
                self._error(conn, correlation, "E1002", "Invalid Request. Subscription Limit Exceeded")
                return
            for key in keys:
                conn.subscriptions[key] = str(key[2])
        else:
            for key in keys:
                conn.subscriptions.pop(key, None)

    def _error(self, conn: StreamConn, correlation: str, code: str, message: str) -> None:
        frame = codec.error_frame(correlation, code, message)
        self.errors.append(frame)
        conn.send(json.dumps(frame))

    def frames(self, conn: StreamConn) -> list[str | bytes]:
        emulator = self.emulator
        now_ms = int(time.time() * 1000)
        with emulator.lock:
            quotes = []
            for kind, token, mode in sorted(conn.subscriptions):
                exchange = EXCHANGES.get(kind)
                quote = emulator.stream_quote(exchange, token=int(token)) if exchange and token.isdigit() else None
                if quote is not None:
                    quotes.append((kind, token, mode, quote))
        return [
            self.packet(mode, kind, token, quote, next(self.sequence), now_ms) for kind, token, mode, quote in quotes
        ]

    @staticmethod
    def packet(mode: int, kind: int, token: str, quote: StreamQuote, sequence: int, now_ms: int) -> bytes:
        """One packet from the emulator's numbers for the instrument (the same its REST quote gives)."""
        fields: dict[str, int | float] = {
            "sequence_number": sequence,
            "exchange_timestamp": now_ms,
            "last_traded_price": paise(quote.last_price),
            "last_traded_quantity": quote.last_quantity,
            "average_traded_price": paise(quote.last_price),
            "volume": quote.volume,
            "total_buy_quantity": float(sum(q for _, q, _ in quote.bids)),
            "total_sell_quantity": float(sum(q for _, q, _ in quote.asks)),
            "open": paise(quote.open),
            "high": paise(quote.high),
            "low": paise(quote.low),
            "close": paise(quote.close),
            "last_traded_timestamp": now_ms // 1000,
        }
        depth = [(codec.BUY, qty, paise(price), orders) for price, qty, orders in quote.bids[:5]]
        depth += [(codec.SELL, qty, paise(price), orders) for price, qty, orders in quote.asks[:5]]
        return codec.encode_packet(mode, kind, token, fields, depth)


class AngelStreamMixin:
    """Mixed into AngelEmulator: the stream view and its fault hooks. `self.stream` is the hub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = AngelStreamHub(self)

    def ticker(self, request: Request) -> Response:
        return self.stream.serve(request)

    def drop_stream(self) -> None:
        """Close every stream socket abruptly (no close frame)."""
        self.stream.drop_all()

    def silence_stream(self, seconds: float) -> None:
        """Open stream sockets stay connected but send (and answer) nothing for `seconds`."""
        self.stream.silence(seconds)
