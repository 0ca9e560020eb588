"""DhanHQ v2 adapter (reference/brokers-upstox-dhan.md §2).

One Dhan client id per desk client (the client code); every call carries its 24-hour access token
(`access-token`) and the client id (`client-id`). Login is a form with two ways in: paste the
access token generated on web.dhan.co (checked with GET /v2/profile, whose `tokenValidity` gives
the expiry), or the client's PIN and authenticator TOTP (POST auth.dhan.co/app/generateAccessToken,
query parameters). Neither the token typed in nor the PIN is kept; only the session is stored.

Decisions made on purpose:
- The desk's order tag is sent as Dhan's `correlationId` (≤30 of [a-zA-Z0-9 _-], per a third-party
  digest; the desk's tags are 10 letters and digits). `orders_by_tag` asks
  GET /v2/orders/external/{tag}: one call when the order is there. When Dhan answers that lookup
  with an error, the order book decides (an order still in TRANSIT might not be indexed yet), so
  "absent" is never concluded from one error answer.
- Dhan's modify wants the order's full shape, so the current row is read first and unchanged
  fields are echoed.
- A place answered `orderStatus: REJECTED` (the RMS refused it at once) is raised as Rejected with
  the order's `omsErrorDescription` (one more read).
- Quotes go through /v2/marketfeed/quote, up to 1000 instruments a call, paced to Dhan's 1 call/s.
- Candles: /v2/charts/intraday for 1/5/15/25/60-minute bars, in requests of at most 90 days.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from webapp.brokers import http
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
from webapp.brokers.dhan import mapping, stream
from webapp.brokers.dhan.wire import BROKER, DhanWire
from webapp.brokers.pacing import Pacer
from webapp.timeutil import IST, UTC, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_HOURS = 24
QUOTE_BATCH = 1000
INTRADAY_INTERVALS = (1, 5, 15, 25, 60)
INTRADAY_MAX_DAYS = 90
NEITHER = "Paste the access token from web.dhan.co, or enter your PIN and the TOTP from your authenticator app"
READ_NOUNS = {
    "order_book": "an order book",
    "order": "an order",
    "trade_book": "a trade book",
    "positions": "positions",
    "holdings": "holdings",
    "funds": "fund limits",
    "quotes": "quotes",
    "candles": "candles",
    "margin": "a margin answer",
}

_QUOTE_PACE = Pacer()  # per Dhan client id, for the whole process


class DhanBroker(Broker):
    name = "dhan"
    label = "Dhan"
    credential_fields = ()  # the client code is the Dhan client id; nothing else is needed to log in
    rate_limits = RateLimits(orders_per_second=10, orders_per_minute=250, orders_per_day=7000, reads_per_second=20)
    tag_max_length = 30  # correlationId; the desk's tags are 10 letters and digits
    login_kind = "form"
    login_fields = (
        CredentialField(
            "access_token",
            "Access token",
            secret=True,
            required=False,
            help="Generated on web.dhan.co → My Profile → Access DhanHQ APIs (valid 24 hours); or leave "
            "empty and use PIN + TOTP",
        ),
        CredentialField("pin", "PIN", secret=True, required=False, help="Your Dhan login PIN (with the TOTP)"),
        CredentialField(
            "totp", "TOTP", secret=True, required=False, help="The 6-digit code from your authenticator app"
        ),
    )
    session_expiry_ist = time(6, 0)  # unused for the expiry: a Dhan token lives 24 h from its issue
    settings = {
        "DHAN_API_URL": "https://api.dhan.co",
        "DHAN_AUTH_URL": "https://auth.dhan.co",
        "DHAN_INSTRUMENTS_URL": "https://images.dhan.co/api-data/api-scrip-master.csv",
        **stream.STREAM_SETTINGS,
    }
    config_options = (
        ConfigOption("base_url", "DHAN_API_URL", required=True),
        ConfigOption("auth_url", "DHAN_AUTH_URL", "https://auth.dhan.co"),
        ConfigOption("instruments_url", "DHAN_INSTRUMENTS_URL", "https://images.dhan.co/api-data/api-scrip-master.csv"),
        TIMEOUT_OPTION,
    )
    capabilities = Capabilities(quotes=True, streaming=True, historical_candles=True)
    quote_preference = 30  # 1000 instruments a call, but one call a second
    stream_key = "exchange_token"

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        self._session = account.session
        self._client_id = str(account.client_code)
        self._wire = DhanWire(client_id=self._client_id, options={**self.options, "base_url": self._api_root()})
        interval = self.options.get("quote_interval")
        self._quote_interval = 1.05 if interval is None else float(interval)

    def _api_root(self) -> str:
        return str(self.options.get("base_url") or "https://api.dhan.co").rstrip("/") + "/v2"

    @classmethod
    def stream_token(cls, instrument: InstrumentRef) -> int | str | None:
        return stream.stream_token(instrument)

    @classmethod
    def open_stream(cls, account: Account, config: Mapping[str, Any]) -> Any:
        return stream.open_stream(account, config)

    def close(self) -> None:
        """Nothing to free: the connection pool is the process's, shared by every client."""

    # ------------------------------------------------------------------ plumbing

    def _token(self) -> str:
        session = self._session
        if session is None or not session.access_token:
            raise AuthExpired(f"{self.label} is not logged in for {self._client_id}; log in again")
        if session.expires_at is not None and session.expires_at <= utcnow():
            raise AuthExpired(f"{self.label} access token expired; log in again")
        return session.access_token

    def _call(self, op: str, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self._wire.call(op, method, path, token=self._token(), body=body)

    def _parse(self, op: str, parse: Callable[[Any], T], data: Any) -> T:
        try:
            return parse(data)
        except (KeyError, ValueError, TypeError, InvalidOperation, AttributeError) as exc:
            log.warning("broker=dhan op=%s client=%s malformed=%s", op, self._client_id, type(exc).__name__)
            raise Unavailable(
                f"{BROKER} sent {READ_NOUNS.get(op, 'an answer')} the desk cannot read; try again"
            ) from None

    def _rows(self, op: str, path: str, parse: Callable[[Any], T]) -> list[T]:
        data = self._call(op, "GET", path)
        if data is None or data == {}:
            return []
        rows = [data] if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise Unavailable(f"{BROKER} sent {READ_NOUNS.get(op, 'an answer')} the desk cannot read; try again")
        return [self._parse(op, parse, row) for row in rows]

    # ------------------------------------------------------------------ login

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        token = str(params.get("access_token") or "").strip()
        pin = str(params.get("pin") or "").strip()
        totp = str(params.get("totp") or "").strip()
        if not self._client_id:
            raise InvalidInput("Save the Dhan client id as the client's code first")
        if token:
            expires_at = self._check_token(token)
        elif pin and totp:
            if not (len(totp) == 6 and totp.isdigit()):
                raise InvalidInput("The TOTP is the 6-digit code from your authenticator app")
            token, expires_at = self._generate_token(pin, totp)
        else:
            raise InvalidInput(NEITHER)
        self._session = BrokerSession(access_token=token, expires_at=expires_at, extra={"client_id": self._client_id})
        return self._session

    def _check_token(self, token: str) -> datetime:
        """GET /v2/profile with the pasted token: valid for this client id, and until when."""
        data = self._wire.call("login", "GET", "/profile", token=token, login=True)
        if not isinstance(data, dict) or str(data.get("dhanClientId") or "") != self._client_id:
            raise Rejected(f"That access token does not belong to Dhan client {self._client_id}")
        validity = _parse_ist(str(data.get("tokenValidity") or ""), ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S"))
        return validity or utcnow() + timedelta(hours=TOKEN_HOURS)

    def _generate_token(self, pin: str, totp: str) -> tuple[str, datetime]:
        auth_url = str(self.options.get("auth_url") or "https://auth.dhan.co").rstrip("/")
        data = self._wire.call(
            "login",
            "POST",
            "",
            token="",
            url=auth_url + "/app/generateAccessToken",
            query={"dhanClientId": self._client_id, "pin": pin, "totp": totp},
            login=True,
        )
        token = str(data.get("accessToken") or "") if isinstance(data, dict) else ""
        if not token:
            message = str(data.get("message") or data.get("errorMessage") or "") if isinstance(data, dict) else ""
            raise Rejected(message or f"{BROKER} answered the login without a token")
        expiry = _parse_ist(str(data.get("expiryTime") or ""), ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"))
        return token, expiry or utcnow() + timedelta(hours=TOKEN_HOURS)

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        data = self._call("place", "POST", "/orders", mapping.place_body(request, self._client_id))
        if isinstance(data, list) and len(data) == 1:  # a sliced answer of one
            data = data[0]
        order_id = str(data.get("orderId") or "").strip() if isinstance(data, dict) else ""
        if not order_id:  # never invent an id: the tag lookup decides whether the order exists
            log.warning("broker=dhan op=place client=%s success_without_order_id=1", self._client_id)
            raise Unavailable(f"{BROKER} accepted the order but sent no order id; the order may or may not be placed")
        if str(data.get("orderStatus") or "").upper() == "REJECTED":
            raise Rejected(self._rejection_reason(order_id))
        return order_id

    def _rejection_reason(self, order_id: str) -> str:
        try:
            row = self._order_row(order_id)
        except Exception:  # noqa: BLE001 - the rejection stands; only its wording is missing
            return f"{BROKER} rejected the order ({order_id})"
        return str(row.get("omsErrorDescription") or "") or f"{BROKER} rejected the order ({order_id})"

    def _order_row(self, order_id: str) -> Mapping[str, Any]:
        data = self._call("order", "GET", f"/orders/{order_id}")
        if isinstance(data, list):  # the docs show a list of one in places
            data = data[0] if data else None
        if not isinstance(data, dict) or "orderId" not in data:
            raise Unavailable(f"{BROKER} sent an order the desk cannot read; try again")
        return data

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
        row = self._order_row(order_id)
        body = mapping.modify_body(
            row, quantity=quantity, price=price, trigger_price=trigger_price, order_type=order_type, validity=validity
        )
        data = self._call("modify", "PUT", f"/orders/{order_id}", body)
        return str(data.get("orderId") or order_id) if isinstance(data, dict) else order_id

    def cancel(self, order_id: str) -> str:
        data = self._call("cancel", "DELETE", f"/orders/{order_id}")
        return str(data.get("orderId") or order_id) if isinstance(data, dict) else order_id

    def order_book(self) -> list[Order]:
        return self._rows("order_book", "/orders", mapping.order_from_row)

    def orders_by_tag(self, tag: str) -> list[Order]:
        """GET /v2/orders/external/{tag}; an error answer there falls back to the order book."""
        try:
            data = self._call("order", "GET", f"/orders/external/{tag}")
        except Rejected:
            return [o for o in self.order_book() if o.tag == tag]
        rows = data if isinstance(data, list) else [data] if isinstance(data, dict) and data else []
        orders = [self._parse("order", mapping.order_from_row, row) for row in rows]
        return [o for o in orders if o.tag == tag]

    # ------------------------------------------------------------------ portfolio

    def trades(self) -> list[Trade]:
        return self._rows("trade_book", "/trades", mapping.trade_from_row)

    def positions(self) -> list[Position]:
        return self._rows("positions", "/positions", mapping.position_from_row)

    def holdings(self) -> list[Holding]:
        try:
            return self._rows("holdings", "/holdings", mapping.holding_from_row)
        except Rejected as exc:  # Dhan answers an empty demat with an error (DH-1111 per a 3p report)
            if "no holdings" in exc.reason.lower() or "DH-1111" in exc.reason:
                return []
            raise

    def funds(self) -> Funds:
        data = self._call("funds", "GET", "/fundlimit")
        return self._parse("funds", mapping.funds_from_row, data)

    # ------------------------------------------------------------------ market data

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        by_segment: dict[tuple[str, str], InstrumentRef] = {}
        for ref in instruments:
            by_segment[(mapping.segment(ref.exchange), str(int(ref.exchange_token)))] = ref
        keys = list(by_segment)
        quotes: dict[str, Quote] = {}
        for start in range(0, len(keys), QUOTE_BATCH):
            batch = keys[start : start + QUOTE_BATCH]
            body: dict[str, list[int]] = {}
            for seg, security_id in batch:
                body.setdefault(seg, []).append(int(security_id))
            _QUOTE_PACE.wait(self._client_id, 1, self._quote_interval)
            answer = self._call("quotes", "POST", "/marketfeed/quote", body)
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, dict):
                raise Unavailable(f"{BROKER} sent quotes the desk cannot read; try again")
            for seg, security_id in batch:
                entry = (data.get(seg) or {}).get(security_id)
                if entry is None:
                    continue
                ref = by_segment[(seg, security_id)]
                quotes[ref.key] = self._parse(
                    "quotes", lambda e, r=ref: mapping.quote_from_data(r.exchange, r.tradingsymbol, e), entry
                )
        return quotes

    def historical_candles(
        self, instrument: InstrumentRef, interval: int, start: datetime, end: datetime
    ) -> list[HistoricalBar]:
        """POST /v2/charts/intraday in requests of at most 90 days."""
        if interval not in INTRADAY_INTERVALS:
            raise InvalidInput(f"Dhan has no {interval}-minute candles (1, 5, 15, 25 or 60)")
        base = {
            "securityId": str(int(instrument.exchange_token)),
            "exchangeSegment": mapping.segment(instrument.exchange),
            "instrument": "EQUITY",
            "interval": str(interval),
            "oi": False,
        }
        span = timedelta(days=INTRADAY_MAX_DAYS) - timedelta(minutes=1)
        bars: dict[datetime, HistoricalBar] = {}
        cursor = start
        while cursor <= end:
            upto = min(cursor + span, end)
            body = {**base, "fromDate": _ist_text(cursor), "toDate": _ist_text(upto)}
            data = self._call("candles", "POST", "/charts/intraday", body)
            for bar in self._parse("candles", lambda d: mapping.bars_from_columns(d, interval), data):
                if start <= bar.start <= end:
                    bars[bar.start] = bar
            cursor = upto + timedelta(minutes=1)
        return [bars[key] for key in sorted(bars)]

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        """POST /v2/margincalculator for each order; the sum of their totalMargin."""
        total = Decimal("0")
        for request in requests:
            body = {
                "exchangeSegment": mapping.segment(request.exchange),
                "transactionType": request.side.value,
                "quantity": request.quantity,
                "productType": mapping.PRODUCTS[request.product],
                "securityId": str(int(request.exchange_token)),
                "price": mapping.wire_price(request.price),
                "triggerPrice": mapping.wire_price(request.trigger_price),
            }
            data = self._call("margin", "POST", "/margincalculator", body)
            total += self._parse("margin", lambda d: mapping.money(d["totalMargin"]), data)
        return total

    def instruments(self) -> list[InstrumentRow]:
        """The compact scrip master (a public CSV): NSE and BSE cash equities."""
        url = str(self.options.get("instruments_url") or self.settings["DHAN_INSTRUMENTS_URL"])
        timeout = max(float(self.options.get("timeout") or 7), 30.0)
        try:
            response = http.send("GET", url, headers={"Accept": "text/csv"}, timeout=timeout)
        except http.TransportError:
            raise Unavailable(f"{BROKER}'s scrip master could not be downloaded; try again") from None
        if response.status != 200:
            raise Unavailable(f"{BROKER}'s scrip master answered HTTP {response.status}; try again")
        rows = []
        for row in csv.DictReader(io.StringIO(response.text)):
            parsed = mapping.instrument_from_csv(row)
            if parsed is not None:
                rows.append(parsed)
        return rows


def _parse_ist(text: str, formats: tuple[str, ...]) -> datetime | None:
    for fmt in formats:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=IST).astimezone(UTC)
        except ValueError:
            continue
    return None


def _ist_text(moment: datetime) -> str:
    return moment.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")
