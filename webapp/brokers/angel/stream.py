"""Angel One's SmartWebSocket v2 market-data stream as a TickStream (reference/brokers.md §4.1).

    wss://smartapisocket.angelone.in/smart-stream
    headers  Authorization: Bearer <jwt>, x-api-key, x-client-code, x-feed-token

Client messages are JSON text:

    {"correlationID":"fanout0001","action":1,"params":{"mode":3,
     "tokenList":[{"exchangeType":1,"tokens":["2885"]}]}}          action 1 subscribe, 0 unsubscribe

and the text "ping" every 10 s (the SDK's interval), answered with the text "pong". Server messages
are binary packets, one per message (packets.py), the "pong", and JSON error frames
{"correlationID","errorCode":"E1001"|"E1002","errorMessage"} which are logged and passed to
`on_message`. A refused session is an HTTP 401 on the upgrade (with an x-error-message header):
`connect` raises AuthExpired.

Tokens are "NSE|2885" / "BSE|500325": the exchange and its scrip code, because every Angel
subscription names an exchange type with its tokens. The default mode is SnapQuote (3), the one
that carries five levels of depth and the circuit limits.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from webapp.brokers.angel.packets import EXCHANGE_TYPES, LTP, QUOTE, SNAP_QUOTE, parse_packet, to_quote
from webapp.brokers.base import Account, AuthExpired, InstrumentRef, InvalidInput
from webapp.marketdata.streams.base import StreamClosed, Tick, TickStream
from webapp.marketdata.streams.wsclient import WebSocket, drain
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

ANGEL_WS_URL = "wss://smartapisocket.angelone.in/smart-stream"
STREAM_SETTINGS = {"ANGEL_STREAM_URL": ANGEL_WS_URL}
MODES = {"ltp": LTP, "quote": QUOTE, "snapquote": SNAP_QUOTE}
SUBSCRIBE, UNSUBSCRIBE = 1, 0
PING_SECONDS = 10.0
MAX_TOKENS = 1000  # per session (Angel's documented limit)


# the desk's index rows -> Angel's index tokens in nse_cm (Angel's scrip master lists them, instrument
# type AMXIDX); the rows' exchange tokens are not Angel's
INDEX_TOKENS = {("NSE", "NIFTY 50"): 99926000, ("NSE", "NIFTY BANK"): 99926009}


def stream_token(instrument: InstrumentRef) -> int | str | None:
    """The stream's key, "NSE|2885": the exchange and its scrip code; None for what the stream cannot
    carry (this desk streams the cash segments only). An index (a tradingsymbol with a space, as
    "NIFTY 50"; exchange symbols have none) maps by name when its Angel token is known, else None."""
    if instrument.exchange not in EXCHANGE_TYPES:
        return None
    if " " in instrument.tradingsymbol:
        index = INDEX_TOKENS.get((instrument.exchange, instrument.tradingsymbol.upper()))
        return f"{instrument.exchange}|{index}" if index else None
    if not instrument.exchange_token:
        return None
    return f"{instrument.exchange}|{int(instrument.exchange_token)}"


def printable(value: str) -> bool:
    """A header value the handshake can carry: no surrounding blanks, no control characters."""
    return value == value.strip() and value.isprintable()


def usable(value: str) -> bool:
    return bool(value) and printable(value)


def split_token(token: int | str) -> tuple[int, str] | None:
    """(exchange type, scrip code) of a stream token; None when it is not one of ours."""
    exchange, _, scrip = str(token).partition("|")
    if exchange not in EXCHANGE_TYPES or not scrip.isdigit():
        return None
    return EXCHANGE_TYPES[exchange], scrip


def open_stream(account: Account, config: Mapping[str, Any]) -> TickStream:
    session = account.session
    return AngelStream(
        account.client_code,
        account.credentials.get("api_key", ""),
        session.access_token if session else "",
        str(session.extra.get("feed_token", "")) if session else "",
        ws_url=config.get("ANGEL_STREAM_URL") or ANGEL_WS_URL,
    )


class AngelStream(TickStream):
    name = "angel"

    def __init__(
        self,
        client_code: str,
        api_key: str,
        jwt: str,
        feed_token: str,
        *,
        ws_url: str = ANGEL_WS_URL,
        mode: str = "snapquote",
        symbols: Mapping[int | str, tuple[str, str]] | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        ping_seconds: float = PING_SECONDS,
        connect_timeout: float = 10.0,
    ):
        if mode not in MODES:
            raise InvalidInput(f"Unknown Angel stream mode {mode!r}.")
        self.client_code, self.api_key, self.ws_url = client_code, api_key, ws_url
        self._jwt, self._feed_token = jwt, feed_token
        self.mode, self.symbols = mode, symbols or {}
        self.on_message, self.ping_seconds, self.connect_timeout = on_message, ping_seconds, connect_timeout
        self.pongs = 0  # heartbeat replies seen, for stats and tests
        self._ws: WebSocket | None = None
        self._last_ping = 0.0
        self._tokens: set[str] = set()
        self._requests = 0

    def __repr__(self) -> str:  # no tokens in reprs or logs
        return f"AngelStream(client_code={self.client_code!r}, mode={self.mode!r}, url={self.ws_url!r})"

    def connect(self) -> None:
        self.close()  # a second connect replaces the socket, never leaks it
        jwt = self._jwt.removeprefix("Bearer ")
        headers = {
            "Authorization": f"Bearer {jwt}",
            "x-api-key": self.api_key,
            "x-client-code": self.client_code,
            "x-feed-token": self._feed_token,
        }
        if not (usable(jwt) and usable(self._feed_token)) or not all(map(printable, (self.api_key, self.client_code))):
            # an empty or mangled value is no session to present (and cannot go into a header)
            raise AuthExpired(
                "The Angel session has no usable jwt or feed token (or a mangled client code or API key)."
            )
        self._ws = WebSocket.open(self.ws_url, headers=headers, timeout=self.connect_timeout, what="Angel stream")
        self._last_ping = time.monotonic()
        log.info("stream=angel event=connected mode=%s", self.mode)

    def subscribe(self, tokens: Iterable[int | str]) -> None:
        wanted = self._ours(tokens)
        if not wanted:
            return
        if len(self._tokens | wanted) > MAX_TOKENS:
            log.warning("stream=angel event=over_limit tokens=%d limit=%d", len(self._tokens | wanted), MAX_TOKENS)
        self._request(SUBSCRIBE, wanted)
        self._tokens.update(wanted)

    def unsubscribe(self, tokens: Iterable[int | str]) -> None:
        unwanted = self._ours(tokens)
        if unwanted:
            self._request(UNSUBSCRIBE, unwanted)
            self._tokens.difference_update(unwanted)

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

    @staticmethod
    def _ours(tokens: Iterable[int | str]) -> set[str]:
        ours = set()
        for token in tokens:
            if split_token(token) is None:
                log.warning("stream=angel event=bad_token token=%s", json.dumps(str(token)))
            else:
                ours.add(str(token))
        return ours

    def _request(self, action: int, tokens: set[str]) -> None:
        by_type: dict[int, list[str]] = {}
        for token in sorted(tokens):
            exchange_type, scrip = split_token(token)  # type: ignore[misc]  # _ours kept only ours
            by_type.setdefault(exchange_type, []).append(scrip)
        self._requests += 1
        payload = {
            "correlationID": f"fanout{self._requests % 10000:04d}",  # 10 characters
            "action": action,
            "params": {
                "mode": MODES[self.mode],
                "tokenList": [{"exchangeType": kind, "tokens": scrips} for kind, scrips in sorted(by_type.items())],
            },
        }
        self._open_ws().send_text(json.dumps(payload, separators=(",", ":")))

    def _open_ws(self) -> WebSocket:
        if self._ws is None:
            raise StreamClosed("not connected")
        return self._ws

    def _handle(self, message: str | bytes) -> list[Tick]:
        if isinstance(message, (bytes, bytearray)):
            packet = parse_packet(message)
            if packet is None or packet.stream_token is None:
                log.debug("stream=angel event=skipped_packet length=%d", len(message))
                return []
            token = packet.stream_token
            return [(token, to_quote(packet, utcnow(), self.symbols.get(token)))]
        if message.strip().lower() == "pong":
            self.pongs += 1
            return []
        try:
            payload = json.loads(message, parse_float=Decimal)
        except ValueError:
            log.warning("stream=angel event=bad_text length=%d", len(message))
            return []
        if not isinstance(payload, dict):
            return []
        if "errorCode" in payload:
            log.warning(
                "stream=angel event=error code=%s message=%s",
                json.dumps(str(payload.get("errorCode"))),
                json.dumps(str(payload.get("errorMessage"))),
            )
        if self.on_message is not None:
            self.on_message(payload)
        return []
