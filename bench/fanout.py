"""The order fan-out, end to end: ticket POST → every child acknowledged by the broker.

    python bench/fanout.py --clients 100 --rtt-ms 100 [--broker kite]

Starts everything in a temporary directory: an embedded Redis (or --redis-url), a SQLite database
(or --database-url), `flask db upgrade`, the emulator of --broker (default Kite; any broker of
tests/emulators/desks.py whose modules are present) with R ms added to every answer, N clients at
that broker with live sessions, a trader granted all of them, gunicorn (webapp/gunicorn_conf.py) and
the RQ workers as `make run` runs them (one on sync, default; two on orders, no fork). It
logs in once; each round opens the ticket page, POSTs a MARKET BUY of 1 share for every client and
times the POST, then reads the database (read-only, every --poll-ms) until every child of that
batch has a broker order id. The latency of a round is max(acknowledged_at) − the moment the POST
was sent (the poll time is reported beside it as a cross-check). At the end the emulator's ledger
is counted: exactly one booked order per child.

Progress goes to stderr; the last stdout line is one JSON object. Everything started is stopped at
the end, on error too. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # `python bench/fanout.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis as redis_lib
import requests

from bench.harness import (
    BIN,
    ROOT,
    Processes,
    add_service_args,
    free_port,
    load_average,
    log,
    log_tail,
    machine,
    machine_cpu_seconds,
    percentile,
    rss_mib,
    run_bench,
    summary,
    versions,
    wait_http,
    wait_quiet,
)
from bench.live_harness import PASSWORD, database_version, hidden_inputs, login, prepare

ACKED = ("PLACED", "OPEN", "PARTIAL", "COMPLETE")
IN_FLIGHT = ("NEW", "SUBMITTING", "UNKNOWN")
TRADER = "bench-trader"
QUEUES = ("orders", "sync", "default")
GENERAL_QUEUES = ("sync", "default")  # the Procfile's `worker`; its `orders` workers take only orders


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=100, help="clients on the ticket (N), all at --broker")
    p.add_argument(
        "--broker",
        default="kite",
        help="the emulated broker every client is at (tests/emulators/desks.py: kite, motilal, sharekhan, "
        "angel, kotak, upstox, dhan, as present)",
    )
    p.add_argument("--rtt-ms", type=float, default=100.0, help="latency the emulator adds to every answer")
    p.add_argument("--rounds", type=int, default=10, help="measured batches")
    p.add_argument("--warmup", type=int, default=1, help="batches sent first and not counted")
    p.add_argument("--workers", type=int, default=1, help="RQ workers on sync, default (the Procfile's `worker`)")
    p.add_argument(
        "--orders-workers",
        type=int,
        default=2,
        help="RQ workers on the orders queue (the Procfile's `orders`; `make run` starts 2)",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="BROKER_POOL_SIZE for the workers (default: the desk's own, webapp/config.py)",
    )
    p.add_argument("--web-concurrency", type=int, default=None, help="gunicorn workers (WEB_CONCURRENCY)")
    p.add_argument(
        "--pause-ms", type=float, default=200.0, help="pause between rounds (≥150: Kite allows 10 orders/s per account)"
    )
    p.add_argument(
        "--settle",
        action="store_true",
        help="before each round, wait until every queue is empty and every worker idle (the sync job "
        "each batch enqueues has finished): one batch alone, instead of back to back",
    )
    p.add_argument("--poll-ms", type=float, default=5.0, help="database poll interval")
    p.add_argument("--round-timeout", type=float, default=60.0, help="seconds before a round counts as incomplete")
    add_service_args(p)
    args = p.parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.orders_workers < 1:
        p.error("need at least one client, one round and one orders worker")
    return args


# ---------------------------------------------------------------- the desk


def emulated(name: str):
    """The broker's row in tests/emulators/desks.py: its emulator module, settings and seeding."""
    from tests.emulators import desks

    why = desks.missing(name)
    if why:
        raise RuntimeError(f"--broker {name}: {why}")
    return desks.emulated(name)


