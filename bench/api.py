"""The API's order path, end to end: POST /api/v1/tickets → every child acknowledged; a TradingView
alert posted to a hook → every child acknowledged.

    python bench/api.py --clients 100 --rtt-ms 100

Starts what bench/fanout.py starts (an embedded Redis or --redis-url, a SQLite database or
--database-url, `flask db upgrade`, the Kite emulator adding R ms to every answer, N Kite clients with
live sessions, a trader granted all of them, gunicorn and the RQ workers as the Procfile starts them)
plus the Procfile's `strategies` worker, which processes the hooks' alerts. It makes an API key for the
trader through webapp.apikeys.create_key (the key stays in this process: never printed, never logged)
and a ticket hook for every client through webapp.hooks.alerts.

(a) --rounds tickets: POST /api/v1/tickets, MARKET BUY 1 INFY for every client, a fresh Idempotency-Key
    each; the POST's response time (post_p50_ms, post_p95_ms), and max(acknowledged_at) of the batch's
    children − the moment the POST was sent (ack_p50_ms), read from the database as bench/fanout.py does.
(b) --hook-rounds alerts: a TradingView-format alert (each with its own bar time, so none is a duplicate)
    POSTed to /hooks/<secret>; the time from sending it to the last child's acknowledged_at
    (webhook_ack_p50_ms), and the hook's own response time (hook_post_p50_ms).
(c) the Kite emulator's ledger: exactly one booked order per child (`duplicates`, `missing`).

Progress goes to stderr; the last stdout line is one JSON object. Everything started is stopped at the
end, on error too. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # `python bench/api.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis as redis_lib
import requests

from bench.fanout import (
    GENERAL_QUEUES,
    QUEUES,
    TRADER,
    Probe,
    _explain,
    _wait_workers,
    cpu_seconds,
    ledger_check,
    ms_since,
    seed,
    start_emulator,
)
from bench.harness import (
    BIN,
    Processes,
    add_service_args,
    free_port,
    load_average,
    log,
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
from bench.live_harness import database_version, prepare

RQ = [str(BIN / "rq"), "worker", "--config", "jobs.settings"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=100, help="Kite clients on every ticket and alert (N)")
    p.add_argument("--rtt-ms", type=float, default=100.0, help="latency the emulator adds to every answer")
    p.add_argument("--rounds", type=int, default=20, help="measured API tickets")
    p.add_argument("--hook-rounds", type=int, default=10, help="measured hook alerts")
    p.add_argument("--warmup", type=int, default=1, help="tickets and alerts sent first and not counted")
    p.add_argument("--orders-workers", type=int, default=2, help="RQ workers on orders (`make run` starts 2)")
    p.add_argument("--web-concurrency", type=int, default=None, help="gunicorn workers (WEB_CONCURRENCY)")
    p.add_argument(
        "--pause-ms", type=float, default=300.0, help="pause between rounds (≥150: Kite allows 10 orders/s per account)"
    )
    p.add_argument("--poll-ms", type=float, default=5.0, help="database poll interval")
    p.add_argument("--round-timeout", type=float, default=60.0, help="seconds before a round counts as incomplete")
    add_service_args(p)
    args = p.parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.hook_rounds < 1 or args.orders_workers < 1:
        p.error("need at least one client, one round of each kind and one orders worker")
    return args


# ---------------------------------------------------------------- set-up


def make_key_and_hook(app, client_ids: list[int]) -> tuple[str, str]:
    """An API key (read, trade) for the trader and a ticket hook (1 share for every client, the side and
    the instrument from the alert), made as the pages make them; their secrets stay in this process."""
    import sqlalchemy as sa

    from webapp.apikeys import create_key
    from webapp.extensions import db
    from webapp.hooks import alerts
    from webapp.models import Hook, User
    from webapp.models.api import HOOK_TICKET

    with app.app_context():
        trader = db.session.execute(sa.select(User).where(User.username == TRADER)).scalar_one()
        _, key = create_key(trader, name="bench", scopes=["read", "trade"], by=trader)
        hook = Hook(
            user_id=trader.id,
            kind=HOOK_TICKET,
            name="bench",
            product="MIS",
            order_type="MARKET",
            quantities={str(cid): 1 for cid in client_ids},
            dedupe_seconds=60,
        )
        secret = alerts.set_secret(hook)
        db.session.add(hook)
        db.session.flush()
        alerts.audit_hook("create", trader, hook, None)
        db.session.commit()
    return key, secret


# ---------------------------------------------------------------- one round


def wait_acknowledged(probe: Probe, batch_id: int, t0: float, args) -> tuple[bool, float]:
    """Poll the database until every child of the batch is acknowledged (or one ended otherwise, or the
    round timed out). (complete, when the poll saw it, ms after t0)."""
    deadline = t0 + args.round_timeout
    while True:
        total, acked, in_flight, _ = probe.poll(batch_id)
        now = time.perf_counter()
        if total and acked == total:
            return True, (now - t0) * 1000.0
        if (total and in_flight == 0) or now > deadline:
            return False, (now - t0) * 1000.0
        time.sleep(args.poll_ms / 1000.0)


def measured(probe: Probe, batch_id: int, t0_wall: float, complete: bool) -> dict:
    info = probe.details(batch_id)
    return {
        "batch_id": batch_id,
        "complete": complete,
        "ack_ms": ms_since(t0_wall, info["last_ack"]) if complete else None,
        "batch_created_ms": ms_since(t0_wall, info["batch_created"]),
        "first_submit_ms": ms_since(t0_wall, info["first_submit"]),
        "statuses": info["statuses"],
        "reasons": info["reasons"],
        "tags": info["tags"],
    }


def ticket_round(api: requests.Session, base: str, probe: Probe, instrument_id: int, client_ids, args) -> dict:
    body = {
        "instrument_id": instrument_id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "quantities": {str(cid): 1 for cid in client_ids},
    }
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    t0_wall, t0 = time.time(), time.perf_counter()
    r = api.post(f"{base}/api/v1/tickets", json=body, headers=headers, timeout=30)
    post_ms = (time.perf_counter() - t0) * 1000.0
    if r.status_code != 201:
        raise RuntimeError(f"POST /api/v1/tickets answered HTTP {r.status_code}: {r.text[:400]!r}")
    batch_id = r.json()["id"]
    complete, poll_ms = wait_acknowledged(probe, batch_id, t0, args)
    return {"post_ms": post_ms, "poll_ms": poll_ms, **measured(probe, batch_id, t0_wall, complete)}


def alert_body(n: int) -> dict:
    """What TradingView posts for docs/api.md's alert message. The hook dedupes on the alert's instrument,
    side and contracts (not its time or price), so each round's alert names other contracts: a new
    alert, not a resend. The hook's own quantities (1 share each) decide the orders."""
    return {
        "ticker": "INFY",
        "exchange": "NSE",
        "action": "buy",
        "contracts": str(n + 1),
        "price": "1500.00",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def alert_batch(probe: Probe, alert_id: int, t0: float, args) -> int | None:
    """The batch the worker made of the alert, polled from the database (None: none in time, or the
    alert ended without one)."""
    sa = probe.sa
    from webapp.models import HookAlert

    query = sa.select(HookAlert.status, HookAlert.batch_id, HookAlert.reason).where(HookAlert.id == alert_id)
    deadline = t0 + args.round_timeout
    while time.perf_counter() < deadline:
        status, batch_id, reason = probe.conn.execute(query).one()
        if batch_id is not None:
            return batch_id
        if status not in ("RECEIVED",):
            raise RuntimeError(f"alert {alert_id} ended {status} without a batch: {reason}")
        time.sleep(args.poll_ms / 1000.0)
    return None


def hook_round(http: requests.Session, hook_url: str, probe: Probe, n: int, args) -> dict:
    t0_wall, t0 = time.time(), time.perf_counter()
    r = http.post(hook_url, json=alert_body(n), timeout=30)
    post_ms = (time.perf_counter() - t0) * 1000.0
    if r.status_code != 200 or r.json().get("status") != "RECEIVED":
        raise RuntimeError(f"the hook answered HTTP {r.status_code}: {r.text[:400]!r}")
    batch_id = alert_batch(probe, r.json()["alert_id"], t0, args)
    if batch_id is None:
        return {"post_ms": post_ms, "batch_id": None, "complete": False, "ack_ms": None, "tags": [], "statuses": {}}
    complete, poll_ms = wait_acknowledged(probe, batch_id, t0, args)
    return {"post_ms": post_ms, "poll_ms": poll_ms, **measured(probe, batch_id, t0_wall, complete)}


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "api",
        args,
        lambda tmp, processes, started: _run(args, tmp, processes, started),
        {"clients": args.clients, "rtt_ms": args.rtt_ms},
        on_error=_explain,
    )


