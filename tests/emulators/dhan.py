"""A loopback DhanHQ v2 API (reference/brokers-upstox-dhan.md §2) for contract tests and benchmarks.

It speaks the documented protocol: routes under /v2 (orders, trades, positions, holdings,
fundlimit, margincalculator, marketfeed, charts, profile), headers `access-token` and `client-id`
(the SDK's profile call sends `dhanClientId`), JSON bodies with numbers as numbers or strings,
`{orderId, orderStatus}` answers, Dhan's status words (TRANSIT, PENDING, PART_TRADED, TRADED,
REJECTED, CANCELLED, EXPIRED), `correlationId` echoed on rows and looked up at
/v2/orders/external/{id}, errors as a non-2xx `{errorType, errorCode, errorMessage}` with DH-9xx
codes, the funds row's misspelt keys, the compact scrip-master CSV, the PIN + TOTP token route of
auth.dhan.co (/app/generateAccessToken, query parameters) on the same server, and per-account limits:
orders 25/s and 250/min, quotes 1/s, charts 5/s, other reads 20/s, answered 429 DH-904.

The HTTP status paired with each DH code is the emulator's choice (Dhan documents the codes, not the
statuses). The instrument universe is the desk's sample master, webapp/instruments/nse_sample.csv.
"""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyotp
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.emulators.common import BrokerEmulator, FaultPlan, Ledger, RateLimiter, run_cli
from tests.emulators.dhan_book import IST, MARGIN_FACTOR, Account, DhanBook, EmuOrder, Instrument, num, rounded
from tests.emulators.dhan_stream import DhanStreamMixin
from tests.emulators.stream_common import StreamQuote
from webapp.jsonutil import exact_json

TOKEN_HOURS = 24
INTRADAY_INTERVALS = (1, 5, 15, 25, 60)
MAX_INTRADAY_DAYS = 90
# DH code -> (errorType, HTTP status). The statuses are the emulator's assumption.
ERRORS = {
    "DH-901": ("Invalid_Authentication", 401),
    "DH-902": ("Invalid_Access", 403),
    "DH-904": ("Rate_Limit", 429),
    "DH-905": ("Input_Exception", 400),
    "DH-906": ("Order_Error", 400),
    "DH-907": ("Data_Error", 400),
    "DH-908": ("Internal_Server_Error", 500),
    "DH-909": ("Network_Error", 503),
}

ROUTES = (
    ("/v2/orders", "place_order", "POST"),
    ("/v2/orders", "order_book", "GET"),
    ("/v2/orders/<order_id>", "order_by_id", "GET"),
    ("/v2/orders/<order_id>", "modify_order", "PUT"),
    ("/v2/orders/<order_id>", "cancel_order", "DELETE"),
    ("/v2/orders/external/<correlation_id>", "order_by_correlation", "GET"),
    ("/v2/trades", "trade_book", "GET"),
    ("/v2/trades/", "trade_book", "GET"),
    ("/v2/trades/<order_id>", "order_trades", "GET"),
    ("/v2/positions", "positions", "GET"),
    ("/v2/holdings", "holdings", "GET"),
    ("/v2/fundlimit", "fundlimit", "GET"),
    ("/v2/margincalculator", "margin_calculator", "POST"),
    ("/v2/marketfeed/ltp", "quote_ltp", "POST"),
    ("/v2/marketfeed/ohlc", "quote_ohlc", "POST"),
    ("/v2/marketfeed/quote", "quote_full", "POST"),
    ("/v2/charts/intraday", "charts_intraday", "POST"),
    ("/v2/charts/historical", "charts_daily", "POST"),
    ("/v2/profile", "profile", "GET"),
    ("/app/generateAccessToken", "generate_token", "POST"),
    ("/api-scrip-master.csv", "scrip_master", "GET"),
)


@dataclass
class Call:
    account: Account
    body: dict[str, Any]
    fault: str | None
    token: str