def start_emulator(processes: Processes, rtt_ms: float, broker) -> str:
    import subprocess

    proc = processes.start(
        f"{broker.name}-emulator",
        [sys.executable, "-m", broker.module, "--port", "0", "--latency-ms", str(rtt_ms)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
    )
    line = proc.stdout.readline().decode()
    if not line:
        raise RuntimeError(f"the {broker.name} emulator did not start; see its log")
    return json.loads(line)["url"]


def seed(app, emulator_url: str, n: int, broker) -> tuple[int, list[int]]:
    """N emulator accounts and desk clients with live sessions, the instrument master, a trader."""
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.instruments.master import load_master
    from webapp.models import Client, Instrument, User
    from webapp.security import hash_password
    from webapp.timeutil import utcnow
    from webapp.trading.sessions import store_session
    from webapp.vault import current_vault

    with requests.Session() as http:
        accounts = [broker.open_account(emulator_url, http) for _ in range(n)]
    with app.app_context():
        with open(ROOT / "webapp/instruments/nse_sample.csv", encoding="utf-8") as f:
            report = load_master(f)
        db.session.commit()
        if report.errors:
            raise RuntimeError(f"instrument master: {report.errors[:3]}")
        instrument = db.session.execute(
            sa.select(Instrument).where(Instrument.exchange == "NSE", Instrument.tradingsymbol == "INFY")
        ).scalar_one()
        vault = current_vault()
        clients = []
        for i, account in enumerate(accounts):
            client = Client(
                name=f"Bench {i:04d}",
                broker=broker.name,
                client_code=account.client_code,
                credentials_enc=vault.encrypt(account.credentials),
            )
            store_session(client, account.session, vault)
            clients.append(client)
        db.session.add_all(clients)
        db.session.add(
            User(
                username=TRADER,
                role="trader",
                active=True,
                password_hash=hash_password(PASSWORD),
                password_changed_at=utcnow(),
                clients=clients,
            )
        )
        db.session.commit()
        return instrument.id, [c.id for c in clients]


# ---------------------------------------------------------------- one round


class Probe:
    """Read-only SQL on the desk's database, in its own engine (not the web, not the workers)."""

    def __init__(self, app):
        import sqlalchemy as sa

        from webapp.models import Batch, Order

        self.sa, self.Order, self.Batch = sa, Order, Batch
        self.engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1)
        # autocommit: every poll is its own statement and sees what was committed before it
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        o = Order
        acked = sa.and_(o.broker_order_id.is_not(None), o.status.in_(ACKED))
        self.progress = sa.select(
            sa.func.count(),
            sa.func.count(sa.case((acked, 1))),
            sa.func.count(sa.case((o.status.in_(IN_FLIGHT), 1))),
            sa.func.max(o.acknowledged_at),
        ).where(o.batch_id == sa.bindparam("batch"))

    def poll(self, batch_id: int):
        return self.conn.execute(self.progress, {"batch": batch_id}).one()

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()

    def details(self, batch_id: int) -> dict:
        sa, o = self.sa, self.Order
        conn = self.conn
        times = conn.execute(
            sa.select(
                sa.func.min(o.submitted_at),
                sa.func.max(o.submitted_at),
                sa.func.min(o.acknowledged_at),
                sa.func.max(o.acknowledged_at),
                sa.func.max(o.attempts),
            ).where(o.batch_id == batch_id)
        ).one()
        statuses = dict(
            conn.execute(sa.select(o.status, sa.func.count()).where(o.batch_id == batch_id).group_by(o.status)).all()
        )
        children = conn.execute(sa.select(o.tag, o.submitted_at, o.acknowledged_at).where(o.batch_id == batch_id)).all()
        tags = [c.tag for c in children]
        created = conn.execute(sa.select(self.Batch.created_at).where(self.Batch.id == batch_id)).scalar_one()
        reasons = Counter(
            conn.execute(sa.select(o.reason).where(o.batch_id == batch_id, o.status.not_in(ACKED))).scalars()
        )
        return {
            "first_submit": times[0],
            "last_submit": times[1],
            "first_ack": times[2],
            "last_ack": times[3],
            "max_attempts": times[4],
            "statuses": statuses,
            "tags": tags,
            "batch_created": created,
            "reasons": dict(reasons.most_common(3)),
            "calls": [(c.submitted_at, c.acknowledged_at) for c in children if c.submitted_at and c.acknowledged_at],
        }


