"""Strategies on the desk, end to end: a candle close → every deployment evaluated; a signal → every
child of its batch acknowledged by the broker.

    python bench/strategies.py --deployments 200 --instruments 50 --clients 100 --rtt-ms 100

Starts everything in a temporary directory: an embedded Redis (or --redis-url), a SQLite database
(or --database-url), `flask db upgrade`, the Kite emulator with R ms added to every answer, and the
RQ workers exactly as the Procfile starts them (`strategies`: warm no-fork workers; `worker`: sync,
default; `orders`).

1. Evaluation: D deployments of EMA crossover (3/8, 1-minute bars) over I instruments, with an hour
   of history. Each round stores one closed minute for every instrument, as the feed does, and makes
   the feed's announcement (twice: the repeat must queue nothing); the bench then reads every
   deployment's cursor (read-only, every --poll-ms) until all D have evaluated that bar.
   `eval_p50_ms` / `eval_p95_ms` are over rounds of "candle close → the last of the D evaluated";
   the per-deployment latencies are reported beside them.
2. Signal → acknowledged: one live deployment for N Kite clients (a desk strategy module that enters
   on a high close and exits on a low one, FANOUT_STRATEGY_MODULES) on its own instrument; each round
   stores the minute whose close makes the signal and announces it; the latency is the last child's
   `acknowledged_at` − the announcement. At the end the emulator's ledger is counted: one booked order
   per child.
3. `stop_ack_p50_ms` comes from bench/stops.py's `measure_stop_ack` when that module is present (run
   after this desk's processes are stopped, on a throwaway desk of its own; its duplicates are added).

The bars are on a fixed past session day (a Monday, from 09:15 IST), so the send deadline is set far
off for this run (SEND_DEADLINE_SECONDS): a signal on a live day is fresh by construction.
`duplicates` counts every second evaluation job a repeated announcement queued, every signal with
more than one batch, and every order the emulator booked twice or did not expect. Progress goes to
stderr; the last stdout line is one JSON object. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):  # `python bench/strategies.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis as redis_lib

from bench.fanout import Probe, ledger_check, ms_since, seed, start_emulator
from bench.harness import Processes, add_service_args, log, machine, percentile, run_bench, summary, versions
from bench.live_harness import database_version, make_app, prepare

DAY = datetime(2026, 11, 30, 3, 45, tzinfo=UTC)  # a Monday, 09:15 IST
HISTORY = 60  # minutes stored before the first measured bar
STRATEGY_MODULE = "tests.automation.scripted"


def minute(n: int) -> datetime:
    return DAY + timedelta(minutes=n)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deployments", type=int, default=200, help="EMA-crossover deployments evaluated per close")
    p.add_argument("--instruments", type=int, default=50, help="instruments they are spread over")
    p.add_argument("--clients", type=int, default=100, help="Kite clients of the signal deployment")
    p.add_argument("--rtt-ms", type=float, default=100.0, help="latency the emulator adds to every answer")
    p.add_argument("--rounds", type=int, default=20, help="measured candle closes (evaluation)")
    p.add_argument("--signal-rounds", type=int, default=8, help="measured signals (acknowledgement)")
    p.add_argument("--workers", type=int, default=1, help="Procfile `worker` processes (sync, default)")
    p.add_argument("--strategies-workers", type=int, default=2, help="Procfile `strategies` processes")
    p.add_argument("--orders-workers", type=int, default=2, help="Procfile `orders` processes")
    p.add_argument("--poll-ms", type=float, default=5.0, help="database poll interval")
    p.add_argument("--round-timeout", type=float, default=60.0, help="seconds before a round counts as incomplete")
    p.add_argument("--pause-ms", type=float, default=500.0, help="pause between signal rounds")
    add_service_args(p)
    return p.parse_args(argv)


# ---------------------------------------------------------------- the desk


def seed_deployments(app, args, trader_id: int, signal_instrument: int, client_ids: list[int]) -> tuple[list[int], int]:
    """D EMA-crossover deployments over I instruments (an hour of 1-minute history each), and the one
    live deployment of the N clients on the signal instrument. Returns (the I instrument ids, its id)."""
    from datetime import time as clock

    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Candle, Deployment, DeploymentClient, DeploymentInstrument, Instrument
    from webapp.models.automation import ACTIVE

    rng = random.Random(7)
    with app.app_context():
        ids = list(
            db.session.execute(
                sa.select(Instrument.id)
                .where(Instrument.exchange == "NSE", Instrument.id != signal_instrument)
                .order_by(Instrument.id)
                .limit(args.instruments)
            ).scalars()
        )
        if len(ids) < args.instruments:
            raise RuntimeError(f"the sample master has {len(ids)} other NSE instruments, not {args.instruments}")
        rows = []
        for instrument_id in ids:
            price = 1000.0
            for n in range(HISTORY):
                price += rng.gauss(0, 2)
                close = Decimal(f"{price:.2f}")
                rows.append(
                    dict(
                        instrument_id=instrument_id,
                        start=minute(n),
                        open=close,
                        high=close,
                        low=close,
                        close=close,
                        volume=100,
                    )
                )
        db.session.execute(Candle.__table__.insert(), rows)
        window = dict(window_start=clock(9, 15), last_entry=clock(15, 30), days="0,1,2,3,4")

        def deployment(name, strategy, params, instrument_id, clients, **extra):
            d = Deployment(
                name=name,
                strategy=strategy,
                params=params,
                interval=1,
                product="MIS",
                sizing="fixed",
                sizing_value=Decimal(1),
                state=ACTIVE,
                created_by_id=trader_id,
                **window,
                **extra,
            )
            d.instruments = [DeploymentInstrument(instrument_id=instrument_id)]
            d.clients = [DeploymentClient(client_id=c) for c in clients]
            db.session.add(d)
            return d

        for i in range(args.deployments):
            deployment(f"EMA {i}", "ema_crossover", {"fast": 3, "slow": 8}, ids[i % len(ids)], [], mode="live")
        signal = deployment(
            "Signals",
            "test_scripted",
            {"long_above": 1500, "exit_below": 1200},
            signal_instrument,
            client_ids,
            mode="live",
        )
        first = Decimal("1300.00")  # neither enters nor exits: the warm-up bar
        db.session.add(
            Candle(
                instrument_id=signal_instrument,
                start=minute(0),
                open=first,
                high=first,
                low=first,
                close=first,
                volume=1,
            )
        )
        db.session.commit()
        return ids, signal.id


def start_workers(processes: Processes, env: dict, args) -> None:
    from webapp.entrypoint import worker_command

    for i in range(args.workers):
        processes.start(f"worker-{i}", worker_command("worker", f"bench-worker-{os.getpid()}-{i}"), env)
    for i in range(args.strategies_workers):
        processes.start(f"strategies-{i}", worker_command("strategies", f"bench-strategies-{os.getpid()}-{i}"), env)
    for i in range(args.orders_workers):
        processes.start(f"worker-orders-{i}", worker_command("orders", f"bench-orders-{os.getpid()}-{i}"), env)


def wait_workers(rq_redis, count: int, processes: Processes, timeout: float = 60.0) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=rq_redis)) < count:
        processes.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} RQ workers did not register in {timeout:g} s")
        time.sleep(0.2)


def close_minute(app, bars: dict[int, Decimal], n: int) -> list[tuple[int, datetime]]:
    """Store minute n's closed bar for these instruments, as the feed does (one commit)."""
    from webapp.extensions import db
    from webapp.models import Candle

    with app.app_context():
        db.session.execute(
            Candle.__table__.insert(),
            [
                dict(instrument_id=i, start=minute(n), open=p, high=p, low=p, close=p, volume=100)
                for i, p in bars.items()
            ],
        )
        db.session.commit()
    return [(i, minute(n)) for i in bars]


