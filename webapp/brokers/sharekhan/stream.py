"""ShareKhan's JSON market-data stream as a TickStream (reference/brokers.md §3.4).

    wss://stream.sharekhan.com/skstream/api/stream?ACCESS_TOKEN=<t>&API_KEY=<k>

All messages are JSON text:

- after connecting: {"action":"subscribe","key":["feed","ack"],"value":[""]} (the modules), and with
  a customer id {"action":"ack","key":[""],"value":["<customerId>"]} for order acknowledgements;
- subscribe: {"action":"feed","key":["full"],"value":["NC2885,NC1594"]} (exchange code + scrip code);
- unsubscribe: {"action":"unsubscribe","key":["feed"],"value":["NC2885"]};
- heartbeat: the text "ping" every 30 s; the server answers "pong" or "heartbeat".

Server messages with status 100 carry `data`: a feed (exchangeCode, scripCode, ltp, ...) or an order
acknowledgement (SharekhanOrderID, AckState, ...), told apart by the shape of `data` because acks
may come with message "feed". Numbers are parsed straight to Decimal (never through float).
Tokens are scrip codes (the NSE exchange token for NC).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from webapp.brokers.base import DepthLevel, InvalidInput, Quote
from webapp.marketdata.streams.base import StreamClosed, SymbolMap, Tick, TickStream
from webapp.marketdata.streams.wsclient import WebSocket, drain
from webapp.timeutil import IST, UTC, utcnow

log = logging.getLogger(__name__)

SHAREKHAN_WS_URL = "wss://stream.sharekhan.com/skstream/api/stream"
MODES = ("ltp", "depth", "full")
EXCHANGES = {"NC": "NSE", "BC": "BSE", "NF": "NFO", "BF": "BFO", "RN": "CDS", "MX": "MCX"}
PING_SECONDS = 30.0
LTT_FORMAT = "%d/%m/%Y %H:%M:%S"  # "03/02/2021 11:29:59", IST; day first is our reading
HEARTBEAT_REPLIES = ("pong", "heartbeat")


def decimal(value: Any) -> Decimal | None:
    """A JSON number or numeric string as an exact Decimal; None when absent or not a number."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def whole(value: Any) -> int:
    number = decimal(value)
    return int(number) if number is not None else 0


def trade_time(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), LTT_FORMAT).replace(tzinfo=IST).astimezone(UTC)
    except ValueError:
        return None


def is_ack(data: Mapping[str, Any]) -> bool:
    return "SharekhanOrderID" in data or "AckState" in data


def feed_quote(data: Mapping[str, Any], received_at: datetime, symbol: tuple[str, str] | None = None) -> Tick | None:
    """(scripCode, Quote) from a feed message's `data`; None when it has no scrip code or price."""
    last_price = decimal(data.get("ltp"))
    try:
        scrip = int(str(data.get("scripCode")))
    except ValueError:
        return None
    if last_price is None:
        return None
    exchange, tradingsymbol = symbol or (EXCHANGES.get(str(data.get("exchangeCode")), ""), "")

    def level(price_key: str, quantity_key: str) -> tuple[DepthLevel, ...]:
        price, quantity = decimal(data.get(price_key)), whole(data.get(quantity_key))
        return (DepthLevel(price, quantity),) if price and quantity else ()

    quote = Quote(
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        last_price=last_price,
        volume=whole(data.get("qty")),
        open=decimal(data.get("open")),
        high=decimal(data.get("high")),
        low=decimal(data.get("low")),
        close=decimal(data.get("close")),
        lower_circuit=decimal(data.get("lowerCkt")),
        upper_circuit=decimal(data.get("upperCkt")),
        bids=level("bidPrice", "bidQty"),
        asks=level("offPrice", "offQty"),
        timestamp=trade_time(data.get("ltt")) or received_at,
    )
    return scrip, quote


