"""ShareKhan API ("ShareConnect") emulator: REST per brokers.md §3; the stream is in sharekhan_stream.py.

Run it alone with `python -m tests.emulators.sharekhan --port 0` (see tests/emulators/common.py);
the books and order logic are in tests/emulators/sharekhan_book.py.

Login: GET /skapi/auth/login.html?api_key&state[&vendor_key][&version_id] shows a form; posting the
customer id and password redirects (302) to the account's registered redirect_url with
request_token = base64url(AES-GCM(secret key, zero IV, "<key>|<customerId>")) and the state.
POST /skapi/services/access/token takes the swapped token back and issues an access token.
Every service call needs the `api-key` and `access-token` headers (403 TokenException otherwise).

Orders: one POST /skapi/services/orders with requestType NEW / MODIFY / CANCEL; envelopes
{"data","message","status":200,"timestamp"}; errors {"data":null,"message","status","error_type"}
(InputException 400, OrderException 500 for the OMS refusing, TokenException 403,
PermissionException 403, NetworkException 503 for outages). Order rows use ShareKhan's field
names and its "2025-10-28 12:44:40.0" IST times. Status words: In-Process, Pending, Partly
Executed, Fully Executed, and our assumed Rejected / Cancelled. Trade, position, holding, limit
statement and master rows use names of our own (brokers.md has no samples for them).
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.emulators.common import BrokerEmulator, FaultPlan, run_cli
from tests.emulators.sharekhan_book import (
    EXCHANGES,
    FINAL,
    SEED,
    EmuAccount,
    EmuOrder,
    OrderBooks,
    Refusal,
    Scrip,
    money,
)
from tests.emulators.sharekhan_stream import ShareKhanStreamMixin
from webapp.jsonutil import text_json
from webapp.timeutil import IST

ZERO_IV = bytes(16)
KINDS = {"NEW": "place", "MODIFY": "modify", "CANCEL": "cancel"}
REQUEST_TOKEN_SECONDS = 120.0


@dataclass
class ScriptedAnswer:
    status: int
    body: Any
    after_accept: bool
    content_type: str = "application/json"

    def response(self) -> Response:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return Response(text, status=self.status, content_type=self.content_type)


class ShareKhanEmulator(ShareKhanStreamMixin, OrderBooks, BrokerEmulator):
    url_map = Map(
        [
            Rule("/skapi/auth/login.html", methods=["GET"], endpoint="login_page"),
            Rule("/skapi/auth/login.html", methods=["POST"], endpoint="login_submit"),
            Rule("/skapi/services/access/token", methods=["POST"], endpoint="access_token"),
            Rule("/skapi/services/orders", methods=["POST"], endpoint="orders"),
            Rule("/skapi/services/reports/<customer_id>", methods=["GET"], endpoint="order_book"),
            Rule(
                "/skapi/services/reports/<exchange>/<customer_id>/<order_id>", methods=["GET"], endpoint="order_history"
            ),
            # the SDK uses /orders/.../trades, the Postman collection /reports/.../trades: both work
            Rule(
                "/skapi/services/orders/<exchange>/<customer_id>/<order_id>/trades",
                methods=["GET"],
                endpoint="order_trades",
            ),
            Rule(
                "/skapi/services/reports/<exchange>/<customer_id>/<order_id>/trades",
                methods=["GET"],
                endpoint="order_trades",
            ),
            Rule("/skapi/services/trades/<customer_id>", methods=["GET"], endpoint="positions"),
            Rule("/skapi/services/holdings/<customer_id>", methods=["GET"], endpoint="holdings"),
            Rule("/skapi/services/limitstmt/<exchange>/<customer_id>", methods=["GET"], endpoint="funds"),
            Rule("/skapi/services/master/<exchange>", methods=["GET"], endpoint="master"),
            Rule("/skstream/api/stream", endpoint="feed_stream", websocket=True),  # sharekhan_stream.py
        ]
    )

    def __init__(self, faults: FaultPlan | None = None, auto_fill: bool = True, orders_per_second: int = 10):
        super().__init__(faults, rate_limits={"orders": [(orders_per_second, 1.0)]})
        self.auto_fill = auto_fill
        self.accounts: dict[str, EmuAccount] = {}
        self.scrips: dict[tuple[str, int], Scrip] = {}
        self.book: dict[str, EmuOrder] = {}
        self._sessions: dict[str, str] = {}  # access token -> customer id
        self._pending: dict[str, tuple[str, str, str, float]] = {}  # login key -> (customer, state, version, at)
        self._answers: dict[str, deque[ScriptedAnswer]] = defaultdict(deque)
        self._ids = itertools.count(254700001)
        self._exchange_ids = itertools.count(1200000183350001)
        self._trade_ids = itertools.count(50000001)
        self._customers = itertools.count(73101)
        for symbol, token, isin, close, tick in SEED:
            self.add_instrument(symbol, token, close, tick, isin=isin)

    # ------------------------------------------------------------------ test helpers

    def add_instrument(
        self,
        symbol: str,
        scrip_code: int,
        close: str,
        tick: str,
        *,
        exchange: str = "NC",
        name: str | None = None,
        isin: str = "",
        lot: int = 1,
        band_percent: str = "10",
    ) -> Scrip:
        scrip = Scrip(
            exchange,
            int(scrip_code),
            symbol,
            name or symbol,
            isin,
            Decimal(close),
            Decimal(tick),
            lot,
            Decimal(band_percent),
            Decimal(close),
        )
        with self.lock:
            self.scrips[(exchange, scrip.scrip_code)] = scrip
        return scrip

    def add_account(self, **fields: Any) -> dict[str, Any]:
        with self.lock:
            customer_id = str(fields.get("customer_id") or next(self._customers))
            account = EmuAccount(
                customer_id=customer_id,
                login_id=str(fields.get("login_id") or f"SKUSER{customer_id}"),
                password=str(fields.get("password") or secrets.token_urlsafe(8)),
                api_key=str(fields.get("api_key") or secrets.token_hex(8)),
                secret_key=str(fields.get("secret_key") or secrets.token_hex(16)),
                redirect_url=str(fields.get("redirect_url") or "http://127.0.0.1:5000/brokers/sharekhan/callback"),
                vendor_key=fields.get("vendor_key"),
                cash=Decimal(str(fields.get("cash", "1000000"))),
                collateral=Decimal(str(fields.get("collateral", "0"))),
            )
            self.accounts[customer_id] = account
            token = secrets.token_urlsafe(24)
            if fields.get("logged_in", True):
                self._sessions[token] = customer_id
        return {
            "customer_id": customer_id,
            "login_id": account.login_id,
            "password": account.password,
            "api_key": account.api_key,
            "secret_key": account.secret_key,
            "vendor_key": account.vendor_key,
            "redirect_url": account.redirect_url,
            "access_token": token if fields.get("logged_in", True) else None,
        }

    def expire_sessions(self, account: str | None = None) -> None:
        with self.lock:
            for token, customer_id in list(self._sessions.items()):
                if account is None or customer_id == str(account):
                    del self._sessions[token]

    def add_holding(self, customer_id: str, symbol: str, quantity: int, avg_price: str, t1_quantity: int = 0) -> None:
        scrip = self._scrip_by_symbol(symbol)
        with self.lock:
            self.accounts[customer_id].holdings.append(
                {
                    "exchange": scrip.exchange,
                    "scripCode": str(scrip.scrip_code),
                    "tradingSymbol": symbol,
                    "isin": scrip.isin,
                    "quantity": quantity,
                    "t1Qty": t1_quantity,
                    "avgPrice": avg_price,
                }
            )

    def set_ltp(self, symbol: str, price: str) -> None:
        with self.lock:
            self._scrip_by_symbol(symbol).ltp = Decimal(price)

    def fill(self, order_id: str, qty: int, price: str | None = None) -> None:
        with self.lock:
            order = self.book[order_id]
            if order.status in FINAL or qty <= 0 or qty > order.qty - order.exec_qty:
                raise ValueError(f"cannot fill {qty} of order {order_id} ({order.status})")
            self._fill(order, qty, Decimal(price) if price else order.scrip.ltp)

    def set_status(self, order_id: str, status: str, reason: str = "") -> None:
        """Put any status word on an order (Rejected and Cancelled also release its margin)."""
        with self.lock:
            order = self.book[order_id]
            if status in ("Rejected", "Cancelled"):
                self._close(order, status, "NEW" if status == "Rejected" else "CANCEL", reason)
            else:
                order.status = status
                self._record(order, "NEW")

    def respond_next(
        self, kind: str, status: int, body: Any, *, after_accept: bool = False, content_type: str = "application/json"
    ) -> None:
        """The next request of `kind` gets this raw answer; with after_accept the order is booked first."""
        with self.lock:
            self._answers[kind].append(ScriptedAnswer(status, body, after_accept, content_type))

    # ------------------------------------------------------------------ login

    def login_page(self, request: Request) -> Response:
        if self._by_api_key(request.args.get("api_key", "")) is None:
            return Response("<h1>Invalid API key</h1>", status=400, content_type="text/html")
        return self._login_form(request.args, "", 200)

    def login_submit(self, request: Request) -> Response:
        form = request.form
        account = self._by_api_key(form.get("api_key", ""))
        if account is None:
            return Response("<h1>Invalid API key</h1>", status=400, content_type="text/html")
        if form.get("customer_id") != account.customer_id or form.get("password") != account.password:
            return self._login_form(form, "Invalid customer id or password", 401)
        login_key = secrets.token_hex(8)
        with self.lock:
            self._pending[login_key] = (
                account.customer_id,
                form.get("state", ""),
                form.get("version_id", ""),
                time.monotonic(),
            )
        sealed = AESGCM(account.secret_key.encode()).encrypt(
            ZERO_IV, f"{login_key}|{account.customer_id}".encode(), None
        )
        query = urlencode({"request_token": base64.urlsafe_b64encode(sealed).decode(), "state": form.get("state", "")})
        separator = "&" if "?" in account.redirect_url else "?"
        return Response(status=302, headers={"Location": f"{account.redirect_url}{separator}{query}"})

    def access_token(self, request: Request) -> Response:
        try:
            body = self._json_body(request)
            account = self._by_api_key(str(body.get("apiKey", "")))
            if account is None:
                raise Refusal(403, "TokenException", "Invalid API key")
            customer_id, login_key = self._open_swapped_token(account, str(body.get("requestToken", "")))
            with self.lock:
                pending = self._pending.pop(login_key, None)
            if pending is None or pending[0] != customer_id or time.monotonic() - pending[3] > REQUEST_TOKEN_SECONDS:
                raise Refusal(403, "TokenException", "Request token is invalid or expired")
            if str(body.get("state", "")) != pending[1]:
                raise Refusal(400, "InputException", "state does not match the login request")
            if pending[2] and str(body.get("versionId", "")) != pending[2]:
                raise Refusal(400, "InputException", "versionId does not match the login request")
            self._check_token_encoding(str(body.get("requestToken", "")), versioned=bool(pending[2]))
            if account.vendor_key and body.get("vendorkey") != account.vendor_key:
                raise Refusal(403, "TokenException", "Invalid vendor key")
        except Refusal as refusal:
            return self._refusal(refusal)
        token = secrets.token_urlsafe(24)
        with self.lock:
            self._sessions[token] = customer_id
        return self._ok(
            {
                "token": token,
                "customerId": int(customer_id) if customer_id.isdigit() else customer_id,
                "loginId": account.login_id,
                "state": body.get("state"),
            },
            "access_token",
        )

    @staticmethod
    def _check_token_encoding(token: str, versioned: bool) -> None:
        """The SDK's two encodings: unpadded base64url with a versionId, padded standard base64 without."""
        if versioned and any(ch in token for ch in "+/="):
            raise Refusal(400, "InputException", "requestToken must be unpadded base64url when versionId is sent")
        if not versioned and (any(ch in token for ch in "-_") or len(token) % 4):
            raise Refusal(400, "InputException", "requestToken must be padded base64 when no versionId is sent")

    def _open_swapped_token(self, account: EmuAccount, token: str) -> tuple[str, str]:
        text = token.replace("+", "-").replace("/", "_").rstrip("=")
        try:
            plain = (
                AESGCM(account.secret_key.encode())
                .decrypt(ZERO_IV, base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), None)
                .decode()
            )
        except (InvalidTag, ValueError):
            raise Refusal(403, "TokenException", "Invalid request token") from None
        customer_id, _, login_key = plain.partition("|")  # the app swapped it to "customerId|key"
        return customer_id, login_key

    def _login_form(self, values: Any, error: str, status: int) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(values.get(name, ""))}">'
            for name in ("api_key", "state", "vendor_key", "version_id")
        )
        page = (
            f"<html><body><h1>Sharekhan login</h1><p class=error>{html.escape(error)}</p>"
            f'<form method="post" action="/skapi/auth/login.html">{hidden}'
            '<input name="customer_id"><input name="password" type="password">'
            "<button>Login</button></form></body></html>"
        )
        return Response(page, status=status, content_type="text/html")

    # ------------------------------------------------------------------ orders

    def orders(self, request: Request) -> Response:
        try:
            account = self._authenticate(request)
            body = self._json_body(request)
            kind = KINDS.get(str(body.get("requestType")))
            if kind is None:
                raise Refusal(400, "InputException", "requestType must be NEW, MODIFY or CANCEL")
            self._check_customer(account, body.get("customerId"))
        except Refusal as refusal:
            return self._refusal(refusal)
        if not self.limiter.allow(account.customer_id, "orders"):
            return self._too_many()
        fault = self.before_accept(kind, account.customer_id)
        early = self._early_fault(fault, account)
        if early is not None:
            return early
        answer = self._next_answer(kind)
        if answer is not None and not answer.after_accept:
            return answer.response()
        try:
            with self.lock:
                data = getattr(self, f"_{kind}")(account, body)
        except Refusal as refusal:
            return self._refusal(refusal)
        if answer is not None:
            return answer.response()
        return self.after_accept(fault, lambda: self._ok(data, f"order_{kind}"), self._server_error)

    # ------------------------------------------------------------------ reads

    def order_book(self, request: Request, customer_id: str) -> Response:
        return self._read(
            request,
            customer_id,
            lambda account: [o.history[-1] for o in self.book.values() if o.customer_id == account.customer_id],
            "order_book",
        )

    def order_history(self, request: Request, exchange: str, customer_id: str, order_id: str) -> Response:
        return self._read(
            request,
            customer_id,
            lambda account: list(self._account_order(account, exchange, order_id, "history")),
            "order_history",
        )

    def order_trades(self, request: Request, exchange: str, customer_id: str, order_id: str) -> Response:
        return self._read(
            request,
            customer_id,
            lambda account: list(self._account_order(account, exchange, order_id, "trades")),
            "order_trades",
        )

    def positions(self, request: Request, customer_id: str) -> Response:
        return self._read(request, customer_id, self._position_rows, "positions")

    def holdings(self, request: Request, customer_id: str) -> Response:
        def rows(account: EmuAccount) -> list[dict[str, Any]]:
            return [row | {"ltp": money(self._scrip_by_symbol(row["tradingSymbol"]).ltp)} for row in account.holdings]

        return self._read(request, customer_id, rows, "holdings")

    def funds(self, request: Request, exchange: str, customer_id: str) -> Response:
        if exchange not in set(EXCHANGES) | set(EXCHANGES.values()):
            return self._refusal(Refusal(400, "InputException", f"Invalid exchange {exchange}"))
        return self._read(
            request,
            customer_id,
            lambda a: {
                "exchange": exchange,
                "openingBalance": money(a.cash),
                "cashBalance": money(a.cash),
                "marginUtilised": money(a.utilised),
                "collateralValue": money(a.collateral),
                "availableLimit": money(a.cash + a.collateral - a.utilised),
            },
            "limit_statement",
        )

    def master(self, request: Request, exchange: str) -> Response:
        if exchange not in EXCHANGES:  # the Postman collection sends no auth headers here
            return self._refusal(Refusal(400, "InputException", f"Invalid exchange {exchange}"))
        with self.lock:
            rows = [
                {
                    "scripCode": s.scrip_code,
                    "tradingSymbol": s.symbol,
                    "companyName": s.name,
                    "instType": "EQ",
                    "strike": "0",
                    "lotSize": s.lot,
                    "expiry": "",
                    "optionType": "",
                    "isin": s.isin,
                    "tickSize": f"{s.tick:f}",
                    "exchange": exchange,
                }
                for s in self.scrips.values()
                if s.exchange == exchange
            ]
        return self._ok(rows, "master")

    def _read(self, request: Request, customer_id: str, build: Any, message: str) -> Response:
        try:
            account = self._authenticate(request)
            self._check_customer(account, customer_id)
        except Refusal as refusal:
            return self._refusal(refusal)
        fault = self.before_accept("read", account.customer_id)
        early = self._early_fault(fault, account)
        if early is not None:
            return early
        answer = self._next_answer("read")
        if answer is not None:
            return answer.response()
        with self.lock:
            data = build(account)
        return self.after_accept(
            fault, lambda: self._ok(data if data != [] else "no_records", message), self._server_error
        )

    # ------------------------------------------------------------------ plumbing

    def _authenticate(self, request: Request) -> EmuAccount:
        account = self._by_api_key(request.headers.get("api-key", ""))
        if account is None:
            raise Refusal(403, "TokenException", "Invalid API key")
        token = request.headers.get("access-token", "")
        with self.lock:
            customer_id = self._sessions.get(token) if token else None
        if customer_id != account.customer_id:
            raise Refusal(403, "TokenException", "Invalid or expired access token")
        if account.vendor_key and request.headers.get("vendor-key") != account.vendor_key:
            raise Refusal(403, "TokenException", "Invalid vendor key")
        return account

    def _check_customer(self, account: EmuAccount, customer_id: Any) -> None:
        if str(customer_id) != account.customer_id:
            raise Refusal(403, "PermissionException", f"Customer {customer_id} does not belong to this session")

    def _by_api_key(self, api_key: str) -> EmuAccount | None:
        with self.lock:
            return next((a for a in self.accounts.values() if api_key and a.api_key == api_key), None)

    def _json_body(self, request: Request) -> dict[str, Any]:
        if request.mimetype != "application/json":
            raise Refusal(400, "InputException", "Content-type must be application/json")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise Refusal(400, "InputException", "Request body is not a JSON object")
        return body

    def _next_answer(self, kind: str) -> ScriptedAnswer | None:
        with self.lock:
            return self._answers[kind].popleft() if self._answers[kind] else None

    def _early_fault(self, fault: str | None, account: EmuAccount) -> Response | None:
        if fault == "burst_429":
            return self._too_many()
        if fault == "error_5xx":
            return self._server_error(503)
        if fault == "expire_token":
            self.expire_sessions(account.customer_id)
            return self._refusal(Refusal(403, "TokenException", "Invalid or expired access token"))
        return None

    def _envelope(self, data: Any, message: str, status: int, error_type: str | None = None) -> Response:
        body = {
            "data": data,
            "message": message,
            "status": status,
            "timestamp": datetime.now(IST).isoformat(timespec="seconds"),
        }
        if error_type:
            body["error_type"] = error_type
        return Response(text_json(body), status=status, content_type="application/json")

    def _ok(self, data: Any, message: str) -> Response:
        return self._envelope(data, message, 200)

    def _refusal(self, refusal: Refusal) -> Response:
        return self._envelope(None, refusal.message, refusal.status, refusal.error_type)

    def _too_many(self) -> Response:
        response = self._envelope(None, "Too many requests", 429)
        response.headers["Retry-After"] = "1"
        return response

    def _server_error(self, status: int) -> Response:
        kind = {502: "DataException", 503: "NetworkException"}.get(status, "GeneralException")
        return self._envelope(None, "Order management system is not reachable", status, kind)


if __name__ == "__main__":
    run_cli(lambda plan: ShareKhanEmulator(faults=plan))