def announce(app, closed) -> tuple[int, int]:
    """The feed's announcement, made twice: (queued by the first, queued by the repeat)."""
    from webapp.automation import runner
    from webapp.extensions import get_redis

    with app.app_context():
        redis = get_redis()
        return runner.announce_closed(redis, closed), runner.announce_closed(redis, closed)


# ---------------------------------------------------------------- rounds


def eval_round(app, probe, deployment_ids: set[int], bars: dict[int, Decimal], n: int, args) -> dict:
    sa = probe.sa
    from webapp.models import DeploymentInstrument

    di = DeploymentInstrument
    query = sa.select(di.deployment_id).where(di.last_bar >= minute(n), di.deployment_id.in_(deployment_ids))
    closed = close_minute(app, bars, n)
    t0 = time.perf_counter()
    queued, repeated = announce(app, closed)
    seen: dict[int, float] = {}
    deadline = t0 + args.round_timeout
    while len(seen) < len(deployment_ids) and time.perf_counter() < deadline:
        now = (time.perf_counter() - t0) * 1000
        for d in probe.conn.execute(query).scalars():
            seen.setdefault(d, now)
        time.sleep(args.poll_ms / 1000)
    return {
        "bar": n,
        "complete": len(seen) == len(deployment_ids),
        "all_ms": max(seen.values()) if seen else None,
        "each_ms": list(seen.values()),
        "jobs": queued,
        "repeat_jobs": repeated,
    }