class ShareKhanStream(TickStream):
    name = "sharekhan"

    def __init__(
        self,
        api_key: str,
        access_token: str,
        *,
        ws_url: str = SHAREKHAN_WS_URL,
        mode: str = "full",
        exchange: str = "NC",
        customer_id: str | None = None,
        symbols: SymbolMap | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        ping_seconds: float = PING_SECONDS,
        connect_timeout: float = 10.0,
    ):
        if mode not in MODES:
            raise InvalidInput(f"Unknown ShareKhan feed mode {mode!r}.")
        self.api_key, self._access_token, self.ws_url = api_key, access_token, ws_url
        self.mode, self.exchange, self.customer_id, self.symbols = mode, exchange, customer_id, symbols or {}
        self.on_message, self.ping_seconds, self.connect_timeout = on_message, ping_seconds, connect_timeout
        self.pongs = 0  # heartbeat replies seen, for stats and tests
        self._ws: WebSocket | None = None
        self._last_ping = 0.0

    def __repr__(self) -> str:  # no token in reprs or logs
        return f"ShareKhanStream(mode={self.mode!r}, exchange={self.exchange!r}, url={self.ws_url!r})"

    def connect(self) -> None:
        self.close()  # a second connect replaces the socket, never leaks it
        query = urlencode({"ACCESS_TOKEN": self._access_token, "API_KEY": self.api_key})
        self._ws = WebSocket.open(f"{self.ws_url}?{query}", timeout=self.connect_timeout, what="ShareKhan stream")
        self._last_ping = time.monotonic()
        try:
            self._send({"action": "subscribe", "key": ["feed", "ack"], "value": [""]})
            if self.customer_id:
                self._send({"action": "ack", "key": [""], "value": [str(self.customer_id)]})
        except StreamClosed:
            self.close()
            raise
        log.info("stream=sharekhan event=connected mode=%s", self.mode)

    def subscribe(self, tokens: Iterable[int]) -> None:
        scrips = self._scrips(tokens)
        if scrips:
            self._send({"action": "feed", "key": [self.mode], "value": [scrips]})

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        scrips = self._scrips(tokens)
        if scrips:
            self._send({"action": "unsubscribe", "key": ["feed"], "value": [scrips]})

    def read(self, timeout: float) -> list[Tick]:
        ws = self._open_ws()
        if time.monotonic() - self._last_ping >= self.ping_seconds:
            ws.send_text("ping")
            self._last_ping = time.monotonic()
        wait = min(timeout, max(self._last_ping + self.ping_seconds - time.monotonic(), 0.0))
        return drain(ws, wait, self._handle)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # ------------------------------------------------------------------ internals

    def _scrips(self, tokens: Iterable[int]) -> str:
        return ",".join(f"{self.exchange}{int(token)}" for token in sorted({int(t) for t in tokens}))

    def _open_ws(self) -> WebSocket:
        if self._ws is None:
            raise StreamClosed("not connected")
        return self._ws

    def _send(self, payload: dict[str, Any]) -> None:
        self._open_ws().send_text(json.dumps(payload, separators=(",", ":")))

    def _handle(self, message: str | bytes) -> list[Tick]:
        text = message.decode(errors="replace") if isinstance(message, bytes) else message
        if text.strip().strip('"').lower() in HEARTBEAT_REPLIES:
            self.pongs += 1
            return []
        try:
            payload = json.loads(text, parse_float=Decimal)
        except ValueError:
            log.warning("stream=sharekhan event=bad_text length=%d", len(text))
            return []
        if not isinstance(payload, dict):
            return []
        data = payload.get("data")
        if isinstance(data, dict) and not is_ack(data) and "scripCode" in data:
            symbol = self.symbols.get(whole(data.get("scripCode")))
            tick = feed_quote(data, utcnow(), symbol)
            return [tick] if tick is not None else []
        if payload.get("status") not in (None, 100, 200):
            log.warning(
                "stream=sharekhan event=error status=%s message=%s",
                payload.get("status"),
                json.dumps(str(payload.get("message"))),
            )
        if self.on_message is not None:
            self.on_message(payload)
        return []
