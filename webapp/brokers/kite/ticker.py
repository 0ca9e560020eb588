"""Zerodha Kite's WebSocket ticker as a TickStream (reference/brokers.md §1.9).

    wss://ws.kite.trade?api_key=<k>&access_token=<t>     header X-Kite-Version: 3

Client messages are JSON text: {"a":"subscribe","v":[tokens]}, {"a":"unsubscribe","v":[tokens]},
{"a":"mode","v":["full",[tokens]]}. Kite's default mode after subscribing is quote, so every
subscribe is followed by a mode message for this stream's mode. Server messages are binary tick
frames (packets.py), 1-byte heartbeats (ignored) and JSON text: order postbacks
({"type":"order"}), errors ({"type":"error"}) and notices ({"type":"message"}); each text message
goes to `on_message` when given, and errors are logged.

A refused session is an HTTP 403 on the upgrade (pykiteconnect #102: "WebSocket connection upgrade
failed (403 - Forbidden)"): `connect` raises AuthExpired.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from webapp.brokers.base import InvalidInput
from webapp.brokers.kite.packets import parse_frame, to_quote
from webapp.marketdata.streams.base import StreamClosed, SymbolMap, Tick, TickStream
from webapp.marketdata.streams.wsclient import WebSocket, drain
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

KITE_WS_URL = "wss://ws.kite.trade"
MODES = ("ltp", "quote", "full")
MAX_TOKENS = 3000  # per connection (Kite's documented limit)


class KiteTicker(TickStream):
    name = "kite"

    def __init__(
        self,
        api_key: str,
        access_token: str,
        *,
        ws_url: str = KITE_WS_URL,
        mode: str = "full",
        symbols: SymbolMap | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        connect_timeout: float = 10.0,
    ):
        if mode not in MODES:
            raise InvalidInput(f"Unknown Kite ticker mode {mode!r}.")
        self.api_key, self._access_token = api_key, access_token
        self.ws_url, self.mode, self.symbols = ws_url.rstrip("/"), mode, symbols or {}
        self.on_message, self.connect_timeout = on_message, connect_timeout
        self._ws: WebSocket | None = None
        self._tokens: set[int] = set()

    def __repr__(self) -> str:  # no token in reprs or logs
        return f"KiteTicker(api_key={self.api_key!r}, mode={self.mode!r}, url={self.ws_url!r})"

    def connect(self) -> None:
        self.close()  # a second connect replaces the socket, never leaks it
        query = urlencode({"api_key": self.api_key, "access_token": self._access_token})
        self._ws = WebSocket.open(
            f"{self.ws_url}?{query}", headers={"X-Kite-Version": "3"}, timeout=self.connect_timeout, what="Kite ticker"
        )
        log.info("stream=kite event=connected mode=%s", self.mode)

    def subscribe(self, tokens: Iterable[int]) -> None:
        tokens = sorted({int(t) for t in tokens})
        if not tokens:
            return
        if len(self._tokens | set(tokens)) > MAX_TOKENS:
            log.warning("stream=kite event=over_limit tokens=%d limit=%d", len(self._tokens | set(tokens)), MAX_TOKENS)
        self._send({"a": "subscribe", "v": tokens})
        self._send({"a": "mode", "v": [self.mode, tokens]})
        self._tokens.update(tokens)

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        tokens = sorted({int(t) for t in tokens})
        if tokens:
            self._send({"a": "unsubscribe", "v": tokens})
            self._tokens.difference_update(tokens)

    def read(self, timeout: float) -> list[Tick]:
        return drain(self._open_ws(), timeout, self._handle)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # ------------------------------------------------------------------ internals

    def _open_ws(self) -> WebSocket:
        if self._ws is None:
            raise StreamClosed("not connected")
        return self._ws

    def _send(self, payload: dict[str, Any]) -> None:
        self._open_ws().send_text(json.dumps(payload, separators=(",", ":")))

    def _handle(self, message: str | bytes) -> list[Tick]:
        if isinstance(message, str):
            self._text(message)
            return []
        received_at = utcnow()
        return [
            (p.instrument_token, to_quote(p, received_at, self.symbols.get(p.instrument_token)))
            for p in parse_frame(message)
        ]

    def _text(self, message: str) -> None:
        try:
            payload = json.loads(message, parse_float=Decimal)
        except ValueError:
            log.warning("stream=kite event=bad_text length=%d", len(message))
            return
        if not isinstance(payload, dict):
            return
        if payload.get("type") == "error":
            log.warning("stream=kite event=error message=%s", json.dumps(payload.get("data")))
        if self.on_message is not None:
            self.on_message(payload)
