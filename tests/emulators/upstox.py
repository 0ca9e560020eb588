"""Upstox API v2/v3 emulator: the authorization dialog and code exchange, v2 and v3 place/modify/
cancel, the order book, order details and history (by order id or tag), trades, positions,
holdings, funds, v2/v3 quotes, v3 candles, the margin calculator and the JSON.gz instrument file,
with Upstox's envelopes, UDAPI error codes, lower-case status words and per-user rate limits (429
UDAPI10005). The books live in tests/emulators/upstox_book.py.

Wire facts from reference/brokers-upstox-dhan.md §1. The SDK re-validates enum values on every
answer (§1.5), so rows carry only Upstox's own words.

    python -m tests.emulators.upstox --port 0 --latency-ms 100
"""

from __future__ import annotations

import gzip
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import urlencode

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.emulators.common import BrokerEmulator, FaultPlan, run_cli
from tests.emulators.stream_common import StreamQuote
from tests.emulators.upstox_book import (
    IST,
    ORDER_TYPES,
    PRODUCTS,
    SIDES,
    VALIDITIES,
    Instrument,
    Refusal,
    UpstoxAccount,
    UpstoxBook,
    money,
)
from tests.emulators.upstox_stream import UpstoxStreamMixin

# Per user, per API class (§1.7): orders 10/s, 500/min, 2000/30 min; other APIs 50/s, 500/min, 2000/30 min.
UPSTOX_LIMITS = {
    "orders": [(10, 1.0), (500, 60.0), (2000, 1800.0)],
    "api": [(50, 1.0), (500, 60.0), (2000, 1800.0)],
}
CODE_TTL = 600.0
PUBLIC = UpstoxAccount("", "", "", "", Decimal("0"))  # who a token-less public call counts against
QUOTE_MAX = 500
CANDLE_UNITS = {"minutes": (1, 300), "hours": (1, 5), "days": (1, 1), "weeks": (1, 1), "months": (1, 1)}
INSTRUMENTS_PATH = "/market-quote/instruments/exchange/NSE.json.gz"
BSE_INSTRUMENTS_PATH = "/market-quote/instruments/exchange/BSE.json.gz"  # the emulator lists no BSE rows
BAD_TOKEN = Refusal(401, "UDAPI100050", "Invalid token used to access API")
TOO_MANY = Refusal(429, "UDAPI10005", "Too Many Request Sent")
SERVER_ERROR = Refusal(500, "UDAPI100500", "Something went wrong, please try again later")
PLACE_REQUIRED = (
    "quantity",
    "product",
    "validity",
    "price",
    "instrument_token",
    "order_type",
    "transaction_type",
    "disclosed_quantity",
    "trigger_price",
    "is_amo",
)


