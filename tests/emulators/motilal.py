"""A loopback Motilal Oswal OpenAPI (brokers.md §2) for contract tests and benchmarks.

It speaks the documented protocol: every call a POST with a JSON body (GET answers 405), the
header set of §2.4 checked on every call (no ApiKey or Authorization: FAILURE MO1001 with HTTP
401), login at /rest/login/v3 and v4 with SHA-256(password + ApiKey), 2FA and a pyotp TOTP,
the `{status, message, errorcode, data}` envelope, `uniqueorderid` at the top level of a place
answer, LTP and tick sizes in paise, Motilal's status words (Open, Traded, Cancel, Rejected...),
order types echoed in title case, modify guarded by `lastmodifiedtime` and `qtytradedtoday`,
dealer mode (a token acts for the clientcodes granted to its login), and 40 orders/s plus 2
other calls/s per login answered with 429.

Error codes beyond MO1001 / MO8000 / MOSL100 are not published by Motilal; the ones below keep
that style and are the emulator's own. State lives in `tests/emulators/motilal_book.py`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyotp
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.emulators.common import BrokerEmulator, FaultPlan, Ledger, RateLimiter, run_cli
from tests.emulators.motilal_book import (
    ClientBook,
    Dealer,
    EmuOrder,
    MotilalBook,
    _int,
    ist_stamp,
    parse_ist,
)
from webapp.jsonutil import exact_json

AUTH_ERROR = "MO1001"  # documented: invalid user id or auth token
TECHNICAL_ERROR = "MO8000"  # documented: technical error
LOGIN_ERROR = "MOSL100"  # documented: Login Id/Password Is Invalid
TWO_FA_ERROR, TOTP_ERROR, OTP_ERROR = "MOSL101", "MOSL102", "MOSL103"
HEADER_ERROR, DEALER_ERROR, RATE_ERROR = "MO1002", "MO1003", "MO1429"
ORDER_ERROR = "MO5001"

REQUIRED_HEADERS = ("User-Agent", "SourceId", "ClientLocalIp", "ClientPublicIp", "MacAddress", "vendorinfo")
WEB_HEADERS = ("browsername", "browserversion")

ROUTES = {
    "login": ("/rest/login/v3/authdirectapi", "/rest/login/v4/authdirectapi"),
    "verify_otp": ("/rest/login/v3/verifyotp",),
    "logout": ("/rest/login/v1/logout",),
    "place_order": ("/rest/trans/v1/placeorder",),
    "modify_order": ("/rest/trans/v2/modifyorder",),
    "cancel_order": ("/rest/trans/v1/cancelorder",),
    "order_book": ("/rest/book/v1/getorderbook", "/rest/book/v2/getorderbook"),
    "order_detail": ("/rest/book/v1/getorderdetailbyuniqueorderid",),
    "trade_book": ("/rest/book/v1/gettradebook",),
    "positions": ("/rest/book/v1/getposition",),
    "dp_holdings": ("/rest/report/v1/getdpholding",),
    "margin_detail": ("/rest/report/v1/getreportmargindetail",),
    "ltp": ("/rest/report/v1/getltpdata",),
    "scrips": ("/rest/report/v1/getscripsbyexchangename",),
}


@dataclass
class Call:
    """One authenticated request, ready for its view."""

    dealer: Dealer
    client: ClientBook
    body: dict[str, Any]
    fault: str | None


def envelope(status: str, message: str, errorcode: str = "", data: Any = None, **top: Any) -> dict[str, Any]:
    return {"status": status, "message": message, "errorcode": errorcode, "data": data, **top}


class MotilalEmulator(BrokerEmulator):
    url_map = Map(
        [Rule(path, endpoint=endpoint, methods=["POST"]) for endpoint, paths in ROUTES.items() for path in paths]
    )

    def __init__(
        self, faults: FaultPlan | None = None, *, order_rate: int = 40, read_rate: int = 2, auto_fill: bool = True
    ):
        super().__init__(faults, rate_limits={"orders": [(order_rate, 1.0)], "reads": [(read_rate, 1.0)]})
        self.auto_fill = auto_fill
        self.reset(self.faults)

    def reset(self, faults: FaultPlan | None = None) -> None:
        """Forget every account, order and session (one server can then serve many tests)."""
        with self.lock:
            self.faults = faults or FaultPlan()
            self.ledger = Ledger()
            self.limiter = RateLimiter(self.limiter.limits)
            self.book = MotilalBook(self.lock)
            self.sessions: dict[str, dict[str, Any]] = {}  # AuthToken -> {"user_id", "verified"}
            self.sent_otps: dict[str, str] = {}  # user id -> the OTP "texted" after a blank TOTP login
            self.calls: deque[tuple[str, dict[str, str], Any]] = deque(maxlen=2000)
            self._overrides: dict[str, deque[tuple[int, Any]]] = {}

    # ------------------------------------------------------------------ test and admin hooks

    def add_account(self, **fields: Any) -> dict[str, Any]:
        return self.book.add_dealer(**fields)

    def expire_sessions(self, account: str | None = None) -> None:
        with self.lock:
            for token, session in list(self.sessions.items()):
                dealer = self.book.dealers[session["user_id"]]
                if account in (None, dealer.user_id) or account in dealer.client_codes:
                    del self.sessions[token]

    def override_next(self, kind: str, status: int, body: Any) -> None:
        """The next request of `kind` (place/modify/cancel/read) gets this raw answer, unbooked."""
        with self.lock:
            self._overrides.setdefault(kind, deque()).append((status, body))

    def fill(self, order_id: str, qty: int | None = None, price: Decimal | str | None = None) -> None:
        with self.lock:
            self.book.fill(self.book.order(order_id), qty, None if price is None else Decimal(str(price)))

    def set_status(self, order_id: str, word: str, reason: str = "") -> None:
        """Put an order in any Motilal status word ("Confirm", "Partially Traded", "Error", ...)."""
        with self.lock:
            order = self.book.order(order_id)
            order.status, order.error = word, reason
            self.book.touch(order)

    def add_instrument(self, symbol: str, token: int, ltp: Decimal | str, **fields: Any) -> None:
        """A scrip (tick from the NSE table unless given; band ±band_pct % of ltp, default 10)."""
        self.book.add_scrip(symbol, token, Decimal(str(ltp)), **fields)

    def set_ltp(self, symbol: str, ltp: Decimal | str, exchange: str = "NSE") -> None:
        with self.lock:
            self.book.scrip(symbol, exchange).ltp = Decimal(str(ltp))

    def last_body(self, path_suffix: str) -> Any:
        return next(body for path, _, body in reversed(self.calls) if path.endswith(path_suffix))

    # ------------------------------------------------------------------ responses

    @staticmethod
    def json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        text = payload if isinstance(payload, str) else exact_json(payload)
        return Response(text, status=status, content_type="application/json", headers=headers)

    def failure(self, code: str, message: str, status: int = 200) -> Response:
        return self.json(envelope("FAILURE", message, code), status)

    @staticmethod
    def http_error(status: int) -> Response:
        return Response(
            f"<html><body>{status} Service Unavailable</body></html>", status=status, content_type="text/html"
        )

    def rate_limited(self) -> Response:
        return self.json(
            envelope("FAILURE", "Too many requests, please try after some time", RATE_ERROR),
            429,
            headers={"Retry-After": "1"},
        )

    # ------------------------------------------------------------------ request checks

    def _read_json(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}", parse_float=Decimal)
        except ValueError:
            return self.failure(HEADER_ERROR, "Invalid request body, JSON expected", 400)
        self.calls.append((request.path, dict(request.headers), body))
        return body if isinstance(body, dict) else self.failure(HEADER_ERROR, "Invalid request body", 400)

    def _header_problem(self, request: Request, *, login: bool) -> Response | None:
        headers = request.headers
        if not headers.get("ApiKey"):
            return self.failure(AUTH_ERROR, "Invalid ApiKey", 401)
        if not login and not headers.get("Authorization"):
            return self.failure(AUTH_ERROR, "Authorization token is missing", 401)
        needed = REQUIRED_HEADERS + (WEB_HEADERS if headers.get("SourceId", "").upper() == "WEB" else ())
        missing = [name for name in needed if name not in headers]
        if missing or headers.get("SourceId", "").upper() not in ("WEB", "MOBILE", "DESKTOP"):
            return self.failure(HEADER_ERROR, f"Invalid or missing header: {(missing or ['SourceId'])[0]}", 400)
        return None

    def _override(self, kind: str) -> Response | None:
        with self.lock:
            queue = self._overrides.get(kind)
            if not queue:
                return None
            status, body = queue.popleft()
        return (
            self.json(body, status)
            if not isinstance(body, str) or body[:1] in "{["
            else Response(body, status=status, content_type="text/html")
        )

    def _open(self, request: Request, klass: str, kind: str) -> Call | Response:
        """Authenticate, rate-limit, resolve the clientcode and decide this request's fault."""
        body = self._read_json(request)
        if isinstance(body, Response):
            return body
        problem = self._header_problem(request, login=False) or self._override(kind)
        if problem is not None:
            return problem
        with self.lock:
            session = self.sessions.get(request.headers["Authorization"])
            dealer = self.book.dealers.get(session["user_id"]) if session else None
        if dealer is None or dealer.api_key != request.headers["ApiKey"]:
            return self.failure(AUTH_ERROR, "Invalid User Id or Auth Token", 401)
        if not session["verified"]:
            return self.failure(AUTH_ERROR, "Auth Token is not verified, please verify OTP", 401)
        # Motilal's limits belong to the login (its API key), so a dealer's clients share them.
        if not self.limiter.allow(dealer.user_id, klass):
            return self.rate_limited()
        client = self._client_for(dealer, body.get("clientcode"))
        if isinstance(client, Response):
            return client
        fault = self.before_accept(kind, client.code)
        early = self._early_fault(fault, request.headers["Authorization"])
        return early if early is not None else Call(dealer, client, body, fault)

    def _client_for(self, dealer: Dealer, code: Any) -> ClientBook | Response:
        code = str(code or "").strip() or dealer.user_id  # a client login acts for itself
        if code not in dealer.client_codes:
            return self.failure(DEALER_ERROR, f"Client code {code} is not mapped to dealer {dealer.user_id}")
        return self.book.clients[code]

    def _early_fault(self, fault: str | None, token: str) -> Response | None:
        if fault == "burst_429":
            return self.rate_limited()
        if fault == "error_5xx":
            return self.http_error(503)
        if fault == "expire_token":
            with self.lock:
                self.sessions.pop(token, None)
            return self.failure(AUTH_ERROR, "Invalid User Id or Auth Token", 401)
        return None

    def _finish(self, call: Call, respond: Callable[[], Response]) -> Response:
        return self.after_accept(call.fault, respond, self.http_error)

    # ------------------------------------------------------------------ login

    def login(self, request: Request) -> Response:
        """authdirectapi (v3 and v4). Not rate-limited here: the desk logs in once a day per login."""
        body = self._read_json(request)
        if isinstance(body, Response):
            return body
        problem = self._header_problem(request, login=True)
        if problem is not None:
            return problem
        api_key = request.headers["ApiKey"]
        with self.lock:
            dealer = self.book.dealers.get(str(body.get("userid") or ""))
        if dealer is None or dealer.api_key != api_key:
            return self.failure(LOGIN_ERROR, "Login Id/Password Is Invalid")
        if body.get("password") != hashlib.sha256((dealer.password + api_key).encode()).hexdigest():
            return self.failure(LOGIN_ERROR, "Login Id/Password Is Invalid")
        two_fa = str(body.get("2FA") or "").strip().upper()
        if not two_fa or two_fa not in (dealer.dob, dealer.pan.upper()):
            return self.failure(TWO_FA_ERROR, "Invalid 2FA, enter Date of Birth (DD/MM/YYYY) or PAN")
        totp = str(body.get("totp") or "").strip()
        if totp and not pyotp.TOTP(dealer.totp_secret).verify(totp, valid_window=1):
            return self.failure(TOTP_ERROR, "Invalid TOTP")
        token = secrets.token_hex(16) + "_M"
        with self.lock:
            self.sessions[token] = {"user_id": dealer.user_id, "verified": bool(totp)}
            if not totp:
                self.sent_otps[dealer.user_id] = f"{secrets.randbelow(10**6):06d}"
        message = "Return Auth Token SUCCESS" if totp else "OTP sent on registered mobile number and email"
        return self.json(
            {
                "status": "SUCCESS",
                "message": message,
                "errorcode": "",
                "AuthToken": token,
                "isAuthTokenVerified": "TRUE" if totp else "FALSE",
            }
        )

    def verify_otp(self, request: Request) -> Response:
        body = self._read_json(request)
        if isinstance(body, Response):
            return body
        problem = self._header_problem(request, login=False)
        if problem is not None:
            return problem
        with self.lock:
            session = self.sessions.get(request.headers["Authorization"])
            if session is None:
                return self.failure(AUTH_ERROR, "Invalid User Id or Auth Token", 401)
            if str(body.get("otp") or "") != self.sent_otps.get(session["user_id"]):
                return self.failure(OTP_ERROR, "Invalid OTP")
            session["verified"] = True
        return self.json(envelope("SUCCESS", "OTP verified successfully"))

    def logout(self, request: Request) -> Response:
        call = self._open(request, "reads", "read")
        if isinstance(call, Response):
            return call
        with self.lock:
            self.sessions.pop(request.headers["Authorization"], None)
        return self._finish(call, lambda: self.json(envelope("SUCCESS", "Logout Successfully")))

    # ------------------------------------------------------------------ orders

    def place_order(self, request: Request) -> Response:
        call = self._open(request, "orders", "place")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self.book.new_order(call.client, call.body)
            if isinstance(order, str):
                return self.failure(ORDER_ERROR, order)
            # Booked before any accepting fault: the ground truth tests count.
            self.ledger.book(call.client.code, order.order_id, order.tag or None, call.body)
            self.book.after_place(order, self.auto_fill)
        return self._finish(
            call,
            lambda: self.json(
                {
                    "status": "SUCCESS",
                    "message": "Order Placed Successfully",
                    "errorcode": "",
                    "uniqueorderid": order.order_id,
                }
            ),
        )

    def _live_order(self, call: Call) -> EmuOrder | Response:
        order = self.book.orders.get(str(call.body.get("uniqueorderid") or ""))
        if order is None or order.client_code != call.client.code:
            return self.failure(ORDER_ERROR, "Order not found")
        if order.is_final:
            return self.failure(ORDER_ERROR, f"Order is already in {order.status} state")
        return order

    def modify_order(self, request: Request) -> Response:
        call = self._open(request, "orders", "modify")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._live_order(call)
            if isinstance(order, Response):
                return order
            body = call.body
            if (
                str(body.get("lastmodifiedtime") or "") != ist_stamp(order.modified_at)
                or _int(body.get("qtytradedtoday")) != order.traded
            ):
                return self.failure(ORDER_ERROR, "Order has been modified, please refresh")
            problem = self.book.modify(order, body, self.auto_fill)
            if problem:
                return self.failure(ORDER_ERROR, problem)
        return self._finish(
            call,
            lambda: self.json(
                {
                    "status": "SUCCESS",
                    "message": "Order Modified Successfully",
                    "errorcode": "",
                    "uniqueorderid": order.order_id,
                }
            ),
        )

    def cancel_order(self, request: Request) -> Response:
        call = self._open(request, "orders", "cancel")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._live_order(call)
            if isinstance(order, Response):
                return order
            order.status = "Cancel"
            self.book.touch(order)
        return self._finish(
            call,
            lambda: self.json(
                {
                    "status": "SUCCESS",
                    "message": "Order Cancelled Successfully",
                    "errorcode": "",
                    "uniqueorderid": order.order_id,
                }
            ),
        )

    # ------------------------------------------------------------------ reads

    def _read(self, request: Request, build: Callable[[Call], Any]) -> Response:
        """A read view: `build` returns the data (None for "no records") or a FAILURE Response."""
        call = self._open(request, "reads", "read")
        if isinstance(call, Response):
            return call
        with self.lock:
            data = build(call)
        if isinstance(data, Response):
            return data
        message = "SUCCESS" if data not in (None, []) else "No Record Found"
        return self._finish(call, lambda: self.json(envelope("SUCCESS", message, data=data or None)))

    def order_book(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            since = parse_ist(call.body.get("dateandtime"))
            return [
                o.row() for o in self.book.client_orders(call.client.code) if since is None or o.modified_at >= since
            ]

        return self._read(request, build)

    def order_detail(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            order = self.book.orders.get(str(call.body.get("uniqueorderid") or ""))
            if order is None or order.client_code != call.client.code:
                return self.failure(ORDER_ERROR, "Order not found")
            return list(order.history)

        return self._read(request, build)

    def trade_book(self, request: Request) -> Response:
        return self._read(request, lambda call: list(call.client.trades))

    def positions(self, request: Request) -> Response:
        return self._read(request, lambda call: self.book.position_rows(call.client))

    def dp_holdings(self, request: Request) -> Response:
        return self._read(request, lambda call: self.book.holding_rows(call.client))

    def margin_detail(self, request: Request) -> Response:
        return self._read(request, lambda call: self.book.margin_rows(call.client))

    def ltp(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            scrip = self.book.scrips.get((str(call.body.get("exchange") or ""), _int(call.body.get("scripcode"))))
            return scrip.ltp_data() if scrip else self.failure(ORDER_ERROR, "Invalid Scrip Code")

        return self._read(request, build)

    def scrips(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            exchange = str(call.body.get("exchangename") or "")
            return [s.master_row() for s in self.book.scrips.values() if s.exchange == exchange]

        return self._read(request, build)


if __name__ == "__main__":
    run_cli(lambda plan: MotilalEmulator(faults=plan))
