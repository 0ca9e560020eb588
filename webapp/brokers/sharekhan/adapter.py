"""ShareKhan API ("ShareConnect") adapter: REST over webapp/brokers/http.py, JSON envelopes, AES-GCM login.

ShareKhan orders carry no tag, so an order whose placement outcome is unknown is found again with
`find_order(request, placed_after)`: today's order book filtered on exchange, scrip, side,
quantity and product, placed no earlier than `placed_after` less a clock-skew allowance.
`orders_by_tag` cannot answer and says so (Unavailable) rather than report a false "absent".
"""

from __future__ import annotations

import json
import logging
import time as clock
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from webapp.brokers import http
from webapp.brokers.base import (
    TIMEOUT_OPTION,
    Account,
    AuthExpired,
    Broker,
    BrokerError,
    BrokerSession,
    Capabilities,
    ConfigOption,
    CredentialField,
    Funds,
    Holding,
    InstrumentRef,
    InstrumentRow,
    InvalidInput,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Product,
    Quote,
    RateLimited,
    RateLimits,
    Rejected,
    Side,
    Trade,
    Unavailable,
    Validity,
)
from webapp.brokers.sharekhan import handshake, wire
from webapp.timeutil import UTC, utcnow

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.sharekhan.com"
# What this adapter has always sent (it was built on requests, like ShareKhan's official SDK)
USER_AGENT = "python-requests/2.34.2"
ORDERS_PATH = "/skapi/services/orders"
TOKEN_PATH = "/skapi/services/access/token"
# what a trader is told about the order when the answer is lost
OUTCOME = {
    "place": "; the order may or may not be placed",
    "modify": "; the change may or may not be applied",
    "cancel": "; the order may or may not be cancelled",
}
# error_type values (the SDK's Kite-like scheme) that are the OMS deliberately refusing:
# the SDK documents outages as NetworkException / DataException / GeneralException instead
REFUSALS = frozenset(
    {"InputException", "OrderException", "MarginException", "HoldingException", "UserException", "PermissionException"}
)


