"""Stop rules, measured (issue 12: "tick crossing a stop → exit acknowledged for 100 clients at a
100 ms broker, p50 ≤ 250 ms; 10,000 armed stops checked per tick without the feed falling behind").

    python bench/stops.py --clients 100 --rtt-ms 100 --runs 7

(a) check — 10,000 ARMED rules over 50 instruments in the feed's StopIndex, built as the feed builds
    it (a third fixed stops, a third stop + target, a third trailing stops; longs and shorts). One
    tick is a new last price for each of the 50 instruments (a random walk that crosses no rule, so
    every tick does the whole work and fires nothing); the time of `StopIndex.candidates` (the
    numpy pass and the Decimal confirmation; no database) per tick: median and p95 µs. Beside it,
    the time to load those 10,000 rules from the database (the feed's reload after a change).
(b) stop ack — a throwaway desk (temp dir, `flask db upgrade`, embedded Redis or --redis-url, SQLite
    or --database-url), the Kite emulator with R ms added to every answer, N Kite clients each
    holding 1 INFY MIS (ledger rows; no sync worker runs, so the position stays for every run), the
    orders workers as the Procfile starts them. Each run arms a stop for every client (not timed),
    loads the index (the feed has it loaded already), then times from the crossing tick — handed to
    `StopIndex.check` in this process, exactly what the feed process's per-step hook calls — to the
    last exit child's `acknowledged_at` (written by the workers: the broker's answer). The crossing
    tick is then repeated, and checked again by a second index loaded afresh (a restarted feed):
    both must fire nothing. At the end the emulator's ledger is counted: `duplicates` = orders
    booked beyond one per client per run (and any tag booked twice).

Progress goes to stderr; the last stdout line is one JSON object with `stop_ack_p50_ms`,
`stop_ack_p95_ms`, `check_10k_p50_us`, `check_10k_p95_us`, `duplicates`. bench/strategies.py imports
`measure_stop_ack` and `measure_check`. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):  # `python bench/stops.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.harness import Processes, add_service_args, log, machine, percentile, run_bench, summary, versions

STOP, CROSS, PRICE = Decimal("1500.00"), Decimal("1499.00"), Decimal("1548.20")  # INFY in the sample master


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=100, help="Kite clients holding the position (N)")
    p.add_argument("--rtt-ms", type=float, default=100.0, help="latency the emulator adds to every answer")
    p.add_argument("--runs", type=int, default=7, help="measured stop firings")
    p.add_argument("--warmup", type=int, default=1, help="firings first, not counted")
    p.add_argument("--orders-workers", type=int, default=2, help="RQ workers on orders (`make run` starts 2)")
    p.add_argument("--rules", type=int, default=10_000, help="armed rules in the check benchmark")
    p.add_argument("--instruments", type=int, default=50, help="instruments they are spread over")
    p.add_argument("--ticks", type=int, default=2_000, help="ticks timed in the check benchmark")
    p.add_argument("--pause-ms", type=float, default=300.0, help="pause between runs (Kite: 10 orders/s per account)")
    p.add_argument("--poll-ms", type=float, default=5.0, help="database poll interval")
    p.add_argument("--run-timeout", type=float, default=60.0, help="seconds before a run counts as incomplete")
    add_service_args(p)
    return p.parse_args(argv)


# ---------------------------------------------------------------- (a) the check per tick


def _views(n: int, instruments: int, rng: random.Random) -> dict[int, list]:
    """n rules over `instruments` tokens, levels 3–8 % from a price of 1000: a walk within ±1 % crosses
    none (a trailing stop's anchor rises at most to 1010, its level stays below 990)."""
    from webapp.automation.stops import RuleView

    by_token: dict[int, list] = {}
    for i in range(n):
        token, d = 1000 + i % instruments, 1 if i % 2 == 0 else -1
        gap = Decimal(rng.randint(300, 800)) / 10  # ₹30.0–80.0
        kind = i % 3
        stop = Decimal("1000") - d * gap if kind in (0, 1) else None
        target = Decimal("1000") + d * gap if kind == 1 else None
        trail = gap if kind == 2 else None
        anchor = Decimal("1000") if kind == 2 else None
        by_token.setdefault(token, []).append(RuleView(i + 1, d, stop, target, trail, anchor))
    return by_token


def measure_check(rules: int = 10_000, instruments: int = 50, ticks: int = 2_000, seed: int = 7) -> dict:
    """`StopIndex.candidates` over `rules` armed rules on `instruments` instruments, one price per
    instrument per tick (no database): µs per tick."""
    from webapp.automation.stops import StopIndex, _Book

    rng = random.Random(seed)
    index = StopIndex()
    index.books = {token: _Book(views) for token, views in _views(rules, instruments, rng).items()}
    index.count = rules
    prices = {token: Decimal("1000.00") for token in index.books}
    timings, fired = [], 0
    for t in range(ticks + 100):
        for token in prices:  # ±1 % around 1000 in ₹0.05 steps
            prices[token] = min(Decimal("1010.00"), max(Decimal("990.00"), prices[token] + rng.randint(-4, 4) * D05))
        start = time.perf_counter_ns()
        crossed, _ = index.candidates(prices)
        took = (time.perf_counter_ns() - start) / 1000
        fired += sum(len(v) for v in crossed.values())
        if t >= 100:  # the first ticks warm numpy's caches
            timings.append(took)
    return {
        "rules": rules,
        "instruments": instruments,
        "ticks": ticks,
        "check_10k_p50_us": _r(percentile(timings, 50)),
        "check_10k_p95_us": _r(percentile(timings, 95)),
        "check_us": summary(timings),
        "crossed": fired,  # 0: the walk crosses no rule, as designed
    }


D05 = Decimal("0.05")


def measure_load(app, instrument_id: int, client_ids: list[int], rules: int = 10_000) -> dict:
    """The feed's reload of `rules` ARMED rules from the database (StopIndex.load), then removes them."""
    import sqlalchemy as sa

    from webapp.automation.stops import StopIndex
    from webapp.extensions import db
    from webapp.models import StopRule

    with app.app_context():
        rows = [
            dict(
                client_id=client_ids[i % len(client_ids)],
                instrument_id=instrument_id,
                product="CNC",  # not the positions the ack runs fire
                direction=1,
                stop_price=Decimal("100.00") + i % 500,
                state="ARMED",
                source="position",
                fired_reason="",
            )
            for i in range(rules)
        ]
        db.session.execute(StopRule.__table__.insert(), rows)
        db.session.commit()
        timings = []
        for _ in range(5):
            index = StopIndex()
            start = time.perf_counter()
            index.load()
            timings.append((time.perf_counter() - start) * 1000)
        db.session.execute(sa.delete(StopRule).where(StopRule.product == "CNC"))
        db.session.commit()
    return {"load_10k_p50_ms": _r(percentile(timings, 50)), "load_ms": summary(timings)}


# ---------------------------------------------------------------- (b) tick → exit acknowledged


@contextmanager
def _environment():
    """measure_stop_ack may run inside another benchmark's process: its environment comes back after."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def measure_stop_ack(
    clients: int = 100,
    rtt_ms: float = 100.0,
    runs: int = 7,
    warmup: int = 1,
    orders_workers: int = 2,
    database_url: str | None = None,
    redis_url: str | None = None,
    pause_ms: float = 300.0,
    poll_ms: float = 5.0,
    run_timeout: float = 60.0,
    load_rules: int = 0,
) -> dict:
    """Tick crossing a stop → every client's exit acknowledged, on a throwaway desk of its own
    (started and stopped here). The dict has stop_ack_p50_ms, stop_ack_p95_ms, duplicates, …"""
    args = argparse.Namespace(
        clients=clients,
        rtt_ms=rtt_ms,
        runs=runs,
        warmup=warmup,
        orders_workers=orders_workers,
        database_url=database_url,
        redis_url=redis_url,
        pause_ms=pause_ms,
        poll_ms=poll_ms,
        run_timeout=run_timeout,
        rules=load_rules,
    )
    tmp = Path(tempfile.mkdtemp(prefix="fanout-bench-stops-"))
    processes, started = Processes(tmp), {"sockets": []}
    with _environment():
        try:
            return _stop_ack(args, tmp, processes, started)
        finally:
            processes.stop_all()
            if started.get("redis") is not None:
                started["redis"].stop()
            shutil.rmtree(tmp, ignore_errors=True)


def _seed_positions(app, instrument_id: int, client_ids: list[int]) -> None:
    from webapp.extensions import db
    from webapp.models import Position

    with app.app_context():
        db.session.execute(
            Position.__table__.insert(),
            [
                dict(
                    client_id=cid,
                    instrument_id=instrument_id,
                    product="MIS",
                    quantity=1,
                    cost=PRICE,
                    average_price=PRICE,
                    buy_quantity=1,
                    sell_quantity=0,
                    realized_pnl=Decimal("0"),
                    unrealized_pnl=Decimal("0"),
                )
                for cid in client_ids
            ],
        )
        db.session.commit()


def _arm_all(app, instrument_id: int, client_ids: list[int]) -> None:
    from webapp.automation import stops
    from webapp.extensions import db, get_redis

    with app.app_context():
        for cid in client_ids:
            stops.arm(
                client_id=cid,
                instrument_id=instrument_id,
                product="MIS",
                direction=1,
                stop=STOP,
                source="position",
                price=PRICE,
            )
        db.session.commit()
        stops.notify_changed(get_redis())


def _fire_run(app, probe, token: int, client_ids: list[int], args) -> dict:
    """One crossing tick through the feed's index; then the repeats; then wait for the acks."""
    from webapp.automation import stops
    from webapp.extensions import get_redis

    with app.app_context():
        redis = get_redis()
        index = stops.StopIndex()
        index.refresh(redis, force=True)  # the feed holds it loaded; not timed
        if index.count != len(client_ids):
            raise RuntimeError(f"{index.count} rules armed, expected {len(client_ids)}")
        t0_wall, t0 = time.time(), time.perf_counter()
        fired = index.check({token: CROSS}, redis)
        check_ms = (time.perf_counter() - t0) * 1000
        repeats = index.check({token: CROSS}, redis)  # the same tick again
        restarted = stops.StopIndex()  # a second evaluator / a restarted feed
        restarted.refresh(redis, force=True)
        repeats += restarted.check({token: CROSS}, redis)
        batches = [f.batch.id for f in fired if f.batch is not None]
    again = sum(len(f.rule_ids) for f in repeats)
    if len(batches) != 1:
        raise RuntimeError(f"the crossing tick made {len(batches)} exit batches")
    batch_id = batches[0]
    deadline, complete = t0 + args.run_timeout, False
    while True:
        total, acked, in_flight, last_ack = probe.poll(batch_id)
        if total and acked == total:
            complete = True
            break
        if (total and in_flight == 0) or time.perf_counter() > deadline:
            break
        time.sleep(args.poll_ms / 1000)
    from bench.fanout import ms_since

    info = probe.details(batch_id)
    return {
        "batch_id": batch_id,
        "complete": complete,
        "children": total,
        "ack_ms": ms_since(t0_wall, last_ack) if complete else None,
        "fire_ms": check_ms,  # the feed's step: index check, the firing transaction, the send queued
        "first_submit_ms": ms_since(t0_wall, info["first_submit"]),
        "refired": again,
        "tags": info["tags"],
        "statuses": info["statuses"],
        "reasons": info["reasons"],
    }


def _stop_ack(args, tmp: Path, processes: Processes, started: dict) -> dict:
    import redis as redis_lib

    from bench.fanout import Probe, seed, start_emulator
    from bench.live_harness import database_version, make_app, prepare
    from webapp.entrypoint import worker_command

    env = prepare(args, tmp, started)
    emulator_url = start_emulator(processes, args.rtt_ms)
    env.update({"KITE_API_URL": emulator_url, "KITE_LOGIN_URL": emulator_url})
    os.environ.update(env)
    log(f"kite emulator: {emulator_url} (+{args.rtt_ms:g} ms per answer)")
    app = make_app()
    instrument_id, client_ids = seed(app, emulator_url, args.clients)
    _seed_positions(app, instrument_id, client_ids)
    with app.app_context():
        from webapp.extensions import db
        from webapp.models import Instrument

        token = db.session.get(Instrument, instrument_id).instrument_token
    for i in range(args.orders_workers):  # as the Procfile starts them; no sync worker (see the docstring)
        processes.start(f"worker-orders-{i}", worker_command("orders", f"bench-stops-{os.getpid()}-{i}"), env)
    rq_redis = redis_lib.Redis.from_url(env["REDIS_URL"])
    _wait_workers(rq_redis, args.orders_workers, processes)
    log(f"{len(client_ids)} Kite clients hold 1 INFY MIS each; {args.orders_workers} orders workers")
    load = measure_load(app, instrument_id, client_ids, args.rules) if args.rules else {}
    probe = Probe(app)
    measured, everything = [], []
    try:
        for i in range(args.warmup + args.runs):
            processes.check_alive()
            _arm_all(app, instrument_id, client_ids)
            r = _fire_run(app, probe, token, client_ids, args)
            everything.append(r)
            warm = i < args.warmup
            if not warm:
                measured.append(r)
            ack = f"{r['ack_ms']:.0f} ms" if r["complete"] else f"INCOMPLETE {r['statuses']} {r['reasons']}"
            log(
                f"{'warmup' if warm else 'run'} {i + 1 - (0 if warm else args.warmup)}: exit batch {r['batch_id']} "
                f"({r['children']} children) acknowledged {ack}; the feed's step took {r['fire_ms']:.0f} ms, "
                f"first submit +{(r['first_submit_ms'] or float('nan')):.0f} ms; fired again by repeats: {r['refired']}"
            )
            time.sleep(args.pause_ms / 1000)
        ledger = _ledger(emulator_url, everything, len(client_ids))
        database = database_version(app)
    finally:
        probe.close()
    acks = [r["ack_ms"] for r in measured if r["complete"]]
    incomplete = sum(1 for r in measured if not r["complete"])
    refired = sum(r["refired"] for r in everything)
    return {
        "clients": args.clients,
        "rtt_ms": args.rtt_ms,
        "runs": args.runs,
        "stop_ack_p50_ms": _r(percentile(acks, 50)),
        "stop_ack_p95_ms": _r(percentile(acks, 95)),
        "stop_ack": summary(acks),
        "fire_step_ms": summary([r["fire_ms"] for r in measured]),
        "first_submit_ms": summary([r["first_submit_ms"] for r in measured if r["first_submit_ms"] is not None]),
        "incomplete_runs": incomplete,
        "refired_by_repeats": refired,
        "duplicates": ledger["duplicates"],
        "ledger": ledger,
        "orders_workers": args.orders_workers,
        "database": database,
        **load,
        "ok": incomplete == 0 and refired == 0 and ledger["duplicates"] == 0 and ledger["missing"] == 0,
    }


def _wait_workers(rq_redis, count: int, processes: Processes, timeout: float = 60.0) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=rq_redis)) < count:
        processes.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} RQ workers did not register in {timeout:g} s")
        time.sleep(0.2)


