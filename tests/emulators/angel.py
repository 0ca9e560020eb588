"""A loopback Angel One SmartAPI (reference/brokers.md §4.1) for contract tests and benchmarks.

It speaks the documented REST protocol (smartapi.angelbroking.com/docs, and what smartapi-python 1.5.5
sends and parses):

- Headers X-PrivateKey (the app's API key), X-UserType, X-SourceID, X-ClientLocalIP, X-ClientPublicIP,
  X-MACAddress on every call, and Authorization: Bearer <jwtToken> on the secure routes.
- Login POST /rest/auth/angelbroking/user/v1/loginByPassword {clientcode, password (the MPIN), totp}
  answers data {jwtToken, refreshToken, feedToken}; /jwt/v1/generateTokens renews them; getProfile.
- The envelope {"status": true|false, "message", "errorcode", "data"}; a missing, expired or unknown
  JWT is the gateway's {"success": false, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}
  with HTTP 403 (the status is our assumption); a call over the per-client rate limit is the gateway's
  plain-text "Access denied because of exceeding access rate" with HTTP 403 (status assumed).
- Orders: placeOrder/modifyOrder/cancelOrder answer data {script, orderid, uniqueorderid}; the order
  book echoes `ordertag` (≤ 20 characters, else AB4008) and `uniqueorderid`; details/{uniqueorderid};
  statuses in Angel's lower-case words; an RMS refusal (too little cash, price outside the circuit)
  is booked as a "rejected" order with its text, as Angel does.
- Reads: getOrderBook, getTradeBook, getPosition, getHolding, getRMS, getLtpData, market/v1/quote
  (mode LTP/OHLC/FULL with exchangeTokens), historical/v1/getCandleData, margin/v1/batch, and the
  public instrument master /OpenAPI_File/files/OpenAPIScripMaster.json (tick size in paise).
- Per-client rate limits from Angel's published table (orders 20/s and 500/min, order/trade book,
  positions and holdings 1/s, RMS 2/s, quotes, LTP and margins 10/s, candles 3/s); `read_rate`
  raises every read limit for tests that read in a loop.

Its instruments are the desk's sample master (webapp/instruments/nse_sample.csv). State lives in
angel_book.py; the SmartWebSocket v2 stream in angel_stream.py.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pyotp
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.emulators.angel_book import Account as AngelAccount
from tests.emulators.angel_book import AngelBook, EmuOrder, Instrument, Refusal, now_ist
from tests.emulators.angel_stream import AngelStreamMixin
from tests.emulators.common import BrokerEmulator, FaultPlan, Ledger, RateLimiter, run_cli
from tests.emulators.stream_common import StreamQuote
from webapp.jsonutil import exact_json
from webapp.timeutil import IST

SECURE = "/rest/secure/angelbroking"
ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "login": ("/rest/auth/angelbroking/user/v1/loginByPassword", ("POST",)),
    "generate_tokens": ("/rest/auth/angelbroking/jwt/v1/generateTokens", ("POST",)),
    "profile": (f"{SECURE}/user/v1/getProfile", ("GET",)),
    "logout": (f"{SECURE}/user/v1/logout", ("POST",)),
    "place_order": (f"{SECURE}/order/v1/placeOrder", ("POST",)),
    "modify_order": (f"{SECURE}/order/v1/modifyOrder", ("POST",)),
    "cancel_order": (f"{SECURE}/order/v1/cancelOrder", ("POST",)),
    "order_book": (f"{SECURE}/order/v1/getOrderBook", ("GET",)),
    "order_details": (f"{SECURE}/order/v1/details/<unique_id>", ("GET",)),
    "trade_book": (f"{SECURE}/order/v1/getTradeBook", ("GET",)),
    "positions": (f"{SECURE}/order/v1/getPosition", ("GET",)),
    "holdings": (f"{SECURE}/portfolio/v1/getHolding", ("GET",)),
    "rms": (f"{SECURE}/user/v1/getRMS", ("GET",)),
    "ltp": (f"{SECURE}/order/v1/getLtpData", ("POST",)),
    "quote": (f"{SECURE}/market/v1/quote", ("POST",)),
    "candles": (f"{SECURE}/historical/v1/getCandleData", ("POST",)),
    "margin": (f"{SECURE}/margin/v1/batch", ("POST",)),
    "scrip_master": ("/OpenAPI_File/files/OpenAPIScripMaster.json", ("GET",)),
}
# Angel's documented per-second limits, per client code (smartapi.angelbroking.com topic 4387).
RATE_LIMITS: dict[str, list[tuple[int, float]]] = {
    "orders": [(20, 1.0), (500, 60.0)],
    "order_book": [(1, 1.0)],
    "trade_book": [(1, 1.0)],
    "positions": [(1, 1.0)],
    "holdings": [(1, 1.0)],
    "rms": [(2, 1.0)],
    "profile": [(3, 1.0)],
    "ltp": [(10, 1.0)],
    "quote": [(10, 1.0)],
    "margin": [(10, 1.0)],
    "details": [(10, 1.0)],
    "candles": [(3, 1.0)],
}
ORDER_CLASSES = ("orders",)
INVALID_TOKEN = {"success": False, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}
RATE_TEXT = "Access denied because of exceeding access rate"
REQUIRED_HEADERS = ("X-PrivateKey", "X-UserType", "X-SourceID", "X-ClientLocalIP", "X-ClientPublicIP", "X-MACAddress")
INTERVALS = {
    "ONE_MINUTE": (1, 30),
    "THREE_MINUTE": (3, 60),
    "FIVE_MINUTE": (5, 100),
    "TEN_MINUTE": (10, 100),
    "FIFTEEN_MINUTE": (15, 200),
    "THIRTY_MINUTE": (30, 200),
    "ONE_HOUR": (60, 400),
    "ONE_DAY": (375, 2000),
}
EXCHANGE_TYPES = {1: "NSE", 3: "BSE"}


@dataclass
class Call:
    account: AngelAccount
    body: dict[str, Any]
    fault: str | None


def ok(data: Any, message: str = "SUCCESS") -> dict[str, Any]:
    return {"status": True, "message": message, "errorcode": "", "data": data}


def refused(message: str, code: str) -> dict[str, Any]:
    return {"status": False, "message": message, "errorcode": code, "data": None}


class AngelEmulator(AngelStreamMixin, BrokerEmulator):
    url_map = Map(
        [Rule(path, endpoint=endpoint, methods=list(methods)) for endpoint, (path, methods) in ROUTES.items()]
        + [Rule("/smart-stream", endpoint="ticker", websocket=True)]
    )

    def __init__(self, faults: FaultPlan | None = None, *, read_rate: int | None = None, auto_fill: bool = True):
        limits = {k: list(v) for k, v in RATE_LIMITS.items()}
        if read_rate is not None:
            limits.update({k: [(read_rate, 1.0)] for k in limits if k not in ORDER_CLASSES})
        super().__init__(faults, rate_limits=limits)
        self.auto_fill = auto_fill
        self.reset(self.faults)

    def reset(self, faults: FaultPlan | None = None) -> None:
        """Forget every account, order and session (one server can then serve many tests)."""
        with self.lock:
            self.faults = faults or FaultPlan()
            self.ledger = Ledger()
            self.limiter = RateLimiter(self.limiter.limits)
            self.book = AngelBook(self.lock, self.auto_fill)
            self.sessions: dict[str, str] = {}  # jwtToken -> client code
            self.feed_tokens: dict[str, str] = {}  # feedToken -> client code
            self.refresh_tokens: dict[str, str] = {}  # refreshToken -> client code
            self.calls: deque[tuple[str, dict[str, str], Any]] = deque(maxlen=2000)
            self._overrides: dict[str, deque[tuple[int, Any]]] = {}
            self._serial = 0

    # ------------------------------------------------------------------ test and admin hooks

    def add_account(
        self,
        client_code: str | None = None,
        mpin: str | None = None,
        totp_secret: str | None = None,
        api_key: str | None = None,
        cash: Any = "1000000",
        collateral: Any = "0",
        holdings: Any = (),
    ) -> dict[str, Any]:
        """A client with its own SmartAPI app; returns its login secrets and a live session.

        holdings: [{"tradingsymbol": "INFY", "quantity": 10, "average_price": "1400.5"}, ...]
        """
        with self.lock:
            self._serial += 1
            code = client_code or f"A{secrets.randbelow(10**7):07d}{self._serial}"
            account = self.book.add_account(
                code,
                mpin=mpin or f"{secrets.randbelow(10**4):04d}",
                totp_secret=totp_secret or pyotp.random_base32(),
                api_key=api_key or secrets.token_hex(8),
                cash=Decimal(str(cash)),
                collateral=Decimal(str(collateral)),
                holdings=holdings,
            )
            tokens = self._issue(code)
        return {
            "client_code": code,
            "mpin": account.mpin,
            "totp_secret": account.totp_secret,
            "api_key": account.api_key,
            "cash": str(account.cash),
            "access_token": tokens["jwtToken"],
            "jwt_token": tokens["jwtToken"],
            "refresh_token": tokens["refreshToken"],
            "feed_token": tokens["feedToken"],
        }

    def _issue(self, client_code: str) -> dict[str, str]:
        tokens = {
            "jwtToken": "eyJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(24),
            "refreshToken": "eyJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(24),
            "feedToken": "eyJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(18),
        }
        self.sessions[tokens["jwtToken"]] = client_code
        self.refresh_tokens[tokens["refreshToken"]] = client_code
        self.feed_tokens[tokens["feedToken"]] = client_code
        return tokens

    def expire_sessions(self, account: str | None = None) -> None:
        with self.lock:
            for table in (self.sessions, self.refresh_tokens, self.feed_tokens):
                for token, code in list(table.items()):
                    if account in (None, code):
                        del table[token]

    def override_next(self, kind: str, status: int, body: Any) -> None:
        """The next request of `kind` (place/modify/cancel/read) gets this raw answer, unbooked."""
        with self.lock:
            self._overrides.setdefault(kind, deque()).append((status, body))

    def set_price(self, tradingsymbol: str, last_price: Any, exchange: str = "NSE") -> None:
        """Move an instrument's price: REST quotes and the stream read it; resting orders match."""
        with self.lock:
            self.book.set_price(exchange, tradingsymbol.removesuffix("-EQ"), Decimal(str(last_price)))

    set_ltp = set_price

    def set_status(self, order_id: str, status: str, text: str = "") -> None:
        """Put an order in any Angel status word ("open pending", "validation pending", ...)."""
        with self.lock:
            order = self._find(order_id)
            order.status, order.text, order.updated = status, text, now_ist()

    def fill(self, order_id: str, quantity: int | None = None, price: Any = None) -> None:
        with self.lock:
            order = self._find(order_id)
            account = self.book.accounts[order.client_code]
            self.book.fill(
                account,
                order,
                quantity or order.quantity - order.filled,
                order.instrument.ltp if price is None else Decimal(str(price)),
            )

    def _find(self, order_id: str) -> EmuOrder:
        for account in self.book.accounts.values():
            if order_id in account.orders:
                return account.orders[order_id]
            for order in account.orders.values():
                if order.unique_id == order_id:
                    return order
        raise KeyError(order_id)

    def last_body(self, path_suffix: str) -> Any:
        return next(body for path, _, body in reversed(self.calls) if path.endswith(path_suffix))

    # ---- the stream mixin's hooks
    def stream_account(self, feed_token: str) -> str | None:
        return self.feed_tokens.get(feed_token)

    def stream_quote(self, exchange: Any, *, token: int | None = None, isin: str | None = None) -> StreamQuote | None:
        exchange = EXCHANGE_TYPES.get(exchange, exchange) if isinstance(exchange, int) else str(exchange)
        instrument: Instrument | None = None
        if token is not None:
            instrument = self.book.instrument(exchange, token)
        elif isin:
            instrument = next(
                (i for i in self.book.instruments.values() if i.exchange == exchange and i.isin == isin), None
            )
        if instrument is None:
            return None
        tick = instrument.tick
        return StreamQuote(
            last_price=instrument.ltp,
            open=instrument.open,
            high=instrument.high,
            low=instrument.low,
            close=instrument.close,
            volume=instrument.volume,
            last_quantity=1,
            bids=tuple((instrument.ltp - tick * i, 100 * i, i) for i in range(1, 6)),
            asks=tuple((instrument.ltp + tick * i, 100 * i, i) for i in range(1, 6)),
        )

    # ------------------------------------------------------------------ responses

    @staticmethod
    def json(payload: Any, status: int = 200) -> Response:
        text = payload if isinstance(payload, str) else exact_json(payload)
        return Response(text, status=status, content_type="application/json")

    def failure(self, message: str, code: str, status: int = 200) -> Response:
        return self.json(refused(message, code), status)

    @staticmethod
    def http_error(status: int) -> Response:
        return Response(
            f"<html><body>{status} Service Unavailable</body></html>", status=status, content_type="text/html"
        )

    @staticmethod
    def rate_limited() -> Response:
        return Response(RATE_TEXT, status=403, content_type="text/plain")

    def invalid_token(self) -> Response:
        return self.json(INVALID_TOKEN, 403)

    # ------------------------------------------------------------------ request checks

    def _read_json(self, request: Request) -> dict[str, Any] | Response:
        text = request.get_data(as_text=True) if request.method == "POST" else ""
        try:
            body = json.loads(text or "{}", parse_float=Decimal)
        except ValueError:
            return self.failure("Invalid request body", "AB1004", 400)
        self.calls.append((request.path, dict(request.headers), body))
        return body if isinstance(body, dict) else self.failure("Invalid request body", "AB1004", 400)

    @staticmethod
    def _header_problem(request: Request) -> str | None:
        missing = [name for name in REQUIRED_HEADERS if not request.headers.get(name)]
        if missing:
            return f"Missing header {missing[0]}"
        if request.headers.get("X-UserType") != "USER":
            return "User Type Must Be USER"
        return None

    def _override(self, kind: str) -> Response | None:
        with self.lock:
            queue = self._overrides.get(kind)
            if not queue:
                return None
            status, body = queue.popleft()
        if isinstance(body, str) and body[:1] not in "{[":
            return Response(body, status=status, content_type="text/html")
        return self.json(body, status)

    def _open(self, request: Request, klass: str, kind: str) -> Call | Response:
        """Authenticate, rate-limit and decide this request's fault."""
        body = self._read_json(request)
        if isinstance(body, Response):
            return body
        problem = self._header_problem(request)
        if problem:
            return self.failure(problem, "AB1005" if "User Type" in problem else "AB2001", 400)
        override = self._override(kind)
        if override is not None:
            return override
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        with self.lock:
            code = self.sessions.get(token)
            account = self.book.accounts.get(code) if code else None
        if account is None or account.api_key != request.headers["X-PrivateKey"]:
            return self.invalid_token()
        if not self.limiter.allow(account.client_code, klass):
            return self.rate_limited()
        fault = self.before_accept(kind, account.client_code)
        if fault == "burst_429":
            return self.rate_limited()
        if fault == "error_5xx":
            return self.http_error(503)
        if fault == "expire_token":
            self.expire_sessions(account.client_code)
            return self.invalid_token()
        return Call(account, body, fault)

    def _finish(self, call: Call, respond: Callable[[], Response]) -> Response:
        return self.after_accept(call.fault, respond, self.http_error)

    # ------------------------------------------------------------------ login

    def login(self, request: Request) -> Response:
        body = self._read_json(request)
        if isinstance(body, Response):
            return body
        problem = self._header_problem(request)
        if problem:
            return self.failure(problem, "AB2001", 400)
        with self.lock:
            account = self.book.accounts.get(str(body.get("clientcode") or ""))
        if account is None or account.api_key != request.headers["X-PrivateKey"]:
            return self.failure("Invalid API Key or client code", "AG8004")
        if str(body.get("password") or "") != account.mpin:
            return self.failure("Invalid clientcode or MPIN", "AB1007")
        if not pyotp.TOTP(account.totp_secret).verify(str(body.get("totp") or ""), valid_window=1):
            return self.failure("Invalid totp", "AB1050")
        with self.lock:
            tokens = self._issue(account.client_code)
        return self.json(ok(tokens))

    def generate_tokens(self, request: Request) -> Response:
        body = self._read_json(request)
        if isinstance(body, Response):
            return body
        with self.lock:
            code = self.refresh_tokens.get(str(body.get("refreshToken") or ""))
            if code is None:
                return self.failure("Invalid refresh token", "AB8050")
            tokens = self._issue(code)
        return self.json(ok(tokens))

    def profile(self, request: Request) -> Response:
        call = self._open(request, "profile", "read")
        if isinstance(call, Response):
            return call
        code = call.account.client_code
        data = {
            "clientcode": code,
            "name": f"Emulated Client {code}",
            "email": "",
            "mobileno": "",
            "exchanges": ["NSE", "BSE"],
            "products": ["DELIVERY", "INTRADAY", "CARRYFORWARD", "MARGIN"],
            "lastlogintime": "",
            "brokerid": "B2C",
        }
        return self._finish(call, lambda: self.json(ok(data)))

    def logout(self, request: Request) -> Response:
        call = self._open(request, "profile", "read")
        if isinstance(call, Response):
            return call
        with self.lock:
            token = request.headers["Authorization"].removeprefix("Bearer ").strip()
            self.sessions.pop(token, None)
        return self._finish(call, lambda: self.json(ok("", "Logout Successfully")))

    # ------------------------------------------------------------------ orders

    def _order_answer(self, order: EmuOrder) -> dict[str, Any]:
        data = {"script": order.instrument.trading_symbol, "orderid": order.order_id, "uniqueorderid": order.unique_id}
        return ok(data)

    def place_order(self, request: Request) -> Response:
        call = self._open(request, "orders", "place")
        if isinstance(call, Response):
            return call
        with self.lock:
            try:
                order = self.book.new_order(call.account, call.body)
            except Refusal as exc:
                return self.failure(exc.message, exc.code)
            # Booked before any accepting fault: the ground truth tests count.
            self.ledger.book(call.account.client_code, order.order_id, order.tag or None, call.body)
            self.book.after_place(call.account, order)
        return self._finish(call, lambda: self.json(self._order_answer(order)))

    def _live_order(self, call: Call) -> EmuOrder | Response:
        order = call.account.orders.get(str(call.body.get("orderid") or ""))
        if order is None:
            return self.failure("Order not found", "AB1013")
        return order

    def modify_order(self, request: Request) -> Response:
        call = self._open(request, "orders", "modify")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._live_order(call)
            if isinstance(order, Response):
                return order
            try:
                self.book.modify(call.account, order, call.body)
            except Refusal as exc:
                return self.failure(exc.message, exc.code)
        return self._finish(call, lambda: self.json(self._order_answer(order)))

    def cancel_order(self, request: Request) -> Response:
        call = self._open(request, "orders", "cancel")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._live_order(call)
            if isinstance(order, Response):
                return order
            try:
                self.book.cancel(order)
            except Refusal as exc:
                return self.failure(exc.message, exc.code)
        return self._finish(call, lambda: self.json(self._order_answer(order)))

    # ------------------------------------------------------------------ reads

    def _read(self, request: Request, klass: str, build: Callable[[Call], Any]) -> Response:
        """A read view: `build` returns the data, or a FAILURE Response. An empty book is data null."""
        call = self._open(request, klass, "read")
        if isinstance(call, Response):
            return call
        with self.lock:
            try:
                data = build(call)
            except Refusal as exc:
                return self.failure(exc.message, exc.code)
        if isinstance(data, Response):
            return data
        return self._finish(call, lambda: self.json(ok(data if data != [] else None)))

    def order_book(self, request: Request) -> Response:
        return self._read(request, "order_book", lambda call: [o.row() for o in call.account.orders.values()])

    def order_details(self, request: Request, unique_id: str) -> Response:
        def build(call: Call) -> Any:
            for order in call.account.orders.values():
                if order.unique_id == unique_id:
                    return order.row()
            raise Refusal("Order not found", "AB1013")

        return self._read(request, "details", build)

    def trade_book(self, request: Request) -> Response:
        return self._read(request, "trade_book", lambda call: list(call.account.trades))

    def positions(self, request: Request) -> Response:
        return self._read(request, "positions", lambda call: self.book.position_rows(call.account))

    def holdings(self, request: Request) -> Response:
        return self._read(request, "holdings", lambda call: self.book.holding_rows(call.account))

    def rms(self, request: Request) -> Response:
        return self._read(request, "rms", lambda call: self.book.rms(call.account))

    def _instrument(self, exchange: Any, token: Any) -> Instrument:
        instrument = self.book.instrument(str(exchange or ""), token or "")
        if instrument is None:
            raise Refusal("Invalid symbol token", "AB1009")
        return instrument

    def ltp(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            i = self._instrument(call.body.get("exchange"), call.body.get("symboltoken"))
            return {
                "exchange": i.exchange,
                "tradingsymbol": i.trading_symbol,
                "symboltoken": str(i.token),
                "open": i.open,
                "high": i.high,
                "low": i.low,
                "close": i.close,
                "ltp": i.ltp,
            }

        return self._read(request, "ltp", build)

    def quote(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            mode = str(call.body.get("mode") or "")
            tokens = call.body.get("exchangeTokens")
            if mode not in ("LTP", "OHLC", "FULL") or not isinstance(tokens, dict):
                raise Refusal("Invalid mode or exchangeTokens", "AB4009")
            fetched, unfetched = [], []
            for exchange, values in tokens.items():
                for token in values if isinstance(values, list) else []:
                    instrument = self.book.instrument(exchange, token)
                    if instrument is None:
                        unfetched.append(
                            {
                                "exchange": exchange,
                                "symbolToken": str(token),
                                "message": "Invalid token",
                                "errorCode": "AB4019",
                            }
                        )
                        continue
                    full = self.book.quote(instrument)
                    if mode == "LTP":
                        keep = ("exchange", "tradingSymbol", "symbolToken", "ltp")
                        full = {k: full[k] for k in keep}
                    elif mode == "OHLC":
                        keep = ("exchange", "tradingSymbol", "symbolToken", "ltp", "open", "high", "low", "close")
                        full = {k: full[k] for k in keep}
                    fetched.append(full)
            return {"fetched": fetched, "unfetched": unfetched}

        return self._read(request, "quote", build)

    def candles(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            body = call.body
            instrument = self._instrument(body.get("exchange"), body.get("symboltoken"))
            interval = INTERVALS.get(str(body.get("interval") or ""))
            if interval is None:
                raise Refusal("Invalid interval", "AB13000")
            try:
                start = datetime.strptime(str(body.get("fromdate") or ""), "%Y-%m-%d %H:%M").replace(tzinfo=IST)
                end = datetime.strptime(str(body.get("todate") or ""), "%Y-%m-%d %H:%M").replace(tzinfo=IST)
            except ValueError:
                raise Refusal("Invalid date format, use yyyy-MM-dd HH:mm", "AB13000") from None
            minutes, max_days = interval
            if end < start or end - start > timedelta(days=max_days):
                raise Refusal(f"Invalid date range: at most {max_days} days for this interval", "AB13000")
            return self.book.candles(instrument, minutes, start, end)

        return self._read(request, "candles", build)

    def margin(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            positions = call.body.get("positions")
            if not isinstance(positions, list) or not positions:
                raise Refusal("positions is required", "AB4009")
            total = Decimal("0")
            breakup = []
            for p in positions:
                instrument = self._instrument(p.get("exchange"), p.get("token"))
                qty = int(str(p.get("qty") or "0"))
                price = Decimal(str(p.get("price") or "0")) or instrument.ltp
                product = str(p.get("productType") or "")
                side = str(p.get("tradeType") or "")
                if side == "SELL" and product in ("DELIVERY", "MARGIN"):
                    need = Decimal("0")
                else:
                    rate = {"INTRADAY": Decimal("0.2"), "MARGIN": Decimal("0.25")}.get(product, Decimal("1"))
                    need = (price * qty * rate).quantize(Decimal("0.01"))
                total += need
                breakup.append({"exchange": instrument.exchange, "productType": product, "totalMarginRequired": need})
            return {
                "totalMarginRequired": total,
                "marginComponents": {
                    "netPremium": 0,
                    "spanMargin": 0,
                    "marginBenefit": 0,
                    "deliveryMargin": total,
                    "nonNFOMargin": 0,
                    "totOptionsPremium": 0,
                },
                "marginBreakup": breakup,
                "optionsBuy": {"totOptionsPremium": 0, "optionDetails": []},
            }

        return self._read(request, "margin", build)

    def scrip_master(self, request: Request) -> Response:
        """The public instrument master: no headers or session needed (it is a static file)."""
        with self.lock:
            rows = [i.master_row() for i in self.book.instruments.values()]
        return Response(json.dumps(rows), content_type="application/json")


if __name__ == "__main__":
    run_cli(AngelEmulator)