class ShareKhan(Broker):
    name = "sharekhan"
    label = "ShareKhan"
    credential_fields = (
        CredentialField("api_key", "API key", help="From ShareKhan's trading-API portal (Create New App)"),
        CredentialField(
            "secret_key", "Secret key", secret=True, help="32 characters; it decrypts ShareKhan's login answer"
        ),
        CredentialField(
            "vendor_key", "Vendor key", secret=True, required=False, help="Only for a vendor (partner) app"
        ),
        CredentialField("version_id", "Version id", required=False, help="e.g. 1005 or 1006, if ShareKhan issued one"),
    )
    # ShareKhan publishes no limit; 10 orders/s is the SEBI/NSE per-account threshold above which
    # API orders need their own algo registration, so the desk never goes beyond it
    rate_limits = RateLimits(orders_per_second=10)
    tag_max_length = None
    login_kind = "redirect"
    # brokers.md gives no ShareKhan expiry hour; NSE requires API sessions to end before each
    # trading day, so the desk's common 06:00 IST is used
    session_expiry_ist = time(6, 0)
    settings = {
        "SHAREKHAN_API_URL": "https://api.sharekhan.com",
        "SHAREKHAN_LOGIN_URL": "https://api.sharekhan.com",
        "SHAREKHAN_WS_URL": "wss://stream.sharekhan.com/skstream/api/stream",
    }
    config_options = (
        ConfigOption("base_url", "SHAREKHAN_API_URL", required=True),
        ConfigOption("login_url", "SHAREKHAN_LOGIN_URL", required=True),
        TIMEOUT_OPTION,
    )
    capabilities = Capabilities(streaming=True)  # no REST quote endpoint: prices come from the stream
    stream_key = "exchange_token"  # the stream subscribes by the exchange's scrip code

    @classmethod
    def open_stream(cls, account: Account, config: Mapping[str, Any]):
        from webapp.brokers.sharekhan.stream import SHAREKHAN_WS_URL, ShareKhanStream

        token = account.session.access_token if account.session else ""
        return ShareKhanStream(
            account.credentials["api_key"], token, ws_url=config.get("SHAREKHAN_WS_URL") or SHAREKHAN_WS_URL
        )

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        self.base_url = str(self.options.get("base_url") or DEFAULT_URL).rstrip("/")
        self.login_base = str(self.options.get("login_url") or DEFAULT_URL).rstrip("/")
        self.timeout = float(self.options.get("timeout", 7))
        self.match_skew = timedelta(seconds=float(self.options.get("match_clock_skew", 5)))

    def close(self) -> None:
        """Nothing to free: the connection pool is the process's, shared by every client
        (webapp/brokers/http.py, which never retries a request)."""

    def __enter__(self) -> ShareKhan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        body = wire.order_body(request, self.account.client_code, self._channel_user())
        return self._order_id("place", self._call("place", "POST", ORDERS_PATH, body))

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
        changes = {
            "quantity": quantity,
            "price": price,
            "trigger_price": trigger_price,
            "order_type": order_type,
            "validity": validity,
        }
        body = wire.change_body(
            self._order_row(order_id), self.account.client_code, self._channel_user(), "MODIFY", changes
        )
        return self._order_id("modify", self._call("modify", "POST", ORDERS_PATH, body))

    def cancel(self, order_id: str) -> str:
        body = wire.change_body(self._order_row(order_id), self.account.client_code, self._channel_user(), "CANCEL", {})
        return self._order_id("cancel", self._call("cancel", "POST", ORDERS_PATH, body))

    def order_book(self) -> list[Order]:
        return [wire.order_from_row(row) for row in self._order_rows("orders")]

    def order_history(self, order_id: str, exchange: str = "NSE") -> list[Order]:
        """Every state the order went through, oldest first (one row per event at ShareKhan)."""
        path = f"/skapi/services/reports/{wire.exchange_code(exchange)}/{self._customer()}/{quote(str(order_id))}"
        return [wire.order_from_row(row) for row in _rows(self._call("history", "GET", path))]

    def orders_by_tag(self, tag: str) -> list[Order]:
        raise Unavailable(
            f"ShareKhan orders carry no tag, so order {tag} cannot be looked up by tag; "
            "it is matched by instrument, side, quantity and time instead"
        )

    def find_order(self, request: OrderRequest, placed_after: datetime) -> list[Order]:
        """Today's orders that could be `request`, placed at or after `placed_after` (aware).

        Matches exchange, scrip code (or symbol), side, original quantity and product (when
        ShareKhan's product code is readable); price is left out on purpose, since a missed
        match would let the desk place the order twice. Oldest first. The caller drops orders
        already bound to another of its orders: one left is this order, none is absent, more
        than one stays unknown.
        """
        if placed_after.tzinfo is None:
            raise InvalidInput("placed_after must be an aware datetime")
        cutoff = placed_after - self.match_skew
        code = wire.exchange_code(request.exchange)
        found = []
        for row in self._order_rows("find"):
            placed_at = wire.parse_ist(row.get("orderDateTime"))
            if _same_order(row, request, code) and (placed_at is None or placed_at >= cutoff):
                found.append(wire.order_from_row(row))
        latest = datetime.max.replace(tzinfo=UTC)
        return sorted(found, key=lambda order: (order.placed_at or latest, order.order_id))

    # ------------------------------------------------------------------ portfolio and account

    def trades(self) -> list[Trade]:
        # ShareKhan has no day trade book (brokers.md §3.3): ask each order that has fills
        fills: list[Trade] = []
        for order in self.order_book():
            if order.filled_quantity > 0:
                fills.extend(self.order_trades(order))
        return fills

    def order_trades(self, order: Order) -> list[Trade]:
        code = wire.EXCHANGE_CODES.get(order.exchange, order.exchange)
        path = f"/skapi/services/orders/{code}/{self._customer()}/{quote(order.order_id)}/trades"
        return [wire.trade_from_row(row, order) for row in _rows(self._call("trades", "GET", path))]

    def positions(self) -> list[Position]:
        data = self._call("positions", "GET", f"/skapi/services/trades/{self._customer()}")
        return [wire.position_from_row(row) for row in _rows(data)]

    def holdings(self) -> list[Holding]:
        data = self._call("holdings", "GET", f"/skapi/services/holdings/{self._customer()}")
        return [wire.holding_from_row(row) for row in _rows(data)]

    def funds(self) -> Funds:
        # Postman asks the limit statement of "NSE"; the equity limit is what the desk spends
        segment = quote(str(self.options.get("funds_exchange", "NSE")))
        data = self._call("funds", "GET", f"/skapi/services/limitstmt/{segment}/{self._customer()}")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]
        if not isinstance(data, dict):
            raise Unavailable("ShareKhan sent an unreadable limit statement")
        return wire.funds_from_data(data)

    # ------------------------------------------------------------------ market data

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        raise Unavailable("ShareKhan has no REST quote endpoint; its prices come from the live stream")

    def margin_required(self, requests_: Sequence[OrderRequest]) -> Decimal:
        """A conservative estimate: ShareKhan has no margin API, so every order but a delivery
        sell (which spends held shares, not cash) is counted at its full value."""
        total = Decimal("0")
        for request in requests_:
            if request.product is Product.CNC and request.side is Side.SELL:
                continue
            price = request.price or request.trigger_price
            if not price:
                raise InvalidInput(
                    f"ShareKhan has no margin API; give the {request.tradingsymbol} order a price "
                    "(the last price for a MARKET order) to estimate it"
                )
            total += price * request.quantity
        return total

    def instruments(self) -> list[InstrumentRow]:
        rows: list[InstrumentRow] = []
        for code in self.options.get("master_exchanges", ("NC", "BC")):
            data = self._call("instruments", "GET", f"/skapi/services/master/{quote(code)}", token="optional")
            rows.extend(wire.instrument_from_row(row, wire.exchange_name(code)) for row in _rows(data))
        return rows

    # ------------------------------------------------------------------ login

    def login_url(self, redirect_uri: str, state: str) -> str:
        # ShareKhan sends the browser back to the redirect URL registered with the app, so
        # `redirect_uri` is not part of the URL. The app is named by its API key alone; the vendor
        # key is a secret (stored encrypted) and goes only server to server, in the token exchange
        # and the request headers, never into the browser's address bar, history or a proxy log.
        query = {"api_key": self._credential("api_key"), "state": state}
        if self._credential("version_id", required=False):
            query["version_id"] = self._credential("version_id")
        return f"{self.login_base}/skapi/auth/login.html?{urlencode(query)}"

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        request_token = params.get("request_token")
        if not request_token:
            raise InvalidInput("ShareKhan sent no request_token back; start the login again")
        version = self._credential("version_id", required=False)
        customer_id, swapped = handshake.swap_request_token(
            request_token, self._credential("secret_key"), strip_padding=bool(version)
        )
        if self.account.client_code and customer_id != self.account.client_code:
            raise InvalidInput(
                f"This login is for ShareKhan customer {customer_id}, but this client is "
                f"{self.account.client_code}; log in with the client's own account"
            )
        body: dict[str, Any] = {
            "apiKey": self._credential("api_key"),
            "requestToken": swapped,
            "state": _number_or_text(params.get("state", "")),
        }
        if version:
            body["versionId"] = _number_or_text(version)
        if self._credential("vendor_key", required=False):
            body["vendorkey"] = self._credential("vendor_key")
        data = self._call("login", "POST", TOKEN_PATH, body, token="none")
        access_token = data.get("token") if isinstance(data, dict) else None
        if not access_token:
            raise Unavailable("ShareKhan accepted the login but sent no access token; log in again")
        login_id = str(data.get("loginId") or customer_id)
        log.info("broker=sharekhan op=login client=%s result=ok", customer_id)
        return BrokerSession(
            access_token=str(access_token),
            expires_at=self.session_expires_at(utcnow()),
            extra={"customer_id": customer_id, "login_id": login_id},
        )

    # ------------------------------------------------------------------ plumbing

    def _customer(self) -> str:
        if not self.account.client_code:
            raise InvalidInput("This client has no ShareKhan customer id")
        return quote(self.account.client_code)

    def _channel_user(self) -> str:
        # ShareKhan's channelUser is the login id it returned with the access token
        session = self.account.session
        return str((session.extra.get("login_id") if session else None) or self.account.client_code)

    def _credential(self, name: str, required: bool = True) -> str:
        value = str(self.account.credentials.get(name) or "").strip()
        if required and not value:
            label = next((f.label for f in self.credential_fields if f.name == name), name)
            raise InvalidInput(f"The ShareKhan {label.lower()} is missing for this client")
        return value

    def _headers(self, token: str) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "api-key": self._credential("api_key"), "Content-type": "application/json"}
        if self._credential("vendor_key", required=False):
            headers["vendor-key"] = self._credential("vendor_key")
        session = self.account.session
        if session is not None and session.access_token and token != "none":
            headers["access-token"] = session.access_token
        elif token == "required":
            raise AuthExpired("ShareKhan is not logged in for this client; log in again")
        return headers

    def _order_rows(self, op: str) -> list[dict[str, Any]]:
        """Today's orders, one row each (the latest if ShareKhan repeats an order id)."""
        latest: dict[str, dict[str, Any]] = {}
        for row in _rows(self._call(op, "GET", f"/skapi/services/reports/{self._customer()}")):
            latest[str(row.get("orderId"))] = row
        return list(latest.values())

    def _order_row(self, order_id: str) -> dict[str, Any]:
        for row in self._order_rows("orders"):
            if str(row.get("orderId")) == str(order_id):
                return row
        raise Rejected(f"ShareKhan has no order {order_id} today for this client")

    def _order_id(self, op: str, data: Any) -> str:
        order_id = data.get("orderId") if isinstance(data, dict) else None
        if order_id in (None, "", 0, "0"):
            log.warning("broker=sharekhan op=%s client=%s error=no-order-id", op, self.account.client_code)
            raise Unavailable(f"ShareKhan accepted the request but sent no order id{OUTCOME.get(op, '')}")
        return str(order_id)

    def _call(
        self, op: str, method: str, path: str, body: dict[str, Any] | None = None, token: str = "required"
    ) -> Any:
        headers = self._headers(token)
        started = clock.monotonic()
        try:
            response = http.send(
                method,
                self.base_url + path,
                headers=headers,
                timeout=self.timeout,
                body=None if body is None else json.dumps(body, allow_nan=False),
            )
        except http.TransportError as exc:
            raise self._transport_error(op, exc) from None
        log.info(
            "broker=sharekhan op=%s client=%s status=%s ms=%d",
            op,
            self.account.client_code,
            response.status,
            (clock.monotonic() - started) * 1000,
        )
        return self._unwrap(op, response)

    def _transport_error(self, op: str, exc: http.TransportError) -> Unavailable:
        log.warning("broker=sharekhan op=%s client=%s error=%s", op, self.account.client_code, exc.reason)
        if not exc.sent:
            return Unavailable("ShareKhan could not be reached; nothing was sent")
        if isinstance(exc, http.Timeout):
            return Unavailable(f"ShareKhan did not answer in {self.timeout:g} s{OUTCOME.get(op, '')}")
        return Unavailable(f"ShareKhan closed the connection without answering{OUTCOME.get(op, '')}")

    def _unwrap(self, op: str, response: http.Response) -> Any:
        status = response.status
        if status == 429:
            raise RateLimited(
                "ShareKhan is rate limiting this account (HTTP 429); the request was not accepted",
                retry_after=_retry_after(response),
            )
        try:
            payload = json.loads(response.text, parse_float=Decimal) if response.content else None
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("error_type"):
            raise self._typed_error(op, status, payload)
        if status in (401, 403):
            raise AuthExpired(f"ShareKhan refused the session (HTTP {status}); log in again")
        if status >= 400 or not isinstance(payload, dict) or "data" not in payload:
            self._log_raw(op, response)
            what = f"answered HTTP {status}" if status >= 400 else f"sent an unreadable answer (HTTP {status})"
            raise Unavailable(f"ShareKhan {what}{OUTCOME.get(op, '')}")
        if payload.get("status") not in (None, 200, "200"):
            self._log_raw(op, response)
            raise Unavailable(f"ShareKhan answered status {payload.get('status')}{OUTCOME.get(op, '')}")
        return payload["data"]

    def _typed_error(self, op: str, status: int, payload: Mapping[str, Any]) -> BrokerError:
        kind = str(payload["error_type"])
        message = self._redact(str(payload.get("message") or kind).strip())
        log.warning(
            "broker=sharekhan op=%s client=%s status=%s error_type=%s message=%s",
            op,
            self.account.client_code,
            status,
            kind,
            message,
        )
        if kind == "TokenException":
            return AuthExpired(f"ShareKhan session is no longer valid ({message}); log in again")
        if kind in REFUSALS:
            return Rejected(message)
        return Unavailable(f"ShareKhan answered HTTP {status} ({message}){OUTCOME.get(op, '')}")

    def _log_raw(self, op: str, response: http.Response) -> None:
        log.warning(
            "broker=sharekhan op=%s client=%s status=%s raw=%r",
            op,
            self.account.client_code,
            response.status,
            self._redact(response.text[:300]),
        )

    def _redact(self, text: str) -> str:
        secrets = [self.account.credentials.get(k) for k in ("secret_key", "vendor_key")]
        if self.account.session is not None:
            secrets.append(self.account.session.access_token)
        for secret in filter(None, secrets):
            text = text.replace(str(secret), "***")
        return text


def _same_order(row: Mapping[str, Any], request: OrderRequest, code: str) -> bool:
    if str(row.get("exchange")) != code or wire.side_of(row.get("buySell")) is not request.side:
        return False
    scrip = str(row.get("scripCode") or "")
    if scrip.isdigit() and int(scrip) != request.exchange_token:
        return False
    if not scrip.isdigit() and row.get("tradingSymbol") != request.tradingsymbol:
        return False
    if str(row.get("orderQty")) != str(request.quantity):
        return False
    product = wire.product_of(row.get("productCode"))
    return product is None or product is request.product


def _rows(data: Any) -> list[dict[str, Any]]:
    """A list of rows; ShareKhan answers the string "no_records" when there are none."""
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return data
    # anything else (null included) is unreadable: an empty book read wrongly would make an
    # unknown order look absent and get placed twice
    if isinstance(data, str) and data.strip().lower().replace(" ", "_") == "no_records":
        return []
    raise Unavailable("ShareKhan sent an unreadable list")


def _retry_after(response: http.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _number_or_text(value: Any) -> int | str:
    text = str(value).strip()
    return int(text) if text.isdigit() else text
