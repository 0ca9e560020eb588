"""Zerodha Kite Connect v3 emulator: the REST routes the desk uses, the rest of Kite's quote
(`/quote`, `/quote/ohlc`, `/quote/ltp`) and margin (`/margins/orders`, `/margins/basket`) calls, the
login page and session exchange, Kite's envelopes, error types, status words and rate limits. The
books (orders, fills, positions, funds) live in tests/emulators/kite_book.py, the margin calculator
and its charges in kite_margins.py.

Wire facts from reference/brokers.md §1 and §5. Where Kite's exact wording is not documented the
messages are this emulator's, in Kite's backtick style; taken from Kite are the circuit-band and
market-protection messages, "Incorrect `api_key` or `access_token`." and "Maximum allowed order
modifications exceeded.". The WebSocket ticker is served at "/" by tests/emulators/kite_stream.py,
the historical candles by tests/emulators/kite_history.py.

    python -m tests.emulators.kite --port 0 --latency-ms 100
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pyotp
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.emulators.common import BrokerEmulator, FaultPlan, run_cli
from tests.emulators.kite_book import (
    IST,
    ORDER_TYPES,
    PRODUCTS,
    SEED_INSTRUMENTS,
    Instrument,
    KiteAccount,
    KiteBook,
    Refusal,
)
from tests.emulators.kite_history import HISTORY_LIMIT, KiteHistoryMixin
from tests.emulators.kite_margins import basket_margin, order_margin
from tests.emulators.kite_stream import KiteStreamMixin
from webapp.jsonutil import exact_json

REQUEST_TOKEN_TTL = 120.0  # "valid for only a couple of minutes"
QUOTE_MAX = {"quote": 500, "ohlc": 1000, "ltp": 1000}  # instruments per call
# Per account (orders) and per api_key (everything else; one app per account here).
KITE_LIMITS = {
    "orders": [(10, 1.0), (400, 60.0), (5000, 86400.0)],
    "api": [(10, 1.0)],
    "quote": [(1, 1.0)],
    "historical": HISTORY_LIMIT,
}
SERVER_ERRORS = {
    500: ("GeneralException", "Something went wrong. Please try again."),
    502: ("DataException", "Couldn't parse the response from the OMS."),
    503: ("NetworkException", "Couldn't connect to the OMS. Please try again."),
    504: ("NetworkException", "Gateway timeout."),
}
INSTRUMENT_HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,"
    "lot_size,instrument_type,segment,exchange"
)
TOO_MANY = (429, "NetworkException", "Too many requests")
BAD_TOKEN = (403, "TokenException", "Incorrect `api_key` or `access_token`.")


class KiteEmulator(KiteHistoryMixin, KiteStreamMixin, BrokerEmulator):
    url_map = Map(
        [
            Rule("/", endpoint="ticker", websocket=True),  # the WebSocket ticker (kite_stream.py)
            Rule("/connect/login", methods=["GET"], endpoint="login_page"),
            Rule("/connect/login", methods=["POST"], endpoint="login_submit"),
            Rule("/session/token", methods=["POST"], endpoint="session_token"),
            Rule("/session/token", methods=["DELETE"], endpoint="session_logout"),
            Rule("/user/profile", methods=["GET"], endpoint="profile"),
            Rule("/user/margins", methods=["GET"], endpoint="margins"),
            Rule("/user/margins/<segment>", methods=["GET"], endpoint="margins"),
            Rule("/orders", methods=["GET"], endpoint="orders"),
            Rule("/orders/<order_id>", methods=["GET"], endpoint="order_history"),
            Rule("/orders/<order_id>/trades", methods=["GET"], endpoint="order_trades"),
            Rule("/orders/<variety>", methods=["POST"], endpoint="place_order"),
            Rule("/orders/<variety>/<order_id>", methods=["PUT"], endpoint="modify_order"),
            Rule("/orders/<variety>/<order_id>", methods=["DELETE"], endpoint="cancel_order"),
            Rule("/trades", methods=["GET"], endpoint="trade_book"),
            Rule("/portfolio/positions", methods=["GET"], endpoint="positions"),
            Rule("/portfolio/holdings", methods=["GET"], endpoint="holdings"),
            Rule("/quote", methods=["GET"], endpoint="quote"),
            Rule("/quote/ohlc", methods=["GET"], endpoint="quote_ohlc"),
            Rule("/quote/ltp", methods=["GET"], endpoint="quote_ltp"),
            Rule("/margins/orders", methods=["POST"], endpoint="order_margins"),
            Rule("/margins/basket", methods=["POST"], endpoint="basket_margins"),
            Rule("/instruments", methods=["GET"], endpoint="instrument_dump"),
            Rule(  # historical candles (kite_history.py)
                "/instruments/historical/<instrument_token>/<interval>", methods=["GET"], endpoint="historical"
            ),
            Rule("/instruments/<exchange>", methods=["GET"], endpoint="instrument_dump"),
        ]
    )

    def __init__(
        self,
        faults: FaultPlan | None = None,
        auto_fill: bool = True,
        rate_limits: dict[str, list[tuple[int, float]]] | None = None,
    ):
        super().__init__(faults, rate_limits or KITE_LIMITS)
        self.book = KiteBook(clock=lambda: datetime.now(IST), auto_fill=auto_fill)
        self.accounts: dict[str, KiteAccount] = {}
        self.sessions: dict[str, str] = {}  # access_token -> user_id
        self.request_tokens: dict[str, tuple[str, float]] = {}  # request_token -> (user_id, issued)
        self._scripted: dict[str, deque[Response]] = defaultdict(deque)
        for symbol, name, token, price, tick, isin in SEED_INSTRUMENTS:
            self.add_instrument(symbol, name, token, price, tick, isin=isin, volume=1_250_000)

    # ================================================================ test helpers

    def add_account(
        self,
        user_id: str | None = None,
        password: str = "kite-pass",
        totp_secret: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        redirect_url: str = "http://127.0.0.1/kite/callback",
        cash: Any = "1000000",
        collateral: Any = "0",
        holdings: Any = (),
        user_name: str = "Emulated Client",
    ) -> dict[str, Any]:
        """An account with its own Kite Connect app; returns its credentials and a live access token.

        holdings: [{"tradingsymbol": "INFY", "quantity": 10, "average_price": "1400.5"}, ...]
        """
        with self.lock:
            user_id = user_id or f"ZX{1000 + len(self.accounts)}"
            account = KiteAccount(
                user_id=user_id,
                password=password,
                api_key=api_key or secrets.token_hex(8),
                api_secret=api_secret or secrets.token_hex(16),
                redirect_url=redirect_url,
                totp_secret=totp_secret,
                user_name=user_name,
                opening_balance=Decimal(str(cash)),
                collateral=Decimal(str(collateral)),
                holdings=[{**h, "average_price": Decimal(str(h["average_price"]))} for h in holdings],
            )
            self.accounts[user_id] = account
            access_token = self.issue_session(user_id)
        return {
            "user_id": user_id,
            "password": password,
            "totp_secret": totp_secret,
            "api_key": account.api_key,
            "api_secret": account.api_secret,
            "redirect_url": redirect_url,
            "access_token": access_token,
        }

    def issue_session(self, user_id: str) -> str:
        """A fresh access token, as if the user had just logged in."""
        token = secrets.token_hex(16)
        with self.lock:
            self.sessions[token] = user_id
        return token

    def expire_sessions(self, account: str | None = None) -> None:
        with self.lock:
            for token, user_id in list(self.sessions.items()):
                if account is None or user_id == account:
                    del self.sessions[token]

    def set_redirect_url(self, api_key: str, url: str) -> None:
        with self.lock:
            self._by_api_key(api_key).redirect_url = url

    def add_instrument(
        self,
        tradingsymbol: str,
        name: str,
        exchange_token: int,
        last_price: Any,
        tick_size: Any,
        exchange: str = "NSE",
        **extra: Any,
    ) -> Instrument:
        instrument = Instrument(
            tradingsymbol, name, exchange_token, Decimal(str(last_price)), Decimal(str(tick_size)), exchange, **extra
        )
        with self.lock:
            self.book.instruments[(exchange, tradingsymbol)] = instrument
        return instrument

    def set_price(self, tradingsymbol: str, last_price: Any, exchange: str = "NSE") -> None:
        with self.lock:
            self.book.instrument(exchange, tradingsymbol).last_price = Decimal(str(last_price))

    def script_response(
        self,
        kind: str,
        status: int,
        body: str | bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next request of `kind` gets exactly this answer (malformed bodies, odd envelopes)."""
        self._scripted[kind].append(Response(body, status=status, content_type=content_type, headers=headers))

    def script_error(self, kind: str, status: int, error_type: str, message: str) -> None:
        self._scripted[kind].append(self._error(status, error_type, message))

    def clear_scripts(self) -> None:
        self._scripted.clear()

    def order(self, order_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._find_order(order_id)[1])

    def fill(self, order_id: str, quantity: int | None = None, price: Any = None) -> None:
        """Fill (part of) an open order, as the exchange would: a trade, the position, the funds."""
        with self.lock:
            account, order = self._find_order(order_id)
            if order["status"] in ("COMPLETE", "CANCELLED", "REJECTED"):
                raise ValueError(f"order {order_id} is {order['status']}")
            if order["status"] == "TRIGGER PENDING":
                self.book.transition(account, order, "OPEN")
            ltp = self.book.instrument(order["exchange"], order["tradingsymbol"]).last_price
            self.book.fill(
                account,
                order,
                quantity or order["pending_quantity"],
                Decimal(str(price)) if price is not None else (order["price"] or ltp),
            )

    def set_status(self, order_id: str, status: str, message: str | None = None) -> None:
        """Move an order to any Kite status word (cancelled by the exchange, RMS rejection, ...)."""
        with self.lock:
            account, order = self._find_order(order_id)
            changes: dict[str, Any] = {}
            if status in ("CANCELLED", "REJECTED"):
                changes = {"cancelled_quantity": order["pending_quantity"], "pending_quantity": 0}
            if message is not None:
                changes.update(status_message=message, status_message_raw=message)
            self.book.transition(account, order, status, **changes)

    # ================================================================ plumbing

    def not_found(self, request: Request) -> Response:
        return self._error(404, "GeneralException", "Route not found")

    def _success(self, data: Any) -> Response:
        return Response(exact_json({"status": "success", "data": data}), content_type="application/json")

    def _error(self, status: int, error_type: str, message: str) -> Response:
        payload = {"status": "error", "message": message, "error_type": error_type, "data": None}
        return Response(exact_json(payload), status=status, content_type="application/json")

    def _server_error(self, status: int) -> Response:
        return self._error(status, *SERVER_ERRORS.get(status, SERVER_ERRORS[500]))

    def _by_api_key(self, api_key: str | None) -> KiteAccount:
        for account in self.accounts.values():
            if account.api_key == api_key:
                return account
        raise Refusal("Invalid `api_key`.", "TokenException", 403)

    def _find_order(self, order_id: str) -> tuple[KiteAccount, dict[str, Any]]:
        for account in self.accounts.values():
            if order_id in account.orders:
                return account, account.orders[order_id]
        raise KeyError(order_id)

    def _own_order(self, account: KiteAccount, order_id: str) -> dict[str, Any]:
        try:
            return account.orders[order_id]
        except KeyError:
            raise Refusal("Couldn't find that `order_id`.") from None

    def _authenticate(self, request: Request) -> KiteAccount:
        if request.headers.get("X-Kite-Version") != "3":
            raise Refusal("Invalid or missing `X-Kite-Version` header.")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        api_key, _, token = credentials.partition(":")
        with self.lock:
            account = self.accounts.get(self.sessions.get(token, ""))
        if scheme != "token" or account is None or account.api_key != api_key:
            raise Refusal(BAD_TOKEN[2], BAD_TOKEN[1], BAD_TOKEN[0])
        return account

    def _early(self, kind: str, fault: str | None, account: KiteAccount) -> Response | None:
        """Answers decided before anything is booked: scripted bodies and non-accepting faults."""
        if self._scripted[kind]:
            return self._scripted[kind].popleft()
        if fault == "burst_429":
            return self._error(*TOO_MANY)
        if fault == "error_5xx":
            return self._server_error(503)
        if fault == "expire_token":
            self.expire_sessions(account.user_id)
            return self._error(*BAD_TOKEN)
        return None

    def _api(self, request: Request, kind: str, limit: str, handler: Callable[[KiteAccount], Any]) -> Response:
        """Auth, rate limit, faults, then the handler under the lock; accepting faults after it."""
        try:
            account = self._authenticate(request)
            if not self.limiter.allow(account.user_id, limit):
                return self._error(*TOO_MANY)
            fault = self.before_accept(kind, account.user_id)
            early = self._early(kind, fault, account)
            if early is not None:
                return early
            with self.lock:
                data = handler(account)
        except Refusal as refusal:
            return self._error(refusal.status, refusal.error_type, refusal.message)
        respond = (lambda: data) if isinstance(data, Response) else (lambda: self._success(data))
        return self.after_accept(fault, respond, self._server_error)

    def _read(self, request: Request, handler: Callable[[KiteAccount], Any], limit: str = "api") -> Response:
        return self._api(request, "read", limit, handler)

    # ================================================================ orders

    def place_order(self, request: Request, variety: str) -> Response:
        def place(account: KiteAccount) -> dict[str, str]:
            instrument, values = self.book.validate(variety, request.form)
            order = self.book.new_order(account, instrument, values)
            self.ledger.book(account.user_id, order["order_id"], values["tag"], request.form.to_dict())
            return {"order_id": order["order_id"]}

        return self._api(request, "place", "orders", place)

    def modify_order(self, request: Request, variety: str, order_id: str) -> Response:
        def modify(account: KiteAccount) -> dict[str, str]:
            order = self._own_order(account, order_id)
            if order["variety"] != variety:
                raise Refusal("Invalid `variety`.")
            self.book.modify(account, order, request.form)
            return {"order_id": order_id}

        return self._api(request, "modify", "api", modify)

    def cancel_order(self, request: Request, variety: str, order_id: str) -> Response:
        def cancel(account: KiteAccount) -> dict[str, str]:
            order = self._own_order(account, order_id)
            if order["variety"] != variety:
                raise Refusal("Invalid `variety`.")
            self.book.cancel(account, order)
            return {"order_id": order_id}

        return self._api(request, "cancel", "api", cancel)

    def orders(self, request: Request) -> Response:
        return self._read(request, lambda account: [dict(o) for o in account.orders.values()])

    def order_history(self, request: Request, order_id: str) -> Response:
        def history(account: KiteAccount) -> list[dict[str, Any]]:
            self._own_order(account, order_id)
            return list(account.history[order_id])

        return self._read(request, history)

    def order_trades(self, request: Request, order_id: str) -> Response:
        def trades(account: KiteAccount) -> list[dict[str, Any]]:
            self._own_order(account, order_id)
            return [t for t in account.trades if t["order_id"] == order_id]

        return self._read(request, trades)

    # ================================================================ portfolio, funds, market data

    def trade_book(self, request: Request) -> Response:
        return self._read(request, lambda account: list(account.trades))

    def positions(self, request: Request) -> Response:
        def positions(account: KiteAccount) -> dict[str, Any]:
            rows = self.book.position_rows(account)
            return {"net": rows, "day": rows}  # no overnight carry in the emulator

        return self._read(request, positions)

    def holdings(self, request: Request) -> Response:
        return self._read(request, self.book.holding_rows)

    def margins(self, request: Request, segment: str | None = None) -> Response:
        def margins(account: KiteAccount) -> dict[str, Any]:
            both = {"equity": self.book.segment(account), "commodity": self.book.empty_segment()}
            if segment is None:
                return both
            if segment not in both:
                raise Refusal("Invalid segment.")
            return both[segment]

        return self._read(request, margins)

    def quote(self, request: Request) -> Response:
        return self._quotes(request, "quote", self.book.quote_row)

    def quote_ohlc(self, request: Request) -> Response:
        return self._quotes(request, "ohlc", self.book.ohlc_row)

    def quote_ltp(self, request: Request) -> Response:
        return self._quotes(request, "ltp", self.book.ltp_row)

    def _quotes(self, request: Request, kind: str, row: Callable[[Instrument], dict[str, Any]]) -> Response:
        """The three quote endpoints: `i` repeated, "EXCHANGE:SYMBOL" or an instrument token, each
        answer keyed as asked; unknown instruments are left out, as Kite does. One 1/s limit for all."""

        def quotes(account: KiteAccount) -> dict[str, Any]:
            keys = request.args.getlist("i")
            if not keys or len(keys) > QUOTE_MAX[kind]:
                raise Refusal("No instruments specified." if not keys else "Too many instruments.")
            found = {key: self.book.by_key(key) for key in keys}
            return {key: row(instrument) for key, instrument in found.items() if instrument is not None}

        return self._read(request, quotes, limit="quote")

    def order_margins(self, request: Request) -> Response:
        def margins(account: KiteAccount) -> list[dict[str, Any]]:
            compact = self._compact(request)
            return [order_margin(self.book, row, compact) for row in self._json_list(request)]

        return self._read(request, margins)

    def basket_margins(self, request: Request) -> Response:
        def margins(account: KiteAccount) -> dict[str, Any]:
            consider = request.args.get("consider_positions", "true").lower()
            if consider not in ("true", "false"):
                raise Refusal("Invalid `consider_positions`.")
            return basket_margin(
                self.book, account, self._json_list(request), consider == "true", self._compact(request)
            )

        return self._read(request, margins)

    @staticmethod
    def _compact(request: Request) -> bool:
        mode = request.args.get("mode") or None
        if mode not in (None, "compact"):
            raise Refusal("Invalid `mode`.")
        return mode == "compact"

    @staticmethod
    def _json_list(request: Request) -> list[Any]:
        """The margin endpoints' JSON body: a list of orders (numbers read as Decimal)."""
        try:
            rows = json.loads(request.get_data(), parse_float=Decimal)
        except ValueError:
            raise Refusal("Invalid JSON body.") from None
        if not isinstance(rows, list):
            raise Refusal("Invalid JSON body.")
        return rows

    def instrument_dump(self, request: Request, exchange: str | None = None) -> Response:
        """The daily CSV dump (header as brokers.md §1.6), gzipped when the client accepts it."""

        def dump(account: KiteAccount) -> Response:
            out = io.StringIO()
            out.write(INSTRUMENT_HEADER + "\r\n")
            writer = csv.writer(out)
            for ins in self.book.instruments.values():
                if exchange in (None, ins.exchange):
                    writer.writerow(
                        [
                            ins.instrument_token,
                            ins.exchange_token,
                            ins.tradingsymbol,
                            ins.name,
                            ins.close,
                            "",
                            "0.0",
                            ins.tick_size,
                            1,
                            "EQ",
                            ins.exchange,
                            ins.exchange,
                        ]
                    )
            body = out.getvalue().encode()
            if "gzip" not in request.headers.get("Accept-Encoding", ""):
                return Response(body, content_type="text/csv")
            return Response(gzip.compress(body), content_type="text/csv", headers={"Content-Encoding": "gzip"})

        return self._read(request, dump)

    # ================================================================ login

    def login_page(self, request: Request) -> Response:
        if request.args.get("v") != "3":
            return Response("<h1>Invalid `v`: Kite Connect v3 needs v=3.</h1>", status=400, content_type="text/html")
        try:
            account = self._by_api_key(request.args.get("api_key"))
        except Refusal:
            return Response("<h1>Invalid `api_key`.</h1>", status=400, content_type="text/html")
        return self._login_form(account, request.args.get("redirect_params", ""), "")

    def _login_form(self, account: KiteAccount, redirect_params: str, error: str) -> Response:
        totp = '<label>TOTP <input name="totp" inputmode="numeric"></label>' if account.totp_secret else ""
        html = (
            f"<!doctype html><title>Kite login</title><h1>Login to Kite</h1>"
            f"{f'<p class=error>{escape(error)}</p>' if error else ''}"
            f'<form method="post" action="/connect/login">'
            f'<input type="hidden" name="api_key" value="{escape(account.api_key)}">'
            f'<input type="hidden" name="redirect_params" value="{escape(redirect_params)}">'
            f'<label>User ID <input name="user_id"></label>'
            f'<label>Password <input name="password" type="password"></label>{totp}'
            f'<button type="submit">Login</button></form>'
        )
        return Response(html, content_type="text/html")

    def login_submit(self, request: Request) -> Response:
        form = request.form
        with self.lock:
            try:
                account = self._by_api_key(form.get("api_key"))
            except Refusal:
                return Response("<h1>Invalid `api_key`.</h1>", status=400, content_type="text/html")
            if form.get("user_id", "").upper() != account.user_id or form.get("password") != account.password:
                return self._login_form(account, form.get("redirect_params", ""), "Invalid `user_id` or `password`.")
            if account.totp_secret and not pyotp.TOTP(account.totp_secret).verify(form.get("totp", ""), valid_window=1):
                return self._login_form(account, form.get("redirect_params", ""), "Invalid TOTP.")
            request_token = secrets.token_hex(16)
            self.request_tokens[request_token] = (account.user_id, time.monotonic())
            redirect_url = account.redirect_url
        params = [("action", "login"), ("type", "login"), ("status", "success"), ("request_token", request_token)]
        params += parse_qsl(form.get("redirect_params", ""))
        joiner = "&" if "?" in redirect_url else "?"
        return Response(status=302, headers={"Location": f"{redirect_url}{joiner}{urlencode(params)}"})

    def session_token(self, request: Request) -> Response:
        form = request.form
        try:
            with self.lock:
                account = self._by_api_key(form.get("api_key"))
            early = self._early("login", self.before_accept("login", account.user_id), account)
            if early is not None:
                return early
            with self.lock:
                data = self._exchange_request_token(account, form.get("request_token", ""), form.get("checksum", ""))
        except Refusal as refusal:
            return self._error(refusal.status, refusal.error_type, refusal.message)
        return self._success(data)

    def _exchange_request_token(self, account: KiteAccount, request_token: str, checksum: str) -> dict[str, Any]:
        issued = self.request_tokens.get(request_token)
        if issued is None or issued[0] != account.user_id or time.monotonic() - issued[1] > REQUEST_TOKEN_TTL:
            raise Refusal("Token is invalid or has expired.", "TokenException", 403)
        expected = hashlib.sha256((account.api_key + request_token + account.api_secret).encode()).hexdigest()
        if not secrets.compare_digest(checksum, expected):
            raise Refusal("Invalid `checksum`.")
        del self.request_tokens[request_token]  # single use
        access_token = self.issue_session(account.user_id)
        return {
            **self._profile(account),
            "api_key": account.api_key,
            "access_token": access_token,
            "public_token": secrets.token_hex(16),
            "enctoken": secrets.token_hex(24),
            "refresh_token": "",
            "silo": "",
            "login_time": self.book.now(),
            "meta": {"demat_consent": "consent"},
        }

    def session_logout(self, request: Request) -> Response:
        with self.lock:
            self.sessions.pop(request.args.get("access_token", ""), None)
        return self._success(True)

    def _profile(self, account: KiteAccount) -> dict[str, Any]:
        return {
            "user_id": account.user_id,
            "user_type": "individual",
            "email": f"{account.user_id.lower()}@example.com",
            "user_name": account.user_name,
            "user_shortname": account.user_name.split()[0],
            "broker": "ZERODHA",
            "exchanges": ["NSE", "BSE"],
            "products": sorted(PRODUCTS),
            "order_types": sorted(ORDER_TYPES),
            "avatar_url": None,
        }

    def profile(self, request: Request) -> Response:
        return self._read(request, lambda account: {**self._profile(account), "meta": {"demat_consent": "consent"}})


if __name__ == "__main__":
    run_cli(lambda plan: KiteEmulator(faults=plan))
