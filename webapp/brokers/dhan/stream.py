"""Dhan's live market feed v2 as a TickStream (reference/brokers-upstox-dhan.md §2.8;
https://dhanhq.co/docs/v2/live-market-feed/).

    wss://api-feed.dhan.co?version=2&token=<access token>&clientId=<Dhan client id>&authType=2

Client requests are JSON text, at most 100 instruments each:

    {"RequestCode":21,"InstrumentCount":1,"InstrumentList":[{"ExchangeSegment":"NSE_EQ","SecurityId":"1333"}]}

15 ticker, 17 quote, 21 full (5-level depth); unsubscribe is the code + 1; {"RequestCode":12} asks the
server to disconnect (sent on close). Server messages are little-endian binary packets (packets.py).
This stream subscribes in full mode by default (depth for the ticket's ladder), and keeps the
previous-close packet Dhan sends on subscribe as each quote's `close`.

Tokens are "<ExchangeSegment>|<SecurityId>" strings (`stream_token`): Dhan needs the segment with
every security id, and its NSE_EQ/BSE_EQ security ids are the exchanges' own scrip codes. `read`
yields the very token the caller subscribed with.

Refusals: a bad or expired session may be answered with HTTP 401/403 on the upgrade, or (as the real
feed does for its auth errors, per dhan-oss/DhanHQ-py#102) the upgrade succeeds and a disconnect
packet with a reason follows. `connect` waits `verdict_seconds` for such a packet: reasons 806-810
(no data plan, token expired or invalid, bad client id) raise AuthExpired, a socket that closes
straight away is Unavailable. On an open socket the same packet makes `read` raise AuthExpired, or
StreamClosed for the others (805 too many connections, 800, ...).

The server pings every 10 s and closes a socket that has not answered for 40 s; the WebSocket client
answers pings by itself. The access token rides in the URL: never log the URL.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from webapp.brokers.base import Account, AuthExpired, InstrumentRef, InvalidInput, Unavailable
from webapp.brokers.dhan.packets import (
    AUTH_REASONS,
    DISCONNECT_REASONS,
    SEGMENT_CODES,
    DhanPacket,
    parse_frame,
    to_quote,
)
from webapp.marketdata.streams.base import StreamClosed, Tick, TickStream
from webapp.marketdata.streams.wsclient import WebSocket, drain
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

DHAN_WS_URL = "wss://api-feed.dhan.co"
STREAM_SETTINGS = {"DHAN_STREAM_URL": DHAN_WS_URL}

MODES = {"ticker": 15, "quote": 17, "full": 21}  # subscribe codes; unsubscribe is code + 1
DISCONNECT_REQUEST = 12
BATCH = 100  # instruments per request message (documented)
MAX_INSTRUMENTS = 5000  # per connection (documented)
VERDICT_SECONDS = 0.5

# the desk's exchange -> Dhan's exchange segment (annexure)
SEGMENTS = {
    "NSE": "NSE_EQ",
    "BSE": "BSE_EQ",
    "NFO": "NSE_FNO",
    "BFO": "BSE_FNO",
    "CDS": "NSE_CURRENCY",
    "BCD": "BSE_CURRENCY",
    "MCX": "MCX_COMM",
}
# the desk's index rows -> Dhan's IDX_I security ids (third-party code; Dhan's detailed scrip master lists them)
INDEX_IDS = {"NIFTY 50": 13, "NIFTY BANK": 25, "SENSEX": 51}


def stream_token(instrument: InstrumentRef) -> int | str | None:
    """ "<ExchangeSegment>|<SecurityId>" as Dhan's feed keys an instrument; None when it cannot carry it.

    An index (a tradingsymbol with a space on NSE/BSE, as "NIFTY 50"; exchange symbols have none)
    maps to IDX_I by name when its Dhan id is known, else None: its exchange token is not Dhan's id."""
    symbol = (instrument.tradingsymbol or "").strip().upper()
    if symbol in INDEX_IDS:
        return f"IDX_I|{INDEX_IDS[symbol]}"
    segment = SEGMENTS.get((instrument.exchange or "").upper())
    if segment is None or not instrument.exchange_token or int(instrument.exchange_token) <= 0:
        return None
    if segment in ("NSE_EQ", "BSE_EQ") and " " in symbol:
        return None
    return f"{segment}|{int(instrument.exchange_token)}"


def parse_token(token: int | str) -> tuple[str, int] | None:
    """("NSE_EQ", 1333) from "NSE_EQ|1333"; None when it is not a Dhan stream token."""
    segment, _, security_id = str(token).partition("|")
    if segment not in SEGMENT_CODES or not security_id.isdigit():
        return None
    return segment, int(security_id)


def open_stream(account: Account, config: Mapping[str, Any]) -> TickStream:
    """The feed over `account`'s session: its Dhan client id and access token."""
    token = account.session.access_token if account.session else ""
    if not token or not account.client_code:
        raise AuthExpired("No Dhan session to open the market feed with: connect the client.")
    return DhanStream(account.client_code, token, ws_url=str(config.get("DHAN_STREAM_URL") or DHAN_WS_URL))


