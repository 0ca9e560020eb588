"""What every broker emulator shares: a threaded loopback server, a seeded fault plan, an order
ledger that tests and benchmarks count, and per-account rate limits that answer 429.

An emulator is a Werkzeug WSGI app (`BrokerEmulator` subclass) with a routing `Map`, served with
HTTP/1.1 keep-alive (`EmulatorServer`). Each view
gets a werkzeug `Request` and returns a `Response`. Faults are decided per request by the plan:

- latency / jitter: sleep before answering;
- ``timeout_after_accept``: the order is booked in the ledger, then the answer is held for
  ``hang_seconds`` (longer than the client's timeout) before it is sent;
- ``drop_after_accept``: the order is booked, then the connection is closed with no answer;
- ``error_5xx``: a 5xx answer before anything is booked;
- ``error_5xx_after_accept``: booked, then a 5xx answer;
- ``burst_429``: a 429 answer (nothing booked);
- ``expire_token``: the account's session is revoked from now on (token expiry mid-session).

Tests can also script the next faults exactly: ``emulator.faults.script("place", "drop_after_accept")``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from webapp.jsonutil import text_json

FAULTS = (
    "timeout_after_accept",
    "drop_after_accept",
    "error_5xx",
    "error_5xx_after_accept",
    "burst_429",
    "expire_token",
)
ACCEPTING_FAULTS = {"timeout_after_accept", "drop_after_accept", "error_5xx_after_accept"}


class DropConnection(Exception):
    """Raised by a view to close the socket without sending any response."""


@dataclass
class FaultPlan:
    """Seeded, reproducible fault decisions. Rates are probabilities per request of that kind."""

    seed: int = 0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    hang_seconds: float = 10.0
    rates: dict[str, float] = field(default_factory=dict)  # fault name -> probability
    kinds: tuple[str, ...] = ("place",)  # request kinds random faults apply to

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._scripted: dict[str, deque[str]] = defaultdict(deque)

    def script(self, kind: str, *faults: str) -> None:
        """The next requests of `kind` get these faults, in order ("ok" for none)."""
        for fault in faults:
            if fault != "ok" and fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._scripted[kind].extend(faults)

    def delay(self) -> float:
        with self._lock:
            jitter = self._rng.uniform(0, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.latency_ms + jitter) / 1000.0

    def decide(self, kind: str) -> str | None:
        with self._lock:
            if self._scripted[kind]:
                fault = self._scripted[kind].popleft()
                return None if fault == "ok" else fault
            if kind not in self.kinds:
                return None
            roll = self._rng.random()
            acc = 0.0
            for fault in FAULTS:
                acc += self.rates.get(fault, 0.0)
                if roll < acc:
                    return fault
        return None


@dataclass
class LedgerEntry:
    account: str
    order_id: str
    tag: str | None
    payload: dict[str, Any]
    at: float


class Ledger:
    """Every order the emulated broker accepted, in order. The ground truth tests count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LedgerEntry] = []

    def book(self, account: str, order_id: str, tag: str | None, payload: dict[str, Any]) -> LedgerEntry:
        entry = LedgerEntry(account, order_id, tag, dict(payload), time.time())
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries)

    def count(self, account: str | None = None, tag: str | None = None) -> int:
        return sum(
            1 for e in self.entries() if (account is None or e.account == account) and (tag is None or e.tag == tag)
        )

    def by_account_tag(self) -> dict[tuple[str, str | None], int]:
        counts: dict[tuple[str, str | None], int] = defaultdict(int)
        for e in self.entries():
            counts[(e.account, e.tag)] += 1
        return dict(counts)


class RateLimiter:
    """Sliding-window limits per (account, class): e.g. {"orders": [(10, 1.0), (400, 60.0)]}."""

    def __init__(self, limits: dict[str, list[tuple[int, float]]]):
        self.limits = limits
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def allow(self, account: str, klass: str) -> bool:
        windows = self.limits.get(klass)
        if not windows:
            return True
        now = time.monotonic()
        longest = max(w for _, w in windows)
        with self._lock:
            hits = self._hits[(account, klass)]
            while hits and now - hits[0] > longest:
                hits.popleft()
            for count, window in windows:
                if sum(1 for t in hits if now - t <= window) >= count:
                    return False
            hits.append(now)
            return True