def _start_desk(processes: Processes, env: dict, args) -> str:
    port = free_port()
    web_env = dict(env, PORT=str(port))
    if args.web_concurrency:
        web_env["WEB_CONCURRENCY"] = str(args.web_concurrency)
    processes.start("web", [str(BIN / "gunicorn"), "--config", "webapp/gunicorn_conf.py", "wsgi:app"], web_env)
    processes.start("worker-all-0", [*RQ, "--worker-class", "jobs.worker.AppWorker", *GENERAL_QUEUES], env)
    for i in range(args.orders_workers):
        processes.start(f"worker-orders-{i}", [*RQ, "--worker-class", "jobs.worker.OrdersWorker", "orders"], env)
    processes.start("worker-strategies-0", [*RQ, "--worker-class", "jobs.worker.OrdersWorker", "strategies"], env)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/live", processes=processes)
    return base


def _run(args, tmp: Path, processes: Processes, started: dict) -> dict:
    env = prepare(args, tmp, started)
    code_versions = versions("flask", "sqlalchemy", "rq", "gunicorn", "pydantic", "spectree", "requests", "psycopg")
    emulator_url = start_emulator(processes, args.rtt_ms)
    env.update({"KITE_API_URL": emulator_url, "KITE_LOGIN_URL": emulator_url})
    # the bench sends many alerts a minute to one hook and many calls with one key
    env.update({"HOOK_RATE_LIMIT": "100000 per minute", "API_RATE_LIMIT": "100000 per minute"})
    os.environ.update(env)
    log(f"kite emulator: {emulator_url} (+{args.rtt_ms:g} ms per answer)")
    import logging

    logging.basicConfig(level=logging.WARNING)
    from webapp import create_app

    app = create_app()
    t = time.perf_counter()
    instrument_id, client_ids = seed(app, emulator_url, args.clients)
    key, secret = make_key_and_hook(app, client_ids)
    log(f"seeded {len(client_ids)} Kite clients, a key and a hook in {time.perf_counter() - t:.1f} s")

    base = _start_desk(processes, env, args)
    rq_redis = redis_lib.Redis.from_url(env["REDIS_URL"])
    _wait_workers(rq_redis, 2 + args.orders_workers, processes)
    log(f"web: {base}; workers: 1 on sync,default + {args.orders_workers} on orders + 1 on strategies")

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key}"
    http = requests.Session()
    hook_url = f"{base}/hooks/{secret}"
    probe = Probe(app)
    idle_before = wait_quiet(args.wait_quiet) if args.wait_quiet else None
    pids = {
        "web": processes.pids("web"),
        "workers": processes.pids("worker"),
        "emulator": processes.pids("kite-emulator"),
        "redis": [started["redis"].process.pid] if started.get("redis") else [],
    }
    load_before = load_average()
    cpu_start, machine_start, wall_start = {k: cpu_seconds(v) for k, v in pids.items()}, machine_cpu_seconds(), None
    wall_start = time.perf_counter()
    tickets, alerts, everything = [], [], []
    for i in range(args.warmup + args.rounds):
        processes.check_alive()
        r = ticket_round(api, base, probe, instrument_id, client_ids, args)
        everything.append(r)
        if i >= args.warmup:
            tickets.append(r)
        _progress("ticket", i, args, r)
        time.sleep(args.pause_ms / 1000.0)
    for i in range(args.warmup + args.hook_rounds):
        processes.check_alive()
        r = hook_round(http, hook_url, probe, i, args)
        everything.append(r)
        if i >= args.warmup:
            alerts.append(r)
        _progress("alert", i, args, r)
        time.sleep(args.pause_ms / 1000.0)
    wall_s = time.perf_counter() - wall_start
    cpu = {k: round(cpu_seconds(v) - cpu_start[k], 2) for k, v in pids.items()}
    machine_busy = machine_cpu_seconds() - machine_start
    load_after = load_average()
    ledger = ledger_check(emulator_url, [r for r in everything if r.get("batch_id")])
    queued = {name: rq_redis.llen(f"rq:queue:{name}") for name in (*QUEUES, "strategies")}
    memory = {k: rss_mib(v)["total_mib"] for k, v in pids.items() if k != "redis"}
    db_version = database_version(app)
    probe.close()
    cores = os.cpu_count() or 1
    return report(
        args,
        tickets,
        alerts,
        ledger,
        {
            "cpu_s": cpu,
            "machine_busy_pct": round(100 * machine_busy / (wall_s * cores), 1),
            "loadavg": {"before": load_before, "after": load_after},
            "machine_busy_pct_before_start": idle_before,
            "measured_wall_s": round(wall_s, 2),
            "queues_left": queued,
            "rss_mib": memory,
            "database": db_version,
            "versions": code_versions,
        },
    )