class DhanStream(TickStream):
    name = "dhan"

    def __init__(
        self,
        client_id: str,
        access_token: str,
        *,
        ws_url: str = DHAN_WS_URL,
        mode: str = "full",
        symbols: Mapping[Any, tuple[str, str]] | None = None,
        on_packet: Callable[[DhanPacket], None] | None = None,
        connect_timeout: float = 10.0,
        verdict_seconds: float = VERDICT_SECONDS,
    ):
        if mode not in MODES:
            raise InvalidInput(f"Unknown Dhan feed mode {mode!r}.")
        self.client_id, self._access_token, self.ws_url = str(client_id), access_token, ws_url.rstrip("/")
        self.mode, self.symbols, self.on_packet = mode, symbols or {}, on_packet
        self.connect_timeout, self.verdict_seconds = connect_timeout, verdict_seconds
        self.previous_close: dict[tuple[int, int], Decimal] = {}  # (segment, security id) -> prev close
        self._tokens: dict[tuple[int, int], int | str] = {}  # (segment, security id) -> the caller's token
        self._pending: list[str | bytes] = []  # frames that came while connect waited for a verdict
        self._ws: WebSocket | None = None

    def __repr__(self) -> str:  # no token in reprs or logs
        return f"DhanStream(client_id={self.client_id!r}, mode={self.mode!r}, url={self.ws_url!r})"

    def connect(self) -> None:
        self.close()  # a second connect replaces the socket, never leaks it
        query = urlencode({"version": 2, "token": self._access_token, "clientId": self.client_id, "authType": 2})
        self._ws = WebSocket.open(f"{self.ws_url}?{query}", timeout=self.connect_timeout, what="Dhan market feed")
        try:
            self._await_verdict(self._ws)
        except (AuthExpired, Unavailable):
            self.close()
            raise
        log.info("stream=dhan event=connected mode=%s", self.mode)

    def subscribe(self, tokens: Iterable[int | str]) -> None:
        self._request(MODES[self.mode], tokens, adding=True)

    def unsubscribe(self, tokens: Iterable[int | str]) -> None:
        self._request(MODES[self.mode] + 1, tokens, adding=False)

    def read(self, timeout: float) -> list[Tick]:
        ws = self._open_ws()
        ticks: list[Tick] = []
        while self._pending:
            ticks.extend(self._handle(self._pending.pop(0)))
        if not ticks:
            return drain(ws, timeout, self._handle)
        try:
            return ticks + drain(ws, 0.0, self._handle)
        except StreamClosed:
            return ticks  # the next read raises

    def close(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            if ws.connected:
                try:
                    ws.send_text(json.dumps({"RequestCode": DISCONNECT_REQUEST}))
                except StreamClosed:
                    pass
            ws.close()
        self._pending.clear()

    # ------------------------------------------------------------------ internals

    def _await_verdict(self, ws: WebSocket) -> None:
        """Dhan answers a refused session with a disconnect packet after the upgrade: wait briefly."""
        deadline = time.monotonic() + self.verdict_seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = ws.next_message(left)
            except StreamClosed:
                raise Unavailable("The Dhan market feed closed the connection straight away.") from None
            if message is None:
                return
            if isinstance(message, bytes):
                for packet in parse_frame(message):
                    if packet.kind == "disconnect":
                        raise self._disconnect_error(packet, connecting=True)
            self._pending.append(message)

    def _request(self, code: int, tokens: Iterable[int | str], *, adding: bool) -> None:
        wanted: dict[tuple[int, int], tuple[str, int, int | str]] = {}
        for token in tokens:
            parsed = parse_token(token)
            if parsed is None:
                log.warning("stream=dhan event=bad_token token=%s", json.dumps(str(token)))
                continue
            segment, security_id = parsed
            wanted[(SEGMENT_CODES[segment], security_id)] = (segment, security_id, token)
        if not wanted:
            return
        ws = self._open_ws()
        if adding and len(set(self._tokens) | set(wanted)) > MAX_INSTRUMENTS:
            log.warning("stream=dhan event=over_limit instruments=%d limit=%d", len(self._tokens), MAX_INSTRUMENTS)
        items = sorted(wanted.items())
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            message = {
                "RequestCode": code,
                "InstrumentCount": len(batch),
                "InstrumentList": [{"ExchangeSegment": seg, "SecurityId": str(sid)} for _, (seg, sid, _) in batch],
            }
            ws.send_text(json.dumps(message, separators=(",", ":")))
        for key, (_, _, token) in items:
            if adding:
                self._tokens[key] = token
            else:
                self._tokens.pop(key, None)

    def _open_ws(self) -> WebSocket:
        if self._ws is None:
            raise StreamClosed("not connected")
        return self._ws

    def _handle(self, message: str | bytes) -> list[Tick]:
        if isinstance(message, str):
            log.warning("stream=dhan event=unexpected_text length=%d", len(message))
            return []
        received_at = utcnow()
        ticks: list[Tick] = []
        for packet in parse_frame(message):
            if self.on_packet is not None:
                self.on_packet(packet)
            key = (packet.segment, packet.security_id)
            if packet.kind == "disconnect":
                error = self._disconnect_error(packet, connecting=False)
                self.close()
                raise error
            if packet.kind == "prev_close":
                if packet.close is not None:
                    self.previous_close[key] = packet.close
                continue
            if packet.kind not in ("ticker", "quote", "full") or packet.last_price is None:
                continue
            token = self._tokens.get(key, packet.key)
            quote = to_quote(packet, received_at, self.symbols.get(token), self.previous_close.get(key))
            ticks.append((token, quote))
        return ticks

    @staticmethod
    def _disconnect_error(packet: DhanPacket, *, connecting: bool) -> Exception:
        reason = packet.reason or 0
        words = DISCONNECT_REASONS.get(reason, "unknown reason")
        log.warning("stream=dhan event=disconnect reason=%d detail=%s", reason, json.dumps(words))
        if reason in AUTH_REASONS:
            return AuthExpired(f"The Dhan market feed refused the session ({reason}: {words}).")
        if connecting:
            return Unavailable(f"The Dhan market feed disconnected ({reason}: {words}).")
        return StreamClosed(f"disconnected by Dhan ({reason}: {words})")
