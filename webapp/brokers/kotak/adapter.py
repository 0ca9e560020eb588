"""Kotak Neo Trade API (v2) adapter.

One client account per login. The client form stores the NEO app's Trade API access token (the
"consumer key", sent as plain `Authorization` on the login calls, quotes and the scrip master) and
the registered mobile number; the client code on the form is the UCC. Login is a form of two
secrets the desk never stores: the authenticator TOTP and the MPIN. `complete_login` runs both of
Kotak's steps: tradeApiLogin (mobile, UCC, TOTP -> view token and sid), then tradeApiValidate
(MPIN -> session token, session sid and the `baseUrl` every later call goes to).

Decisions made here on purpose:
- The baseUrl is the broker's answer, and the session token rides on every call to it, so it is
  used only when trusted: the login host itself (KOTAK_API_URL), or an https host on a trusted
  domain (KOTAK_TRUSTED_DOMAINS, default kotaksecurities.com). Anything else refuses the login,
  and a stored session whose baseUrl is not trusted is treated as no session.
- Idempotency: the place body carries the desk's tag as `ig`; Kotak echoes it in the order book as
  `GuiOrdId` (assumed: find_order also offers matching untagged orders, should the echo be missing).
- A place answered `stCode 1005` ("internal error, transient") is Unavailable, not Rejected: the
  order may exist, and the engine looks it up by tag.
- SL-M goes out as pt "SL-M" with pr "0"; market protection (`mp`) is sent when the request has one,
  else "0" (the client's default).
- Kotak has no historical candle API: capabilities.historical_candles is False. Its market-data
  feed (HSM, a binary WebSocket protocol) is stream.py, keyed by NSE scrip code.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote

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
    Quote,
    RateLimits,
    Rejected,
    Trade,
    Unavailable,
    Validity,
)
from webapp.brokers.kotak import mapping
from webapp.brokers.kotak import stream as kotak_stream
from webapp.brokers.kotak.wire import BROKER, DEFAULT_LOGIN_URL, KotakWire
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

LOGIN_PATH = "/login/1.0/tradeApiLogin"
VALIDATE_PATH = "/login/1.0/tradeApiValidate"
PLACE_PATH = "/quick/order/rule/ms/place"
MODIFY_PATH = "/quick/order/vr/modify"
CANCEL_PATH = "/quick/order/cancel"
ORDER_BOOK_PATH = "/quick/user/orders"
TRADE_BOOK_PATH = "/quick/user/trades"
POSITIONS_PATH = "/quick/user/positions"
HOLDINGS_PATH = "/portfolio/v1/holdings"
LIMITS_PATH = "/quick/user/limits"
MARGIN_PATH = "/quick/user/check-margin"
QUOTES_PATH = "/script-details/1.0/quotes/neosymbol/"
MASTER_PATH = "/script-details/1.0/masterscrip/file-paths"
QUOTES_PER_CALL = 50  # instruments per neosymbol call (Kotak publishes no cap; kept modest)

READ_NOUNS = {
    "order_book": "an order book",
    "trade_book": "a trade book",
    "positions": "positions",
    "holdings": "holdings",
    "funds": "limits",
    "quotes": "quotes",
    "margin": "a margin answer",
    "instruments": "a scrip master",
}

T = TypeVar("T")


class KotakBroker(Broker):
    name = "kotak"
    label = "Kotak Neo"
    credential_fields = (
        CredentialField(
            "consumer_key",
            "Trade API access token",
            secret=True,
            help="From the NEO app: Invest > Trade API > API Dashboard",
        ),
        CredentialField(
            "mobile_number", "Registered mobile number", secret=True, help="With the country code, e.g. +919812345678"
        ),
    )
    # Kotak's v2 FAQ: 10 requests per second across APIs (orders and reads share it).
    rate_limits = RateLimits(orders_per_second=10, reads_per_second=10)
    tag_max_length = 10  # the desk's tags; Kotak publishes no bound on `ig`
    login_kind = "form"
    login_fields = (
        CredentialField("totp", "TOTP", secret=True, help="The 6-digit code from your authenticator app"),
        CredentialField("mpin", "MPIN", secret=True, help="Your 6-digit NEO MPIN"),
    )
    session_expiry_ist = time(6, 0)
    settings = {
        "KOTAK_API_URL": DEFAULT_LOGIN_URL,
        "KOTAK_TRUSTED_DOMAINS": "kotaksecurities.com",
        **kotak_stream.STREAM_SETTINGS,
    }
    config_options = (
        ConfigOption("base_url", "KOTAK_API_URL", required=True),
        ConfigOption("trusted_domains", "KOTAK_TRUSTED_DOMAINS"),
        TIMEOUT_OPTION,
    )
    capabilities = Capabilities(quotes=True, streaming=True)  # neosymbol quotes, many scrips a call; HSM
    quote_preference = 30
    stream_key = "exchange_token"  # HSM keys scrips by "nse_cm|<scrip code>"; the desk streams NSE cash

    def __init__(self, account: Account, options: Mapping[str, Any] | None = None):
        super().__init__(account, options)
        credentials = account.credentials
        self._consumer_key = str(credentials.get("consumer_key") or "").strip()
        self._mobile = str(credentials.get("mobile_number") or "").strip()
        self._session = account.session
        self._wire = KotakWire(consumer_key=self._consumer_key, client_code=account.client_code, options=self.options)

    def close(self) -> None:
        """Nothing to free: the connection pool is the process's, shared by every client."""

    @classmethod
    def stream_token(cls, instrument: InstrumentRef) -> int | str | None:
        return kotak_stream.stream_token(instrument)

    @classmethod
    def open_stream(cls, account: Account, config: Mapping[str, Any]) -> Any:
        return kotak_stream.open_stream(account, config)

    # ------------------------------------------------------------------ plumbing

    def _live(self) -> tuple[str, str, str]:
        """(session token, session sid, trusted base URL), or AuthExpired."""
        session = self._session
        if session is None or not session.access_token:
            raise AuthExpired(f"{self.label} is not logged in for {self.account.client_code}; log in again")
        if session.expires_at is not None and session.expires_at <= utcnow():
            raise AuthExpired(f"{self.label} session has expired; log in again")
        sid = str(session.extra.get("sid") or "")
        stored = str(session.extra.get("base_url") or "")
        # No baseUrl kept (Kotak answered none): the login host, as complete_login decides too.
        base = self._wire.trusted(stored) if stored else self._wire.login_url
        if not sid or base is None:
            raise AuthExpired(f"{self.label} session has no usable base URL or sid; log in again")
        return session.access_token, sid, base

    def _call(
        self, op: str, method: str, path: str, jdata: Mapping[str, Any] | None = None, *, read: bool = False
    ) -> Any:
        token, sid, base = self._live()
        return self._wire.session_call(op, method, base + path, token=token, sid=sid, jdata=jdata, read=read)

    def _parse(self, op: str, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except (KeyError, ValueError, TypeError, AttributeError, InvalidOperation) as exc:
            log.warning("broker=kotak op=%s client=%s malformed=%s", op, self.account.client_code, type(exc).__name__)
            raise Unavailable(
                f"{BROKER} sent {READ_NOUNS.get(op, 'an answer')} the desk cannot read; try again"
            ) from None

    def _rows(self, op: str, method: str, path: str, parse: Callable[[Any], T]) -> list[T]:
        answer = self._call(op, method, path, read=True)
        data = answer.get("data") if isinstance(answer, dict) else None
        if data is None:
            return []
        rows = [data] if isinstance(data, dict) else data
        return self._parse(op, lambda: [parse(row) for row in rows])

    # ------------------------------------------------------------------ login

    def complete_login(self, params: Mapping[str, str]) -> BrokerSession:
        totp = str(params.get("totp") or "").strip()
        mpin = str(params.get("mpin") or "").strip()
        ucc = self.account.client_code.strip()
        if not (self._consumer_key and self._mobile and ucc):
            raise InvalidInput(f"{self.label} needs the access token and mobile number saved on the client first")
        if not (len(totp) == 6 and totp.isdigit()):
            raise InvalidInput("The TOTP is the 6-digit code from your authenticator app")
        if not (mpin.isdigit() and 4 <= len(mpin) <= 6):
            raise InvalidInput(f"The MPIN is your {self.label} MPIN (digits only)")
        view = self._wire.login("login", LOGIN_PATH, {"mobileNumber": self._mobile, "ucc": ucc, "totp": totp}, {})
        view_token, view_sid = str(view.get("token") or ""), str(view.get("sid") or "")
        if not (view_token and view_sid):
            raise Unavailable(f"{BROKER} answered the TOTP step without a view token; try logging in again")
        trade = self._wire.login("login", VALIDATE_PATH, {"mpin": mpin}, {"sid": view_sid, "Auth": view_token})
        token, sid = str(trade.get("token") or ""), str(trade.get("sid") or "")
        if not (token and sid):
            raise Unavailable(f"{BROKER} answered the MPIN step without a session token; try logging in again")
        answered = str(trade.get("baseUrl") or "")
        base = self._wire.trusted(answered) if answered else self._wire.login_url
        if base is None:
            log.warning("broker=kotak op=login client=%s untrusted_base_url=%r", ucc, answered[:200])
            raise Rejected(
                f"{BROKER} named a trading server the desk does not trust ({answered[:80]}); "
                "the session was not used. Check KOTAK_TRUSTED_DOMAINS"
            )
        now = utcnow()
        expires_at = self.session_expires_at(now)
        token_expiry = _jwt_expiry(token)
        if token_expiry is not None and now < token_expiry < expires_at:
            expires_at = token_expiry
        self._session = BrokerSession(
            access_token=token,
            expires_at=expires_at,
            extra={
                "sid": sid,
                "base_url": base,
                "hs_server_id": str(trade.get("hsServerId") or ""),
                "data_center": str(trade.get("dataCenter") or ""),
            },
        )
        return self._session

    # ------------------------------------------------------------------ orders

    def place(self, request: OrderRequest) -> str:
        self.check_order(request)
        answer = self._call("place", "POST", PLACE_PATH, mapping.place_body(request))
        order_id = str(answer.get("nOrdNo") or "").strip()
        if not order_id:  # never invent an id: the tag lookup decides whether the order exists
            log.warning("broker=kotak op=place client=%s ok_without_order_no=1", self.account.client_code)
            raise Unavailable(f"{BROKER} said Ok but sent no order number; the order may or may not be placed")
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
        # Kotak's modify restates the whole order (token, symbol, segment, side, product), so the
        # current row is read first, as its own client does.
        row = self._order_row(order_id)
        body = mapping.modify_body(
            row, quantity_=quantity, price=price, trigger_price=trigger_price, order_type=order_type, validity=validity
        )
        answer = self._call("modify", "POST", MODIFY_PATH, body)
        return str(answer.get("nOrdNo") or "").strip() or order_id

    def cancel(self, order_id: str) -> str:
        answer = self._call("cancel", "POST", CANCEL_PATH, {"on": order_id, "am": "NO"})
        return str(answer.get("nOrdNo") or "").strip() or order_id

    def _order_row(self, order_id: str) -> Mapping[str, Any]:
        for row in self._rows("order_book", "GET", ORDER_BOOK_PATH, dict):
            if str(row.get("nOrdNo")) == order_id:
                return row
        raise Rejected(f"{BROKER} has no order {order_id} today")

    def order_book(self) -> list[Order]:
        return self._rows("order_book", "GET", ORDER_BOOK_PATH, mapping.order_from_row)

    def find_order(self, request: OrderRequest, placed_after: datetime) -> list[Order]:
        """The orders carrying the request's tag (`GuiOrdId`). Kotak does not document that its book
        echoes the tag (docs/brokers.md), so when none does, untagged orders of the same instrument,
        side and quantity placed since `placed_after` are offered too: if the echo is not there, the
        order is still found (or left unknown among several), never sent a second time."""
        book = self.order_book()
        tagged = [order for order in book if request.tag and order.tag == request.tag]
        if tagged:
            return tagged
        return [
            order
            for order in book
            if not order.tag
            and (order.exchange, order.tradingsymbol, order.side, order.quantity)
            == (request.exchange, request.tradingsymbol, request.side, request.quantity)
            and (order.placed_at is None or order.placed_at >= placed_after)
        ]

    # ------------------------------------------------------------------ portfolio

    def trades(self) -> list[Trade]:
        return self._rows("trade_book", "GET", TRADE_BOOK_PATH, mapping.trade_from_row)

    def positions(self) -> list[Position]:
        return self._rows("positions", "GET", POSITIONS_PATH, mapping.position_from_row)

    def holdings(self) -> list[Holding]:
        return self._rows("holdings", "GET", HOLDINGS_PATH, mapping.holding_from_row)

    def funds(self) -> Funds:
        answer = self._call("funds", "POST", LIMITS_PATH, {"seg": "ALL", "exch": "ALL", "prod": "ALL"}, read=True)
        return self._parse("funds", lambda: mapping.funds_from_limits(answer))

    # ------------------------------------------------------------------ market data

    def _key_url(self, path: str) -> str:
        return self._live()[2] + path

    def quotes(self, instruments: Sequence[InstrumentRef]) -> dict[str, Quote]:
        """neosymbol quotes, `<segment>|<token>` comma-joined, a chunk a call."""
        quotes: dict[str, Quote] = {}
        refs = list(instruments)
        for start in range(0, len(refs), QUOTES_PER_CALL):
            chunk = refs[start : start + QUOTES_PER_CALL]
            wanted = {(mapping.wire_segment(r.exchange), str(int(r.exchange_token))): r for r in chunk}
            names = ",".join(f"{segment}|{token}" for segment, token in wanted)
            answer = self._wire.key_call("quotes", self._key_url(QUOTES_PATH + quote(names, safe=",|") + "/all"))
            rows = answer if isinstance(answer, list) else answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(rows, list):
                raise Unavailable(f"{BROKER} sent quotes the desk cannot read; try again")
            for row in rows:
                key = (str(row.get("exchange") or ""), str(row.get("exchange_token") or ""))
                ref = wanted.get(key)
                if ref is not None:
                    quotes[ref.key] = self._parse("quotes", lambda row=row, ref=ref: mapping.quote_from_row(ref, row))
            missing = [r.key for r in chunk if r.key not in quotes]
            if missing:
                raise Unavailable(f"{BROKER} sent no price for {', '.join(missing[:3])}; try again")
        return quotes

    def margin_required(self, requests: Sequence[OrderRequest]) -> Decimal:
        """Kotak's check-margin, one order a call; the order margins (`ordMrgn`) are added up."""
        total = Decimal("0")
        for request in requests:
            answer = self._call("margin", "POST", MARGIN_PATH, mapping.margin_body(request), read=True)
            total += self._parse("margin", lambda answer=answer: mapping.money(answer["ordMrgn"]))
        return total

    def instruments(self) -> list[InstrumentRow]:
        """The scrip master of each exchange in options["instrument_exchanges"] (default NSE): the
        file-paths call names today's CSVs; each is fetched (without credentials) only from a
        trusted host."""
        answer = self._wire.key_call("instruments", self._key_url(MASTER_PATH))
        paths = self._parse("instruments", lambda: list(answer["data"]["filesPaths"]))
        rows: list[InstrumentRow] = []
        for exchange in self.options.get("instrument_exchanges", ("NSE",)):
            segment = mapping.wire_segment(exchange)
            path = next((p for p in paths if str(p).rsplit("/", 1)[-1].startswith(segment)), None)
            if path is None:
                raise Unavailable(f"{BROKER} listed no scrip master for {exchange}; try again")
            url = self._wire.trusted(str(path))
            if url is None:
                raise Unavailable(f"{BROKER} listed a scrip master on a host the desk does not trust; not fetched")
            text = self._wire.fetch_file("instruments", url)
            rows += self._parse("instruments", lambda text=text: _master_rows(text))
        return rows


def _master_rows(text: str) -> list[InstrumentRow]:
    reader = csv.DictReader(io.StringIO(text))
    out = []
    for raw in reader:
        row = {str(k).strip().rstrip(";"): v for k, v in raw.items() if k is not None}
        instrument = mapping.instrument_from_master(row)
        if instrument is not None:
            out.append(instrument)
    return out


def _jwt_expiry(token: str) -> datetime | None:
    """The `exp` claim of a JWT session token, read (not verified) to cap the session's expiry."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(payload["exp"]), UTC)
    except (ValueError, KeyError, TypeError):
        return None