def _progress(kind: str, i: int, args, r: dict) -> None:
    warm = i < args.warmup
    ack = f"{r['ack_ms']:.0f} ms" if r["complete"] else f"INCOMPLETE {r.get('statuses')} {r.get('reasons')}"
    log(
        f"{kind} {'warmup' if warm else i + 1 - args.warmup}: batch {r['batch_id']} post {r['post_ms']:.1f} ms, "
        f"every child acknowledged {ack}"
    )


def report(args, tickets: list[dict], alerts: list[dict], ledger: dict, info: dict) -> dict:
    posts = [r["post_ms"] for r in tickets]
    acks = [r["ack_ms"] for r in tickets if r["complete"]]
    hook_posts = [r["post_ms"] for r in alerts]
    hook_acks = [r["ack_ms"] for r in alerts if r["complete"]]
    incomplete = sum(1 for r in tickets + alerts if not r["complete"])
    post_p95, hook_p50 = _r(percentile(posts, 95)), _r(percentile(hook_acks, 50))
    return {
        "bench": "api",
        "clients": args.clients,
        "rtt_ms": args.rtt_ms,
        "rounds": args.rounds,
        "hook_rounds": args.hook_rounds,
        "post_p50_ms": _r(percentile(posts, 50)),
        "post_p95_ms": post_p95,
        "ack_p50_ms": _r(percentile(acks, 50)),
        "ack_p95_ms": _r(percentile(acks, 95)),
        "hook_post_p50_ms": _r(percentile(hook_posts, 50)),
        "hook_post_p95_ms": _r(percentile(hook_posts, 95)),
        "webhook_ack_p50_ms": hook_p50,
        "webhook_ack_p95_ms": _r(percentile(hook_acks, 95)),
        "duplicates": ledger["duplicates"],
        "missing": ledger["missing"],
        "ledger": ledger,
        "incomplete_rounds": incomplete,
        "targets": {
            "post_p95_ms<=30": post_p95 is not None and post_p95 <= 30,
            "webhook_ack_p50_ms<=300": hook_p50 is not None and hook_p50 <= 300,
        },
        "post": summary(posts),
        "ack": summary(acks),
        "hook_post": summary(hook_posts),
        "webhook_ack": summary(hook_acks),
        "phases_p50_ms": {
            "ticket_batch_created": _r(percentile([r["batch_created_ms"] for r in tickets], 50)),
            "ticket_first_submit": _r(_p50_of(tickets, "first_submit_ms")),
            "alert_batch_created": _r(_p50_of(alerts, "batch_created_ms")),
            "alert_first_submit": _r(_p50_of(alerts, "first_submit_ms")),
        },
        "ok": incomplete == 0 and ledger["duplicates"] == 0 and ledger["missing"] == 0 and ledger["unexpected"] == 0,
        **info,
        "machine": machine(),
    }


def _p50_of(rounds: list[dict], name: str):
    return percentile([r[name] for r in rounds if r.get(name) is not None], 50)


def _r(value):
    return None if value is None else round(value, 1)


if __name__ == "__main__":
    sys.exit(main())
