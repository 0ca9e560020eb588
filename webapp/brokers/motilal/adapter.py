"""Motilal Oswal OpenAPI adapter (dealer mode).

One desk login (a dealer, or the client's own login) holds the AuthToken; every request body
carries `clientcode` to pick the client account it acts for. Login is a form: password (sent as
SHA-256 of password + API key), 2FA (date of birth dd/mm/yyyy or PAN) and the authenticator
TOTP. The token dies every morning at 06:00 IST.

Decisions the broker's documentation leaves open, made here on purpose:
- A blank TOTP makes Motilal text an OTP and wait for /verifyotp. The port has no second login
  step, so the desk refuses a blank TOTP up front instead of leaving a half-made session.
- SL-M is sent as STOPLOSS with price 0 (Motilal has no separate stop-market word); Motilal has no
  documented market-protection field, so `OrderRequest.market_protection` is not sent.
- Motilal has no order-margin endpoint: `margin_required` is a conservative estimate (below).
- Order books echo the `tag` (≤ 10 letters/digits), so the port's default `orders_by_tag` applies.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from webapp.brokers import register
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
    RateLimits,
    Rejected,
    Side,
    Trade,
    Unavailable,
    Validity,
)
from webapp.brokers.motilal import mapping
from webapp.brokers.motilal.wire import BROKER, MotilalWire
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

LOGIN_PATH = "/rest/login/v4/authdirectapi"
PLACE_PATH = "/rest/trans/v1/placeorder"
MODIFY_PATH = "/rest/trans/v2/modifyorder"
CANCEL_PATH = "/rest/trans/v1/cancelorder"
ORDER_BOOK_PATH = "/rest/book/v2/getorderbook"
TRADE_BOOK_PATH = "/rest/book/v1/gettradebook"
POSITIONS_PATH = "/rest/book/v1/getposition"
HOLDINGS_PATH = "/rest/report/v1/getdpholding"
MARGIN_DETAIL_PATH = "/rest/report/v1/getreportmargindetail"
LTP_PATH = "/rest/report/v1/getltpdata"
SCRIPS_PATH = "/rest/report/v1/getscripsbyexchangename"

TOTP_NEEDED = "Motilal needs the TOTP from your authenticator app"
# What each read returns, for "Motilal Oswal sent <noun> the desk cannot read".
READ_NOUNS = {
    "order_book": "an order book",
    "trade_book": "a trade book",
    "positions": "positions",
    "holdings": "holdings",
    "funds": "a margin report",
    "instruments": "a scrip master",
}

T = TypeVar("T")


class MotilalBroker(Broker):
    name = "motilal"
    label = "Motilal Oswal"
    credential_fields = (
        CredentialField("api_key", "API key", secret=True),
        CredentialField("user_id", "Login id", help="The dealer (or client) id you log in with"),
        CredentialField(
            "vendor_code", "Vendor code", required=False, help="Only if Motilal gave you one; sent as vendorinfo"
        ),
    )
    rate_limits = RateLimits(orders_per_second=40, reads_per_second=2)
    tag_max_length = 10
    login_kind = "form"
    login_fields = (
        CredentialField("password", "Password", secret=True),
        CredentialField("two_fa", "Date of birth (dd/mm/yyyy) or PAN", secret=True),
        CredentialField(
            "totp", "TOTP", secret=True, required=False, help="The 6-digit code from your authenticator app"
        ),
    )
    session_expiry_ist = time(6, 0)
    settings = {"MOTILAL_API_URL": "https://openapi.motilaloswal.com"}
    config_options = (ConfigOption("base_url", "MOTILAL_API_URL", required=True), TIMEOUT_OPTION)
    capabilities = Capabilities(quotes=True)  # getltpdata, one scrip a call at 2 reads/s
    quote_preference = 20

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        credentials = account.credentials
        self._api_key = str(credentials.get("api_key") or "")
        self._user_id = str(credentials.get("user_id") or "")
        # vendorinfo: the vendor code for a vendor, else the login's own id (brokers.md §2.4).
        vendor_info = str(credentials.get("vendor_code") or self._user_id)
        self._session = account.session
        self._wire = MotilalWire(
            api_key=self._api_key,
            vendor_info=vendor_info,
            client_code=account.client_code,
            options=self.options,
            reads_per_second=self.rate_limits.reads_per_second or 2,
        )

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._wire.close()

    # ------------------------------------------------------------------ plumbing

    def _token(self) -> str:
        session = self._session
        if session is None or not session.access_token:
            raise AuthExpired(f"{self.label} is not logged in for {self.account.client_code}; log in again")
        if session.expires_at is not None and session.expires_at <= utcnow():
            raise AuthExpired(f"{self.label} session expired at 06:00 IST; log in again")
        return session.access_token

    def _call(self, op: str, path: str, body: Mapping[str, Any], *, read: bool = False) -> dict[str, Any]:
        return self._wire.post(
            op, path, {"clientcode": self.account.client_code, **body}, token=self._token(), read=read
        )

    def _rows(self, op: str, path: str, body: Mapping[str, Any], parse: Callable[[Any], T]) -> list[T]:
        data = self._call(op, path, body, read=True).get("data")
        if data is None:  # Motilal sends null, not [], for an empty book
            return []
        rows = [data] if isinstance(data, dict) else data
        try:
            return [parse(row) for row in rows]
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            log.warning(
                "broker=motilal op=%s client=%s malformed_row=%s", op, self.account.client_code, type(exc).__name__
            )
            raise Unavailable(
                f"{BROKER} sent {READ_NOUNS.get(op, 'an answer')} the desk cannot read; try again"
            ) from None

    # ------------------------------------------------------------------ login

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        password = str(params.get("password") or "")
        two_fa = str(params.get("two_fa") or "").strip()
        totp = str(params.get("totp") or "").strip()
        if not (self._api_key and self._user_id):
            raise InvalidInput(f"{self.label} needs the API key and login id saved on the client first")
        if not password or not two_fa:
            raise InvalidInput(f"{self.label} needs the password and the date of birth or PAN")
        if not totp:
            raise Rejected(TOTP_NEEDED)
        if not (len(totp) == 6 and totp.isdigit()):
            raise InvalidInput("The TOTP is the 6-digit code from your authenticator app")
        digest = hashlib.sha256((password + self._api_key).encode("utf-8")).hexdigest()
        body = {"userid": self._user_id, "password": digest, "2FA": two_fa, "totp": totp}
        envelope = self._wire.post("login", LOGIN_PATH, body, token="", login=True)
        token = str(envelope.get("AuthToken") or "")
        if not token:
            raise Unavailable(f"{BROKER} answered the login without a token; try logging in again")
        if str(envelope.get("isAuthTokenVerified") or "TRUE").upper() == "FALSE":
            raise Rejected(f"{BROKER} did not verify the login; {TOTP_NEEDED}")
        now = utcnow()
        # This instance goes on with the fresh token; the caller stores the session on the client.
        self._session = BrokerSession(
            access_token=token, expires_at=self.session_expires_at(now), extra={"user_id": self._user_id}
        )
        return self._session

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        tag = request.tag or ""
        algo_id = request.algo_id or str(self.options.get("algo_id") or "")
        envelope = self._call("place", PLACE_PATH, mapping.place_body(request, tag, algo_id))
        order_id = _order_id(envelope)
        if not order_id:  # never invent an id: the tag lookup decides whether the order exists
            log.warning("broker=motilal op=place client=%s success_without_order_id=1", self.account.client_code)
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
        # Motilal refuses a modify unless it echoes the order's lastmodifiedtime and
        # qtytradedtoday, so the current row is read first, every time.
        row = self._order_row(order_id)
        body = mapping.modify_body(
            row, quantity_=quantity, price=price, trigger_price=trigger_price, order_type=order_type, validity=validity
        )
        envelope = self._call("modify", MODIFY_PATH, body)
        return _order_id(envelope) or order_id

    def cancel(self, order_id: str) -> str:
        envelope = self._call("cancel", CANCEL_PATH, {"uniqueorderid": order_id})
        return _order_id(envelope) or order_id

    def _order_row(self, order_id: str) -> Mapping[str, Any]:
        rows = self._rows("order_book", ORDER_BOOK_PATH, {"dateandtime": ""}, dict)
        for row in rows:
            if str(row.get("uniqueorderid")) == order_id:
                if not row.get("lastmodifiedtime"):
                    raise Unavailable(f"{BROKER} sent order {order_id} without its lastmodifiedtime; try again")
                return row
        raise Rejected(f"{BROKER} has no order {order_id} today")

    def order_book(self) -> list[Order]:
        return self._rows("order_book", ORDER_BOOK_PATH, {"dateandtime": ""}, mapping.order_from_row)

    # ------------------------------------------------------------------ portfolio

    def trades(self) -> list[Trade]:
        return self._rows("trade_book", TRADE_BOOK_PATH, {}, mapping.trade_from_row)

    def positions(self) -> list[Position]:
        return self._rows("positions", POSITIONS_PATH, {}, mapping.position_from_row)

    def holdings(self) -> list[Holding]:
        return self._rows("holdings", HOLDINGS_PATH, {}, mapping.holding_from_row)

    def funds(self) -> Funds:
        rows = self._rows("funds", MARGIN_DETAIL_PATH, {}, dict)
        try:
            return mapping.funds_from_rows(rows)
        except (KeyError, ValueError, TypeError, InvalidOperation):
            raise Unavailable(f"{BROKER} sent a margin report the desk cannot read; try again") from None

    # ------------------------------------------------------------------ market data

    def _ltp_data(self, ref: InstrumentRef) -> Mapping[str, Any]:
        body = {"exchange": mapping.wire_exchange(ref.exchange), "scripcode": int(ref.exchange_token)}
        data = self._call("quotes", LTP_PATH, body, read=True).get("data")
        if not isinstance(data, dict) or data.get("ltp") in (None, ""):
            raise Unavailable(f"{BROKER} sent no price for {ref.key}; try again")
        return data

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        # One getltpdata call per scrip (Motilal has no batch quote); reads are paced to 2/s.
        quotes = {}
        for ref in instruments:
            data = self._ltp_data(ref)
            try:
                quotes[ref.key] = mapping.quote_from_data(ref, data)
            except (KeyError, ValueError, TypeError, InvalidOperation):
                raise Unavailable(f"{BROKER} sent an unreadable price for {ref.key}; try again") from None
        return quotes

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        """A conservative estimate; Motilal publishes no order-margin calculator.

        Every BUY and every intraday/carry-forward SELL (a short) counts its full value,
        price × quantity, as if it were CNC: MIS and MTF really need less, so the desk may refuse
        an order the broker would take, never the reverse. A CNC/MTF SELL is assumed to come out
        of holdings and needs nothing. MARKET and SL-M orders are valued at the LTP (SL-M at the
        higher of LTP and trigger).
        """
        total = Decimal("0")
        ltp_cache: dict[str, Decimal] = {}
        for request in requests:
            if request.side is Side.SELL and request.product in (Product.CNC, Product.MTF):
                continue
            total += self._order_value_price(request, ltp_cache) * request.quantity
        return total

    def _order_value_price(self, request: OrderRequest, ltp_cache: dict[str, Decimal]) -> Decimal:
        if request.order_type in (OrderType.LIMIT, OrderType.SL) and request.price:
            return request.price
        ref = InstrumentRef(request.exchange, request.tradingsymbol, request.exchange_token)
        if ref.key not in ltp_cache:
            ltp_cache[ref.key] = mapping.rupees_from_paise(self._ltp_data(ref)["ltp"])
        ltp = ltp_cache[ref.key]
        if request.order_type is OrderType.SLM and request.trigger_price:
            return max(ltp, request.trigger_price)
        return ltp

    def instruments(self) -> list[InstrumentRow]:
        """The scrip master of each exchange in options["instrument_exchanges"] (default NSE)."""
        rows: list[InstrumentRow] = []
        for exchange in self.options.get("instrument_exchanges", ("NSE",)):
            body = {"exchangename": mapping.wire_exchange(exchange)}
            rows += self._rows("instruments", SCRIPS_PATH, body, mapping.instrument_from_row)
        return rows


def _order_id(envelope: Mapping[str, Any]) -> str:
    """uniqueorderid sits at the top level of the answer; some builds put it inside data."""
    data = envelope.get("data")
    found = envelope.get("uniqueorderid") or (data.get("uniqueorderid") if isinstance(data, dict) else None)
    return str(found or "").strip()


register(MotilalBroker)
