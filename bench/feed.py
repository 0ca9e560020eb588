"""Live prices to browsers: tick published → HTML fragment received on every WebSocket.

    python bench/feed.py --sockets 100 --instruments 500

Starts everything in a temporary directory: an embedded Redis (or --redis-url, flushed), a SQLite
database (or --database-url, empty), `flask db upgrade`, I synthetic instruments, U traders, and
gunicorn exactly as the Procfile runs it (webapp/gunicorn_conf.py; WEB_CONCURRENCY and WEB_THREADS
from --web-concurrency/--web-threads: flask-sock holds one gunicorn thread per open socket). Each
trader logs in once; S sockets (round robin over the traders, same User-Agent as the login) open
/ws/feed?page=instrument&tokens=… — every socket shows T instruments: the probe instrument and T−1
others at random.

Then, once a second for --seconds (after --warmup unmeasured seconds), this process steps the
market simulator for all I instruments and publishes the batch with `write_quotes` (the feed
process's own writer: SET per instrument + one PUBLISH on fanout:ticks). Batch k sets the probe's
price to a value that encodes k. Each socket's reader thread stamps every message as it is parsed;
the latency of (socket, batch k) is the arrival of the first fragment carrying the probe's k-th
price (`id="ltp-<token>"`) − the moment just before write_quotes was called (same machine, same
clock). A batch a socket never got counts as missed; a socket closed before the end as dropped.

Progress goes to stderr; the last stdout line is one JSON object with p50_ms, p95_ms and dropped.
Everything started is stopped at the end, on error too.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):  # `python bench/feed.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import simple_websocket

from bench.harness import (
    BIN,
    Processes,
    add_service_args,
    free_port,
    load_average,
    log,
    machine,
    percentile,
    run_bench,
    summary,
    versions,
    wait_http,
    wait_quiet,
)
from bench.live_harness import (
    USER_AGENT,
    cookie_header,
    database_version,
    login,
    make_app,
    prepare,
    processes_of,
    redact,
    seed_clients,
    seed_instruments,
    seed_user,
    self_memory,
)

TARGET_P95_MS = 250.0
PROBE_BASE = Decimal("1000.00")  # batch k puts the probe at PROBE_BASE + k × 0.05


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=100)
    p.add_argument("--instruments", type=int, default=500, help="instruments in every tick batch")
    p.add_argument("--seconds", type=int, default=30, help="measured seconds (one batch per second)")
    p.add_argument("--warmup", type=int, default=3, help="batches published first and not counted")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between batches")
    p.add_argument(
        "--tokens-per-socket",
        type=int,
        default=20,
        help="instruments each socket's page shows (the probe included); 0: all of them",
    )
    p.add_argument("--users", type=int, default=10, help="traders logged in (sockets are spread over them)")
    p.add_argument("--web-concurrency", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    p.add_argument(
        "--web-threads",
        type=int,
        default=None,
        help="threads per worker (WEB_THREADS); default: sockets + 16, so one worker could hold "
        "every socket however the kernel spreads the connections, with threads left for pages",
    )
    p.add_argument("--connect-timeout", type=float, default=15.0, help="seconds a handshake may take")
    p.add_argument("--seed", type=int, default=1)
    add_service_args(p)
    args = p.parse_args(argv)
    if args.sockets < 1 or args.seconds < 1 or args.instruments < 1:
        p.error("need at least one socket, one second and one instrument")
    if args.web_threads is None:
        args.web_threads = args.sockets + 16
    return args


class TimedClient(simple_websocket.Client):
    """A WebSocket client that stamps each message in its reader thread, as soon as it is parsed."""

    def __init__(self, *a, **kw):
        self.arrivals: list[tuple[float, str]] = []
        self.closed_at: float | None = None
        super().__init__(*a, **kw)

    def handshake(self):
        super().handshake()
        self.sock.settimeout(None)  # the connect timeout was for the handshake only, not the reader thread
        self._handle_events()  # a first message that came in the same read as the 101 answer

    def _handle_events(self):
        keep_going = super()._handle_events()
        if self.input_buffer:
            now = time.time()
            while self.input_buffer:
                self.arrivals.append((now, self.input_buffer.pop(0)))
        if not keep_going and self.closed_at is None:
            self.closed_at = time.time()
        return keep_going


def connect(base_ws: str, host: str, cookie: str, query: str, timeout: float) -> TimedClient:
    headers = {"Origin": f"http://{host}", "User-Agent": USER_AGENT, "Cookie": cookie}
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # a handshake a worker never answers (no free thread) must not hang us
    try:
        ws = TimedClient(f"{base_ws}/ws/feed?{query}", headers=headers)
    finally:
        socket.setdefaulttimeout(previous)
    return ws


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "feed",
        args,
        lambda tmp, processes, started: _run(args, tmp, processes, started),
        {"sockets": args.sockets, "instruments": args.instruments},
    )


def _run(args, tmp: Path, processes: Processes, started: dict) -> dict:
    env = prepare(args, tmp, started)
    app = make_app()
    rng = random.Random(args.seed)
    import sqlalchemy as sa

    from webapp.extensions import db, get_redis
    from webapp.marketdata.simulator import MarketSimulator
    from webapp.marketdata.store import write_quotes
    from webapp.models import Instrument
    from webapp.timeutil import utcnow

    with app.app_context():
        instruments = seed_instruments(args.instruments, rng)
        client_ids = seed_clients(10)
        users = [f"bench-trader-{i:03d}" for i in range(min(args.users, args.sockets))]
        for name in users:
            seed_user(name, "trader", client_ids)
        rows = db.session.execute(sa.select(Instrument).order_by(Instrument.id)).scalars().all()
        simulator = MarketSimulator(rows, args.seed)
        db.session.expunge_all()
        redis = get_redis()
        dbinfo = database_version(app)
    probe = instruments[0]
    log(f"seeded {len(instruments)} instruments, {len(users)} traders; db: {dbinfo}")

    port = free_port()
    web_env = dict(env, PORT=str(port), WEB_CONCURRENCY=str(args.web_concurrency), WEB_THREADS=str(args.web_threads))
    web = processes.start("web", [str(BIN / "gunicorn"), "--config", "webapp/gunicorn_conf.py", "wsgi:app"], web_env)
    host, base = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/live", processes=processes)
    log(f"gunicorn: {args.web_concurrency} workers × {args.web_threads} threads at {base}")
    with app.app_context():  # the first tick, so snapshots have prices
        write_quotes(redis, simulator.step_by_token(utcnow()))

    sessions = [login(base, name) for name in users]
    cookies = [cookie_header(s) for s in sessions]
    others = [i.instrument_token for i in instruments[1:]]
    per_socket = args.tokens_per_socket or len(instruments)
    t = time.perf_counter()
    failed_connects = []
    for n in range(args.sockets):
        tokens = [probe.instrument_token] + rng.sample(others, min(per_socket - 1, len(others)))
        query = f"page=instrument&id={probe.id}&tokens={','.join(map(str, tokens))}"
        try:
            started["sockets"].append(
                connect(f"ws://{host}", host, cookies[n % len(cookies)], query, args.connect_timeout)
            )
        except Exception as exc:  # a handshake refused or never answered
            failed_connects.append(f"{type(exc).__name__}: {exc}")
            log(f"socket {n} did not open: {type(exc).__name__}: {exc}")
    sockets: list[TimedClient] = started["sockets"]
    connect_s = time.perf_counter() - t
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
        any('id="feed-state"' in m for _, m in ws.arrivals) for ws in sockets
    ):
        time.sleep(0.05)
    snapshots = sum(1 for ws in sockets if any('id="feed-state"' in m for _, m in ws.arrivals))
    log(
        f"{len(sockets)} sockets open in {connect_s:.1f} s ({len(failed_connects)} failed), "
        f"{snapshots} snapshots received"
    )
    if not sockets:
        raise RuntimeError(f"no socket opened: {failed_connects[:3]}")

    idle_before = wait_quiet(args.wait_quiet) if args.wait_quiet else None
    sent: dict[int, float] = {}  # batch k → time.time() just before write_quotes
    published: dict[int, float] = {}  # batch k → time.time() when write_quotes returned (PUBLISH answered)
    write_ms: list[float] = []
    rss_peak: dict[int, float] = {}
    total = args.warmup + args.seconds
    cpu_start = cpu_end = None
    load_before = load_average()
    t_next = time.monotonic()
    with app.app_context():
        for k in range(1, total + 1):
            if k == args.warmup + 1:
                cpu_start = cpu_snapshot(web.pid, started)
                wall_start = time.perf_counter()
            quotes = simulator.step_by_token(utcnow())
            quotes[probe.instrument_token] = replace(
                quotes[probe.instrument_token], last_price=PROBE_BASE + k * probe.tick_size
            )
            t0 = time.time()
            write_quotes(redis, quotes)
            t1 = time.time()
            write_ms.append((t1 - t0) * 1000)
            sent[k], published[k] = t0, t1
            processes.check_alive()
            for proc in processes_of(web.pid):
                rss_peak[proc["pid"]] = max(rss_peak.get(proc["pid"], 0), proc["rss_mib"])
            if k % 10 == 0:
                log(f"batch {k}/{total}; sockets open: {sum(1 for ws in sockets if ws.connected)}")
            t_next += args.interval
            time.sleep(max(0.0, t_next - time.monotonic()))
    time.sleep(min(2.0, args.interval * 2))  # the last batch's fragments
    wall_s = time.perf_counter() - wall_start
    cpu_end = cpu_snapshot(web.pid, started)
    load_after = load_average()
    per_worker = sockets_per_worker(web.pid, port)
    log(f"sockets held per gunicorn worker at the end: {per_worker}")
    memory = {
        "gunicorn": processes_of(web.pid),
        "bench": self_memory(),
        "redis": processes_of(started["redis"].process.pid) if started.get("redis") else None,
    }
    open_at_end = [ws.connected for ws in sockets]
    closes = [
        {
            "socket": n,
            "reason": str(ws.close_reason),
            "message": ws.close_message,
            "after_s": round(ws.closed_at - sent[1], 1) if ws.closed_at else None,
            "messages": len(ws.arrivals),
        }
        for n, ws in enumerate(sockets)
        if not ws.connected
    ]
    if closes:
        log(f"closed before the end: {closes[:10]}")

    # ---- latencies
    probe_re = re.compile(rf'id="ltp-{probe.instrument_token}"[^>]*>([^<]+)<')
    measured = set(range(args.warmup + 1, total + 1))
    deliveries, per_batch, missed, messages, bytes_in = [], {k: [] for k in measured}, 0, 0, 0
    after_publish = []  # from write_quotes' return: a lower bound, without the feed's own encoding and SETs
    for ws in sockets:
        first: dict[int, float] = {}
        for at, message in ws.arrivals:
            if sent and at >= sent.get(args.warmup + 1, 0):
                messages += 1
                bytes_in += len(message)
            for text in probe_re.findall(message):
                k = int(round((Decimal(text.replace(",", "")) - PROBE_BASE) / probe.tick_size))
                first.setdefault(k, at)
        for k in measured:
            if k in first:
                ms = (first[k] - sent[k]) * 1000
                deliveries.append(ms)
                per_batch[k].append(ms)
                after_publish.append((first[k] - published[k]) * 1000)
            else:
                missed += 1
    every_socket = [max(v) for k, v in per_batch.items() if len(v) == len(sockets)]
    dropped = sum(1 for ok in open_at_end if not ok) + len(failed_connects)
    p50, p95 = percentile(deliveries, 50), percentile(deliveries, 95)
    cpu = {name: round(cpu_end[name] - cpu_start[name], 2) for name in cpu_end}
    workers = [p for p in memory["gunicorn"] if p["pid"] != web.pid]
    return {
        "bench": "feed",
        "sockets": args.sockets,
        "instruments": args.instruments,
        "seconds": args.seconds,
        "tokens_per_socket": per_socket,
        "p50_ms": _r(p50),
        "p95_ms": _r(p95),
        "max_ms": _r(max(deliveries) if deliveries else None),
        "dropped": dropped,
        "missed": missed,
        "target_p95_ms": TARGET_P95_MS,
        "target_met": p95 is not None and p95 <= TARGET_P95_MS and dropped == 0 and missed == 0,
        "ratio_p95_to_target": round(p95 / TARGET_P95_MS, 2) if p95 is not None else None,
        "latency": summary(deliveries),
        "after_publish": {
            **summary(after_publish),
            "note": "from write_quotes' return (PUBLISH answered by Redis): the feed's own JSON "
            "encoding and 500 SETs left out",
        },
        "every_socket": {**summary(every_socket), "note": "per batch: publish → the last socket has it"},
        "deliveries": len(deliveries),
        "expected_deliveries": len(sockets) * len(measured),
        "messages_per_s": round(messages / (args.seconds * args.interval), 1),
        "kib_per_s": round(bytes_in / 1024 / (args.seconds * args.interval), 1),
        "write_quotes_ms": summary(write_ms),
        "closed_early": closes[:10],
        "failed_connects": failed_connects[:5],
        "connect_s": round(connect_s, 2),
        "snapshots": snapshots,
        "sockets_per_worker": per_worker,
        "cpu_pct_of_one_core": {name: round(100 * v / wall_s, 1) for name, v in cpu.items()},
        "rss_mib": {
            "gunicorn_master": next((p["rss_mib"] for p in memory["gunicorn"] if p["pid"] == web.pid), None),
            "gunicorn_workers": [p["rss_mib"] for p in workers],
            "gunicorn_workers_peak": [rss_peak.get(p["pid"]) for p in workers],
            "bench": memory["bench"]["rss_mib"],
            "bench_peak": memory["bench"]["peak_rss_mib"],
            "redis": memory["redis"][0]["rss_mib"] if memory["redis"] else None,
        },
        "ok": dropped == 0 and missed == 0 and bool(deliveries),
        "setup": {
            "web_concurrency": args.web_concurrency,
            "web_threads": args.web_threads,
            "users": len(users),
            "interval_s": args.interval,
            "warmup": args.warmup,
            "database": dbinfo,
            "database_url": redact(env["DATABASE_URL"]) if args.database_url else "sqlite (temp file)",
            "redis": "external" if args.redis_url else "embedded",
        },
        "loadavg": {"before": load_before, "after": load_after},
        "machine_busy_pct_before_start": idle_before,
        "measured_wall_s": round(wall_s, 1),
        "machine": machine(),
        "versions": versions("flask", "flask-sock", "simple-websocket", "gunicorn", "redis", "sqlalchemy"),
    }


def _r(value):
    return None if value is None else round(value, 1)


def cpu_snapshot(web_pid: int, started: dict) -> dict[str, float]:
    procs = processes_of(web_pid)
    out = {f"worker_{i}": p["cpu_s"] for i, p in enumerate(q for q in procs if q["pid"] != web_pid)}
    out["gunicorn_master"] = next((p["cpu_s"] for p in procs if p["pid"] == web_pid), 0.0)
    t = os.times()
    out["bench"] = t.user + t.system
    if started.get("redis") is not None:
        out["redis"] = processes_of(started["redis"].process.pid)[0]["cpu_s"]
    return out


def sockets_per_worker(web_pid: int, port: int) -> list[int]:
    """ESTABLISHED connections on the web port held by each gunicorn worker."""
    import psutil

    counts = []
    for child in psutil.Process(web_pid).children():
        try:
            conns = child.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        counts.append(sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port))
    return counts


if __name__ == "__main__":
    sys.exit(main())