class DhanEmulator(DhanStreamMixin, BrokerEmulator):
    url_map = Map(
        [Rule(path, endpoint=endpoint, methods=[method]) for path, endpoint, method in ROUTES]
        + [Rule("/feed", endpoint="ticker", websocket=True)]
    )

    def __init__(
        self,
        faults: FaultPlan | None = None,
        *,
        orders_per_second: int = 25,
        orders_per_minute: int = 250,
        quotes_per_second: int = 1,
        auto_fill: bool = True,
    ):
        limits = {
            "orders": [(orders_per_second, 1.0), (orders_per_minute, 60.0)],
            "quotes": [(quotes_per_second, 1.0)],
            "data": [(5, 1.0)],
            "reads": [(20, 1.0)],
        }
        super().__init__(faults, rate_limits=limits)
        self.auto_fill = auto_fill
        self.reset(self.faults)

    def reset(self, faults: FaultPlan | None = None) -> None:
        """Forget every account, order and session (one server can then serve many tests)."""
        with self.lock:
            self.faults = faults or FaultPlan()
            self.ledger = Ledger()
            self.limiter = RateLimiter(self.limiter.limits)
            self.book = DhanBook()
            self.sessions: dict[str, tuple[str, datetime]] = {}  # access token -> (client id, expiry)
            self.calls: deque[tuple[str, str, dict[str, str], Any]] = deque(maxlen=2000)
            self._overrides: dict[str, deque[tuple[int, Any]]] = {}

    # ------------------------------------------------------------------ test and admin hooks

    def add_account(self, **fields: Any) -> dict[str, Any]:
        """An account with cash (default 10 lakh) and holdings ({"INFY": 10}), and a live token."""
        with self.lock:
            account = self.book.new_account(Decimal(str(fields.get("cash", "1000000"))), fields.get("holdings") or {})
            token, expiry = self._issue(account.client_id)
        return {
            "client_id": account.client_id,
            "client_code": account.client_id,
            "access_token": token,
            "expires_at": expiry.isoformat(),
            "pin": account.pin,
            "totp_secret": account.totp_secret,
        }

    def expire_sessions(self, account: str | None = None) -> None:
        with self.lock:
            for token, (client_id, _) in list(self.sessions.items()):
                if account in (None, client_id):
                    del self.sessions[token]

    def override_next(self, kind: str, status: int, body: Any) -> None:
        """The next request of `kind` (place/modify/cancel/read/quote/data) gets this raw answer, unbooked."""
        with self.lock:
            self._overrides.setdefault(kind, deque()).append((status, body))

    def fill(self, order_id: str, qty: int | None = None, price: Decimal | str | None = None) -> None:
        with self.lock:
            order = self.book.orders[order_id]
            self.book.fill(order, qty or order.quantity - order.filled, Decimal(str(price or order.inst.ltp)))

    def set_status(self, order_id: str, word: str, reason: str = "") -> None:
        with self.lock:
            order = self.book.orders[order_id]
            order.status, order.reason = word, reason

    def set_price(self, tradingsymbol: str, last_price: Any, exchange: str = "NSE") -> None:
        """Move an instrument's price: REST quotes and the stream read it; open orders re-match."""
        with self.lock:
            inst = self.book.by_symbol(tradingsymbol, "NSE_EQ" if exchange == "NSE" else "BSE_EQ")
            inst.ltp = Decimal(str(last_price))
            if self.auto_fill:
                self.book.reprice(inst)

    def last_body(self, path_suffix: str) -> Any:
        return next(body for _, path, _, body in reversed(self.calls) if path.endswith(path_suffix))

    def last_headers(self, path_suffix: str) -> dict[str, str]:
        return next(headers for _, path, headers, _ in reversed(self.calls) if path.endswith(path_suffix))

    # ---- for the stream mixin
    def stream_account(self, token: str) -> str | None:
        with self.lock:
            session = self.sessions.get(token)
        if session is None or session[1] <= datetime.now(IST):
            return None
        return session[0]

    def stream_quote(self, exchange: str, *, token: Any = None, isin: str | None = None) -> StreamQuote | None:
        segment = {"NSE": "NSE_EQ", "BSE": "BSE_EQ", "NSE_EQ": "NSE_EQ", "BSE_EQ": "BSE_EQ"}.get(exchange)
        with self.lock:
            inst = self.book.instruments.get((segment or "", str(token))) if token is not None else None
            if inst is None and isin:
                inst = next((i for i in self.book.instruments.values() if i.isin == isin), None)
            if inst is None:
                return None
            return StreamQuote(
                last_price=inst.ltp,
                open=inst.close,
                high=max(inst.ltp, inst.close),
                low=min(inst.ltp, inst.close),
                close=inst.close,
                volume=inst.volume,
                last_quantity=1,
                bids=tuple((inst.ltp - inst.tick * (i + 1), 100 * (i + 1), i + 1) for i in range(5)),
                asks=tuple((inst.ltp + inst.tick * (i + 1), 100 * (i + 1), i + 1) for i in range(5)),
            )

    # ------------------------------------------------------------------ responses

    @staticmethod
    def json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        text = payload if isinstance(payload, str) else exact_json(payload)
        return Response(text, status=status, content_type="application/json", headers=headers)

    def error(self, code: str, message: str) -> Response:
        error_type, status = ERRORS[code]
        headers = {"Retry-After": "1"} if status == 429 else None
        return self.json({"errorType": error_type, "errorCode": code, "errorMessage": message}, status, headers)

    @staticmethod
    def http_error(status: int) -> Response:
        return Response(
            f"<html><body>{status} Service Unavailable</body></html>", status=status, content_type="text/html"
        )

    def _issue(self, client_id: str) -> tuple[str, datetime]:
        token = "eyJ" + secrets.token_urlsafe(48)  # shaped like the JWT Dhan issues
        expiry = (datetime.now(IST) + timedelta(hours=TOKEN_HOURS)).replace(microsecond=0)
        self.sessions[token] = (client_id, expiry)
        return token, expiry

    # ------------------------------------------------------------------ request checks

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
        raw = request.get_data(as_text=True)
        try:
            body = json.loads(raw, parse_float=Decimal) if raw.strip() else {}
        except ValueError:
            return self.error("DH-905", "Invalid JSON body")
        token = request.headers.get("access-token", "")
        client_id = request.headers.get("client-id") or request.headers.get("dhanClientId") or ""
        self.calls.append((request.method, request.path, dict(request.headers), body))
        if not isinstance(body, dict):
            return self.error("DH-905", "Invalid JSON body")
        override = self._override(kind)
        if override is not None:
            return override
        with self.lock:
            session = self.sessions.get(token)
            if session is not None and session[1] <= datetime.now(IST):
                del self.sessions[token]
                session = None
        if session is None:
            return self.error("DH-901", "Client ID or user generated access token is invalid or expired.")
        if client_id and client_id != session[0] or str(body.get("dhanClientId") or session[0]) != session[0]:
            return self.error("DH-901", "Client ID or user generated access token is invalid or expired.")
        if not self.limiter.allow(session[0], klass):
            return self.error("DH-904", "Too many requests on server from single user breaching rate limits.")
        fault = self.before_accept(kind, session[0])
        if fault == "burst_429":
            return self.error("DH-904", "Too many requests on server from single user breaching rate limits.")
        if fault == "error_5xx":
            return self.http_error(503)
        if fault == "expire_token":
            with self.lock:
                self.sessions.pop(token, None)
            return self.error("DH-901", "Client ID or user generated access token is invalid or expired.")
        return Call(self.book.accounts[session[0]], body, fault, token)

    def _finish(self, call: Call, respond: Callable[[], Response]) -> Response:
        return self.after_accept(call.fault, respond, self.http_error)

    # ------------------------------------------------------------------ login and profile

    def generate_token(self, request: Request) -> Response:
        """auth.dhan.co/app/generateAccessToken?dhanClientId=&pin=&totp= (query parameters, no body)."""
        args = request.args
        self.calls.append((request.method, request.path, dict(request.headers), {}))
        with self.lock:
            account = self.book.accounts.get(args.get("dhanClientId", ""))
        if account is None or args.get("pin") != account.pin:
            return self.error("DH-901", "Invalid client id or PIN")
        if not pyotp.TOTP(account.totp_secret).verify(args.get("totp", ""), valid_window=1):
            return self.error("DH-901", "Invalid TOTP")
        with self.lock:
            token, expiry = self._issue(account.client_id)
        return self.json(
            {
                "dhanClientId": account.client_id,
                "dhanClientName": "EMULATED CLIENT",
                "dhanClientUcc": "EMU" + account.client_id[-5:],
                "givenPowerOfAttorney": False,
                "accessToken": token,
                "expiryTime": expiry.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )

    def profile(self, request: Request) -> Response:
        call = self._open(request, "reads", "read")
        if isinstance(call, Response):
            return call
        expiry = self.sessions.get(call.token, ("", datetime.now(IST)))[1]
        return self._finish(
            call,
            lambda: self.json(
                {
                    "dhanClientId": call.account.client_id,
                    "tokenValidity": expiry.strftime("%d/%m/%Y %H:%M"),
                    "activeSegment": "Equity, Derivative, Currency, Commodity",
                    "ddpi": "Active",
                    "mtf": "Active",
                    "dataPlan": "Active",
                    "dataValidity": (expiry + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S.0"),
                }
            ),
        )

    # ------------------------------------------------------------------ orders

    def place_order(self, request: Request) -> Response:
        call = self._open(request, "orders", "place")
        if isinstance(call, Response):
            return call
        with self.lock:
            fields, problem = self.book.check(call.body)
            if problem:
                return self.error("DH-905", problem)
            order = self.book.new_order(call.account, fields)
            if order.status != "REJECTED":  # booked before any accepting fault: the ground truth tests count
                self.ledger.book(call.account.client_id, order.order_id, order.correlation_id or None, call.body)
            self.book.after_place(order, self.auto_fill)
            status = "REJECTED" if order.status == "REJECTED" else "TRANSIT"
        return self._finish(call, lambda: self.json({"orderId": order.order_id, "orderStatus": status}))

    def _own_order(self, call: Call, order_id: str) -> EmuOrder | Response:
        order = self.book.orders.get(order_id)
        if order is None or order.client_id != call.account.client_id:
            return self.error("DH-906", "Invalid Order Id")
        return order

    def modify_order(self, request: Request, order_id: str) -> Response:
        call = self._open(request, "orders", "modify")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._own_order(call, order_id)
            if isinstance(order, Response):
                return order
            if order.is_final:
                return self.error("DH-906", f"Order is already {order.status}, it cannot be modified")
            problem = self.book.modify(order, call.body, self.auto_fill)
            if problem:
                return self.error("DH-905", problem)
            status = order.status
        return self._finish(call, lambda: self.json({"orderId": order.order_id, "orderStatus": status}))

    def cancel_order(self, request: Request, order_id: str) -> Response:
        call = self._open(request, "orders", "cancel")
        if isinstance(call, Response):
            return call
        with self.lock:
            order = self._own_order(call, order_id)
            if isinstance(order, Response):
                return order
            if order.is_final:
                return self.error("DH-906", f"Order is already {order.status}, it cannot be cancelled")
            self.book.cancel(order)
        return self._finish(call, lambda: self.json({"orderId": order.order_id, "orderStatus": "CANCELLED"}))

    # ------------------------------------------------------------------ reads

    def _read(
        self, request: Request, build: Callable[[Call], Any], klass: str = "reads", kind: str = "read"
    ) -> Response:
        call = self._open(request, klass, kind)
        if isinstance(call, Response):
            return call
        with self.lock:
            data = build(call)
        if isinstance(data, Response):
            return data
        return self._finish(call, lambda: self.json(data))

    def order_book(self, request: Request) -> Response:
        return self._read(request, lambda call: [o.row() for o in call.account.orders])

    def order_by_id(self, request: Request, order_id: str) -> Response:
        def build(call: Call) -> Any:
            order = self._own_order(call, order_id)
            return order if isinstance(order, Response) else order.row()

        return self._read(request, build)

    def order_by_correlation(self, request: Request, correlation_id: str) -> Response:
        def build(call: Call) -> Any:
            found = [o for o in call.account.orders if o.correlation_id == correlation_id]
            if not found:
                return self.error("DH-906", "No order found for the correlation id")
            return found[-1].row()

        return self._read(request, build)

    def trade_book(self, request: Request) -> Response:
        return self._read(request, lambda call: list(call.account.trades))

    def order_trades(self, request: Request, order_id: str) -> Response:
        return self._read(request, lambda call: [t for t in call.account.trades if t["orderId"] == order_id])

    def positions(self, request: Request) -> Response:
        return self._read(request, lambda call: self.book.position_rows(call.account))

    def holdings(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            rows = self.book.holding_rows(call.account)
            return rows or self.error("DH-907", "No holdings available")  # DH-1111 per a 3p report

        return self._read(request, build)

    def fundlimit(self, request: Request) -> Response:
        return self._read(request, lambda call: self.book.funds_row(call.account))

    def margin_calculator(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            fields, problem = self.book.check({**call.body, "orderType": call.body.get("orderType") or "LIMIT"})
            if problem and fields["inst"] is None:
                return self.error("DH-905", problem)
            price = fields["price"] or fields["inst"].ltp
            quantity = max(fields["quantity"], 0)
            product = fields["product"] if fields["product"] in ("CNC", "INTRADAY", "MARGIN", "MTF") else "CNC"
            factor = Decimal("0") if fields["side"] == "SELL" and product in ("CNC", "MTF") else None
            total = price * quantity * (MARGIN_FACTOR[product] if factor is None else factor)
            available = call.account.cash - call.account.blocked
            return {
                "totalMargin": num(total.quantize(Decimal("0.01"))),
                "spanMargin": 0,
                "exposureMargin": 0,
                "availableBalance": num(available.quantize(Decimal("0.01"))),
                "variableMargin": num(total.quantize(Decimal("0.01"))),
                "insufficientBalance": num(max(total - available, Decimal("0")).quantize(Decimal("0.01"))),
                "brokerage": 20,
                "leverage": str(int(1 / MARGIN_FACTOR[product])) + ".00" if product != "MTF" else "2.00",
            }

        return self._read(request, build)

    # ------------------------------------------------------------------ market data

    def _quote(self, request: Request, render: Callable[[Instrument], Any]) -> Response:
        def build(call: Call) -> Any:
            data: dict[str, dict[str, Any]] = {}
            count = 0
            for segment, ids in call.body.items():
                if segment == "dhanClientId":
                    continue
                if not isinstance(ids, list):
                    return self.error("DH-905", "Invalid request")
                for security_id in ids:
                    count += 1
                    inst = self.book.instruments.get((segment, str(security_id)))
                    if inst is not None:
                        data.setdefault(segment, {})[str(security_id)] = render(inst)
            if count > 1000:
                return self.error("DH-905", "Up to 1000 instruments per request")
            return {"data": data, "status": "success"}

        return self._read(request, build, "quotes", "quote")

    def quote_ltp(self, request: Request) -> Response:
        return self._quote(request, lambda i: {"last_price": num(i.ltp)})

    def quote_ohlc(self, request: Request) -> Response:
        return self._quote(request, lambda i: {"last_price": num(i.ltp), "ohlc": i.ohlc()})

    def quote_full(self, request: Request) -> Response:
        return self._quote(request, Instrument.quote)

    def _chart_instrument(self, call: Call) -> Instrument | Response:
        inst = self.book.instruments.get(
            (str(call.body.get("exchangeSegment") or ""), str(call.body.get("securityId") or ""))
        )
        return inst if inst is not None else self.error("DH-905", "Invalid securityId or exchangeSegment")

    def charts_intraday(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            inst = self._chart_instrument(call)
            if isinstance(inst, Response):
                return inst
            interval = int(str(call.body.get("interval") or "0"))
            start, end = _when(call.body.get("fromDate")), _when(call.body.get("toDate"))
            if interval not in INTRADAY_INTERVALS or start is None or end is None or end <= start:
                return self.error("DH-905", "Invalid interval or date range")
            if end - start > timedelta(days=MAX_INTRADAY_DAYS):
                return self.error("DH-905", "Intraday data is limited to 90 days per request")
            return _columns(inst, _intraday_starts(start, end, interval), interval)

        return self._read(request, build, "data", "data")

    def charts_daily(self, request: Request) -> Response:
        def build(call: Call) -> Any:
            inst = self._chart_instrument(call)
            if isinstance(inst, Response):
                return inst
            start, end = _when(call.body.get("fromDate")), _when(call.body.get("toDate"))
            if start is None or end is None or end <= start:
                return self.error("DH-905", "Invalid date range")
            days = [
                start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days)
            ]  # toDate exclusive
            stamps = [datetime(d.year, d.month, d.day, tzinfo=IST) for d in days if d.weekday() < 5]
            return _columns(inst, stamps, 375)

        return self._read(request, build, "data", "data")

    def scrip_master(self, request: Request) -> Response:
        out = io.StringIO()
        with self.lock:
            rows = [i.master_row() for i in self.book.instruments.values()]
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return Response(out.getvalue(), content_type="text/csv")


def _when(value: Any) -> datetime | None:
    text = str(value or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=IST)
        except ValueError:
            continue
    return None


def _intraday_starts(start: datetime, end: datetime, interval: int) -> list[datetime]:
    """Bar starts on the 09:15 IST grid of each weekday, within [start, end]."""
    out = []
    day: date = start.date()
    while day <= end.date():
        if day.weekday() < 5:
            bar = datetime(day.year, day.month, day.day, 9, 15, tzinfo=IST)
            close = bar.replace(hour=15, minute=30)
            while bar < close:
                if start <= bar <= end:
                    out.append(bar)
                bar += timedelta(minutes=interval)
        day += timedelta(days=1)
    return out


def _columns(inst: Instrument, starts: list[datetime], interval: int) -> dict[str, list[Any]]:
    """Deterministic bars around the instrument's close, as Dhan's column arrays."""
    cols: dict[str, list[Any]] = {
        k: [] for k in ("open", "high", "low", "close", "volume", "timestamp", "open_interest")
    }
    base = inst.close
    for moment in starts:
        k = int(moment.timestamp()) // 60
        open_ = rounded(base * (1 + Decimal(str(round(math.sin(k / 97) * 0.02, 6)))), inst.tick)
        close = rounded(base * (1 + Decimal(str(round(math.sin((k + interval) / 97) * 0.02, 6)))), inst.tick)
        cols["open"].append(num(open_))
        cols["high"].append(num(max(open_, close) + inst.tick))
        cols["low"].append(num(min(open_, close) - inst.tick))
        cols["close"].append(num(close))
        cols["volume"].append(1000 + k % 500)
        cols["timestamp"].append(int(moment.timestamp()))
        cols["open_interest"].append(0)
    return cols


if __name__ == "__main__":
    run_cli(lambda plan: DhanEmulator(faults=plan))
