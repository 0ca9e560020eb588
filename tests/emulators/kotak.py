"""A loopback Kotak Neo Trade API (v2) for contract tests and benchmarks.

It speaks the protocol of Kotak's v2 documentation and its client (neo_api_client):
- login in two steps on fixed paths: POST /login/1.0/tradeApiLogin (JSON {mobileNumber, ucc, totp};
  headers Authorization: <consumer key, plain>, neo-fin-key: neotradeapi) answers a view token and
  sid; POST /login/1.0/tradeApiValidate (JSON {mpin}; headers sid and Auth from step one) answers the
  session token, session sid, hsServerId, dataCenter and the `baseUrl` every later call goes to.
  This emulator answers its own URL as baseUrl (or `base_url_answer`, for tests);
- post-login calls carry Auth (session token), Sid (session sid) and neo-fin-key; order calls are
  form-encoded with one field `jData` holding JSON with Kotak's short keys (es, pc, pt, qt, pr, tp,
  ts, tt, rt, am, dq, mp, pf, ig); answers are {"stat": "Ok", "nOrdNo", "stCode": 200} or
  {"stat": "Not_Ok", "emsg", "stCode"}; numbers in books are strings;
- quotes and the scrip master take only Authorization: <consumer key>; the master answers file
  paths to CSVs (prices and ticks in paise) which this emulator also serves;
- 10 requests/second per account across all APIs (Kotak's published limit), answered with 429;
- the HSM market-data stream at the root path (tests/emulators/kotak_stream.py).

Error codes Kotak publishes (1003 invalid session, 1004 insufficient balance, 1005 internal error,
1006-1009 invalid exchange/symbol/.../quantity) are used as published; the rest are the
emulator's own. State lives in tests/emulators/kotak_book.py.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyotp
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.emulators.common import BrokerEmulator, FaultPlan, Ledger, RateLimiter, run_cli
from tests.emulators.kotak_book import IST, MASTER_COLUMNS, EmuOrder, KotakAccount, KotakBook
from tests.emulators.kotak_stream import KotakHsmHub, KotakStreamMixin
from webapp.jsonutil import exact_json

NEO_FIN_KEY = "neotradeapi"
INVALID_SESSION, INSUFFICIENT, INTERNAL, NOT_FOUND = 1003, 1004, 1005, 1006
RATE_LIMIT = 10  # requests per second per account, across APIs (Kotak's v2 FAQ)
MASTER_PATH = "/wso2-scripmaster/v1/prod/{day}/transformed-v1/{segment}-v1.csv"

ROUTES = {
    "trade_api_login": ("POST", "/login/1.0/tradeApiLogin"),
    "trade_api_validate": ("POST", "/login/1.0/tradeApiValidate"),
    "place_order": ("POST", "/quick/order/rule/ms/place"),
    "modify_order": ("POST", "/quick/order/vr/modify"),
    "cancel_order": ("POST", "/quick/order/cancel"),
    "order_book": ("GET", "/quick/user/orders"),
    "trade_book": ("GET", "/quick/user/trades"),
    "positions": ("GET", "/quick/user/positions"),
    "holdings": ("GET", "/portfolio/v1/holdings"),
    "limits": ("POST", "/quick/user/limits"),
    "check_margin": ("POST", "/quick/user/check-margin"),
    "quotes": ("GET", "/script-details/1.0/quotes/neosymbol/<path:query>"),
    "master_paths": ("GET", "/script-details/1.0/masterscrip/file-paths"),
    "master_file": ("GET", "/wso2-scripmaster/v1/prod/<day>/transformed-v1/<name>"),
}


@dataclass
class Call:
    account: KotakAccount
    body: dict[str, Any]
    fault: str | None
    token: str


class KotakEmulator(KotakStreamMixin, BrokerEmulator):
    url_map = Map(
        [Rule(path, endpoint=endpoint, methods=[method]) for endpoint, (method, path) in ROUTES.items()]
        + [Rule("/", endpoint="hsm_stream", websocket=True)]  # the HSM stream, kotak_stream.py
    )

    def __init__(self, faults: FaultPlan | None = None, *, rate: int = RATE_LIMIT, auto_fill: bool = True):
        super().__init__(faults, rate_limits={"api": [(rate, 1.0)]})
        self.auto_fill = auto_fill
        self.public_url = ""  # set by the test fixture or from the first admin request
        self.stream = KotakHsmHub(self)
        self.reset(self.faults)

    def reset(self, faults: FaultPlan | None = None) -> None:
        """Forget every account, order and session (one server can then serve many tests)."""
        with self.lock:
            self.faults = faults or FaultPlan()
            self.ledger = Ledger()
            self.limiter = RateLimiter(self.limiter.limits)
            self.book = KotakBook(self.lock)
            self.view_sessions: dict[str, dict[str, str]] = {}  # view token -> {"ucc", "sid"}
            self.sessions: dict[str, dict[str, str]] = {}  # session token -> {"ucc", "sid"}
            self.calls: deque[tuple[str, dict[str, str], Any]] = deque(maxlen=2000)
            self.base_url_answer: str | None = None  # what tradeApiValidate says baseUrl is (None: own URL)
            self._overrides: dict[str, deque[tuple[int, Any]]] = {}

    # ------------------------------------------------------------------ test and admin hooks

    def admin(self, request: Request) -> Response:
        if not self.public_url:
            self.public_url = request.host_url.rstrip("/")
        return super().admin(request)

    def add_account(self, **fields: Any) -> dict[str, Any]:
        """An account with a live session already issued (tests and benchmarks may skip the login)."""
        with self.lock:
            account = self.book.add_account(
                ucc=fields.get("ucc"),
                mobile_number=fields.get("mobile_number"),
                cash=fields.get("cash", "1000000"),
                collateral=fields.get("collateral", "0"),
                holdings=fields.get("holdings"),
            )
            token, sid = self._issue(account)
        return {
            "ucc": account.ucc,
            "client_code": account.ucc,
            "mobile_number": account.mobile_number,
            "consumer_key": account.consumer_key,
            "mpin": account.mpin,
            "totp_secret": account.totp_secret,
            "session_token": token,
            "sid": sid,
            "base_url": self.public_url,
            "hs_server_id": "",
            "data_center": "E21",
            "cash": str(account.cash),
        }

    def _issue(self, account: KotakAccount) -> tuple[str, str]:
        token = "eyJ" + secrets.token_urlsafe(24)
        sid = secrets.token_hex(16)
        self.sessions[token] = {"ucc": account.ucc, "sid": sid}
        return token, sid

    def expire_sessions(self, account: str | None = None) -> None:
        with self.lock:
            for token, session in list(self.sessions.items()):
                if account in (None, session["ucc"]):
                    del self.sessions[token]

    def override_next(self, kind: str, status: int, body: Any) -> None:
        """The next request of `kind` (place/modify/cancel/read/login) gets this raw answer, unbooked."""
        with self.lock:
            self._overrides.setdefault(kind, deque()).append((status, body))

    def fill(self, order_id: str, qty: int | None = None, price: Decimal | str | None = None) -> None:
        with self.lock:
            self.book.fill(self.book.orders[order_id], qty, None if price is None else Decimal(str(price)))

    def set_status(self, order_id: str, word: str, reason: str = "") -> None:
        """Put an order in any of Kotak's status words ("open pending", "rejected", ...)."""
        with self.lock:
            order = self.book.orders[order_id]
            order.status, order.reason = word, reason
            self.book.touch(order)

    def set_ltp(self, symbol: str, ltp: Decimal | str, segment: str = "nse_cm") -> None:
        """Move a price; resting orders that become marketable (or triggered) are worked."""
        with self.lock:
            self.book.scrip(symbol, segment).ltp = Decimal(str(ltp))
            self.book.reprice(self.auto_fill)

    def last_body(self, path_suffix: str) -> Any:
        return next(body for path, _, body in reversed(self.calls) if path.endswith(path_suffix))

    def last_headers(self, path_suffix: str) -> dict[str, str]:
        return next(headers for path, headers, _ in reversed(self.calls) if path.endswith(path_suffix))

    # ------------------------------------------------------------------ responses

    @staticmethod
    def json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        text = payload if isinstance(payload, str) else exact_json(payload)
        return Response(text, status=status, content_type="application/json", headers=headers)

    def not_ok(self, code: int, message: str, status: int = 200) -> Response:
        return self.json({"stat": "Not_Ok", "emsg": message, "stCode": code}, status)

    def login_error(self, message: str, status: int = 401) -> Response:
        return self.json({"status": "error", "message": message, "errorCode": str(status)}, status)

    @staticmethod
    def http_error(status: int) -> Response:
        return Response(
            f"<html><body>{status} Service Unavailable</body></html>", status=status, content_type="text/html"
        )

    def rate_limited(self) -> Response:
        return self.json(
            {"stat": "Not_Ok", "emsg": "Too many requests", "stCode": 429}, 429, headers={"Retry-After": "1"}
        )

    def invalid_session(self) -> Response:
        return self.not_ok(INVALID_SESSION, "Invalid session", 401)

    # ------------------------------------------------------------------ request plumbing

    def _body(self, request: Request) -> dict[str, Any] | Response:
        """JSON bodies for login; the jData form field (URL-encoded JSON) for everything else."""
        if request.path.startswith("/login/"):
            text = request.get_data(as_text=True) or "{}"
        elif request.method == "GET":
            text = "{}"
        else:
            if "x-www-form-urlencoded" not in (request.content_type or ""):
                return self.not_ok(400, "Content-Type must be application/x-www-form-urlencoded", 400)
            text = request.form.get("jData")
            if text is None:
                return self.not_ok(400, "jData is missing", 400)
        try:
            body = json.loads(text, parse_float=Decimal)
        except ValueError:
            return self.not_ok(400, "Invalid request format", 400)
        self.calls.append((request.path, dict(request.headers), body))
        return body if isinstance(body, dict) else self.not_ok(400, "Invalid request format", 400)

    def _override(self, kind: str) -> Response | None:
        with self.lock:
            queue = self._overrides.get(kind)
            if not queue:
                return None
            status, body = queue.popleft()
        if isinstance(body, str) and body[:1] not in "{[":
            return Response(body, status=status, content_type="text/html")
        return self.json(body, status)

    def _open(self, request: Request, kind: str) -> Call | Response:
        """Authenticate (Auth + Sid + neo-fin-key), rate-limit and decide this request's fault."""
        body = self._body(request)
        if isinstance(body, Response):
            return body
        override = self._override(kind)
        if override is not None:
            return override
        token, sid = request.headers.get("Auth", ""), request.headers.get("Sid", "")
        if request.headers.get("neo-fin-key") != NEO_FIN_KEY:
            return self.not_ok(INVALID_SESSION, "Invalid neo-fin-key", 401)
        with self.lock:
            session = self.sessions.get(token)
            account = self.book.accounts.get(session["ucc"]) if session and session["sid"] == sid else None
        if account is None:
            return self.invalid_session()
        if not self.limiter.allow(account.ucc, "api"):
            return self.rate_limited()
        fault = self.before_accept(kind, account.ucc)
        early = self._early_fault(fault, token)
        return early if early is not None else Call(account, body, fault, token)

    def _by_consumer_key(self, request: Request, kind: str) -> KotakAccount | Response:
        """Quotes and the scrip master: Authorization is the plain consumer key, nothing else."""
        override = self._override(kind)
        if override is not None:
            return override
        key = request.headers.get("Authorization", "")
        with self.lock:
            account = next((a for a in self.book.accounts.values() if key and a.consumer_key == key), None)
        if account is None:
            return self.not_ok(401, "Unauthorized: Invalid or missing API token", 401)
        if not self.limiter.allow(account.ucc, "api"):
            return self.rate_limited()
        early = self._early_fault(self.before_accept(kind, account.ucc), "")
        return early if early is not None else account

    def _early_fault(self, fault: str | None, token: str) -> Response | None:
        if fault == "burst_429":
            return self.rate_limited()
        if fault == "error_5xx":
            return self.http_error(503)
        if fault == "expire_token":
            with self.lock:
                self.sessions.pop(token, None)
            return self.invalid_session()
        return None

    def _finish(self, call: Call, respond: Callable[[], Response]) -> Response:
        return self.after_accept(call.fault, respond, self.http_error)

    # ------------------------------------------------------------------ login

    def _login_headers_ok(self, request: Request) -> KotakAccount | Response:
        if request.headers.get("neo-fin-key") != NEO_FIN_KEY:
            return self.login_error("Invalid neo-fin-key", 401)
        key = request.headers.get("Authorization", "")
        if key.lower().startswith("bearer "):  # v2 wants the plain token
            return self.login_error("Invalid access token", 401)
        with self.lock:
            account = next((a for a in self.book.accounts.values() if key and a.consumer_key == key), None)
        return account if account is not None else self.login_error("Invalid access token", 401)

    def trade_api_login(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        override = self._override("login")
        if override is not None:
            return override
        account = self._login_headers_ok(request)
        if isinstance(account, Response):
            return account
        ucc, mobile, totp = (str(body.get(k) or "").strip() for k in ("ucc", "mobileNumber", "totp"))
        if ucc.upper() != account.ucc or mobile != account.mobile_number:
            return self.login_error("Invalid credentials or TOTP.")
        if not pyotp.TOTP(account.totp_secret).verify(totp, valid_window=1):
            return self.login_error("Invalid TOTP")
        token, sid = "eyJ" + secrets.token_urlsafe(16), secrets.token_hex(16)
        with self.lock:
            self.view_sessions[token] = {"ucc": account.ucc, "sid": sid}
        data = {"token": token, "sid": sid, "rid": secrets.token_hex(8), "kType": "View", "status": "success"}
        return self.json({"data": {**data, "ucc": account.ucc, "greetingName": "EMULATED", "hsServerId": ""}})

    def trade_api_validate(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        override = self._override("login")
        if override is not None:
            return override
        account = self._login_headers_ok(request)
        if isinstance(account, Response):
            return account
        with self.lock:
            view = self.view_sessions.get(request.headers.get("Auth", ""))
        if view is None or view["ucc"] != account.ucc or view["sid"] != request.headers.get("sid", ""):
            return self.login_error("Invalid or expired view session")
        if str(body.get("mpin") or "") != account.mpin:
            return self.login_error("Invalid MPIN.")
        with self.lock:
            self.view_sessions.pop(request.headers.get("Auth", ""), None)
            token, sid = self._issue(account)
        base_url = self.base_url_answer if self.base_url_answer is not None else request.host_url.rstrip("/")
        return self.json(
            {
                "data": {
                    "token": token,
                    "sid": sid,
                    "rid": secrets.token_hex(8),
                    "hsServerId": "",
                    "baseUrl": base_url,
                    "dataCenter": "E21",
                    "kType": "Trade",
                    "status": "success",
                    "ucc": account.ucc,
                    "greetingName": "EMULATED",
                    "isUserPwdExpired": False,
                    "clientType": "RI",
                }
            }
        )

    # ------------------------------------------------------------------ orders

    def place_order(self, request: Request) -> Response:
        call = self._open(request, "place")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self.book.new_order(call.account, call.body)
            if isinstance(order, tuple):
                return self.not_ok(*order)
            # Booked before any accepting fault: the ground truth tests count.
            self.ledger.book(call.account.ucc, order.order_id, order.tag or None, call.body)
            self.book.work(order, self.auto_fill)
        return self._finish(call, lambda: self.json({"nOrdNo": order.order_id, "stat": "Ok", "stCode": 200}))

    def _live_order(self, call: Call, key: str) -> EmuOrder | Response:
        order = self.book.orders.get(str(call.body.get(key) or ""))
        if order is None or order.ucc != call.account.ucc:
            return self.not_ok(NOT_FOUND, "Order not found")
        if order.is_final:
            return self.not_ok(NOT_FOUND, f"Order cannot be modified or cancelled as it is already {order.status}")
        return order

    def modify_order(self, request: Request) -> Response:
        call = self._open(request, "modify")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._live_order(call, "no")
            if isinstance(order, Response):
                return order
            body = call.body
            if str(body.get("tk") or "") != str(order.scrip.token) or str(body.get("ts") or "") != (
                order.scrip.trading_symbol
            ):
                return self.not_ok(1007, "Invalid Symbol")
            if body.get("es") != order.scrip.segment or body.get("tt") != order.side or body.get("pc") != order.product:
                return self.not_ok(1008, "Exchange segment, transaction type and product cannot be modified")
            problem = self.book.modify(order, body, self.auto_fill)
            if problem:
                return self.not_ok(1008, problem)
        return self._finish(call, lambda: self.json({"nOrdNo": order.order_id, "stat": "Ok", "stCode": 200}))

    def cancel_order(self, request: Request) -> Response:
        call = self._open(request, "cancel")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._live_order(call, "on")
            if isinstance(order, Response):
                return order
            order.status = "cancelled"
            self.book.touch(order)
        return self._finish(call, lambda: self.json({"nOrdNo": order.order_id, "stat": "Ok", "stCode": 200}))

    # ------------------------------------------------------------------ reads

    def _read(self, request: Request, build: Callable[[Call], Any], *, empty_is_no_data: bool = False) -> Response:
        """A read view: `build` returns the answer's data (a list) or a whole answer (a dict)."""
        call = self._open(request, "read")
        if isinstance(call, Response):
            return call
        with self.lock:
            data = build(call)
        if isinstance(data, Response):
            return data
        if isinstance(data, dict):
            payload: Any = data
        elif not data and empty_is_no_data:  # the order and trade reports say "No Data" for an empty day
            payload = {"stat": "Not_Ok", "emsg": "No Data", "stCode": 5203}
        else:
            payload = {"stat": "Ok", "stCode": 200, "data": data}
        return self._finish(call, lambda: self.json(payload))

    def order_book(self, request: Request) -> Response:
        return self._read(
            request,
            lambda call: [
                {**o.row(), "GuiOrdId": o.tag if self.book.echo_tag else ""}
                for o in self.book.account_orders(call.account.ucc)
            ],
            empty_is_no_data=True,
        )

    def trade_book(self, request: Request) -> Response:
        return self._read(request, lambda call: list(call.account.trades), empty_is_no_data=True)

    def positions(self, request: Request) -> Response:
        return self._read(request, lambda call: self.book.position_rows(call.account))

    def holdings(self, request: Request) -> Response:
        # The v2 holdings answer is {"data": [...]} with no stat.
        return self._read(request, lambda call: {"data": self.book.holding_rows(call.account)})

    def limits(self, request: Request) -> Response:
        return self._read(request, lambda call: self.book.limits(call.account))

    def check_margin(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            body = call.body
            if body.get("brkName") != "KOTAK" or body.get("brnchId") != "ONLINE":
                return self.not_ok(400, "brkName and brnchId are mandatory", 400)
            answer = self.book.check_margin(call.account, body)
            return self.not_ok(1008, answer) if isinstance(answer, str) else answer

        return self._read(request, build)

    def quotes(self, request: Request, query: str) -> Response:
        account = self._by_consumer_key(request, "read")
        if isinstance(account, Response):
            return account
        self.calls.append((request.path, dict(request.headers), {"query": query}))
        names, _, kind = query.partition("/")
        rows = []
        with self.lock:
            for name in names.split(","):
                segment, _, token = name.partition("|")
                scrip = self.book.scrips.get((segment, int(token))) if token.isdigit() else None
                if scrip is None:
                    return self.not_ok(1009, "Invalid instrument/code")
                rows.append(scrip.quote_row())
        if kind not in ("", "all", "ltp", "ohlc", "depth"):
            return self.not_ok(400, f"Invalid filter {kind}", 400)
        return self.json(rows)

    def master_paths(self, request: Request) -> Response:
        account = self._by_consumer_key(request, "read")
        if isinstance(account, Response):
            return account
        root = request.host_url.rstrip("/")
        day = datetime.now(IST).strftime("%Y-%m-%d")
        paths = [root + MASTER_PATH.format(day=day, segment=segment) for segment in ("bse_cm", "nse_cm")]
        return self.json({"data": {"filesPaths": paths, "baseFolder": root + "/wso2-scripmaster/v1/prod"}})

    def master_file(self, request: Request, day: str, name: str) -> Response:
        segment = name.removesuffix("-v1.csv")
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=MASTER_COLUMNS, lineterminator="\n")
        writer.writeheader()
        with self.lock:
            for scrip in self.book.scrips.values():
                if scrip.segment == segment:
                    writer.writerow(scrip.master_row())
        return Response(out.getvalue(), content_type="text/csv")


if __name__ == "__main__":
    run_cli(lambda plan: KotakEmulator(faults=plan))