def _ledger(emulator_url: str, runs: list[dict], clients: int) -> dict:
    """Orders the emulator booked: per tag (each exit child once) and per account (one per run)."""
    entries = requests.get(f"{emulator_url}/_emulator/ledger", timeout=60).json()
    by_tag = Counter(e["tag"] for e in entries)
    by_account = Counter(e["account"] for e in entries)
    expected = {tag for r in runs for tag in r["tags"]}
    beyond_one_per_run = sum(max(0, n - len(runs)) for n in by_account.values())
    twice = sum(n - 1 for n in by_tag.values() if n > 1)
    return {
        "booked": len(entries),
        "expected": len(runs) * clients,
        "duplicates": max(beyond_one_per_run, twice),
        "missing": sum(1 for tag in expected if by_tag.get(tag, 0) == 0),
        "unexpected": sum(n for tag, n in by_tag.items() if tag not in expected),
    }


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "stops", args, lambda tmp, processes, started: _main(args, tmp, processes, started), {"clients": args.clients}
    )


def _main(args, tmp: Path, processes: Processes, started: dict) -> dict:
    log(f"check: {args.rules} rules over {args.instruments} instruments, {args.ticks} ticks")
    check = measure_check(args.rules, args.instruments, args.ticks)
    log(f"check per tick: p50 {check['check_10k_p50_us']} µs, p95 {check['check_10k_p95_us']} µs")
    ack = _stop_ack(args, tmp, processes, started)
    return {
        "bench": "stops",
        "stop_ack_p50_ms": ack["stop_ack_p50_ms"],
        "stop_ack_p95_ms": ack["stop_ack_p95_ms"],
        "check_10k_p50_us": check["check_10k_p50_us"],
        "check_10k_p95_us": check["check_10k_p95_us"],
        "duplicates": ack["duplicates"],
        "target_stop_ack_p50_ms": 250,
        "ack": ack,
        "check": check,
        "machine": machine(),
        "versions": versions("flask", "sqlalchemy", "rq", "redis", "numpy"),
        "ok": ack["ok"] and check["crossed"] == 0,
    }


def _r(value):
    return None if value is None else round(value, 1)


if __name__ == "__main__":
    sys.exit(main())
