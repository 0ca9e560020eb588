"""The desk dashboard ("/") for a desk of N clients: server time per request.

    python bench/pages.py --clients 500

Starts everything in a temporary directory: an embedded Redis (or --redis-url, flushed), a SQLite
database (or --database-url, empty), `flask db upgrade`, and seeds (bulk inserts) I instruments, N
clients with P marked open positions, a funds snapshot and O open orders each, an admin (sees every
client) and a trader granted all N. The desk shows one page of clients (worst day P&L first) with
totals over all N; `ok` checks both. gunicorn runs as the Procfile runs it (webapp/gunicorn_conf.py,
its default workers and threads unless --web-concurrency/--web-threads).

Each user logs in, GETs "/" --warmup times (not counted), then --requests times, one request at a
time. Server time is gunicorn's own: the access log's ms= field (webapp/gunicorn_conf.py), from
request parsed to response written; the client's wall time is reported beside it. The same is done
for /desk/live (the partial the page polls while its socket is down). Then, in this process with
Flask's test client, a few requests are split into SQL time (cursor execute, summed) and the rest
(Python: ORM loading, template rendering), with the number of SQL statements per page.

Progress goes to stderr; the last stdout line is one JSON object with p50_ms and p95_ms (server
time of "/", both users together). Everything started is stopped at the end, on error too.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/pages.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    database_version,
    login,
    make_app,
    prepare,
    processes_of,
    read_access_log,
    redact,
    seed_clients,
    seed_funds,
    seed_instruments,
    seed_open_orders,
    seed_positions,
    seed_user,
    self_memory,
)

TARGET_P95_MS = 150.0
USERS = {"admin": ("bench-admin", "admin"), "trader": ("bench-trader", "trader")}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--positions", type=int, default=20, help="open positions per client")
    p.add_argument("--open-orders", type=int, default=2, help="orders resting at the broker per client")
    p.add_argument("--instruments", type=int, default=500)
    p.add_argument("--requests", type=int, default=50, help="measured GETs per user and page")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--in-process", type=int, default=5, help="requests per user split into SQL / Python time")
    p.add_argument("--web-concurrency", type=int, default=None, help="gunicorn workers (default: gunicorn_conf's)")
    p.add_argument("--web-threads", type=int, default=None, help="threads per worker (default: gunicorn_conf's)")
    p.add_argument("--seed", type=int, default=1)
    add_service_args(p)
    args = p.parse_args(argv)
    if args.positions > args.instruments or args.open_orders > args.instruments:
        p.error("--positions and --open-orders must not exceed --instruments")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "pages", args, lambda tmp, processes, started: _run(args, tmp, processes, started), {"clients": args.clients}
    )


def _run(args, tmp: Path, processes: Processes, started: dict) -> dict:
    from webapp.desk.summary import PAGE_SIZE  # the desk shows a page of clients, totals over all

    env = prepare(args, tmp, started)
    app = make_app()
    rng = random.Random(args.seed)
    with app.app_context():
        t = time.perf_counter()
        instruments = seed_instruments(args.instruments, rng)
        client_ids = seed_clients(args.clients)
        n_positions = seed_positions(client_ids, instruments, args.positions, rng, marked=True)
        seed_funds(client_ids, rng)
        n_orders = seed_open_orders(client_ids, instruments, args.open_orders, rng)
        seed_user(USERS["admin"][0], "admin")
        seed_user(USERS["trader"][0], "trader", client_ids)
        from webapp.extensions import get_redis
        from webapp.marketfeed.feed import HEARTBEAT_KEY
        from webapp.timeutil import utcnow

        get_redis().set(HEARTBEAT_KEY, utcnow().isoformat())  # a live feed: prices are fresh
        dbinfo = database_version(app)
    log(
        f"seeded {len(client_ids)} clients, {n_positions} positions, {n_orders} open orders in "
        f"{time.perf_counter() - t:.1f} s; db: {dbinfo}"
    )

    port = free_port()
    web_env = dict(env, PORT=str(port))
    if args.web_concurrency:
        web_env["WEB_CONCURRENCY"] = str(args.web_concurrency)
    if args.web_threads:
        web_env["WEB_THREADS"] = str(args.web_threads)
    web = processes.start("web", [str(BIN / "gunicorn"), "--config", "webapp/gunicorn_conf.py", "wsgi:app"], web_env)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/live", processes=processes)
    log_path = tmp / "web.log"
    sessions = {role: login(base, username) for role, (username, _) in USERS.items()}
    idle_before = wait_quiet(args.wait_quiet) if args.wait_quiet else None
    load_before = load_average()

    results: dict = {}
    for path in ("/", "/desk/live"):
        for role, http in sessions.items():
            for _ in range(args.warmup):
                http.get(base + path, timeout=60).raise_for_status()
            time.sleep(0.2)
            offset = log_path.stat().st_size
            cpu0 = sum(p["cpu_s"] for p in processes_of(web.pid))
            walls, sizes, rows = [], [], None
            for _ in range(args.requests):
                t0 = time.perf_counter()
                r = http.get(base + path, timeout=60)
                walls.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                if r.url.rstrip("/").endswith("/login"):
                    raise RuntimeError(f"{role} was sent to the login page")
                sizes.append(len(r.content))
                rows = r.text.count('<tr id="client-')
                if path == "/" and f">{args.clients} clients<" not in r.text:
                    raise RuntimeError(f"{role}'s desk does not count {args.clients} clients")
            cpu_ms = (sum(p["cpu_s"] for p in processes_of(web.pid)) - cpu0) * 1000 / args.requests
            time.sleep(0.5)  # the last access-log line
            lines = [x for x in read_access_log(log_path, offset) if x["path"] == path and x["method"] == "GET"]
            server = [x["ms"] for x in lines if x["status"] == 200]
            if len(server) != args.requests:
                raise RuntimeError(f"{path} as {role}: {len(server)} access-log lines for {args.requests} requests")
            results[(path, role)] = {
                "server": server,
                "wall": walls,
                "bytes": sizes[-1],
                "client_rows": rows,
                "cpu_ms": cpu_ms,
            }
            log(
                f"GET {path} as {role}: server p50 {percentile(server, 50):.0f} ms, "
                f"p95 {percentile(server, 95):.0f} ms; "
                f"client p50 {percentile(walls, 50):.0f} ms; gunicorn CPU {cpu_ms:.0f} ms per request; "
                f"{sizes[-1] / 1024:.0f} KiB, {rows} client rows"
            )
    load_after = load_average()
    memory = {"gunicorn": processes_of(web.pid)}

    breakdown = in_process(app, args) if args.in_process else None
    index = results[("/", "admin")]["server"] + results[("/", "trader")]["server"]
    p50, p95 = percentile(index, 50), percentile(index, 95)
    per_role = {
        role: {
            "server": summary(results[("/", role)]["server"]),
            "client_wall": summary(results[("/", role)]["wall"]),
            "gunicorn_cpu_ms_per_request": round(results[("/", role)]["cpu_ms"], 1),
            "kib": round(results[("/", role)]["bytes"] / 1024, 1),
            "client_rows": results[("/", role)]["client_rows"],
        }
        for role in USERS
    }
    live = {
        role: {
            "server": summary(results[("/desk/live", role)]["server"]),
            "gunicorn_cpu_ms_per_request": round(results[("/desk/live", role)]["cpu_ms"], 1),
            "kib": round(results[("/desk/live", role)]["bytes"] / 1024, 1),
        }
        for role in USERS
    }
    workers = [p for p in memory["gunicorn"] if p["pid"] != web.pid]
    role_p95 = {role: percentile(results[("/", role)]["server"], 95) for role in USERS}
    return {
        "bench": "pages",
        "clients": args.clients,
        "positions": n_positions,
        "open_orders": n_orders,
        "requests_per_user": args.requests,
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "target_p95_ms": TARGET_P95_MS,
        "target_met": all(v <= TARGET_P95_MS for v in role_p95.values()),
        "ratio_p95_to_target": round(max(role_p95.values()) / TARGET_P95_MS, 2),
        "index": per_role,
        "desk_live": live,
        "in_process": breakdown,
        "rss_mib": {
            "gunicorn_master": next((p["rss_mib"] for p in memory["gunicorn"] if p["pid"] == web.pid), None),
            "gunicorn_workers": [p["rss_mib"] for p in workers],
            "bench": self_memory()["rss_mib"],
        },
        "ok": all(r["client_rows"] == min(args.clients, PAGE_SIZE) for r in per_role.values()),
        "page_size": PAGE_SIZE,
        "setup": {
            "web_concurrency": args.web_concurrency or "gunicorn_conf default (2)",
            "web_threads": args.web_threads or "gunicorn_conf default (32)",
            "database": dbinfo,
            "database_url": redact(env["DATABASE_URL"]) if args.database_url else "sqlite (temp file)",
            "redis": "external" if args.redis_url else "embedded",
            "server_time": "gunicorn access log ms=",
        },
        "loadavg": {"before": load_before, "after": load_after},
        "machine_busy_pct_before_start": idle_before,
        "machine": machine(),
        "versions": versions("flask", "sqlalchemy", "jinja2", "gunicorn", "psycopg"),
    }


def in_process(app, args) -> dict:
    """GET "/" with Flask's test client in this process: total, SQL (cursor) time and statements."""
    import sqlalchemy as sa

    from webapp.extensions import db

    with app.app_context():
        engine = db.engine
    clock = {"sql": 0.0, "statements": 0, "start": 0.0}

    def before(conn, cursor, statement, parameters, context, executemany):
        clock["start"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        clock["sql"] += time.perf_counter() - clock["start"]
        clock["statements"] += 1

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    out = {}
    try:
        for role, (username, _) in USERS.items():
            client = app.test_client()
            client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
            from bench.live_harness import PASSWORD, hidden_inputs

            page = client.get("/login")
            token = hidden_inputs(page.get_data(as_text=True)).get("csrf_token", "")
            r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
            if r.status_code != 302:
                raise RuntimeError(f"in-process login as {role}: HTTP {r.status_code}")
            client.get("/")
            totals, sqls, statements = [], [], []
            for _ in range(args.in_process):
                clock.update(sql=0.0, statements=0)
                t0 = time.perf_counter()
                r = client.get("/")
                totals.append((time.perf_counter() - t0) * 1000)
                sqls.append(clock["sql"] * 1000)
                statements.append(clock["statements"])
            out[role] = {
                "total_p50_ms": round(percentile(totals, 50), 1),
                "sql_p50_ms": round(percentile(sqls, 50), 1),
                "python_p50_ms": round(percentile([t - s for t, s in zip(totals, sqls)], 50), 1),
                "statements": statements[-1],
            }
            log(f"in process, GET / as {role}: {out[role]}")
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)
    return out


if __name__ == "__main__":
    sys.exit(main())
