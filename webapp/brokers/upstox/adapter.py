"""Upstox API adapter (v2 reads, v3 orders, v3 candles, the v3 market-data feed).

Login is OAuth: the browser goes to Upstox's authorization dialog with the app's API key
(client_id) and the desk's callback as redirect_uri, comes back with `?code=&state=`, and the job
exchanges the code, form-encoded with the API secret, for an access token that dies at 03:30 IST
(reference/brokers-upstox-dhan.md §1.3).

Decisions made here on purpose:
- Orders go through v3 place/modify/cancel (`/v3/order/...` on the order host): v2 place is marked
  deprecated in Upstox's docs and only v3 takes `market_protection`, sent -1 (Upstox's automatic
  protection) on MARKET and SL-M orders unless the request names a percentage. `slice` is sent false: one
  desk child is one broker order (a sliced order would answer several ids for one tag).
- Idempotency: the desk's tag (≤ 10 letters/digits; Upstox documents no limit) rides in `tag`.
  A lost place answer is Unavailable; `orders_by_tag` reads GET /v2/order/history?tag= (every
  transition of every order with the tag) and keeps each order's last row.
- Equities are addressed by "NSE_EQ|<ISIN>". Without an ISIN (Kite's master has none) the key comes
  from Upstox's own daily instrument file by exchange token (keys.py); an instrument the file does not
  list is InvalidInput for orders and left unanswered by quotes.
- NRML is sent as D (Upstox's carry-forward product for F&O); D reads back as CNC.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

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
from webapp.brokers.upstox import keys, mapping, stream
from webapp.brokers.upstox.wire import API_URL, BROKER, NOT_FOUND, UpstoxError, UpstoxWire
from webapp.timeutil import IST, UTC, utcnow

log = logging.getLogger(__name__)

DIALOG_PATH = "/v2/login/authorization/dialog"
QUOTE_BATCH = 500  # instrument keys per quote call (§1.6)
MAX_HISTORY_CALLS = 40
AUTO_PROTECTION = Decimal(
    "-1"
)  # market price protection chosen by Upstox  # a runaway range is refused rather than paced for minutes
T = TypeVar("T")


class UpstoxBroker(Broker):
    name = "upstox"
    label = "Upstox"
    credential_fields = (
        CredentialField("api_key", "API key", help="The app's API key (client_id) from Upstox's developer apps page"),
        CredentialField("api_secret", "API secret", secret=True),
    )
    # Per user, per API: orders 10/s, 500/min, 2000 per 30 min; other APIs 50/s (§1.7).
    rate_limits = RateLimits(orders_per_second=10, orders_per_minute=500, reads_per_second=50)
    tag_max_length = 10
    login_kind = "redirect"
    login_callback_token = "code"  # OAuth's authorization code
    session_expiry_ist = time(3, 30)
    settings = {
        "UPSTOX_API_URL": API_URL,
        "UPSTOX_ORDER_URL": "",
        "UPSTOX_ASSETS_URL": "",
        **stream.STREAM_SETTINGS,
    }
    config_options = (
        ConfigOption("base_url", "UPSTOX_API_URL", required=True),
        # empty: Upstox's HFT host for the real API, the API URL itself otherwise (an emulator)
        ConfigOption("order_url", "UPSTOX_ORDER_URL"),
        ConfigOption("assets_url", "UPSTOX_ASSETS_URL"),
        TIMEOUT_OPTION,
    )
    capabilities = Capabilities(quotes=True, streaming=True, historical_candles=True)
    quote_preference = 15
    stream_key = "instrument_key"

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        self._api_key = str(account.credentials.get("api_key") or "")
        self._api_secret = str(account.credentials.get("api_secret") or "")
        self._session = account.session
        self._wire = UpstoxWire(client_code=account.client_code, options=self.options)

    # ------------------------------------------------------------------ stream (webapp/brokers/upstox/stream.py)

    @classmethod
    def stream_token(cls, instrument: InstrumentRef) -> int | str | None:
        return stream.stream_token(instrument)

    @classmethod
    def open_stream(cls, account: Account, config: Mapping[str, Any]) -> Any:
        return stream.open_stream(account, config)

    # ------------------------------------------------------------------ plumbing

    def _token(self) -> str:
        session = self._session
        if session is None or not session.access_token:
            raise AuthExpired(f"{self.label} is not logged in for {self.account.client_code}; log in again")
        if session.expires_at is not None and session.expires_at <= utcnow():
            raise AuthExpired(f"{self.label} session expired at 03:30 IST; log in again")
        return session.access_token

    def _call(self, op: str, method: str, path: str, **kwargs: Any) -> Any:
        return self._wire.call(op, method, path, token=self._token(), **kwargs)

    def _key(self, exchange: str, exchange_token: int, isin: str | None) -> str:
        """Upstox's instrument key: from the ISIN when known, else from Upstox's instrument file
        (InvalidInput when the file does not list the instrument; Unavailable when it cannot be had)."""
        if (isin or "").strip():
            return mapping.instrument_key(exchange, isin)
        if (exchange or "").upper() not in mapping.SEGMENTS:
            mapping.instrument_key(exchange, isin)  # raises: not a cash exchange here
        key = keys.instrument_key(self._wire, exchange, exchange_token)
        if key is None:
            raise InvalidInput(
                f"Upstox does not list {exchange} exchange token {exchange_token} in today's instrument file"
            )
        return key

    def _parse(self, op: str, rows: Any, parse: Callable[[Any], T]) -> list[T]:
        if rows is None:
            return []
        if not isinstance(rows, list):
            raise Unavailable(f"{BROKER} sent a {op.replace('_', ' ')} the desk cannot read; try again")
        try:
            return [parse(row) for row in rows]
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            log.warning("broker=upstox op=%s client=%s malformed_row=%s", op, self.account.client_code, exc)
            raise Unavailable(f"{BROKER} sent a {op.replace('_', ' ')} the desk cannot read; try again") from None

    # ------------------------------------------------------------------ login

    def login_url(self, redirect_uri: str, state: str) -> str:
        if not self._api_key:
            raise InvalidInput(f"{self.label} needs the API key saved on the client first")
        query = urlencode(
            {"client_id": self._api_key, "redirect_uri": redirect_uri, "state": state, "response_type": "code"}
        )
        return f"{self._wire.base_url}{DIALOG_PATH}?{query}"

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        code = str(params.get("code") or "")
        # set by the desk's callback route (the URL login_url was given), never taken from the browser
        redirect_uri = str(params.get("redirect_uri") or "")
        if not code:
            raise Rejected(f"{self.label} login did not complete (no authorization code); log in again")
        if not (self._api_key and self._api_secret):
            raise InvalidInput(f"{self.label} needs the API key and API secret saved on the client first")
        if not redirect_uri:
            raise InvalidInput(f"{self.label} login lost the desk's callback URL; start the login again")
        data = self._wire.token(
            {
                "code": code,
                "client_id": self._api_key,
                "client_secret": self._api_secret,
                "redirect_uri": redirect_uri,
                "grant_type": "authorization_code",
            }
        )
        token = str(data.get("access_token") or "")
        if not token:
            raise Unavailable(f"{BROKER} answered the login without an access token; log in again")
        user_id = str(data.get("user_id") or "")
        if self.account.client_code and user_id and user_id != self.account.client_code:
            raise Rejected(
                f"Upstox logged in user {user_id}, but this client is {self.account.client_code}; "
                "log in with the client's own Upstox account"
            )
        log.info("broker=upstox op=login client=%s user_id=%s", self.account.client_code, user_id)
        self._session = BrokerSession(
            access_token=token, expires_at=self.session_expires_at(utcnow()), extra={"user_id": user_id}
        )
        return self._session

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        key = self._key(request.exchange, request.exchange_token, request.isin)
        body = mapping.place_body(request, key, self._protection(request))
        data = self._call("place", "POST", "/v3/order/place", body=body, order=True, v2=False)
        ids = data.get("order_ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or len(ids) != 1 or not str(ids[0]).strip():
            # never invent an id: the tag lookup decides whether (and which) order exists
            log.warning("broker=upstox op=place client=%s order_ids=%r", self.account.client_code, ids)
            raise Unavailable(
                f"{BROKER} said the order was accepted but sent no single order id; the order may or may not be placed"
            )
        return str(ids[0])

    def _protection(self, request: OrderRequest) -> Decimal | None:
        """Market price protection for MARKET and SL-M orders: -1 (Upstox's automatic protection)
        unless the request names a percentage (0 to 25; 0 is none, Upstox's own default)."""
        if request.order_type not in (OrderType.MARKET, OrderType.SLM):
            return None
        value = request.market_protection
        if value is None:
            value = Decimal(str(self.options.get("market_protection", AUTO_PROTECTION)))
        if value != AUTO_PROTECTION and not Decimal("0") <= value <= Decimal("25"):
            raise InvalidInput("Upstox market protection is -1 (automatic) or 0 to 25 %")
        return value

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
        # v3 modify wants order_type, validity, price and trigger_price every time: what the
        # caller leaves out comes from the order's current row (GET /v2/order/details).
        row = self._call("order", "GET", "/v2/order/details", query={"order_id": order_id})
        try:
            current = mapping.order_from_row(row)
            current_validity = Validity(str(row.get("validity") or "DAY"))
        except (AttributeError, KeyError, ValueError, TypeError, InvalidOperation):
            raise Unavailable(f"{BROKER} sent order {order_id} in a form the desk cannot read; try again") from None
        kind = order_type or current.order_type
        zero = Decimal("0")
        new_price = price if price is not None else current.price or zero
        new_trigger = trigger_price if trigger_price is not None else current.trigger_price or zero
        body: dict[str, Any] = {
            "order_id": order_id,
            "order_type": kind.value,
            "validity": (validity or current_validity).value,
            "price": new_price if kind in (OrderType.LIMIT, OrderType.SL) else zero,
            "trigger_price": new_trigger if kind in (OrderType.SL, OrderType.SLM) else zero,
        }
        if quantity is not None:
            body["quantity"] = quantity
        data = self._call("modify", "PUT", "/v3/order/modify", body=body, order=True, v2=False)
        return str((data or {}).get("order_id") or order_id)

    def cancel(self, order_id: str) -> str:
        data = self._call("cancel", "DELETE", "/v3/order/cancel", query={"order_id": order_id}, order=True, v2=False)
        return str((data or {}).get("order_id") or order_id)

    def order(self, order_id: str) -> Order:
        """One order's latest state (GET /v2/order/details)."""
        data = self._call("order", "GET", "/v2/order/details", query={"order_id": order_id})
        return self._parse("order", [data], mapping.order_from_row)[0]

    def order_book(self) -> list[Order]:
        return self._parse(
            "order_book", self._call("order_book", "GET", "/v2/order/retrieve-all"), mapping.order_from_row
        )

    def orders_by_tag(self, tag: str) -> list[Order]:
        """Every order carrying `tag` today, from the order history (one row per transition; the
        last row of each order is its state). Upstox answering "order not found" means none."""
        try:
            rows = self._wire.call(
                "order_history", "GET", "/v2/order/history", token=self._token(), query={"tag": tag}, raw=True
            )
        except UpstoxError as exc:
            if exc.code == NOT_FOUND:
                return []
            raise Rejected(f"{BROKER} refused the order lookup: {exc.message} ({exc.code})") from None
        latest: dict[str, Any] = {}
        for row in rows or []:
            if isinstance(row, dict) and row.get("tag") == tag and row.get("order_id"):
                latest[str(row["order_id"])] = row
        if rows and not latest:
            # Upstox answered rows for this tag that do not carry it: "none of them is ours" would be a
            # guess, and a wrong "absent" means a second order; the desk must not decide on it.
            log.warning(
                "broker=upstox op=order_history client=%s rows_without_tag=%d", self.account.client_code, len(rows)
            )
            raise Unavailable(f"{BROKER} answered the tag lookup with orders that do not carry the tag; try again")
        return self._parse("order_history", list(latest.values()), mapping.order_from_row)

    # ------------------------------------------------------------------ portfolio

    def trades(self) -> list[Trade]:
        rows = self._call("trade_book", "GET", "/v2/order/trades/get-trades-for-day")
        return self._parse("trade_book", rows, mapping.trade_from_row)

    def positions(self) -> list[Position]:
        rows = self._call("positions", "GET", "/v2/portfolio/short-term-positions")
        return self._parse("positions", rows, mapping.position_from_row)

    def holdings(self) -> list[Holding]:
        rows = self._call("holdings", "GET", "/v2/portfolio/long-term-holdings")
        return self._parse("holdings", rows, mapping.holding_from_row)

    def funds(self) -> Funds:
        data = self._call("funds", "GET", "/v2/user/get-funds-and-margin", query={"segment": "SEC"})
        try:
            return mapping.funds_from_data(data)
        except (KeyError, ValueError, TypeError, InvalidOperation):
            raise Unavailable(f"{BROKER} sent funds the desk cannot read; try again") from None

    # ------------------------------------------------------------------ market data

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        """Full quotes (GET /v2/market-quote/quotes), 500 keys a call. The answer is keyed
        "NSE_EQ:INFY"; each row names its instrument key, which maps it back to the request. An
        instrument without an ISIN is named by Upstox's instrument file; one the file does not list (or
        not on a cash exchange) is left unanswered (repricing asks the next broker for it)."""
        by_key: dict[str, InstrumentRef] = {}
        for ref in instruments:
            try:
                by_key[self._key(ref.exchange, ref.exchange_token, ref.isin)] = ref
            except InvalidInput:  # unlisted, or not a cash exchange: left for another broker to answer
                continue
        keys = list(by_key)
        quotes: dict[str, Quote] = {}
        for start in range(0, len(keys), QUOTE_BATCH):
            batch = keys[start : start + QUOTE_BATCH]
            data = self._call("quotes", "GET", "/v2/market-quote/quotes", query={"instrument_key": ",".join(batch)})
            if not isinstance(data, dict):
                raise Unavailable(f"{BROKER} sent quotes the desk cannot read; try again")
            for row in data.values():
                ref = by_key.get(str((row or {}).get("instrument_token") or ""))
                if ref is None:
                    continue
                try:
                    quotes[ref.key] = mapping.quote_from_data(ref, row)
                except (KeyError, ValueError, TypeError, InvalidOperation):
                    raise Unavailable(f"{BROKER} sent an unreadable quote for {ref.key}; try again") from None
        return quotes

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        """Upstox's margin calculator (POST /v2/charges/margin) for the whole basket."""
        if not requests:
            return Decimal("0")
        lines = [
            {
                "instrument_key": self._key(r.exchange, r.exchange_token, r.isin),
                "quantity": r.quantity,
                "product": mapping.PRODUCTS[r.product],
                "transaction_type": r.side.value,
                "price": r.price if r.price is not None and r.order_type in (OrderType.LIMIT, OrderType.SL) else 0,
            }
            for r in requests
        ]
        data = self._call("margin", "POST", "/v2/charges/margin", body={"instruments": lines})
        try:
            return mapping.dec(data.get("final_margin", data.get("required_margin")))
        except (AttributeError, ValueError, TypeError, InvalidOperation):
            raise Unavailable(f"{BROKER} sent a margin the desk cannot read; try again") from None

    def historical_candles(
        self, instrument: InstrumentRef, interval: int, start: datetime, end: datetime
    ) -> list[HistoricalBar]:
        """v3 candles: `interval` minutes (1-300) or one day (1440). Upstox serves up to a month
        per call for ≤ 15 minutes, a quarter above, a decade of days; longer ranges are split."""
        if interval == 1440:
            unit, step, span = "days", 1, timedelta(days=3650)
        elif 1 <= interval <= 300:
            unit, step = "minutes", interval
            span = timedelta(days=28 if interval <= 15 else 88)
        else:
            raise InvalidInput(f"{self.label} candles are 1 to 300 minutes or one day")
        key = quote(self._key(instrument.exchange, instrument.exchange_token, instrument.isin), safe="")
        first, last = start.astimezone(IST).date(), end.astimezone(IST).date()
        bars: dict[datetime, HistoricalBar] = {}
        chunk_start, calls = first, 0
        while chunk_start <= last:
            chunk_end = min(last, chunk_start + span)
            calls += 1
            if calls > MAX_HISTORY_CALLS:
                raise InvalidInput(f"{self.label} candles: that range is too long to fetch at once")
            path = f"/v3/historical-candle/{key}/{unit}/{step}/{chunk_end.isoformat()}/{chunk_start.isoformat()}"
            data = self._call("candles", "GET", path, v2=False)
            for bar in self._parse("candles", (data or {}).get("candles"), _bar):
                if start <= bar.start <= end:
                    bars[bar.start] = bar
            chunk_start = chunk_end + timedelta(days=1)
        return [bars[k] for k in sorted(bars)]

    def instruments(self) -> list[InstrumentRow]:
        """NSE cash instruments from Upstox's JSON.gz file (no auth)."""
        raw = self._wire.download(self._wire.instruments_url)
        try:
            records = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw, parse_float=Decimal)
        except (OSError, ValueError):
            raise Unavailable(f"{BROKER}'s instrument file is unreadable; try again") from None
        rows = self._parse("instruments", records, mapping.instrument_from_record)
        return [row for row in rows if row is not None]

    def close(self) -> None:
        """Nothing to free: the connection pool is the process's (webapp/brokers/http.py)."""


def _bar(row: Any) -> HistoricalBar:
    stamp, o, h, low, c, volume = row[:6]
    start = datetime.fromisoformat(str(stamp))
    if start.tzinfo is None:
        start = start.replace(tzinfo=IST)
    return HistoricalBar(
        start=start.astimezone(UTC),
        open=mapping.dec(o),
        high=mapping.dec(h),
        low=mapping.dec(low),
        close=mapping.dec(c),
        volume=int(volume),
    )