class BrokerEmulator:
    """Base WSGI app. Subclasses fill `url_map` (endpoint names = method names) and implement views."""

    url_map: Map = Map()

    def __init__(self, faults: FaultPlan | None = None, rate_limits: dict[str, list[tuple[int, float]]] | None = None):
        self.faults = faults or FaultPlan()
        self.ledger = Ledger()
        self.limiter = RateLimiter(rate_limits or {})
        self.lock = threading.RLock()  # guards the emulator's books
        self.requests: list[tuple[str, str]] = []  # (method, path) seen, for tests

    # ---- fault helpers for views
    def before_accept(self, kind: str, account: str) -> str | None:
        """Sleep the planned latency and decide this request's fault. Returns the fault name.

        Faults that act before anything is booked are turned into responses by `reject_fault`.
        """
        delay = self.faults.delay()
        if delay:
            time.sleep(delay)
        return self.faults.decide(kind)

    def after_accept(
        self, fault: str | None, respond: Callable[[], Response], error: Callable[[int], Response]
    ) -> Response:
        """Finish a request whose order was booked, honouring an accepting fault."""
        if fault == "timeout_after_accept":
            time.sleep(self.faults.hang_seconds)
            return respond()
        if fault == "drop_after_accept":
            raise DropConnection()
        if fault == "error_5xx_after_accept":
            return error(503)
        return respond()

    # ---- hooks subclasses implement for the admin endpoints
    def add_account(self, **fields: Any) -> dict[str, Any]:
        """Create an account at the emulated broker; returns what a test needs to log in."""
        raise NotImplementedError

    def expire_sessions(self, account: str | None = None) -> None:
        """Revoke the session tokens of one account (or all): token expiry mid-session."""
        raise NotImplementedError

    # ---- admin endpoints, for tests and benchmarks in another process
    def admin(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        path = request.path.removeprefix("/_emulator/")
        if path == "ledger":
            data = [vars(e) for e in self.ledger.entries()]
        elif path == "faults":
            plan = self.faults
            for key in ("latency_ms", "jitter_ms", "hang_seconds"):
                if key in body:
                    setattr(plan, key, float(body[key]))
            if "rates" in body:
                plan.rates = {k: float(v) for k, v in body["rates"].items() if k in FAULTS}
            for kind, faults in body.get("script", {}).items():
                plan.script(kind, *faults)
            data = {"ok": True}
        elif path == "accounts":
            data = self.add_account(**body)
        elif path == "expire":
            self.expire_sessions(body.get("account"))
            data = {"ok": True}
        else:
            return Response("not found", status=404)
        return Response(text_json(data), content_type="application/json")

    # ---- WSGI plumbing
    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_emulator/"):
            return self.admin(request)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            return self.not_found(request)
        except HTTPException as exc:
            return exc.get_response()
        return getattr(self, endpoint)(request, **values)

    def not_found(self, request: Request) -> Response:
        return Response("not found", status=404)

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.requests.append((request.method, request.path))
        return self.dispatch(request)(environ, start_response)


LISTEN_BACKLOG = 4096


class _Handler(WSGIRequestHandler):
    """HTTP/1.1 with keep-alive, a thread per connection: what a broker's front end does.

    werkzeug's dev server answers every request with `Connection: close` (http.server can't drain an
    unread body before the next request line), so every broker call paid a TCP connect here and a
    thread start in the emulator, which no broker costs (docs/BENCHMARKS.md). This handler reads the
    whole body (Content-Length) before the app runs and answers with a Content-Length, so the
    connection stays open. A view raising DropConnection gets the socket closed with no answer; a
    WebSocket view takes the socket over (`werkzeug.socket`, as simple_websocket expects).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the body goes in a second write; Nagle would hold it for the ACK

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:  # the view or stop() closed it
            pass

    def handle(self) -> None:  # wsgiref answers one request per connection; http.server's loop keeps it
        try:
            BaseHTTPRequestHandler.handle(self)
        except OSError:  # reset by the client, or closed by stop()
            pass

    def log_message(self, format: str, *args: Any) -> None:  # no access log noise in tests
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method goes to the app
            return self._run_app
        raise AttributeError(name)

    def _run_app(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "Length Required")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        environ = self.get_environ()
        environ.update(
            {
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.multithread": True,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
                "werkzeug.socket": self.connection,
            }
        )
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                getattr(result, "close", lambda: None)()
        except DropConnection:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        except ConnectionError:  # a WebSocket view ended: the socket was its, no HTTP answer
            self.close_connection = True
            return
        status, headers = started
        code, _, reason = status.partition(" ")
        payload = b"".join(chunks)
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG  # a broker's front end takes a burst of connects; 128 dropped SYNs

    def __init__(self, address: tuple[str, int], app: Any):
        self.app = app
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:  # a dropped connection is on purpose
        pass


class EmulatorServer:
    """Runs an emulator on 127.0.0.1 in a background thread. Use as a context manager."""

    def __init__(self, app: BrokerEmulator, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self._server = _Server((host, port), app)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"emulator-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection (kept-alive ones included), so a client's
        pooled connection can't reach a stopped emulator."""
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._server.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_cli(factory: Callable[[FaultPlan], BrokerEmulator], argv: list[str] | None = None) -> None:
    """`python -m tests.emulators.<broker> --port 0 --latency-ms 100 --fault burst_429=0.05`.

    Prints one JSON line `{"url": ...}` once listening, then serves until interrupted.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--hang-seconds", type=float, default=10.0)
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=RATE")
    args = parser.parse_args(argv)
    rates = {name: float(rate) for name, rate in (f.split("=", 1) for f in args.fault)}
    plan = FaultPlan(
        seed=args.seed,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        hang_seconds=args.hang_seconds,
        rates=rates,
    )
    server = EmulatorServer(factory(plan), args.host, args.port)
    print(json.dumps({"url": server.url}), flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
