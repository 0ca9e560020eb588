"""Kotak Neo's HSM market-data stream as a TickStream (wire format in hsm.py).

    wss://mlhsm.kotaksecurities.com            (the KOTAK_STREAM_URL setting)

The WebSocket upgrade carries no credentials: the first binary frame does (the session token and
session sid from tradeApiValidate), and HSM answers it with "K" or "N". `connect` waits for that
answer: "N" is AuthExpired (log in again), no answer in time is Unavailable.

Tokens are NSE cash scrip codes (ints); each is subscribed as the scrip feed "sf|nse_cm|<token>" on
channel 1, at most 100 a request. Ticks come from snapshot and update records; when HSM asks for
acknowledgements (the connection answer's ack interval) the stream acks every that-many data
messages, as Kotak's client does. HSM sends no heartbeat: a silent socket is the supervisor's
watchdog's to catch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from webapp.brokers.base import Account, AuthExpired, InstrumentRef, Unavailable
from webapp.brokers.kotak import hsm
from webapp.brokers.kotak.mapping import plain_symbol
from webapp.marketdata.streams.base import StreamClosed, Tick, TickStream
from webapp.marketdata.streams.wsclient import WebSocket, drain
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

KOTAK_HSM_URL = "wss://mlhsm.kotaksecurities.com"
STREAM_SETTINGS = {"KOTAK_STREAM_URL": KOTAK_HSM_URL}
SEGMENT = "nse_cm"  # the desk streams NSE cash scrips
CHANNEL = 1


def stream_token(instrument: InstrumentRef) -> int | None:
    """The NSE scrip code; None for what this stream does not carry (other exchanges)."""
    if instrument.exchange != "NSE" or not instrument.exchange_token:
        return None
    return int(instrument.exchange_token)


def open_stream(account: Account, config: Mapping[str, Any]) -> TickStream:
    session = account.session
    return KotakStream(
        session.access_token if session else "",
        str(session.extra.get("sid", "")) if session else "",
        ws_url=config.get("KOTAK_STREAM_URL") or KOTAK_HSM_URL,
    )


class KotakStream(TickStream):
    name = "kotak"

    def __init__(
        self,
        token: str,
        sid: str,
        *,
        ws_url: str = KOTAK_HSM_URL,
        symbols: Mapping[int, tuple[str, str]] | None = None,
        connect_timeout: float = 10.0,
    ):
        self._token, self._sid, self.ws_url = token, sid, ws_url
        self.symbols = dict(symbols or {})
        self.connect_timeout = connect_timeout
        self.acks_sent = 0  # for stats and tests
        self._ws: WebSocket | None = None
        self._topics: dict[int, hsm.Topic] = {}
        self._ack_every = 0
        self._since_ack = 0
        self._tokens: set[int] = set()

    def __repr__(self) -> str:  # no tokens in reprs or logs
        return f"KotakStream(url={self.ws_url!r})"

    def connect(self) -> None:
        self.close()  # a second connect replaces the socket, never leaks it
        if not (self._token and self._sid) or not (self._token.isprintable() and self._sid.isprintable()):
            raise AuthExpired("The Kotak Neo session has no usable session token or sid; log in again.")
        ws = WebSocket.open(self.ws_url, timeout=self.connect_timeout, what="Kotak Neo stream")
        self._ws = ws
        self._topics, self._since_ack = {}, 0
        ws.send_bytes(hsm.connection_request(self._token, self._sid))
        deadline = time.monotonic() + self.connect_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise Unavailable("The Kotak Neo stream did not answer the connection request in time.")
            try:
                message = ws.next_message(left)
            except StreamClosed:
                self.close()
                raise Unavailable("The Kotak Neo stream closed before answering the connection request.") from None
            if isinstance(message, (bytes, bytearray)) and len(message) >= 3 and message[2] == hsm.CONNECTION:
                break
        status = hsm.status_of(bytes(message))
        if status != hsm.STATUS_OK:
            self.close()
            raise AuthExpired("The Kotak Neo stream refused the session; log in again.")
        self._ack_every = hsm.ack_interval(bytes(message))
        log.info("stream=kotak event=connected ack_every=%d", self._ack_every)

    def subscribe(self, tokens: Iterable[int | str]) -> None:
        wanted = sorted(self._ours(tokens))
        for start in range(0, len(wanted), hsm.MAX_SCRIPS):
            chunk = wanted[start : start + hsm.MAX_SCRIPS]
            names = [hsm.topic_name(SEGMENT, token) for token in chunk]
            self._open_ws().send_bytes(hsm.subscription_request(hsm.SUBSCRIBE, names, CHANNEL))
            self._tokens.update(chunk)

    def unsubscribe(self, tokens: Iterable[int | str]) -> None:
        unwanted = sorted(self._ours(tokens) & self._tokens)
        for start in range(0, len(unwanted), hsm.MAX_SCRIPS):
            chunk = unwanted[start : start + hsm.MAX_SCRIPS]
            names = [hsm.topic_name(SEGMENT, token) for token in chunk]
            self._open_ws().send_bytes(hsm.subscription_request(hsm.UNSUBSCRIBE, names, CHANNEL))
            self._tokens.difference_update(chunk)

    def read(self, timeout: float) -> list[Tick]:
        return drain(self._open_ws(), timeout, self._handle)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _ours(tokens: Iterable[int | str]) -> set[int]:
        ours = set()
        for token in tokens:
            try:
                ours.add(int(token))
            except (TypeError, ValueError):
                log.warning("stream=kotak event=bad_token token=%r", str(token)[:40])
        return ours

    def _open_ws(self) -> WebSocket:
        if self._ws is None:
            raise StreamClosed("not connected")
        return self._ws

    def _handle(self, message: str | bytes) -> list[Tick]:
        if not isinstance(message, (bytes, bytearray)):
            log.debug("stream=kotak event=text length=%d", len(message))
            return []
        data = bytes(message)
        try:
            kind = hsm.frame_type(data)
            if kind != hsm.DATA:
                if kind in (hsm.SUBSCRIBE, hsm.UNSUBSCRIBE) and hsm.status_of(data) != hsm.STATUS_OK:
                    log.warning("stream=kotak event=subscription_refused type=%d", kind)
                return []
            number, changed = hsm.parse_data(data, self._topics, self._ack_every > 0)
        except hsm.FrameError as exc:
            log.warning("stream=kotak event=bad_frame length=%d reason=%s", len(data), exc)
            return []
        if number is not None:
            self._since_ack += 1
            if self._since_ack >= self._ack_every:
                self._open_ws().send_bytes(hsm.ack_request(number))
                self._since_ack = 0
                self.acks_sent += 1
        now = utcnow()
        ticks: list[Tick] = []
        for topic in changed:
            if topic.kind != hsm.SCRIP_TOPIC or topic.segment != SEGMENT or not topic.token.isdigit():
                continue
            token = int(topic.token)
            exchange, symbol = self.symbols.get(token) or (
                "NSE",
                plain_symbol(topic.strings.get(hsm.TRADING_SYMBOL)) or str(token),
            )
            quote = topic.quote(exchange, symbol, now)
            if quote is not None:
                ticks.append((token, quote))
        return ticks