def call_overlap(calls) -> tuple[int, float | None]:
    """Most children between their SUBMITTING commit and their PLACED stamp at one moment (the real
    number of concurrent broker calls), and the median time a child spent there."""
    events = sorted(
        [(s.timestamp(), 1) for s, _ in calls] + [(a.timestamp(), -1) for _, a in calls], key=lambda e: (e[0], e[1])
    )
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak, percentile([(a - s).total_seconds() * 1000 for s, a in calls], 50)


def ms_since(t0: float, moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment.timestamp() - t0) * 1000.0


def run_round(
    http: requests.Session, base: str, probe: Probe, rq_redis, instrument_id: int, client_ids: list[int], args
) -> dict:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    page = http.get(f"{base}/orders/new", params={"instrument_id": instrument_id}, timeout=30)
    page.raise_for_status()
    hidden = hidden_inputs(page.text)
    form = {
        "csrf_token": hidden["csrf_token"],
        "ticket_id": hidden["ticket_id"],
        "instrument_id": str(instrument_id),
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        "price": "",
        "trigger_price": "",
    }
    form.update({f"qty_{cid}": "1" for cid in client_ids})

    t0_wall, t0 = time.time(), time.perf_counter()
    r = http.post(f"{base}/orders/new", data=form, allow_redirects=False, timeout=30)
    post_ms = (time.perf_counter() - t0) * 1000.0
    found = re.search(r"/orders/batches/(\d+)$", r.headers.get("Location", ""))
    if r.status_code != 302 or not found:
        errors = re.findall(r'class="(?:error|flash flash-error)"[^>]*>([^<]+)<', r.text)[:3]
        raise RuntimeError(f"ticket POST answered HTTP {r.status_code}: {errors or r.text[:300]!r}")
    batch_id = int(found.group(1))

    deadline = t0 + args.round_timeout
    poll_every = args.poll_ms / 1000.0
    polls, complete = 0, False
    while True:
        total, acked, in_flight, _ = probe.poll(batch_id)
        polls += 1
        now = time.perf_counter()
        if total and acked == total:
            complete = True
            break
        if (total and in_flight == 0) or now > deadline:  # some child ended unacknowledged, or too slow
            break
        time.sleep(poll_every)
    poll_ms = (now - t0) * 1000.0

    info = probe.details(batch_id)
    try:
        job = Job.fetch(f"send-batch-{batch_id}", connection=rq_redis)
        enqueued, started = job.enqueued_at, job.started_at
    except NoSuchJobError:
        enqueued = started = None
    return {
        "batch_id": batch_id,
        "complete": complete,
        "post_ms": post_ms,
        "poll_ms": poll_ms,
        "polls": polls,
        "ack_ms": ms_since(t0_wall, info["last_ack"]) if complete else None,
        "phases_ms": {
            "batch_created": ms_since(t0_wall, info["batch_created"]),
            "job_enqueued": ms_since(t0_wall, enqueued),
            "job_started": ms_since(t0_wall, started),
            "first_submit": ms_since(t0_wall, info["first_submit"]),
            "last_submit": ms_since(t0_wall, info["last_submit"]),
            "first_ack": ms_since(t0_wall, info["first_ack"]),
            "last_ack": ms_since(t0_wall, info["last_ack"]),
        },
        "statuses": info["statuses"],
        "max_attempts": info["max_attempts"],
        "reasons": info["reasons"],
        "tags": info["tags"],
        "concurrent_calls": call_overlap(info["calls"])[0],
        "child_call_p50_ms": call_overlap(info["calls"])[1],
    }


