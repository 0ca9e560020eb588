"""Upstox's market data feed v3 as a TickStream (reference/brokers-upstox-dhan.md §1.8).

    GET https://api.upstox.com/v3/feed/market-data-feed/authorize     Authorization: Bearer <token>
    -> {"status":"success","data":{"authorized_redirect_uri":"wss://…?requestId=…&code=…", …}}

The authorize call hands out a one-time WebSocket URI (its `code` is single-use), so every connect
authorizes afresh. A 401 there (UDAPI100050, invalid token) or a refused upgrade (401/403) is
AuthExpired; anything else that fails (unreachable, timeout, 5xx, 429, a malformed answer) is
Unavailable, and the supervisor retries with backoff.

Client requests are JSON sent as BINARY frames:
{"guid":"…","method":"sub"|"change_mode"|"unsub","data":{"mode":"ltpc"|"full","instrumentKeys":[…]}};
`sub` carries this stream's mode (Upstox's default for a bare sub is ltpc). Server frames are protobuf
FeedResponse messages (feed_pb.py): a `market_info` frame first (segment statuses, kept in
`market_status`), then `initial_feed` (a snapshot after each sub) and `live_feed` frames, each a map
instrument key -> Feed. The server keeps an idle socket alive with WebSocket pings, which the
client answers with pongs (wsclient.py); the client sends no heartbeat of its own.

Mode "full" (the default: Upstox's full_d5) gives the last price, previous close, the day's
open/high/low (the "1d" entry of marketOHLC), volume traded today (vtt) and five levels of depth
(marketLevel.bidAskQuote: each entry is a bid and an ask at that level); "ltpc" gives the last price
and previous close only. Index keys carry indexFF (price and OHLC, no depth or volume).

Tokens are Upstox instrument keys ("NSE_EQ|<ISIN>", "NSE_INDEX|Nifty 50") when `stream_token` can make
them from the desk's instrument, else "<exchange>|<exchange token>" ("NSE|2885": Kite's master has no
ISIN). `subscribe` turns the latter into instrument keys through Upstox's daily instrument file (keys.py,
the adapter's cache) and `read` yields every tick under the token it was subscribed with. Prices are doubles on
the wire, turned into Decimal by rounding their repr to the paisa (feed_pb.price), never by float
arithmetic; times are aware UTC (currentTs, epoch milliseconds; the time of receipt when absent).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from google.protobuf.message import DecodeError

from webapp.brokers import http
from webapp.brokers.base import Account, AuthExpired, DepthLevel, InstrumentRef, InvalidInput, Quote, Unavailable
from webapp.brokers.upstox import feed_pb, keys
from webapp.brokers.upstox.wire import API_URL, UpstoxWire
from webapp.marketdata.streams.base import StreamClosed, Tick, TickStream
from webapp.marketdata.streams.wsclient import WebSocket, drain
from webapp.timeutil import UTC, utcnow

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/v3/feed/market-data-feed/authorize"
UPSTOX_FEED_AUTHORIZE_URL = API_URL + AUTHORIZE_PATH
# empty: the authorize path on UPSTOX_API_URL (Upstox's API host, or an emulator's)
STREAM_SETTINGS = {"UPSTOX_STREAM_URL": ""}
TOKEN_FORM = re.compile(r"^(NSE|BSE)\|(\d+)$")  # "<exchange>|<exchange token>": resolved at subscribe
MODES = ("ltpc", "full")
# instrument keys per connection, by mode alone (U:v3/get-market-data-feed "Individual Limit")
KEY_LIMITS = {"ltpc": 5000, "full": 2000}
SEGMENTS = {"NSE": "NSE_EQ", "BSE": "BSE_EQ"}
INDEX_KEYS = {
    ("NSE", "NIFTY 50"): "NSE_INDEX|Nifty 50",
    ("NSE", "NIFTY BANK"): "NSE_INDEX|Nifty Bank",
}
# an instrument key's segment -> the desk's exchange code
EXCHANGES = {
    "NSE_EQ": "NSE",
    "BSE_EQ": "BSE",
    "NSE_INDEX": "NSE",
    "BSE_INDEX": "BSE",
    "NSE_FO": "NFO",
    "BSE_FO": "BFO",
    "MCX_FO": "MCX",
    "NCD_FO": "CDS",
    "BCD_FO": "BCD",
}
FOUR_PLACES = Decimal("0.0001")
PRECISION = {"NCD_FO": FOUR_PLACES, "BCD_FO": FOUR_PLACES}  # currency derivatives quote to 4 places
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_INTERVAL = "1d"
DEPTH_LEVELS = 5
Symbols = Mapping[str, tuple[str, str]]  # instrument key -> (exchange, tradingsymbol)


def stream_token(instrument: InstrumentRef) -> str | None:
    """Upstox's instrument key for `instrument`: "NSE_EQ|<ISIN>" / "BSE_EQ|<ISIN>" for equities, the
    index key for the desk's NIFTY 50 and NIFTY BANK rows, None for what the feed cannot carry here
    (another exchange). Without an ISIN: "NSE|<exchange token>", which the stream resolves."""
    exchange = (instrument.exchange or "").upper()
    index_key = INDEX_KEYS.get((exchange, (instrument.tradingsymbol or "").strip().upper()))
    if index_key is not None:
        return index_key
    segment = SEGMENTS.get(exchange)
    isin = (instrument.isin or "").strip().upper()
    if segment is None:
        return None
    if not isin:  # the stream names it through Upstox's instrument file when it subscribes
        return f"{exchange}|{int(instrument.exchange_token)}" if instrument.exchange_token else None
    return f"{segment}|{isin}"


def open_stream(account: Account, config: Mapping[str, Any]) -> UpstoxStream:
    """A feed over `account`'s session (its access token, as Bearer to the authorize call). With no
    session the stream's connect raises AuthExpired."""
    token = account.session.access_token if account.session else ""
    api_url = str(config.get("UPSTOX_API_URL") or API_URL).rstrip("/")
    timeout = float(config.get("BROKER_TIMEOUT_SECONDS") or 7)
    wire = UpstoxWire(
        client_code=account.client_code,
        options={"base_url": api_url, "assets_url": config.get("UPSTOX_ASSETS_URL") or "", "timeout": timeout},
    )
    return UpstoxStream(
        token,
        authorize_url=config.get("UPSTOX_STREAM_URL") or api_url + AUTHORIZE_PATH,
        http_timeout=timeout,
        wire=wire,
    )


