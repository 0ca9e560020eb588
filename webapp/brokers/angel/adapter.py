"""Angel One SmartAPI adapter.

Each client has its own SmartAPI app (the API key, sent as X-PrivateKey) and logs in with its
client code, its MPIN and the authenticator TOTP (loginByPassword). The login answers three tokens:
the jwtToken (every REST call, `Authorization: Bearer`), the refreshToken and the feedToken (the
SmartWebSocket v2 stream). They are kept in the BrokerSession: access_token = jwtToken,
extra = {"feed_token", "refresh_token"}.

Decisions the broker's documentation leaves open, made here on purpose:
- Idempotency: every desk order carries its tag as Angel's `ordertag` (≤ 20 characters; Angel echoes
  it in the order book), so the port's default `orders_by_tag` (one order-book read) resolves an
  order whose answer was lost. The port's order id is Angel's `orderid` (what modify/cancel take).
- Market orders go as MARKET: SmartAPI documents no market-protection field (Angel applies the
  exchange's limit price protection in its own OMS), so `OrderRequest.market_protection` is not sent.
- A JWT lives 24-28 hours since Angel's change of 2024; the desk still treats 05:00 IST (its old
  fixed expiry) as the end of a session, which is never later than the token's real life.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from webapp.brokers import http
from webapp.brokers.angel import mapping
from webapp.brokers.angel import stream as angel_stream
from webapp.brokers.angel.wire import BROKER, DEFAULT_BASE_URL, AngelWire
from webapp.brokers.base import (
    TIMEOUT_OPTION,
    Account,
    AuthExpired,
    Broker,
    BrokerSession,
    Capabilities,
    ConfigOption,
    CredentialField,
    Funds,
    HistoricalBar,
    Holding,
    InstrumentRef,
    InstrumentRow,
    InvalidInput,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Quote,
    RateLimits,
    Rejected,
    Trade,
    Unavailable,
    Validity,
)
from webapp.timeutil import IST, utcnow

log = logging.getLogger(__name__)

SECURE = "/rest/secure/angelbroking"
LOGIN_PATH = "/rest/auth/angelbroking/user/v1/loginByPassword"
PLACE_PATH = f"{SECURE}/order/v1/placeOrder"
MODIFY_PATH = f"{SECURE}/order/v1/modifyOrder"
CANCEL_PATH = f"{SECURE}/order/v1/cancelOrder"
ORDER_BOOK_PATH = f"{SECURE}/order/v1/getOrderBook"
TRADE_BOOK_PATH = f"{SECURE}/order/v1/getTradeBook"
POSITIONS_PATH = f"{SECURE}/order/v1/getPosition"
HOLDINGS_PATH = f"{SECURE}/portfolio/v1/getHolding"
RMS_PATH = f"{SECURE}/user/v1/getRMS"
QUOTE_PATH = f"{SECURE}/market/v1/quote"
CANDLE_PATH = f"{SECURE}/historical/v1/getCandleData"
MARGIN_PATH = f"{SECURE}/margin/v1/batch"
MASTER_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
MASTER_URL = "https://margincalculator.angelbroking.com" + MASTER_PATH
QUOTE_BATCH = 50  # market/v1/quote takes up to 50 tokens a request
MARGIN_BATCH = 50  # margin/v1/batch takes up to 50 positions a request

READ_NOUNS = {
    "order_book": "an order book",
    "trade_book": "a trade book",
    "positions": "positions",
    "holdings": "holdings",
    "funds": "a funds report",
    "quotes": "quotes",
    "candles": "candles",
    "instruments": "an instrument master",
}

T = TypeVar("T")


class AngelBroker(Broker):
    name = "angel"
    label = "Angel One"
    credential_fields = (
        CredentialField(
            "api_key", "SmartAPI API key", secret=True, help="The API key of the client's SmartAPI app (X-PrivateKey)"
        ),
    )
    # smartapi.angelbroking.com/docs/RateLimit (topic 4387): orders 20/s, 500/min, 1000/h per client;
    # the order book, trade book, positions and holdings 1/s.
    rate_limits = RateLimits(orders_per_second=20, orders_per_minute=500, reads_per_second=1)
    tag_max_length = 20  # ordertag: at most 20 characters since 15 Nov 2024, else AB4008
    login_kind = "form"
    login_fields = (
        CredentialField("mpin", "MPIN", secret=True, help="The client's Angel One MPIN (4 digits)"),
        CredentialField("totp", "TOTP", secret=True, help="The 6-digit code from the authenticator app"),
    )
    session_expiry_ist = time(5, 0)
    settings = {"ANGEL_API_URL": DEFAULT_BASE_URL, "ANGEL_INSTRUMENTS_URL": "", **angel_stream.STREAM_SETTINGS}
    config_options = (
        ConfigOption("base_url", "ANGEL_API_URL", required=True),
        ConfigOption("instruments_url", "ANGEL_INSTRUMENTS_URL"),
        TIMEOUT_OPTION,
    )
    capabilities = Capabilities(quotes=True, streaming=True, historical_candles=True)
    quote_preference = 15  # one quote call answers 50 instruments, 10 calls/s
    stream_key = "exchange_token"

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        self._api_key = str(account.credentials.get("api_key") or "")
        self._session = account.session
        self._wire = AngelWire(api_key=self._api_key, client_code=account.client_code, options=self.options)

    # ------------------------------------------------------------------ the stream

    @classmethod
    def stream_token(cls, instrument: InstrumentRef) -> int | str | None:
        return angel_stream.stream_token(instrument)

    @classmethod
    def open_stream(cls, account: Account, config: Mapping[str, Any]) -> Any:
        return angel_stream.open_stream(account, config)

    # ------------------------------------------------------------------ plumbing

    def _token(self) -> str:
        session = self._session
        if session is None or not session.access_token:
            raise AuthExpired(f"{self.label} is not logged in for {self.account.client_code}; log in again")
        if session.expires_at is not None and session.expires_at <= utcnow():
            raise AuthExpired(f"{self.label} session expired; log in again")
        return session.access_token

    def _call(self, op: str, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self._wire.call(op, method, path, body, token=self._token())

    def _parse(self, op: str, parse: Callable[[Any], T], rows: Any) -> list[T]:
        if rows is None or rows == "":  # Angel sends data null for an empty book
            return []
        if not isinstance(rows, list):
            raise Unavailable(f"{BROKER} sent {READ_NOUNS.get(op, 'an answer')} the desk cannot read; try again")
        try:
            return [parse(row) for row in rows]
        except (KeyError, ValueError, TypeError, IndexError, InvalidOperation) as exc:
            log.warning(
                "broker=angel op=%s client=%s malformed_row=%s", op, self.account.client_code, type(exc).__name__
            )
            raise Unavailable(
                f"{BROKER} sent {READ_NOUNS.get(op, 'an answer')} the desk cannot read; try again"
            ) from None

    def close(self) -> None:
        """Nothing to free: the connection pool is the process's, shared by every client."""

    # ------------------------------------------------------------------ login

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        mpin = str(params.get("mpin") or "").strip()
        totp = str(params.get("totp") or "").strip()
        if not self._api_key:
            raise InvalidInput(f"{self.label} needs the SmartAPI API key saved on the client first")
        if not mpin:
            raise InvalidInput(f"{self.label} needs the client's MPIN")
        if not (len(totp) == 6 and totp.isdigit()):
            raise InvalidInput("The TOTP is the 6-digit code from your authenticator app")
        body = {"clientcode": self.account.client_code, "password": mpin, "totp": totp}
        data = self._wire.call("login", "POST", LOGIN_PATH, body, token=None, login=True)
        jwt = str((data or {}).get("jwtToken") or "") if isinstance(data, dict) else ""
        if not jwt:
            raise Unavailable(f"{BROKER} answered the login without a token; try logging in again")
        jwt = jwt.removeprefix("Bearer ")
        extra = {"feed_token": str(data.get("feedToken") or ""), "refresh_token": str(data.get("refreshToken") or "")}
        self._session = BrokerSession(access_token=jwt, expires_at=self.session_expires_at(utcnow()), extra=extra)
        return self._session

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        data = self._call("place", "POST", PLACE_PATH, mapping.place_body(request, request.tag or ""))
        order_id = str(data.get("orderid") or "").strip() if isinstance(data, dict) else ""
        if not order_id:  # never invent an id: the tag lookup decides whether the order exists
            log.warning("broker=angel op=place client=%s success_without_order_id=1", self.account.client_code)
            raise Unavailable(
                f"{BROKER} said the order was accepted but sent no order id; the order may or may not be placed"
            )
        return order_id

    def modify(
        self,
        order_id: str,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        order_type: OrderType | None = None,
        validity: Validity | None = None,
    ) -> str:
        # modifyOrder wants the whole order (symbol, token, product, duration...), so the current row
        # is read first.
        row = self._order_row(order_id)
        body = mapping.modify_body(
            row, quantity=quantity, price=price, trigger_price=trigger_price, order_type=order_type, validity=validity
        )
        data = self._call("modify", "POST", MODIFY_PATH, body)
        return str((data or {}).get("orderid") or order_id) if isinstance(data, dict) else order_id

    def cancel(self, order_id: str) -> str:
        # Angel's cancel names the order's variety (STOPLOSS for a stop), so the row is read first.
        row = self._order_row(order_id)
        body = {"variety": str(row.get("variety") or "NORMAL"), "orderid": order_id}
        data = self._call("cancel", "POST", CANCEL_PATH, body)
        return str((data or {}).get("orderid") or order_id) if isinstance(data, dict) else order_id

    def _order_row(self, order_id: str) -> Mapping[str, Any]:
        rows = self._parse("order_book", dict, self._call("order_book", "GET", ORDER_BOOK_PATH))
        for row in rows:
            if str(row.get("orderid")) == order_id:
                return row
        raise Rejected(f"{BROKER} has no order {order_id} today")

    def order_book(self) -> list[Order]:
        return self._parse("order_book", mapping.order_from_row, self._call("order_book", "GET", ORDER_BOOK_PATH))

    # ------------------------------------------------------------------ portfolio

    def trades(self) -> list[Trade]:
        return self._parse("trade_book", mapping.trade_from_row, self._call("trade_book", "GET", TRADE_BOOK_PATH))

    def positions(self) -> list[Position]:
        return self._parse("positions", mapping.position_from_row, self._call("positions", "GET", POSITIONS_PATH))

    def holdings(self) -> list[Holding]:
        return self._parse("holdings", mapping.holding_from_row, self._call("holdings", "GET", HOLDINGS_PATH))

    def funds(self) -> Funds:
        data = self._call("funds", "GET", RMS_PATH)
        try:
            return mapping.funds_from_rms(data)
        except (KeyError, ValueError, TypeError, InvalidOperation):
            raise Unavailable(f"{BROKER} sent a funds report the desk cannot read; try again") from None

    # ------------------------------------------------------------------ market data

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        """market/v1/quote in FULL mode, up to 50 tokens a request, grouped by exchange."""
        quotes: dict[str, Quote] = {}
        refs = list(instruments)
        for start in range(0, len(refs), QUOTE_BATCH):
            chunk = refs[start : start + QUOTE_BATCH]
            wanted: dict[tuple[str, str], InstrumentRef] = {}
            tokens: dict[str, list[str]] = {}
            for ref in chunk:
                token = str(int(ref.exchange_token))
                wanted[(ref.exchange, token)] = ref
                tokens.setdefault(ref.exchange, []).append(token)
            data = self._call("quotes", "POST", QUOTE_PATH, {"mode": "FULL", "exchangeTokens": tokens})
            fetched = data.get("fetched") if isinstance(data, dict) else None
            for row in self._parse("quotes", dict, fetched):
                ref = wanted.get((str(row.get("exchange")), str(row.get("symbolToken"))))
                if ref is None:
                    continue
                try:
                    quotes[ref.key] = mapping.quote_from_row(ref, row)
                except (KeyError, ValueError, TypeError, InvalidOperation):
                    raise Unavailable(f"{BROKER} sent an unreadable price for {ref.key}; try again") from None
        return quotes

    def historical_candles(
        self, instrument: InstrumentRef, interval: int, start: datetime, end: datetime
    ) -> list[HistoricalBar]:
        """getCandleData, split into the longest spans Angel allows for the interval (30 days of minutes,
        60 of 3, 100 of 5/10, 200 of 15/30, 400 of hours, 2000 of days). Times are IST "yyyy-MM-dd HH:mm"."""
        spec = mapping.INTERVALS.get(interval)
        if spec is None:
            raise InvalidInput(f"{self.label} has no {interval}-minute candles")
        word, max_days = spec
        span = timedelta(days=max_days) - timedelta(minutes=1)
        bars: dict[datetime, HistoricalBar] = {}
        cursor = start
        while cursor <= end:
            upto = min(cursor + span, end)
            body = {
                "exchange": instrument.exchange,
                "symboltoken": str(int(instrument.exchange_token)),
                "interval": word,
                "fromdate": cursor.astimezone(IST).strftime("%Y-%m-%d %H:%M"),
                "todate": upto.astimezone(IST).strftime("%Y-%m-%d %H:%M"),
            }
            for bar in self._parse(
                "candles", mapping.candle_from_row, self._call("candles", "POST", CANDLE_PATH, body)
            ):
                if start <= bar.start <= end:
                    bars[bar.start] = bar
            cursor = upto + timedelta(minutes=1)
        return [bars[key] for key in sorted(bars)]

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        """margin/v1/batch: Angel's own margin for the basket (MARKET and SL-M valued at the LTP, which
        Angel looks up when the price is 0)."""
        total = Decimal("0")
        items = list(requests)
        for start in range(0, len(items), MARGIN_BATCH):
            chunk = items[start : start + MARGIN_BATCH]
            positions = [
                mapping.margin_position(
                    r, r.price if r.order_type in (OrderType.LIMIT, OrderType.SL) and r.price else Decimal("0")
                )
                for r in chunk
            ]
            data = self._call("margin", "POST", MARGIN_PATH, {"positions": positions})
            try:
                total += mapping.dec(data["totalMarginRequired"])
            except (KeyError, TypeError, ValueError, InvalidOperation):
                raise Unavailable(f"{BROKER} sent a margin answer the desk cannot read; try again") from None
        return total

    def instruments(self) -> list[InstrumentRow]:
        """OpenAPIScripMaster.json, Angel's public instrument master (no session needed): the cash
        equities of NSE and BSE. Against any other API base (an emulator) the master is read from the
        same host unless ANGEL_INSTRUMENTS_URL names it."""
        url = str(self.options.get("instruments_url") or "")
        if not url:
            url = MASTER_URL if self._wire.base_url == DEFAULT_BASE_URL else self._wire.base_url + MASTER_PATH
        try:
            response = http.send(
                "GET", url, headers={"Accept": "application/json"}, timeout=max(self._wire.timeout, 30)
            )
        except http.TransportError:
            raise Unavailable(f"{BROKER}'s instrument master could not be downloaded; try again") from None
        if response.status != 200:
            raise Unavailable(f"{BROKER}'s instrument master answered HTTP {response.status}; try again")
        try:
            rows = json.loads(response.text)
        except ValueError:
            rows = None
        parsed = self._parse("instruments", mapping.instrument_from_row, rows)
        return [row for row in parsed if row is not None]