def signal_round(app, probe, signal_instrument: int, deployment_id: int, n: int, enter: bool, args) -> dict:
    sa = probe.sa
    Batch = probe.Batch
    close = Decimal("2000.00") if enter else Decimal("1000.00")
    closed = close_minute(app, {signal_instrument: close}, n)
    last = probe.conn.execute(sa.select(sa.func.max(Batch.id)).where(Batch.deployment_id == deployment_id)).scalar()
    t0_wall = time.time()
    t0 = time.perf_counter()
    queued, repeated = announce(app, closed)
    deadline = t0 + args.round_timeout
    batch_id = None
    result = {"bar": n, "enter": enter, "complete": False, "jobs": queued, "repeat_jobs": repeated, "tags": []}
    while time.perf_counter() < deadline:
        if batch_id is None:
            batch_id = probe.conn.execute(
                sa.select(sa.func.max(Batch.id)).where(Batch.deployment_id == deployment_id, Batch.id > (last or 0))
            ).scalar()
        if batch_id is not None:
            total, acked, _, last_ack = probe.poll(batch_id)
            if total and acked == total:
                result.update(complete=True, ack_ms=ms_since(t0_wall, last_ack), children=total)
                break
        time.sleep(args.poll_ms / 1000)
    if batch_id is not None:
        details = probe.details(batch_id)
        result.update(batch_id=batch_id, tags=details["tags"], statuses=details["statuses"], reasons=details["reasons"])
        if not result["complete"]:
            result["children"] = sum(details["statuses"].values())
    return result


def stop_ack(args) -> tuple[float | None, int, str]:
    """H2's stop bench on its own throwaway desk: (stop_ack_p50_ms, its duplicates, a note)."""
    try:
        from bench.stops import measure_stop_ack
    except ImportError:
        return None, 0, "bench/stops.py not present"
    try:
        result = measure_stop_ack(clients=args.clients, rtt_ms=args.rtt_ms)
    except Exception as exc:
        return None, 0, f"{type(exc).__name__}: {exc}"
    return result.get("stop_ack_p50_ms"), int(result.get("duplicates") or 0), result.get("error") or ""


# ---------------------------------------------------------------- main