# ---------------------------------------------------------------------- decoding


def stamp(milliseconds: int) -> datetime | None:
    """Epoch milliseconds as an aware UTC time; None for 0 (absent) or a value no date can hold."""
    if milliseconds <= 0:
        return None
    try:
        return EPOCH + timedelta(milliseconds=milliseconds)
    except OverflowError:
        return None


def _day_ohlc(ohlc: Iterable[Any]) -> Any | None:
    return next((bar for bar in ohlc if bar.interval == DAY_INTERVAL), None)


def to_quote(key: str, feed: Any, at: datetime, symbol: tuple[str, str] | None = None) -> Quote | None:
    """A Quote from one Feed of a FeedResponse; None when it carries no last price."""
    segment = key.split("|", 1)[0]
    places = PRECISION.get(segment, feed_pb.PAISA)

    def dec(value: float) -> Decimal | None:
        return feed_pb.price(value, places)

    kind = feed.WhichOneof("FeedUnion")
    full = market = index = None
    if kind == "ltpc":
        ltpc = feed.ltpc
    elif kind == "fullFeed":
        full = feed.fullFeed.WhichOneof("FullFeedUnion")
        if full == "marketFF":
            market = feed.fullFeed.marketFF
            ltpc = market.ltpc
        elif full == "indexFF":
            index = feed.fullFeed.indexFF
            ltpc = index.ltpc
        else:
            return None
    elif kind == "firstLevelWithGreeks":
        ltpc = feed.firstLevelWithGreeks.ltpc
    else:
        return None
    last_price = dec(ltpc.ltp)
    if last_price is None or last_price <= 0:
        return None
    exchange, tradingsymbol = symbol or (EXCHANGES.get(segment, segment), "")
    fields: dict[str, Any] = {}
    ohlc_source = market or index
    if ohlc_source is not None:
        day = _day_ohlc(ohlc_source.marketOHLC.ohlc)
        if day is not None:
            fields.update(open=dec(day.open), high=dec(day.high), low=dec(day.low))
    if market is not None:
        fields["volume"] = max(int(market.vtt), 0)
        levels = list(market.marketLevel.bidAskQuote)[:DEPTH_LEVELS]
        fields["bids"] = _side(levels, "bidP", "bidQ", dec)
        fields["asks"] = _side(levels, "askP", "askQ", dec)
    elif kind == "firstLevelWithGreeks":
        first = feed.firstLevelWithGreeks
        fields["volume"] = max(int(first.vtt), 0)
        fields["bids"] = _side([first.firstDepth], "bidP", "bidQ", dec)
        fields["asks"] = _side([first.firstDepth], "askP", "askQ", dec)
    return Quote(
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        last_price=last_price,
        close=dec(ltpc.cp),
        timestamp=at,
        **fields,
    )