# ---------------------------------------------------------------- accounting


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of each process, its living descendants and the children it has reaped (RQ horses)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for proc in tree:
            try:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
    return total


def ledger_check(emulator_url: str, rounds: list[dict]) -> dict:
    """Count the orders the emulator booked, per child tag: exactly one each, nothing else."""
    entries = requests.get(f"{emulator_url}/_emulator/ledger", timeout=60).json()
    booked = Counter(e["tag"] for e in entries)
    expected = {tag for r in rounds for tag in r["tags"]}
    duplicates = sum(count - 1 for tag, count in booked.items() if count > 1)
    missing = sum(1 for tag in expected if booked.get(tag, 0) == 0)
    unexpected = sum(count for tag, count in booked.items() if tag not in expected)
    return {
        "booked": len(entries),
        "expected": len(expected),
        "duplicates": duplicates,
        "missing": missing,
        "unexpected": unexpected,
    }


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "fanout",
        args,
        lambda tmp, processes, started: _run(args, tmp, processes, started),
        {"broker": args.broker, "clients": args.clients, "rtt_ms": args.rtt_ms},
        on_error=lambda tmp, exc: _explain(tmp, exc, args.broker),
    )


def _explain(tmp: Path, exc: Exception, broker: str = "kite") -> None:
    """A failed upgrade, a 500 or a crash explain themselves: the tail of the log that has it."""
    for name in ("migrate", "web", f"{broker}-emulator"):
        tail = log_tail(tmp / f"{name}.log")
        if "Traceback" in tail or (name == "migrate" and type(exc).__name__ == "CalledProcessError"):
            print(f"--- {name}.log (tail)\n{tail}", file=sys.stderr)