def _run(args, tmp: Path, processes: Processes, started: dict) -> dict:
    env = prepare(args, tmp, started)
    env.update(
        {
            "SEND_DEADLINE_SECONDS": str(10**9),  # the bars are on a past session day (see the docstring)
            "FANOUT_STRATEGY_MODULES": STRATEGY_MODULE,
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
    )
    emulator_url = start_emulator(processes, args.rtt_ms)
    env.update({"KITE_API_URL": emulator_url, "KITE_LOGIN_URL": emulator_url})
    os.environ.update(env)
    log(f"kite emulator: {emulator_url} (+{args.rtt_ms:g} ms per answer)")
    app = make_app()
    t = time.perf_counter()
    signal_instrument, client_ids = seed(app, emulator_url, args.clients)
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import StrategySignal, User

    with app.app_context():
        trader_id = db.session.execute(sa.select(User.id)).scalar_one()
    instruments, signal_deployment = seed_deployments(app, args, trader_id, signal_instrument, client_ids)
    deployment_ids = set(range(1, args.deployments + 1))
    log(
        f"seeded {args.clients} Kite clients, {args.deployments} deployments over {len(instruments)} instruments "
        f"in {time.perf_counter() - t:.1f} s; db: {database_version(app)}"
    )
    start_workers(processes, env, args)
    rq_redis = redis_lib.Redis.from_url(env["REDIS_URL"])
    wait_workers(rq_redis, args.workers + args.strategies_workers + args.orders_workers, processes)
    probe = Probe(app)
    rng = random.Random(11)
    prices = {i: 1000.0 for i in instruments}

    evals = []
    for r in range(args.rounds + 1):  # the first is a warm-up (imports, pools)
        processes.check_alive()
        n = HISTORY + r
        bars = {}
        for i in instruments:
            prices[i] += rng.gauss(0, 2)
            bars[i] = Decimal(f"{prices[i]:.2f}")
        result = eval_round(app, probe, deployment_ids, bars, n, args)
        log(
            f"{'warm-up' if r == 0 else f'close {r}'}: {result['jobs']} jobs, repeat {result['repeat_jobs']}; "
            f"all {args.deployments} evaluated in {result['all_ms'] or float('nan'):.0f} ms"
            + ("" if result["complete"] else " INCOMPLETE")
        )
        if r:
            evals.append(result)

    signals, every_signal_round = [], []
    for r in range(args.signal_rounds + 1):
        processes.check_alive()
        result = signal_round(app, probe, signal_instrument, signal_deployment, r + 1, r % 2 == 0, args)
        ack = (
            f"{result['ack_ms']:.0f} ms"
            if result["complete"]
            else f"INCOMPLETE {result.get('statuses')} {result.get('reasons')}"
        )
        name = "warm-up" if r == 0 else f"signal {r}"
        log(f"{name} ({'enter' if result['enter'] else 'exit'}): {result.get('children')} children acknowledged {ack}")
        every_signal_round.append(result)
        if r:
            signals.append(result)
        time.sleep(args.pause_ms / 1000)
    ledger = ledger_check(emulator_url, every_signal_round)  # the warm-up's children are booked too
    with app.app_context():
        signal_count = db.session.execute(
            sa.select(sa.func.count())
            .select_from(StrategySignal)
            .where(StrategySignal.deployment_id == signal_deployment)
        ).scalar_one()
        batch_count = db.session.execute(
            sa.select(sa.func.count()).select_from(probe.Batch).where(probe.Batch.deployment_id == signal_deployment)
        ).scalar_one()
    probe.close()
    processes.stop_all()  # the stop bench starts a desk of its own: this one's workers would only compete
    stop_ms, stop_duplicates, stop_note = stop_ack(args)
    alls = [r["all_ms"] for r in evals if r["complete"]]
    each = [ms for r in evals for ms in r["each_ms"]]
    acks = [r["ack_ms"] for r in signals if r["complete"]]
    repeats = sum(r["repeat_jobs"] for r in evals + signals)
    duplicates = repeats + max(0, batch_count - signal_count) + ledger["duplicates"] + ledger["unexpected"]
    duplicates += stop_duplicates
    return {
        "bench": "strategies",
        "ok": len(alls) == len(evals) and len(acks) == len(signals) and duplicates == 0,
        "deployments": args.deployments,
        "instruments": len(instruments),
        "clients": args.clients,
        "rtt_ms": args.rtt_ms,
        "workers": args.workers,
        "strategies_workers": args.strategies_workers,
        "orders_workers": args.orders_workers,
        "eval_p50_ms": _r(percentile(alls, 50)),
        "eval_p95_ms": _r(percentile(alls, 95)),
        "eval_each": summary(each),
        "eval_rounds": len(evals),
        "eval_incomplete": len(evals) - len(alls),
        "signal_ack_p50_ms": _r(percentile(acks, 50)),
        "signal_ack_p95_ms": _r(percentile(acks, 95)),
        "signal_rounds": len(signals),
        "signal_incomplete": len(signals) - len(acks),
        "stop_ack_p50_ms": _r(stop_ms),
        "stop_ack_note": stop_note,
        "stop_duplicates": stop_duplicates,
        "duplicates": duplicates,
        "repeat_announcement_jobs": repeats,
        "signals": signal_count,
        "signal_batches": batch_count,
        "ledger": ledger,
        "database": database_version(app),
        "machine": machine(),
        "versions": versions("flask", "sqlalchemy", "rq", "redis", "numpy"),
    }


def _r(value):
    return None if value is None else round(value, 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench(
        "strategies",
        args,
        lambda tmp, processes, started: _run(args, tmp, processes, started),
        {"deployments": args.deployments, "clients": args.clients},
    )


if __name__ == "__main__":
    sys.exit(main())