def _side(levels: list[Any], price_field: str, quantity_field: str, dec: Callable) -> tuple[DepthLevel, ...]:
    side = []
    for level in levels:
        price, quantity = dec(getattr(level, price_field)), int(getattr(level, quantity_field))
        if price is not None and price > 0 and quantity > 0:
            side.append(DepthLevel(price, quantity))
    return tuple(side)


def frame_ticks(response: Any, received_at: datetime, symbols: Symbols | None = None) -> list[Tick]:
    """(instrument key, Quote) for every feed of a FeedResponse, in key order."""
    if response.type == feed_pb.TYPE_MARKET_INFO:
        return []
    at = stamp(response.currentTs) or received_at
    symbols = symbols or {}
    ticks: list[Tick] = []
    for key in sorted(response.feeds):
        quote = to_quote(key, response.feeds[key], at, symbols.get(key))
        if quote is not None:
            ticks.append((key, quote))
    return ticks


# ---------------------------------------------------------------------- the stream


class UpstoxStream(TickStream):
    name = "upstox"

    def __init__(
        self,
        access_token: str,
        *,
        authorize_url: str = UPSTOX_FEED_AUTHORIZE_URL,
        mode: str = "full",
        symbols: Symbols | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        connect_timeout: float = 10.0,
        http_timeout: float = 7.0,
        wire: UpstoxWire | None = None,
    ):
        if mode not in MODES:
            raise InvalidInput(f"Unknown Upstox feed mode {mode!r}.")
        self._access_token, self.authorize_url, self.mode = access_token, authorize_url, mode
        self.symbols, self.on_message = symbols or {}, on_message
        self.connect_timeout, self.http_timeout = connect_timeout, http_timeout
        self.market_status: dict[str, str] = {}  # segment -> MarketStatus name, from market_info frames
        self._ws: WebSocket | None = None
        self._keys: set[str] = set()
        # instrument key -> the tokens subscribed for it (the key itself, or "NSE|2885")
        self._names: dict[str, set[str]] = {}
        # fetches the instrument file; by default from the authorize URL's host (an emulator serves both)
        self._wire = wire or UpstoxWire(
            client_code="", options={"base_url": _origin(authorize_url), "timeout": http_timeout}
        )

    def __repr__(self) -> str:  # no token or one-time code in reprs or logs
        return f"UpstoxStream(mode={self.mode!r}, authorize_url={self.authorize_url!r})"

    def connect(self) -> None:
        self.close()  # a second connect replaces the socket, never leaks it
        uri = self._authorize()
        self._ws = WebSocket.open(uri, timeout=self.connect_timeout, what="Upstox market data feed")
        log.info("stream=upstox event=connected mode=%s", self.mode)

    def subscribe(self, tokens: Iterable[int | str]) -> None:
        cleaned = self._clean(tokens)
        if not cleaned:
            return
        self._open_ws()
        names: dict[str, set[str]] = {}
        for token in cleaned:
            key = self._resolve(token)
            if key is not None:
                names.setdefault(key, set()).add(token)
        keys = sorted(names)
        if not keys:
            return
        total = len(self._keys | set(keys))
        if total > KEY_LIMITS[self.mode]:
            log.warning("stream=upstox event=over_limit keys=%d limit=%d", total, KEY_LIMITS[self.mode])
        self._send("sub", keys, self.mode)
        self._keys.update(keys)
        for key, tokens_of_key in names.items():
            self._names.setdefault(key, set()).update(tokens_of_key)

    def unsubscribe(self, tokens: Iterable[int | str]) -> None:
        gone = set(self._clean(tokens))
        keys = []
        for key in sorted(self._names):
            if self._names[key] & gone:
                self._names[key] -= gone
                if not self._names[key]:
                    del self._names[key]
                    keys.append(key)
        if keys:
            self._send("unsub", keys)
            self._keys.difference_update(keys)

    def change_mode(self, tokens: Iterable[int | str], mode: str) -> None:
        if mode not in MODES:
            raise InvalidInput(f"Unknown Upstox feed mode {mode!r}.")
        wanted = set(self._clean(tokens))
        keys = sorted(key for key, names in self._names.items() if names & wanted)
        if keys:
            self._send("change_mode", keys, mode)

    def read(self, timeout: float) -> list[Tick]:
        return drain(self._open_ws(), timeout, self._handle)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # ------------------------------------------------------------------ internals

    def _authorize(self) -> str:
        """The one-time WebSocket URI from the authorize call."""
        if not self._access_token:
            raise AuthExpired("Log in to Upstox: there is no session for the market data feed.")
        headers = {"Authorization": f"Bearer {self._access_token}", "Accept": "application/json"}
        try:
            answer = http.send("GET", self.authorize_url, headers=headers, timeout=self.http_timeout)
        except http.TransportError as exc:
            raise Unavailable(f"Could not reach Upstox's feed authorize ({exc.reason}).") from None
        if answer.status in (401, 403):
            raise AuthExpired(f"Upstox refused the session for the market data feed ({_error_code(answer)}).")
        if answer.status != 200:
            raise Unavailable(f"Upstox's feed authorize answered HTTP {answer.status} ({_error_code(answer)}).")
        try:
            payload = json.loads(answer.content)
            data = payload["data"]
            uri = data.get("authorized_redirect_uri") or data.get("authorizedRedirectUri")
        except (ValueError, KeyError, TypeError, AttributeError):
            uri = None
        if not isinstance(uri, str) or not uri.startswith(("wss://", "ws://")):
            raise Unavailable("Upstox's feed authorize gave no WebSocket address.")
        return uri

    def _resolve(self, token: str) -> str | None:
        """The instrument key for a subscribed token: itself, or for "NSE|2885" the key Upstox's
        instrument file gives exchange token 2885 (None when the file does not list it)."""
        match = TOKEN_FORM.match(token)
        if match is None:
            return token
        key = keys.instrument_key(self._wire, match.group(1), int(match.group(2)))
        if key is None:
            log.warning("stream=upstox event=unlisted token=%s", token)
        return key

    @staticmethod
    def _clean(tokens: Iterable[int | str]) -> list[str]:
        return sorted({str(t) for t in tokens if t is not None and str(t)})

    def _open_ws(self) -> WebSocket:
        if self._ws is None:
            raise StreamClosed("not connected")
        return self._ws

    def _send(self, method: str, keys: list[str], mode: str | None = None) -> None:
        data: dict[str, Any] = {"instrumentKeys": keys}
        if mode is not None:
            data["mode"] = mode
        request = {"guid": uuid.uuid4().hex, "method": method, "data": data}
        self._open_ws().send_bytes(json.dumps(request, separators=(",", ":")).encode())

    def _handle(self, message: str | bytes) -> list[Tick]:
        if isinstance(message, str):  # the feed speaks protobuf; text is not part of the protocol
            log.warning("stream=upstox event=unexpected_text length=%d", len(message))
            return []
        received_at = utcnow()
        try:
            response = feed_pb.parse(bytes(message))
        except DecodeError:
            log.warning("stream=upstox event=bad_frame length=%d", len(message))
            return []
        if response.type == feed_pb.TYPE_MARKET_INFO:
            self._market_info(response)
            return []
        ticks = frame_ticks(response, received_at, self.symbols)
        return [(name, quote) for key, quote in ticks for name in sorted(self._names.get(key) or (key,))]

    def _market_info(self, response: Any) -> None:
        statuses = response.marketInfo.segmentStatus
        self.market_status = {segment: feed_pb.MARKET_STATUS.get(statuses[segment], "") for segment in statuses}
        if self.on_message is not None:
            self.on_message({"type": "market_info", "segmentStatus": dict(self.market_status)})


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL (the API host an authorize URL lives on)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else API_URL


def _error_code(answer: http.Response) -> str:
    """Upstox's errorCode from an error envelope, for the message; never the body itself."""
    try:
        errors = json.loads(answer.content).get("errors") or [{}]
        return str(errors[0].get("errorCode") or errors[0].get("error_code") or f"HTTP {answer.status}")
    except (ValueError, AttributeError, IndexError, TypeError):
        return f"HTTP {answer.status}"