def _run(args, tmp: Path, processes: Processes, started: dict) -> dict:
    env = prepare(args, tmp, started)  # secrets, database (migrated), Redis: for this process and every child
    code_versions = versions("flask", "sqlalchemy", "rq", "gunicorn", "redis", "werkzeug", "requests", "psycopg")
    broker = emulated(args.broker)
    emulator_url = start_emulator(processes, args.rtt_ms, broker)
    env.update(broker.settings(emulator_url))  # Kite: KITE_API_URL and KITE_LOGIN_URL
    os.environ.update(env)
    log(f"{broker.name} emulator: {emulator_url} (+{args.rtt_ms:g} ms per answer)")
    import logging

    logging.basicConfig(level=logging.WARNING)  # the app's basicConfig is then a no-op: quiet progress
    from webapp import create_app

    app = create_app()
    t = time.perf_counter()
    instrument_id, client_ids = seed(app, emulator_url, args.clients, broker)
    seeded = time.perf_counter() - t
    log(f"seeded {len(client_ids)} {broker.name} clients in {seeded:.1f} s; db: {database_version(app)}")

    port = free_port()
    web_env = dict(env, PORT=str(port))
    if args.web_concurrency:
        web_env["WEB_CONCURRENCY"] = str(args.web_concurrency)
    processes.start("web", [str(BIN / "gunicorn"), "--config", "webapp/gunicorn_conf.py", "wsgi:app"], web_env)
    worker_env = dict(env)
    if args.pool_size:
        worker_env["BROKER_POOL_SIZE"] = str(args.pool_size)
    rq = [str(BIN / "rq"), "worker", "--config", "jobs.settings"]  # as the Procfile starts them
    for i in range(args.workers):
        processes.start(
            f"worker-all-{i}", [*rq, "--worker-class", "jobs.worker.AppWorker", *GENERAL_QUEUES], worker_env
        )
    for i in range(args.orders_workers):
        processes.start(f"worker-orders-{i}", [*rq, "--worker-class", "jobs.worker.OrdersWorker", "orders"], worker_env)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/live", processes=processes)
    rq_redis = redis_lib.Redis.from_url(env["REDIS_URL"])
    _wait_workers(rq_redis, args.workers + args.orders_workers, processes)
    log(
        f"web: {base}; workers: {args.workers} on {','.join(GENERAL_QUEUES)} + {args.orders_workers} on orders; "
        f"broker pool: {args.pool_size or 'the desk default'}"
    )

    http = login(base, TRADER)
    probe = Probe(app)
    idle_before = wait_quiet(args.wait_quiet) if args.wait_quiet else None
    measured: list[dict] = []
    all_rounds: list[dict] = []
    cpu_pids = {
        "web": processes.pids("web"),
        "workers_sync_default": processes.pids("worker-all"),
        "workers_orders": processes.pids("worker-orders"),
        "emulator": processes.pids(f"{broker.name}-emulator"),
        "redis": [started["redis"].process.pid] if started.get("redis") else [],
    }
    cpu_start = cpu_end = None
    wall_start = wall_end = None
    for i in range(args.warmup + args.rounds):
        warm = i < args.warmup
        if not warm and cpu_start is None:
            cpu_start = {k: cpu_seconds(v) for k, v in cpu_pids.items()}
            cpu_start["bench"] = sum(os.times()[:2])
            cpu_start["machine"] = machine_cpu_seconds()
            load_before = load_average()
            wall_start = time.perf_counter()
        processes.check_alive()
        if args.settle:
            _settle(rq_redis, processes)
        r = run_round(http, base, probe, rq_redis, instrument_id, client_ids, args)
        all_rounds.append(r)
        if not warm:
            measured.append(r)
        ack = f"{r['ack_ms']:.0f} ms" if r["complete"] else f"INCOMPLETE {r['statuses']} {r['reasons']}"
        log(
            f"{'warmup' if warm else 'round'} {i + 1 - (0 if warm else args.warmup)}: batch {r['batch_id']} "
            f"post {r['post_ms']:.0f} ms, acknowledged {ack} (poll saw it at {r['poll_ms']:.0f} ms); "
            f"job started +{(r['phases_ms']['job_started'] or float('nan')):.0f} ms, "
            f"last submit +{(r['phases_ms']['last_submit'] or float('nan')):.0f} ms, "
            f"{r['concurrent_calls']} broker calls at once"
        )
        time.sleep(args.pause_ms / 1000.0)
    wall_end = time.perf_counter()
    cpu_end = {k: cpu_seconds(v) for k, v in cpu_pids.items()}
    cpu_end["bench"] = sum(os.times()[:2])
    cpu_end["machine"] = machine_cpu_seconds()
    load_after = load_average()
    queued = {name: rq_redis.llen(f"rq:queue:{name}") for name in QUEUES}

    memory = {
        "web": rss_mib(processes.pids("web")),
        "workers": rss_mib(processes.pids("worker")),
        "emulator": rss_mib(processes.pids(f"{broker.name}-emulator")),
    }
    ledger = ledger_check(emulator_url, all_rounds)
    info = {"database": database_version(app), "redis_server": rq_redis.info("server").get("redis_version")}
    probe.close()
    info["loadavg"] = {"before": load_before, "after": load_after}
    info["versions"] = code_versions
    info["machine_busy_pct_before"] = idle_before
    return report(args, measured, ledger, memory, cpu_start, cpu_end, wall_end - wall_start, queued, info)


def _settle(rq_redis, processes: Processes, timeout: float = 600.0) -> None:
    """Until no job is queued or running: the previous batch's sync job has finished."""
    from rq import Queue, Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        queued = sum(Queue(name, connection=rq_redis).count for name in QUEUES)
        busy = [w for w in Worker.all(connection=rq_redis) if w.get_state() != "idle"]
        if not queued and not busy:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the workers did not settle in {timeout:g} s")


def _wait_workers(rq_redis, count: int, processes: Processes, timeout: float = 60.0) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        if len(Worker.all(connection=rq_redis)) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} RQ workers did not register in {timeout:g} s")


