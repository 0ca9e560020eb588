"""Mark to market: one pass over every open position of the desk.

    python bench/reprice.py --clients 1000 --positions 50

Starts everything in a temporary directory: an embedded Redis (or --redis-url, flushed), a SQLite
database (or --database-url, empty), `flask db upgrade`. Seeds I synthetic NSE instruments, N
clients with P open positions each (bulk inserts) and a quote per instrument in Redis
(`write_quotes`, the feed's own writer). Then, in this process and in an app context exactly as
the cron job runs it, times `webapp.trading.pnl.mark_to_market`:

  * moved rounds (--rounds): every quote moves one tick first, so every position changes and is
    written (the worst case: a busy market, every row UPDATEd);
  * quiet rounds (--quiet-rounds): nothing moved, nothing to write (the common case between ticks);
  * job rounds (--job-rounds): the whole repricing job body (`jobs.market.reprice`: mark, day P&L
    rows and chart samples for every changed client, the pnl.updated event) after a move.

Each pass is split into phases (SELECT positions ⋈ instruments, MGET+decode quotes, compute marks,
UPDATE changed rows + COMMIT). Progress goes to stderr; the last stdout line is one JSON object
with p50_ms and p95_ms (moved rounds). Everything started is stopped at the end, on error too.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/reprice.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    add_service_args,
    load_average,
    log,
    machine,
    percentile,
    run_bench,
    summary,
    versions,
    wait_quiet,
)
from bench.live_harness import (
    database_version,
    make_app,
    prepare,
    processes_of,
    quote_at,
    redact,
    seed_clients,
    seed_instruments,
    seed_positions,
    self_memory,
)

TARGET_P50_MS = 500.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--positions", type=int, default=50, help="open positions per client")
    p.add_argument("--instruments", type=int, default=500, help="synthetic instruments (≥ --positions)")
    p.add_argument("--rounds", type=int, default=10, help="timed passes after every quote moved")
    p.add_argument("--quiet-rounds", type=int, default=5, help="timed passes with nothing moved")
    p.add_argument("--job-rounds", type=int, default=3, help="timed runs of the whole repricing job after a move")
    p.add_argument("--seed", type=int, default=1)
    add_service_args(p)
    args = p.parse_args(argv)
    if args.positions > args.instruments:
        p.error("--positions must not exceed --instruments (one position per instrument per client)")
    if args.rounds < 1:
        p.error("need at least one round")
    return args


class Phases:
    """Wraps the module globals mark_to_market calls (read_quotes, and marks where the pass computes
    marks in Python) to split one pass in four (three when the database computes them)."""

    def __init__(self):
        from webapp.trading import pnl

        self.pnl = pnl
        self.original = (pnl.read_quotes, getattr(pnl, "marks", None))
        self.stamps: dict[str, float] = {}

        def read_quotes(*a, **kw):
            self.stamps["quotes_in"] = time.perf_counter()
            try:
                return self.original[0](*a, **kw)
            finally:
                self.stamps["quotes_out"] = time.perf_counter()

        def marks(*a, **kw):
            self.stamps["marks_in"] = time.perf_counter()
            try:
                return self.original[1](*a, **kw)
            finally:
                self.stamps["marks_out"] = time.perf_counter()

        pnl.read_quotes = read_quotes
        if self.original[1] is not None:
            pnl.marks = marks

    def restore(self) -> None:
        self.pnl.read_quotes = self.original[0]
        if self.original[1] is not None:
            self.pnl.marks = self.original[1]

    def split(self, t0: float, t1: float) -> dict[str, float | None]:
        """select → quotes → marks → write; a mark_to_market that does not call marks() (set-based)
        has its computing and writing in write_ms and marks_ms None."""
        s = self.stamps
        if "quotes_in" not in s:
            return {"select_ms": None, "quotes_ms": None, "marks_ms": None, "write_ms": None}
        after_quotes = s.get("marks_out", s["quotes_out"])
        return {
            "select_ms": (s["quotes_in"] - t0) * 1000,
            "quotes_ms": (s["quotes_out"] - s["quotes_in"]) * 1000,
            "marks_ms": (s["marks_out"] - s["quotes_out"]) * 1000 if "marks_out" in s else None,
            "write_ms": (t1 - after_quotes) * 1000,
        }


def phase_text(split: dict) -> str:
    names = {"select_ms": "select", "quotes_ms": "quotes", "marks_ms": "marks", "write_ms": "update+commit"}
    return ", ".join(f"{names[k]} {split[k]:.0f}" for k in names if split.get(k) is not None) + " ms"


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "reprice",
        args,
        lambda tmp, processes, started: _run(args, tmp, processes, started),
        {"clients": args.clients, "positions": args.positions},
    )


def _run(args, tmp: Path, processes, started: dict) -> dict:
    env = prepare(args, tmp, started)
    app = make_app()
    rng = random.Random(args.seed)
    from webapp.extensions import db, get_redis
    from webapp.marketdata.store import write_quotes
    from webapp.trading.pnl import mark_to_market

    with app.app_context():
        t = time.perf_counter()
        instruments = seed_instruments(args.instruments, rng)
        client_ids = seed_clients(args.clients)
        n_positions = seed_positions(client_ids, instruments, args.positions, rng)
        seed_s = time.perf_counter() - t
        log(
            f"seeded {len(instruments)} instruments, {len(client_ids)} clients, {n_positions} positions "
            f"in {seed_s:.1f} s; db: {database_version(app)}"
        )
        redis = get_redis()

        def move(step: int) -> None:
            """Every instrument `step` ticks away from its master price: every position changes."""
            write_quotes(
                redis, {i.instrument_token: quote_at(i, i.last_price + step * i.tick_size) for i in instruments}
            )

        def one_pass() -> tuple[float, int, dict]:
            phases = Phases()
            try:
                c0, t0 = time.process_time(), time.perf_counter()
                changed = mark_to_market(redis)
                t1, c1 = time.perf_counter(), time.process_time()
            finally:
                phases.restore()
            db.session.remove()  # each cron run starts with a fresh session
            return (t1 - t0) * 1000, len(changed), {**phases.split(t0, t1), "cpu_ms": (c1 - c0) * 1000}

        idle_before = wait_quiet(args.wait_quiet) if args.wait_quiet else None
        load_before = load_average()
        move(0)
        first_ms, first_rows, _ = one_pass()  # positions had no mark yet: every row written
        log(f"first pass (marks every position for the first time): {first_ms:.0f} ms, {first_rows} rows")

        moved = []
        for r in range(1, args.rounds + 1):
            move(r)
            ms, rows, split = one_pass()
            moved.append({"ms": ms, "rows": rows, **split})
            log(
                f"moved round {r}: {ms:.0f} ms, {rows} rows changed ({phase_text(split)}; "
                f"this process's CPU {split['cpu_ms']:.0f} ms)"
            )
        quiet = []
        for r in range(1, args.quiet_rounds + 1):
            ms, rows, split = one_pass()
            quiet.append({"ms": ms, "rows": rows, **split})
            log(
                f"quiet round {r}: {ms:.0f} ms, {rows} rows changed ({phase_text(split)}; "
                f"this process's CPU {split['cpu_ms']:.0f} ms)"
            )
        after_passes = self_memory()

    jobs = []
    if args.job_rounds:
        from jobs.context import use_app
        from jobs.market import reprice

        use_app(app)
        for r in range(1, args.job_rounds + 1):
            with app.app_context():
                move(args.rounds + r)
            t0 = time.perf_counter()
            rows = reprice()
            ms = (time.perf_counter() - t0) * 1000
            jobs.append({"ms": ms, "rows": rows})
            log(f"job round {r}: {ms:.0f} ms for the whole job (mark + day rows + samples + event), {rows} rows")

    moved_ms = [m["ms"] for m in moved]
    p50 = percentile(moved_ms, 50)

    def phase_p50(rounds):
        def p50_of(key):
            values = [r[key] for r in rounds if r[key] is not None]
            return round(percentile(values, 50), 1) if values else None

        return {k: p50_of(k) for k in ("select_ms", "quotes_ms", "marks_ms", "write_ms", "cpu_ms")} if rounds else None

    redis_pid = started["redis"].process.pid if started.get("redis") else None
    return {
        "bench": "reprice",
        "clients": args.clients,
        "positions_per_client": args.positions,
        "positions": n_positions,
        "instruments": args.instruments,
        "rounds": args.rounds,
        "p50_ms": round(p50, 1),
        "p95_ms": round(percentile(moved_ms, 95), 1),
        "target_p50_ms": TARGET_P50_MS,
        "target_met": p50 <= TARGET_P50_MS,
        "ratio_p50_to_target": round(p50 / TARGET_P50_MS, 2),
        "moved": {
            **summary(moved_ms),
            "rows_changed_p50": percentile([m["rows"] for m in moved], 50),
            "phases_p50": phase_p50(moved),
            "us_per_position": round(p50 * 1000 / max(n_positions, 1), 2),
        },
        "quiet": {
            **summary([q["ms"] for q in quiet]),
            "rows_changed_max": max((q["rows"] for q in quiet), default=None),
            "phases_p50": phase_p50(quiet),
        }
        if quiet
        else None,
        "job": {**summary([j["ms"] for j in jobs]), "rows_p50": percentile([j["rows"] for j in jobs], 50)}
        if jobs
        else None,
        "per_round_ms": [round(m["ms"]) for m in moved],
        "loadavg": {"before": load_before, "after": load_average()},
        "machine_busy_pct_before_start": idle_before,
        "first_pass_ms": round(first_ms, 1),
        "seed_s": round(seed_s, 1),
        "rss_mib": {
            "bench_after_passes": after_passes["rss_mib"],
            "bench_peak": max(self_memory()["peak_rss_mib"], self_memory()["rss_mib"]),
            "redis": processes_of(redis_pid)[0]["rss_mib"] if redis_pid else None,
        },
        "ok": all(m["rows"] == n_positions for m in moved) and all(q["rows"] == 0 for q in quiet),
        "setup": {
            "database": database_version(app),
            "database_url": redact(env["DATABASE_URL"]).split("?")[0] if args.database_url else "sqlite (temp file)",
            "redis": "external" if args.redis_url else "embedded",
            "seed": args.seed,
        },
        "machine": machine(),
        "versions": versions("flask", "sqlalchemy", "redis", "psycopg"),
    }


if __name__ == "__main__":
    sys.exit(main())
