"""Zerodha Kite Connect v3 adapter: the port over plain HTTP (no kiteconnect SDK in the app).

Wire facts: reference/brokers.md §1. Orders go out as variety "regular" with the desk's tag, so
an ambiguous place is resolved by reading /orders and matching `tag` (DESIGN.md §5.4).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time as clock
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote as urlquote
from urllib.parse import urlencode

from webapp.brokers.base import (
    TIMEOUT_OPTION,
    Account,
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
    RateLimited,
    RateLimits,
    Rejected,
    Trade,
    Unavailable,
    Validity,
)
from webapp.brokers.kite import convert
from webapp.brokers.kite.transport import KiteTransport, outcome_of
from webapp.jsonutil import exact_json
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

API_URL = "https://api.kite.trade"
LOGIN_URL = "https://kite.zerodha.com"
DEFAULT_TIMEOUT = 7.0  # the same read timeout the official client uses
AUTO_PROTECTION = Decimal("-1")  # Kite's "automatic market protection"
QUOTE_BATCH = 500  # instruments per /quote call
HISTORICAL_PER_SECOND = 3  # Kite's historical candle API: 3 requests a second (kite.trade docs, rate limits)
HISTORICAL_RETRIES = 5  # a 429 on a read is retried after a pause (nothing was changed)
_MARKET_LIKE = (OrderType.MARKET, OrderType.SLM)

T = TypeVar("T")


class KiteBroker(Broker):
    name = "kite"
    label = "Zerodha Kite"
    credential_fields = (
        CredentialField("api_key", "API key", help="From the Kite Connect developer console"),
        CredentialField("api_secret", "API secret", secret=True),
    )
    rate_limits = RateLimits(orders_per_second=10, orders_per_minute=400, orders_per_day=5000, reads_per_second=10)
    tag_max_length = 20  # Kite allows 20; the desk sends 10
    login_kind = "redirect"
    session_expiry_ist = time(6, 0)  # Kite tokens die around 06:00 IST the next morning
    settings = {
        "KITE_API_URL": "https://api.kite.trade",
        "KITE_LOGIN_URL": LOGIN_URL,
        "KITE_WS_URL": "wss://ws.kite.trade",
    }
    config_options = (
        ConfigOption("base_url", "KITE_API_URL", required=True),
        ConfigOption("login_url", "KITE_LOGIN_URL", required=True),
        TIMEOUT_OPTION,
    )
    capabilities = Capabilities(quotes=True, streaming=True, historical_candles=True)
    quote_preference = 10  # one /quote call answers 500 instruments
    stream_key = "instrument_token"  # Kite's ticker subscribes by instrument token

    @classmethod
    def open_stream(cls, account: Account, config: Mapping[str, Any]):
        from webapp.brokers.kite.ticker import KITE_WS_URL, KiteTicker

        token = account.session.access_token if account.session else ""
        return KiteTicker(account.credentials["api_key"], token, ws_url=config.get("KITE_WS_URL") or KITE_WS_URL)

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        credentials = account.credentials
        self.api_key = credentials.get("api_key", "")
        self._api_secret = credentials.get("api_secret", "")
        self.transport = KiteTransport(
            base_url=self.options.get("base_url", API_URL),
            timeout=float(self.options.get("timeout", DEFAULT_TIMEOUT)),
            api_key=self.api_key,
            access_token=account.session.access_token if account.session else None,
            client=account.client_code,
            secrets=(self._api_secret,),
        )

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        protection = self._protection(request.order_type, request.market_protection)
        data = self.transport.call("place", "POST", "/orders/regular", form=convert.order_form(request, protection))
        order_id = self._order_id("place", data)
        log.info("broker=kite op=place client=%s tag=%s order_id=%s", self.account.client_code, request.tag, order_id)
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
        if quantity is not None and quantity <= 0:
            raise InvalidInput("Quantity must be a positive whole number")
        form: dict[str, str] = {}
        if quantity is not None:
            form["quantity"] = str(quantity)
        if price is not None:
            form["price"] = convert.decimal_text(price)
        if trigger_price is not None:
            form["trigger_price"] = convert.decimal_text(trigger_price)
        if order_type is not None:
            form["order_type"] = order_type.value
            protection = self._protection(order_type, None)
            if protection is not None:
                form["market_protection"] = convert.decimal_text(protection)
        if validity is not None:
            form["validity"] = validity.value
        data = self.transport.call("modify", "PUT", f"/orders/regular/{urlquote(order_id, safe='')}", form=form)
        return self._order_id("modify", data)

    def cancel(self, order_id: str) -> str:
        data = self.transport.call("cancel", "DELETE", f"/orders/regular/{urlquote(order_id, safe='')}")
        return self._order_id("cancel", data)

    def order_book(self) -> list[Order]:
        return self._parse("orders", convert.order_from_kite, self.transport.call("orders", "GET", "/orders"))

    def orders_by_tag(self, tag: str) -> list[Order]:
        rows = self.transport.call("orders", "GET", "/orders")
        return self._parse(
            "orders", convert.order_from_kite, [row for row in _rows("orders", rows) if convert.carries_tag(row, tag)]
        )

    # ------------------------------------------------------------------ portfolio and account

    def trades(self) -> list[Trade]:
        return self._parse("trades", convert.trade_from_kite, self.transport.call("trades", "GET", "/trades"))

    def positions(self) -> list[Position]:
        data = self.transport.call("positions", "GET", "/portfolio/positions")
        net = data.get("net") if isinstance(data, dict) else None
        return self._parse("positions", convert.position_from_kite, net)

    def holdings(self) -> list[Holding]:
        return self._parse(
            "holdings", convert.holding_from_kite, self.transport.call("holdings", "GET", "/portfolio/holdings")
        )

    def funds(self) -> Funds:
        data = self.transport.call("funds", "GET", "/user/margins")
        return self._parse_one("funds", convert.funds_from_kite, data)

    # ------------------------------------------------------------------ market data

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        keys = list(dict.fromkeys(ref.key for ref in instruments))
        quotes: dict[str, Quote] = {}
        for start in range(0, len(keys), QUOTE_BATCH):
            batch = [("i", key) for key in keys[start : start + QUOTE_BATCH]]
            data = self.transport.call("quotes", "GET", "/quote", query=batch)
            if not isinstance(data, dict):
                raise Unavailable(f"Kite sent an unreadable quote answer; {outcome_of('quotes')}")
            for key, row in data.items():  # Kite leaves out instruments it does not know
                quotes[key] = self._parse_one("quotes", lambda r, k=key: convert.quote_from_kite(k, r), row)
        return quotes

    def historical_candles(
        self, instrument: InstrumentRef, interval: int, start: datetime, end: datetime
    ) -> list[HistoricalBar]:
        """GET /instruments/historical/{instrument_token}/{interval}, in requests no longer than Kite allows
        for the interval (60 days of minutes, 100 of 3/5/10 minutes, 200 of 15/30, 400 of 60) and no more
        than three a second per API key; a 429 waits and asks again."""
        word = convert.HISTORICAL_INTERVALS.get(interval)
        if word is None:
            raise InvalidInput(f"Kite has no {interval}-minute candles")
        if not instrument.instrument_token:
            raise InvalidInput(f"{instrument.key} has no Kite instrument token; load Kite's instrument list")
        span = timedelta(days=convert.HISTORICAL_MAX_DAYS[interval]) - timedelta(minutes=1)
        bars: dict[datetime, HistoricalBar] = {}
        cursor = start
        while cursor <= end:
            upto = min(cursor + span, end)
            query = {"from": convert.kite_time(cursor), "to": convert.kite_time(upto), "continuous": "0", "oi": "0"}
            data = self._historical(f"/instruments/historical/{int(instrument.instrument_token)}/{word}", query)
            rows = data.get("candles") if isinstance(data, dict) else None
            for bar in self._parse("historical", convert.candle_from_kite, rows):
                if start <= bar.start <= end:
                    bars[bar.start] = bar
            cursor = upto + timedelta(minutes=1)
        return [bars[key] for key in sorted(bars)]

    def _historical(self, path: str, query: Mapping[str, str]) -> Any:
        for attempt in range(HISTORICAL_RETRIES + 1):
            _HISTORY_PACE.wait(self.api_key)
            try:
                return self.transport.call("historical", "GET", path, query=dict(query))
            except RateLimited as exc:
                if attempt == HISTORICAL_RETRIES:
                    raise
                clock.sleep(exc.retry_after or 1.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        if not requests:
            return Decimal("0")
        body = exact_json([convert.margin_row(r) for r in requests])
        data = self.transport.call("margins", "POST", "/margins/orders", json_text=body)
        return sum((convert.money(row.get("total")) for row in _rows("margins", data)), Decimal("0"))

    def instruments(self) -> list[InstrumentRow]:
        rows: list[InstrumentRow] = []
        for exchange in self.options.get("exchanges", ("NSE",)):
            body = self.transport.call("instruments", "GET", f"/instruments/{exchange}", csv=True)
            if not isinstance(body, bytes):
                raise Unavailable(f"Kite sent an unreadable instrument list; {outcome_of('instruments')}")
            rows.extend(self._parse_one("instruments", convert.instruments_from_csv, body))
        return rows

    # ------------------------------------------------------------------ login flow

    def login_url(self, redirect_uri: str, state: str) -> str:
        """Kite sends the browser back to the redirect URL registered for the API key, not to
        `redirect_uri`; `state` rides along in `redirect_params`, which Kite appends unchanged."""
        base = self.options.get("login_url", LOGIN_URL).rstrip("/")
        query = urlencode({"api_key": self.api_key, "v": "3", "redirect_params": urlencode({"state": state})})
        return f"{base}/connect/login?{query}"

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        request_token = params.get("request_token", "")
        if params.get("status", "success") != "success" or not request_token:
            raise Rejected("Kite login did not complete; log in to Kite again")
        checksum = hashlib.sha256((self.api_key + request_token + self._api_secret).encode()).hexdigest()
        data = self.transport.call(
            "login",
            "POST",
            "/session/token",
            auth=False,
            form={"api_key": self.api_key, "request_token": request_token, "checksum": checksum},
        )
        if not isinstance(data, dict) or not data.get("access_token"):
            raise Unavailable("Kite answered the login without an access token; log in to Kite again")
        user_id = str(data.get("user_id") or "")
        if self.account.client_code and user_id and user_id != self.account.client_code:
            raise Rejected(
                f"Kite logged in user {user_id}, but this client is {self.account.client_code}; "
                "log in with the client's own Kite user id"
            )
        self.transport.access_token = data["access_token"]
        log.info("broker=kite op=login client=%s user_id=%s", self.account.client_code, user_id)
        return BrokerSession(
            access_token=data["access_token"],
            expires_at=self.session_expires_at(utcnow()),
            extra={"user_id": user_id, "login_time": data.get("login_time")},
        )

    # ------------------------------------------------------------------ helpers

    def _protection(self, order_type: OrderType, wanted: Decimal | None) -> Decimal | None:
        """Market protection for MARKET and SL-M orders: required and non-zero since 1 Apr 2026."""
        if order_type not in _MARKET_LIKE:
            return None
        value = wanted if wanted is not None else Decimal(str(self.options.get("market_protection", AUTO_PROTECTION)))
        if value != AUTO_PROTECTION and not Decimal("0") < value <= Decimal("100"):
            raise InvalidInput("Kite market protection must be -1 (automatic) or above 0 up to 100 %")
        return value

    def _order_id(self, op: str, data: Any) -> str:
        order_id = data.get("order_id") if isinstance(data, dict) else None
        if not order_id:
            log.warning("broker=kite op=%s client=%s status=200-no-order-id", op, self.account.client_code)
            raise Unavailable(f"Kite answered without an order id; {outcome_of(op)}")
        return str(order_id)

    def _parse(self, op: str, parse: Callable[[Any], T], rows: Any) -> list[T]:
        return [self._parse_one(op, parse, row) for row in _rows(op, rows)]

    def _parse_one(self, op: str, parse: Callable[[Any], T], row: Any) -> T:
        try:
            return parse(row)
        except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError) as exc:
            log.warning(
                "broker=kite op=%s client=%s status=200-unreadable error=%s",
                op,
                self.account.client_code,
                type(exc).__name__,
            )
            raise Unavailable(f"Kite sent an unreadable {op} answer; {outcome_of(op)}") from None


class _Pace:
    """At most HISTORICAL_PER_SECOND historical requests a second per API key from this process: each
    waits until a second has passed since the request that many before it."""

    def __init__(self, per_second: int):
        self.per_second = per_second
        self._lock = threading.Lock()
        self._sent: dict[str, list[float]] = {}

    def wait(self, key: str) -> None:
        with self._lock:
            sent = self._sent.setdefault(key, [])
            now = clock.monotonic()
            if len(sent) >= self.per_second:
                pause = sent[-self.per_second] + 1.0 - now
                if pause > 0:
                    clock.sleep(pause)
                    now = clock.monotonic()
            sent.append(now)
            del sent[: -self.per_second]


_HISTORY_PACE = _Pace(HISTORICAL_PER_SECOND)


def _rows(op: str, data: Any) -> Iterable[Any]:
    if not isinstance(data, list):
        raise Unavailable(f"Kite sent an unreadable {op} answer; {outcome_of(op)}")
    return data
