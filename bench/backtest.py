"""The backtest engine against backtesting.py, a parameter sweep, and ten years' memory.

    python bench/backtest.py [--days 250] [--sweep 100] [--workers 2] [--memory-years 10]

1. One year of 1-minute candles of one instrument (250 sessions × 375 bars, 09:15–15:29 IST: 93,750 bars;
   a seeded random walk on the 0.05 tick grid), EMA crossover 9/21, charges off and a flat ₹20 commission,
   MIS without a square-off so both carry positions alike. Our engine (`engine.run`: the signals, the
   fills, charges, equity curve and metrics) and backtesting.py (driven by the same signals inside its
   Strategy.next, tests/backtest/btdriver.py; its time includes computing those signals) run in this
   process on the same candles; the trades (entry/exit bar, price, size, net P&L) must be equal.
   Each is timed best of --repeat. Ours with Zerodha's charges is timed too.
2. A sweep of that run over --sweep (fast, slow) combinations on a multiprocessing pool of --workers
   processes (the two cores of this machine); the wall time includes starting the pool.
3. Ten years of 1-minute bars (--memory-years × 93,750), Zerodha's charges on, in a fresh process: the
   run's time, the candles' size, the run's own peak allocation (tracemalloc) and the process's peak RSS.

Progress goes to stderr; the last stdout line is one JSON object with bars, ours_s, backtesting_py_s,
speedup (backtesting.py's time ÷ ours), trades_equal, sweep_s and the rest.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
import warnings
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):  # `python bench/backtest.py` from a fresh clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.harness import emit, log, machine, versions

SETTINGS = None  # built in main() (imports after sys.path is set)
TICK = 0.05
BARS_PER_DAY = 375


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=250, help="sessions of 1-minute bars (250: one year)")
    parser.add_argument("--sweep", type=int, default=100, help="combinations in the sweep (0: none)")
    parser.add_argument("--workers", type=int, default=2, help="processes the sweep runs on")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each engine (the best counts)")
    parser.add_argument("--memory-years", type=int, default=10, help="years for the memory run (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def candles_for(days: int, seed: int):
    """A seeded random walk of `days` sessions of 1-minute bars, every price k × 0.05 exactly."""
    from tests.backtest.btdriver import session_times
    from webapp.strategies import Candles

    n = days * BARS_PER_DAY
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.0008, n) + np.repeat(rng.normal(0.0, 0.0004, n // 50 + 1), 50)[:n]
    close_k = np.maximum(np.rint(1000.0 * np.exp(np.cumsum(steps)) / TICK), 20).astype(np.int64)
    open_k = np.r_[close_k[0], close_k[:-1]] + rng.integers(-2, 3, n)
    open_k = np.maximum(open_k, 10)
    high_k = np.maximum(open_k, close_k) + rng.integers(0, 6, n)
    low_k = np.maximum(np.minimum(open_k, close_k) - rng.integers(0, 6, n), 1)
    volume = rng.integers(100, 5000, n).astype(np.float64)
    return Candles(session_times(days), open_k * TICK, high_k * TICK, low_k * TICK, close_k * TICK, volume)


def settings():
    from webapp.backtest.engine import Settings

    return Settings(
        capital=Decimal("10000000"),
        product="MIS",
        allow_short=True,
        sizing="fixed",
        sizing_value=Decimal("50"),
        tick_size=Decimal("0.05"),
        lot_size=1,
        squareoff=None,
        charges=None,
        commission=Decimal("20"),
    )


def best_of(repeat: int, body):
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = body()
        times.append(time.perf_counter() - started)
    return min(times), value


# --- the sweep's worker -----------------------------------------------------------------------------------
_worker: dict = {}


def _init_worker(days: int, seed: int) -> None:
    _worker["candles"] = candles_for(days, seed)
    _worker["settings"] = settings()


def _one(params: tuple[int, int]) -> tuple[int, int, str, int]:
    from webapp.backtest.engine import run
    from webapp.strategies import create_strategy

    fast, slow = params
    result = run(
        create_strategy("ema_crossover", {"fast": fast, "slow": slow}), _worker["candles"], _worker["settings"]
    )
    return fast, slow, str(result.metrics["net_pnl"]), len(result.trades)


def grid(size: int) -> list[tuple[int, int]]:
    fasts = list(range(3, 23, 2))  # 10 fast periods, 3 … 21
    slows = list(range(25, 75, 5))  # 10 slow periods, 25 … 70
    return [(f, s) for f in fasts for s in slows][:size]


def sweep(days: int, seed: int, size: int, workers: int) -> tuple[float, float, list]:
    """(wall seconds, CPU seconds of the workers, rows)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    pool = context.Pool(workers, initializer=_init_worker, initargs=(days, seed))
    try:
        rows = pool.map(_one, grid(size), chunksize=max(1, size // (workers * 4)))
    except BaseException:
        pool.terminate()
        raise
    pool.close()
    pool.join()  # the workers reaped, so their CPU time is counted below
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rows


def _memory_child(days: int, seed: int, queue) -> None:
    """Ten years in a fresh interpreter: the process's peak RSS (everything: imports, the candles, the run),
    the candles' own size, and the run's peak allocation alone (tracemalloc sees numpy's arrays too; a
    second run, since tracing slows Python down — the time is the first run's)."""
    import tracemalloc

    from webapp.backtest.engine import run
    from webapp.strategies import create_strategy

    candles = candles_for(days, seed)
    after_candles = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    strategy = create_strategy("ema_crossover", {"fast": 9, "slow": 21})
    charged = replace(settings(), charges="zerodha")
    started = time.perf_counter()
    result = run(strategy, candles, charged)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    tracemalloc.start()
    result = run(strategy, candles, charged)
    _, run_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    candle_bytes = sum(getattr(candles, name).nbytes for name in ("time", "open", "high", "low", "close", "volume"))
    queue.put(
        {
            "bars": len(candles),
            "seconds": round(elapsed, 2),
            "trades": len(result.trades),
            "candles_mib": round(candle_bytes / 2**20, 1),
            "run_peak_alloc_mib": round(run_peak / 2**20, 1),
            "peak_rss_mib": round(peak / 1024, 1),
            "rss_after_candles_mib": round(after_candles / 1024, 1),
        }
    )


def memory(days: int, seed: int) -> dict:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: its peak is this run's alone
    queue = context.Queue()
    child = context.Process(target=_memory_child, args=(days, seed, queue))
    child.start()
    answer = queue.get(timeout=600)
    child.join(60)
    return answer


def main(argv=None) -> int:
    args = parse_args(argv)
    from tests.backtest.btdriver import backtest, frame, ours, trades_of
    from webapp.backtest.engine import make_plan, run
    from webapp.strategies import create_strategy

    base = settings()
    log(f"making {args.days} sessions of 1-minute candles")
    candles = candles_for(args.days, args.seed)
    strategy = create_strategy("ema_crossover", {"fast": 9, "slow": 21})

    log("our engine")
    ours_s, result = best_of(args.repeat, lambda: run(strategy, candles, base))
    charged_s, charged = best_of(args.repeat, lambda: run(strategy, candles, replace(base, charges="zerodha")))
    log(f"ours {ours_s:.3f}s, with Zerodha's charges {charged_s:.3f}s; {len(result.trades)} trades")

    log("backtesting.py")
    data = frame(candles)

    def reference():
        signals = make_plan(strategy, candles).signals
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return backtest(candles, signals, base, data=data).run()

    warm = candles[: 2 * BARS_PER_DAY]  # backtesting.py's first run pays for imports: not timed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest(warm, make_plan(strategy, warm).signals, base).run()
    bt_s, stats = best_of(max(1, min(args.repeat, 2)), reference)
    mine, theirs = ours(result.trades), trades_of(stats, base, TICK)
    equal = mine == theirs
    log(f"backtesting.py {bt_s:.3f}s; {len(theirs)} closed trades; equal: {equal}")

    out = {
        "bench": "backtest",
        "bars": len(candles),
        "strategy": "ema_crossover 9/21",
        "ours_s": round(ours_s, 4),
        "backtesting_py_s": round(bt_s, 4),
        "speedup": round(bt_s / ours_s, 1),
        "trades_equal": equal,
        "trades": len(mine),
        "ours_with_charges_s": round(charged_s, 4),
        "charges_paid": str(charged.metrics["charges"]),
    }
    if args.sweep:
        log(f"sweep of {args.sweep} combinations on {args.workers} processes")
        sweep_s, sweep_cpu, rows = sweep(args.days, args.seed, args.sweep, args.workers)
        best = max(rows, key=lambda row: Decimal(row[2]))
        out.update(
            {
                "sweep_s": round(sweep_s, 2),
                "sweep_cpu_s": round(sweep_cpu, 2),
                "sweep_runs": len(rows),
                "sweep_workers": args.workers,
                "sweep_best": {"fast": best[0], "slow": best[1], "net_pnl": best[2]},
            }
        )
        log(f"sweep {sweep_s:.2f}s wall, {sweep_cpu:.2f}s CPU in the workers")
    if args.memory_years:
        log(f"{args.memory_years} years of 1-minute bars in a fresh process")
        out["memory"] = memory(args.days * args.memory_years, args.seed)
        log(f"memory {out['memory']}")
    out.update(
        {
            "ok": equal,
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "machine": machine(),
            "versions": versions("numpy", "pandas", "backtesting"),
        }
    )
    emit(out)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