class UpstoxEmulator(UpstoxStreamMixin, BrokerEmulator):
    url_map = Map(
        [
            Rule("/v3/feed/market-data-feed/authorize", methods=["GET"], endpoint="feed_authorize"),
            Rule("/v3/feed/socket", endpoint="ticker", websocket=True),
            Rule("/v2/login/authorization/dialog", methods=["GET"], endpoint="login_dialog"),
            Rule("/v2/login/authorization/dialog", methods=["POST"], endpoint="login_submit"),
            Rule("/v2/login/authorization/token", methods=["POST"], endpoint="login_token"),
            Rule("/v2/logout", methods=["DELETE"], endpoint="logout"),
            Rule("/v2/user/profile", methods=["GET"], endpoint="profile"),
            Rule("/v2/user/get-funds-and-margin", methods=["GET"], endpoint="funds"),
            Rule("/v2/order/place", methods=["POST"], endpoint="place_v2"),
            Rule("/v3/order/place", methods=["POST"], endpoint="place_v3"),
            Rule("/v2/order/modify", methods=["PUT"], endpoint="modify_v2"),
            Rule("/v3/order/modify", methods=["PUT"], endpoint="modify_v3"),
            Rule("/v2/order/cancel", methods=["DELETE"], endpoint="cancel_v2"),
            Rule("/v3/order/cancel", methods=["DELETE"], endpoint="cancel_v3"),
            Rule("/v2/order/retrieve-all", methods=["GET"], endpoint="order_book"),
            Rule("/v2/order/details", methods=["GET"], endpoint="order_details"),
            Rule("/v2/order/history", methods=["GET"], endpoint="order_history"),
            Rule("/v2/order/trades/get-trades-for-day", methods=["GET"], endpoint="trade_book"),
            Rule("/v2/order/trades", methods=["GET"], endpoint="order_trades"),
            Rule("/v2/portfolio/short-term-positions", methods=["GET"], endpoint="positions"),
            Rule("/v2/portfolio/long-term-holdings", methods=["GET"], endpoint="holdings"),
            Rule("/v2/market-quote/quotes", methods=["GET"], endpoint="quotes_full"),
            Rule("/v2/market-quote/ltp", methods=["GET"], endpoint="quotes_ltp"),
            Rule("/v3/market-quote/ltp", methods=["GET"], endpoint="quotes_ltp_v3"),
            Rule("/v3/market-quote/quotes", methods=["GET"], endpoint="quotes_full_v3"),
            Rule("/v2/charges/margin", methods=["POST"], endpoint="margin"),
            Rule("/v3/historical-candle/<path:key>/<unit>/<int:interval>/<to_date>/<from_date>", endpoint="candles"),
            Rule("/v3/historical-candle/<path:key>/<unit>/<int:interval>/<to_date>", endpoint="candles"),
            Rule(INSTRUMENTS_PATH, methods=["GET"], endpoint="instrument_file"),
            Rule(BSE_INSTRUMENTS_PATH, methods=["GET"], endpoint="instrument_file"),
        ]
    )

    def __init__(self, faults: FaultPlan | None = None, rate_limits: dict[str, list[tuple[int, float]]] | None = None):
        super().__init__(faults, rate_limits or UPSTOX_LIMITS)
        self.book = UpstoxBook()
        self.accounts: dict[str, UpstoxAccount] = {}
        self.sessions: dict[str, str] = {}  # access token -> user id
        self.codes: dict[str, tuple[str, str, float]] = {}  # code -> (user id, redirect uri, issued)
        self.clock: Callable[[], datetime] = lambda: datetime.now(IST)
        self._scripted: dict[str, deque[Response]] = defaultdict(deque)

    # ================================================================ test helpers

    def add_account(
        self,
        user_id: str | None = None,
        cash: Any = "1000000",
        holdings: Any = (),
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uri: str = "http://localhost/clients/connect/callback",
        user_name: str = "Emulated Client",
    ) -> dict[str, Any]:
        """An account with its own Upstox app; returns its app credentials and a live access token.

        holdings: [{"tradingsymbol": "INFY", "quantity": 10, "average_price": "1400.5"}, ...]
        """
        with self.lock:
            user_id = user_id or f"UP{1000 + len(self.accounts)}"
            account = UpstoxAccount(
                user_id=user_id,
                client_id=client_id or secrets.token_hex(8),
                client_secret=client_secret or secrets.token_hex(12),
                redirect_uri=redirect_uri,
                cash=Decimal(str(cash)),
                user_name=user_name,
            )
            for h in holdings:
                instrument = self.book.by_symbol(h["tradingsymbol"])
                account.holdings[instrument.key] = {
                    "quantity": int(h["quantity"]),
                    "average_price": Decimal(str(h["average_price"])),
                    "t1_quantity": int(h.get("t1_quantity", 0)),
                }
            self.accounts[user_id] = account
            token = self.issue_session(user_id)
        return {
            "user_id": user_id,
            "client_id": account.client_id,
            "client_secret": account.client_secret,
            "redirect_uri": redirect_uri,
            "access_token": token,
        }

    def issue_session(self, user_id: str) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[token] = user_id
        return token

    def expire_sessions(self, account: str | None = None) -> None:
        with self.lock:
            for token, user_id in list(self.sessions.items()):
                if account is None or user_id == account:
                    del self.sessions[token]

    def instrument(self, symbol: str) -> Instrument:
        return self.book.by_symbol(symbol)

    def set_price(self, symbol: str, last_price: Any) -> None:
        """Move an instrument's price: REST quotes and the stream read it; resting orders match."""
        with self.lock:
            instrument = self.book.by_symbol(symbol)
            instrument.move(Decimal(str(last_price)))
            self.book.reprice(list(self.accounts.values()), instrument.key, self.clock())

    def order(self, order_id: str) -> dict[str, Any]:
        with self.lock:
            for account in self.accounts.values():
                if order_id in account.orders:
                    return {k: v for k, v in account.orders[order_id].items() if not k.startswith("_")}
        raise KeyError(order_id)

    def fill(self, order_id: str, quantity: int | None = None, price: Any = None) -> None:
        """Fill (part of) an open order, as the exchange would: a trade, the position, the funds."""
        with self.lock:
            for account in self.accounts.values():
                row = account.orders.get(order_id)
                if row is not None:
                    if row["status"] != "open":
                        raise ValueError(f"order {order_id} is {row['status']}")
                    instrument = self.book.instruments[row["instrument_token"]]
                    at = Decimal(str(price)) if price is not None else instrument.last_price
                    self.book.fill(account, row, quantity or row["pending_quantity"], at, self.clock())
                    return
        raise KeyError(order_id)

    def script_response(self, kind: str, status: int, body: str | bytes, content_type: str = "application/json"):
        """The next request of `kind` gets exactly this answer (malformed bodies, odd envelopes)."""
        self._scripted[kind].append(Response(body, status=status, content_type=content_type))

    def clear_scripts(self) -> None:
        self._scripted.clear()

    # ---- for the stream mixin
    def stream_account(self, token: str) -> str | None:
        with self.lock:
            return self.sessions.get(token)

    def stream_quote(self, exchange: str, *, token: int | None = None, isin: str | None = None) -> StreamQuote | None:
        with self.lock:
            for instrument in self.book.instruments.values():
                if (isin and instrument.isin == isin) or (token is not None and instrument.exchange_token == token):
                    return StreamQuote(
                        last_price=instrument.last_price,
                        open=instrument.open,
                        high=instrument.high,
                        low=instrument.low,
                        close=instrument.close,
                        volume=instrument.volume,
                        last_quantity=1,
                        bids=tuple(_depth(instrument, -1)),
                        asks=tuple(_depth(instrument, 1)),
                    )
        return None

    # ================================================================ plumbing

    def not_found(self, request: Request) -> Response:
        return _error(Refusal(404, "UDAPI10000", "This request is not supported by Upstox API"))

    def _authenticate(self, request: Request, public: bool = False) -> UpstoxAccount:
        header = request.headers.get("Authorization", "")
        if public and not header:  # the SDK calls the candle routes with no token (auth_settings = [])
            return PUBLIC
        scheme, _, token = header.partition(" ")
        with self.lock:
            account = self.accounts.get(self.sessions.get(token, ""))
        if scheme.lower() != "bearer" or account is None:
            raise BAD_TOKEN
        return account

    def _api(
        self, request: Request, kind: str, limit: str, handler: Callable[[UpstoxAccount], Any], public: bool = False
    ) -> Response:
        try:
            account = self._authenticate(request, public)
            if not self.limiter.allow(account.user_id, limit):
                raise TOO_MANY
            fault = self.before_accept(kind, account.user_id)
            if self._scripted[kind]:
                return self._scripted[kind].popleft()
            if fault == "burst_429":
                raise TOO_MANY
            if fault == "error_5xx":
                raise SERVER_ERROR
            if fault == "expire_token":
                self.expire_sessions(account.user_id)
                raise BAD_TOKEN
            with self.lock:
                data = handler(account)
        except Refusal as refusal:
            return _error(refusal)
        respond = (lambda: data) if isinstance(data, Response) else (lambda: _success(data))
        return self.after_accept(fault, respond, lambda status: _error(SERVER_ERROR))

    def _read(
        self, request: Request, handler: Callable[[UpstoxAccount], Any], kind: str = "read", public: bool = False
    ) -> Response:
        return self._api(request, kind, "api", handler, public)

    # ================================================================ login

    def login_dialog(self, request: Request) -> Response:
        args = request.args
        account = self._by_client_id(args.get("client_id"))
        if account is None or args.get("redirect_uri") != account.redirect_uri:
            return _error(
                Refusal(400, "UDAPI100068", "Check your 'client_id' and 'redirect_uri'; one or both are incorrect.")
            )
        if args.get("response_type") != "code":
            return _error(Refusal(400, "UDAPI100038", "Invalid response_type", "response_type"))
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in (
                ("client_id", account.client_id),
                ("redirect_uri", account.redirect_uri),
                ("state", args.get("state", "")),
            )
        )
        page = (
            "<html><body><h1>Login to Upstox</h1><form method='post'>"
            f"{hidden}<input name='user_id'><input name='password' type='password'>"
            "<button>Continue</button></form></body></html>"
        )
        return Response(page, content_type="text/html")

    def login_submit(self, request: Request) -> Response:
        """The user approves: 302 to redirect_uri?code=…&state=…"""
        form = request.form
        account = self._by_client_id(form.get("client_id"))
        if (
            account is None
            or form.get("redirect_uri") != account.redirect_uri
            or form.get("user_id") != account.user_id
        ):
            return Response("<html><body>Invalid credentials</body></html>", status=401, content_type="text/html")
        code = secrets.token_urlsafe(6)
        with self.lock:
            self.codes[code] = (account.user_id, account.redirect_uri, time.monotonic())
        query = {"code": code}
        if form.get("state"):
            query["state"] = form["state"]
        return Response(status=302, headers={"Location": f"{account.redirect_uri}?{urlencode(query)}"})

    def login_token(self, request: Request) -> Response:
        if request.mimetype != "application/x-www-form-urlencoded":
            return _error(Refusal(400, "UDAPI100038", "Invalid input", "code"))
        form = request.form
        with self.lock:
            issued = self.codes.pop(form.get("code", ""), None)  # single use, even when the exchange fails
        account = self._by_client_id(form.get("client_id"))
        if account is None or form.get("client_secret") != account.client_secret:
            return _error(Refusal(401, "UDAPI100016", "Invalid Credentials"))
        if form.get("grant_type") != "authorization_code":
            return _error(Refusal(400, "UDAPI100038", "Invalid grant_type", "grant_type"))
        if (
            issued is None
            or issued[0] != account.user_id
            or form.get("redirect_uri") != issued[1]
            or time.monotonic() - issued[2] > CODE_TTL
        ):
            return _error(Refusal(400, "UDAPI100057", "Invalid Auth code"))
        token = self.issue_session(account.user_id)
        body = {
            "email": account.email,
            "exchanges": ["NSE", "BSE", "NFO"],
            "products": ["D", "I", "CO", "MTF"],
            "broker": "UPSTOX",
            "user_id": account.user_id,
            "user_name": account.user_name,
            "order_types": list(ORDER_TYPES),
            "user_type": "individual",
            "poa": False,
            "is_active": True,
            "access_token": token,
            "extended_token": None,
        }
        return Response(json.dumps(body), content_type="application/json")

    def logout(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            token = request.headers.get("Authorization", "").partition(" ")[2]
            self.sessions.pop(token, None)
            return True

        return self._read(request, handler)

    def _by_client_id(self, client_id: str | None) -> UpstoxAccount | None:
        for account in self.accounts.values():
            if account.client_id == client_id:
                return account
        return None

    # ================================================================ account

    def profile(self, request: Request) -> Response:
        return self._read(
            request,
            lambda a: {
                "email": a.email,
                "exchanges": ["NSE", "BSE"],
                "products": ["D", "I", "MTF"],
                "broker": "UPSTOX",
                "user_id": a.user_id,
                "user_name": a.user_name,
                "order_types": list(ORDER_TYPES),
                "user_type": "individual",
                "poa": False,
                "is_active": True,
            },
        )

    def funds(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            data = self.book.funds(account)
            segment = request.args.get("segment")
            if segment == "SEC":
                data.pop("commodity")
            elif segment == "COM":
                data.pop("equity")
            return data

        return self._read(request, handler)

    # ================================================================ orders

    def place_v2(self, request: Request) -> Response:
        return self._place(request, v3=False)

    def place_v3(self, request: Request) -> Response:
        return self._place(request, v3=True)

    def _place(self, request: Request, v3: bool) -> Response:
        body = request.get_json(silent=True)

        def handler(account: UpstoxAccount) -> Any:
            _check_place(body, v3)
            row = self.book.place(account, body, self.clock())
            self.ledger.book(account.user_id, row["order_id"], row["tag"], body)
            return {"order_ids": [row["order_id"]]} if v3 else {"order_id": row["order_id"]}

        response = self._api(request, "place", "orders", handler)
        if v3 and response.status_code == 200 and response.mimetype == "application/json":
            payload = json.loads(response.get_data())
            if payload.get("status") == "success":
                payload["metadata"] = {"latency": 12}
                response.set_data(json.dumps(payload))
        return response

    def modify_v2(self, request: Request) -> Response:
        return self._modify(request)

    def modify_v3(self, request: Request) -> Response:
        return self._modify(request)

    def _modify(self, request: Request) -> Response:
        body = request.get_json(silent=True)

        def handler(account: UpstoxAccount) -> Any:
            if not isinstance(body, dict) or not body.get("order_id"):
                raise Refusal(400, "UDAPI1023", "Order id is required", "order_id")
            for name, values, code in (("order_type", ORDER_TYPES, "UDAPI1056"), ("validity", VALIDITIES, "UDAPI1055")):
                if body.get(name) not in values:
                    raise Refusal(400, code, f"Invalid {name}", name)
            for name in ("price", "trigger_price"):
                if not isinstance(body.get(name), (int, float)):
                    raise Refusal(400, "UDAPI100038", f"Invalid {name}", name)
            if body.get("quantity") is not None and not _positive_int(body["quantity"]):
                raise Refusal(400, "UDAPI100038", "Invalid quantity", "quantity")
            row = self._own_order(account, str(body["order_id"]))
            self.book.modify(account, row, body, self.clock())
            return {"order_id": row["order_id"]}

        return self._api(request, "modify", "orders", handler)

    def cancel_v2(self, request: Request) -> Response:
        return self._cancel(request)

    def cancel_v3(self, request: Request) -> Response:
        return self._cancel(request)

    def _cancel(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            order_id = request.args.get("order_id", "")
            if not order_id:
                raise Refusal(400, "UDAPI1023", "Order id is required", "order_id")
            row = self._own_order(account, order_id)
            self.book.cancel(account, row)
            return {"order_id": order_id}

        return self._api(request, "cancel", "orders", handler)

    def _own_order(self, account: UpstoxAccount, order_id: str) -> dict[str, Any]:
        if not all(c.isalnum() or c == "-" for c in order_id):
            raise Refusal(400, "UDAPI1010", "Order id accepts only alphanumeric characters and '-'.", "order_id")
        try:
            return account.orders[order_id]
        except KeyError:
            raise Refusal(400, "UDAPI100010", "Order not found", "order_id") from None

    def order_book(self, request: Request) -> Response:
        return self._read(request, lambda a: [_public(r) for r in a.orders.values()], "order_book")

    def order_details(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            row = _public(self._own_order(account, request.args.get("order_id", "")))
            # Upstox's documented details sample names a cash order "SBIN-EQ" where the book says "SBIN"
            return {
                **row,
                "trading_symbol": row["trading_symbol"] + "-EQ",
                "tradingsymbol": row["tradingsymbol"] + "-EQ",
            }

        return self._read(request, handler)

    def order_history(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            order_id, tag = request.args.get("order_id"), request.args.get("tag")
            if order_id:  # with a tag too: only if that order carries it (Upstox's doc)
                self._own_order(account, order_id)
                return [h for h in account.history if h["order_id"] == order_id and (not tag or h["tag"] == tag)]
            if tag:
                return [h for h in account.history if h["tag"] == tag]
            raise Refusal(400, "UDAPI1023", "Either order_id or tag is required", "order_id")

        return self._read(request, handler, "order_history")

    def trade_book(self, request: Request) -> Response:
        return self._read(request, lambda a: list(a.trades))

    def order_trades(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            order_id = request.args.get("order_id", "")
            self._own_order(account, order_id)
            return [t for t in account.trades if t["order_id"] == order_id]

        return self._read(request, handler)

    def positions(self, request: Request) -> Response:
        return self._read(request, self.book.position_rows)

    def holdings(self, request: Request) -> Response:
        return self._read(request, self.book.holding_rows)

    # ================================================================ market data

    def _keys(self, request: Request) -> list[str]:
        raw = request.args.get("instrument_key") or request.args.get("symbol") or ""  # the v2 SDK still sends symbol
        keys = [k for k in raw.split(",") if k]
        if not keys:
            raise Refusal(400, "UDAPI1009", "instrument_key is required", "instrument_key")
        if len(keys) > QUOTE_MAX:
            raise Refusal(400, "UDAPI1004", f"Maximum {QUOTE_MAX} instrument keys are allowed", "instrument_key")
        return keys

    def quotes_full(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            out = {}
            for key in self._keys(request):
                instrument = self.book.instruments.get(key)
                if instrument is not None:
                    out[instrument.quote_key] = _full_quote(instrument)
            return out

        return self._read(request, handler, "quotes")

    def quotes_full_v3(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            out = {}
            for key in self._keys(request):
                instrument = self.book.instruments.get(key)
                if instrument is not None:
                    row = _full_quote(instrument)
                    row.update(
                        prev_close_price=money(instrument.close),
                        year_high=money(instrument.high),
                        year_low=money(instrument.low),
                        previous_oi=0.0,
                    )
                    out[instrument.quote_key] = row
            return out

        return self._read(request, handler, "quotes")

    def quotes_ltp(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            out = {}
            for key in self._keys(request):
                instrument = self.book.instruments.get(key)
                if instrument is not None:
                    out[instrument.quote_key] = {
                        "instrument_token": key,
                        "last_price": money(instrument.last_price),
                    }
            return out

        return self._read(request, handler, "quotes")

    def quotes_ltp_v3(self, request: Request) -> Response:
        def handler(account: UpstoxAccount) -> Any:
            out = {}
            for key in self._keys(request):
                instrument = self.book.instruments.get(key)
                if instrument is not None:
                    out[instrument.quote_key] = {
                        "last_price": money(instrument.last_price),
                        "instrument_token": key,
                        "ltq": 1,
                        "volume": instrument.volume,
                        "cp": money(instrument.close),
                    }
            return out

        return self._read(request, handler, "quotes")

    def margin(self, request: Request) -> Response:
        body = request.get_json(silent=True)

        def handler(account: UpstoxAccount) -> Any:
            lines = body.get("instruments") if isinstance(body, dict) else None
            if not isinstance(lines, list) or not lines:
                raise Refusal(400, "UDAPI100038", "Invalid input", "instruments")
            margins, total = [], Decimal("0")
            for line in lines:
                instrument = self.book.instrument(str(line.get("instrument_key")))
                if line.get("product") not in PRODUCTS or line.get("transaction_type") not in SIDES:
                    raise Refusal(400, "UDAPI100038", "Invalid input", "product")
                if not _positive_int(line.get("quantity")):
                    raise Refusal(400, "UDAPI100038", "Invalid quantity", "quantity")
                price = Decimal(str(line.get("price") or 0)) or instrument.last_price
                need = Decimal("0")
                if not (line["transaction_type"] == "SELL" and line["product"] == "D"):
                    rate = {"I": Decimal("0.2"), "D": Decimal("1"), "MTF": Decimal("0.5")}[line["product"]]
                    need = (price * int(line["quantity"]) * rate).quantize(Decimal("0.01"))
                total += need
                margins.append(
                    {
                        "span_margin": 0.0,
                        "exposure_margin": 0.0,
                        "equity_margin": money(need),
                        "net_buy_premium": 0.0,
                        "additional_margin": 0.0,
                        "total_margin": money(need),
                        "tender_margin": 0.0,
                    }
                )
            return {"margins": margins, "required_margin": money(total), "final_margin": money(total)}

        return self._read(request, handler, "margin")

    def candles(self, request: Request, key: str, unit: str, interval: int, to_date: str, from_date: str | None = None):
        def handler(account: UpstoxAccount) -> Any:
            instrument = self.book.instruments.get(key)
            if "|" not in key:
                raise Refusal(400, "UDAPI1021", "Instrument key is of invalid format", "instrument_key")
            if instrument is None:
                raise Refusal(400, "UDAPI100011", "Invalid Instrument key", "instrument_key")
            if unit not in CANDLE_UNITS:
                raise Refusal(400, "UDAPI1146", "Invalid unit", "unit")
            low, high = CANDLE_UNITS[unit]
            if not low <= interval <= high:
                raise Refusal(400, "UDAPI1147", "Invalid interval", "interval")
            try:
                end = date.fromisoformat(to_date)
                start = date.fromisoformat(from_date) if from_date else end - timedelta(days=30)
            except ValueError:
                raise Refusal(400, "UDAPI1015", "Invalid date format", "to_date") from None
            if end < start:
                raise Refusal(400, "UDAPI1015", "to_date cannot be before from_date", "to_date")
            limit_days = 31 if unit == "minutes" and interval <= 15 else 92 if unit in ("minutes", "hours") else 3660
            if (end - start).days > limit_days:
                raise Refusal(400, "UDAPI1148", "Invalid date range", "from_date")
            return {"candles": _candles(instrument, unit, interval, start, end)}

        return self._read(request, handler, "candles", public=True)

    def instrument_file(self, request: Request) -> Response:
        """The daily file (public, no token). script_response("instruments", ...) fails the next one."""
        if self._scripted["instruments"]:
            return self._scripted["instruments"].popleft()
        records = self.book.instrument_records() if request.path == INSTRUMENTS_PATH else []
        data = gzip.compress(json.dumps(records).encode())
        return Response(data, content_type="application/gzip")


# -------------------------------------------------------------------- helpers


def _success(data: Any) -> Response:
    return Response(json.dumps({"status": "success", "data": data}), content_type="application/json")


def _error(refusal: Refusal) -> Response:
    error = {
        "errorCode": refusal.code,
        "message": refusal.message,
        "propertyPath": refusal.property_path,
        "invalidValue": None,
        "error_code": refusal.code,
        "property_path": refusal.property_path,
        "invalid_value": None,
    }
    return Response(
        json.dumps({"status": "error", "errors": [error]}), status=refusal.status, content_type="application/json"
    )


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_place(body: Any, v3: bool) -> None:
    if not isinstance(body, dict):
        raise Refusal(400, "UDAPI100038", "Invalid input", "body")
    for name in PLACE_REQUIRED:
        if body.get(name) is None:
            raise Refusal(400, "UDAPI100038", f"{name} is required", name)
    if not _positive_int(body["quantity"]):
        raise Refusal(400, "UDAPI100038", "Quantity should be a positive number", "quantity")
    products = PRODUCTS if v3 else (*PRODUCTS, "CO")
    if body["product"] not in products:
        raise Refusal(400, "UDAPI1053", "Invalid product", "product")
    if body["validity"] not in VALIDITIES:
        raise Refusal(400, "UDAPI1055", "Invalid validity", "validity")
    if body["order_type"] not in ORDER_TYPES:
        raise Refusal(400, "UDAPI1056", "Invalid order_type", "order_type")
    if body["transaction_type"] not in SIDES:
        raise Refusal(400, "UDAPI1057", "Invalid transaction_type", "transaction_type")
    if body["order_type"] in ("LIMIT", "SL") and not body["price"]:
        raise Refusal(400, "UDAPI100038", "Price is required for this order type", "price")
    if body["order_type"] in ("SL", "SL-M") and not body["trigger_price"]:
        raise Refusal(400, "UDAPI100038", "Trigger price is required for this order type", "trigger_price")
    protection = body.get("market_protection")
    if protection is not None and (
        not isinstance(protection, (int, float)) or not (protection == -1 or 0 <= protection <= 25)
    ):
        raise Refusal(400, "UDAPI100038", "market_protection must be -1 or between 0 and 25", "market_protection")
    tag = body.get("tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > 40):
        raise Refusal(400, "UDAPI100038", "Invalid tag", "tag")


def _depth(instrument: Instrument, direction: int) -> list[tuple[Decimal, int, int]]:
    return [(instrument.last_price + direction * instrument.tick_size * n, 100 * n, n) for n in range(1, 6)]


def _full_quote(instrument: Instrument) -> dict[str, Any]:
    band = (instrument.close * Decimal("0.1")).quantize(Decimal("0.05"))
    return {
        "ohlc": {
            "open": money(instrument.open),
            "high": money(instrument.high),
            "low": money(instrument.low),
            "close": money(instrument.close),
        },
        "depth": {
            "buy": [{"quantity": q, "price": money(p), "orders": o} for p, q, o in _depth(instrument, -1)],
            "sell": [{"quantity": q, "price": money(p), "orders": o} for p, q, o in _depth(instrument, 1)],
        },
        "timestamp": datetime.now(IST).strftime("%Y-%m-%dT%H:%M:%S.000+05:30"),
        "instrument_token": instrument.key,
        "symbol": instrument.symbol,
        "last_price": money(instrument.last_price),
        "volume": instrument.volume,
        "average_price": money(instrument.last_price),
        "oi": 0.0,
        "net_change": money(instrument.last_price - instrument.close),
        "total_buy_quantity": 1500,
        "total_sell_quantity": 1500,
        "lower_circuit_limit": money(instrument.close - band),
        "upper_circuit_limit": money(instrument.close + band),
        "last_trade_time": str(int(datetime.now(IST).timestamp() * 1000)),
        "oi_day_high": 0.0,
        "oi_day_low": 0.0,
    }


def _candles(instrument: Instrument, unit: str, interval: int, start: date, end: date) -> list[list[Any]]:
    """Deterministic bars over NSE hours on weekdays in [start, end], newest first (as Upstox sends)."""
    minutes = {"minutes": interval, "hours": 60 * interval}.get(unit)
    bars: list[list[Any]] = []
    day = start
    while day <= end:
        if day.weekday() < 5:
            if minutes is None:
                stamps = [datetime(day.year, day.month, day.day, tzinfo=IST)]
            else:
                first = datetime(day.year, day.month, day.day, 9, 15, tzinfo=IST)
                close = datetime(day.year, day.month, day.day, 15, 30, tzinfo=IST)
                stamps, at = [], first
                while at < close:
                    stamps.append(at)
                    at += timedelta(minutes=minutes)
            for at in stamps:
                wobble = Decimal((at.toordinal() * 7 + at.hour * 60 + at.minute) % 11 - 5) * instrument.tick_size
                o = instrument.close + wobble
                c = o + instrument.tick_size
                bars.append(
                    [
                        at.isoformat(),
                        money(o),
                        money(c + instrument.tick_size),
                        money(o - instrument.tick_size),
                        money(c),
                        1000,
                        0,
                    ]
                )
        day += timedelta(days=1)
    bars.reverse()
    return bars


if __name__ == "__main__":
    run_cli(UpstoxEmulator)