def report(args, measured, ledger, memory, cpu_start, cpu_end, wall_s, queued, info) -> dict:
    acks = [r["ack_ms"] for r in measured if r["complete"]]
    posts = [r["post_ms"] for r in measured]
    polls = [r["poll_ms"] for r in measured if r["complete"]]
    p50 = percentile(acks, 50)
    phases = {
        name: round(
            percentile([r["phases_ms"][name] for r in measured if r["phases_ms"][name] is not None], 50) or 0.0, 1
        )
        for name in measured[0]["phases_ms"]
    }
    cpu = {k: round(cpu_end[k] - cpu_start[k], 2) for k in cpu_end if k != "machine"}
    cores = os.cpu_count() or 1
    machine_busy = cpu_end["machine"] - cpu_start["machine"]
    others = max(0.0, machine_busy - sum(cpu.values()))  # whatever else ran on the machine meanwhile
    incomplete = sum(1 for r in measured if not r["complete"])
    return {
        "bench": "fanout",
        "broker": args.broker,
        "clients": args.clients,
        "rtt_ms": args.rtt_ms,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "p50_ms": round(p50, 1) if p50 is not None else None,
        "p95_ms": _r(percentile(acks, 95)),
        "max_ms": _r(max(acks) if acks else None),
        "post_p50_ms": _r(percentile(posts, 50)),
        "post_p95_ms": _r(percentile(posts, 95)),
        "ratio_p50_to_rtt": round(p50 / args.rtt_ms, 2) if p50 is not None and args.rtt_ms else None,
        "sequential_estimate_ms": round(args.clients * args.rtt_ms, 1),
        "speedup_vs_sequential": round(args.clients * args.rtt_ms / p50, 1) if p50 else None,
        "ack": summary(acks),
        "ack_seen_by_poll": summary(polls),
        "post": summary(posts),
        "per_round": [
            {
                "batch": r["batch_id"],
                "ack_ms": _r(r["ack_ms"]),
                "post_ms": _r(r["post_ms"]),
                "job_started_ms": _r(r["phases_ms"]["job_started"]),
                "calls_at_once": r["concurrent_calls"],
            }
            for r in measured
        ],
        "phases_p50_ms": phases,
        "incomplete_rounds": incomplete,
        "duplicates": ledger["duplicates"],
        "missing": ledger["missing"],
        "ledger": ledger,
        "statuses": dict(sum((Counter(r["statuses"]) for r in measured), Counter())),
        "max_attempts": max((r["max_attempts"] or 0) for r in measured),
        "concurrent_calls_p50": percentile([r["concurrent_calls"] for r in measured], 50),
        "child_submit_to_ack_p50_ms": _r(
            percentile([r["child_call_p50_ms"] for r in measured if r["child_call_p50_ms"] is not None], 50)
        ),
        "ok": incomplete == 0 and ledger["duplicates"] == 0 and ledger["missing"] == 0 and ledger["unexpected"] == 0,
        "setup": {
            "workers": args.workers,
            "orders_workers": args.orders_workers,
            "worker_classes": "AppWorker (sync, default: a horse per job); OrdersWorker (orders: no fork)",
            "broker_pool_size": args.pool_size or "the desk default",
            "web_concurrency": args.web_concurrency or int(os.environ.get("WEB_CONCURRENCY", "2")),
            "database": info["database"],
            "redis": info["redis_server"] + (" (external)" if args.redis_url else " (embedded)"),
            "pause_ms": args.pause_ms,
            "settle": args.settle,
            "poll_ms": args.poll_ms,
        },
        "queues_left": queued,
        "cpu_s": cpu,
        "cpu_busy_pct_of_machine": round(100 * sum(cpu.values()) / (wall_s * cores), 1),
        "machine_busy_pct": round(100 * machine_busy / (wall_s * cores), 1),
        "other_cpu_pct_of_machine": round(100 * others / (wall_s * cores), 1),
        "loadavg": info["loadavg"],
        "machine_busy_pct_before_start": info["machine_busy_pct_before"],
        "measured_wall_s": round(wall_s, 2),
        "rss_mib": {k: v["total_mib"] for k, v in memory.items()},
        "machine": machine(),
        "versions": info["versions"],
    }


def _r(value):
    return None if value is None else round(value, 1)


if __name__ == "__main__":
    sys.exit(main())
