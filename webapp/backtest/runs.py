"""Backtest runs and sweeps as stored work: create them, run them (in an RQ job), cancel them, and read
their results back. The engine (webapp/backtest/engine.py) is pure; this module is its caller: it loads
the candles (webapp/marketdata/history.py), builds the engine's Settings from the stored JSON, and
stores what the engine returns — metrics as JSON (Decimals as strings), trades and curves compressed.

A run goes QUEUED → RUNNING → DONE | FAILED | CANCELLED, each step one conditional UPDATE, so a job
retried or run twice does nothing the second time. Progress goes to Redis while a run runs (a page polls
it) and to the row when it ends. Cancel: the row's `cancel_requested` and a Redis flag; a QUEUED run is
cancelled at once, a RUNNING one stops at the engine's next `cancelled()` check.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time as clock
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa

from webapp.models import BacktestRun, Deployment, Instrument, Sweep
from webapp.models.backtests import CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING
from webapp.timeutil import IST, UTC, format_ist, utcnow

log = logging.getLogger(__name__)

MAX_COMBINATIONS = 200  # a sweep's grid may hold at most this many combinations
CHUNKS_PER_SWEEP = 8  # a sweep is split into about this many jobs (each loads the candles once)
JOB_TIMEOUT = 3600  # seconds an RQ job may run (a chunk of a large sweep over years of minutes)
CURVE_POINTS = 2000  # the equity / drawdown curves are kept at most this many points (the charts)
PROGRESS_KEY = "fanout:backtest:{id}:progress"
CANCEL_KEY = "fanout:backtest:{id}:cancel"
SWEEP_CANCEL_KEY = "fanout:backtest-sweep:{id}:cancel"
CHARGES_OFF = "off"  # the charges choice for "no plan: the flat commission only"
KEY_TTL = 86400
CANCEL_CHECK_SECONDS = 0.25  # the engine asks often; Redis is asked at most this often

# the engine's Settings fields and how each is kept in JSON
DECIMAL_SETTINGS = ("capital", "sizing_value", "tick_size", "commission")
TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "direction",
    "quantity",
    "entry_price",
    "exit_price",
    "gross",
    "charges",
    "net",
    "exit_reason",
)


class SweepTooLarge(ValueError):
    pass


# --- settings ----------------------------------------------------------------------------------------


def settings_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's settings as stored: Decimals and times as strings, the rest as they are."""
    stored = {}
    for name, value in values.items():
        if isinstance(value, Decimal):
            stored[name] = str(value)
        elif isinstance(value, time):
            stored[name] = value.strftime("%H:%M")
        else:
            stored[name] = value
    return stored


def settings_from(
    *,
    capital: Decimal,
    product: str,
    allow_short: bool,
    sizing: str,
    sizing_value: Decimal,
    fill: str,
    slippage_ticks: int | None,
    squareoff: time | None,
    charges: str,
    commission: Decimal | None,
) -> dict[str, Any]:
    """The stored settings of a run asked for by the form or the API: the square-off applies to MIS
    only, `charges` is a plan's name or CHARGES_OFF."""
    return settings_json(
        {
            "capital": capital,
            "product": product,
            "allow_short": bool(allow_short),
            "sizing": sizing,
            "sizing_value": sizing_value,
            "fill": fill,
            "slippage_ticks": slippage_ticks or 0,
            "squareoff": squareoff if product == "MIS" else None,
            "charges": None if charges == CHARGES_OFF else charges,
            "commission": commission or Decimal(0),
        }
    )


def engine_settings(stored: Mapping[str, Any], instrument: Instrument):
    """The engine's Settings for a stored run: the instrument gives the tick and the lot."""
    from webapp.backtest.engine import Settings

    values = dict(stored)
    for name in DECIMAL_SETTINGS:
        if values.get(name) is not None:
            values[name] = Decimal(str(values[name]))
    squareoff = values.get("squareoff")
    if isinstance(squareoff, str):
        hours, minutes = squareoff.split(":")
        values["squareoff"] = time(int(hours), int(minutes))
    values["tick_size"] = Decimal(instrument.tick_size)
    values["lot_size"] = int(instrument.lot_size or 1)
    if instrument.exchange in ("NSE", "BSE"):
        values["exchange"] = instrument.exchange
    known = set(Settings.__dataclass_fields__)
    return Settings(**{k: v for k, v in values.items() if k in known})


def range_utc(start_day: date, end_day: date) -> tuple[datetime, datetime]:
    """The IST days start_day … end_day (both included) as [start, end) in UTC."""
    start = datetime.combine(start_day, time(0), IST).astimezone(UTC)
    end = datetime.combine(end_day + timedelta(days=1), time(0), IST).astimezone(UTC)
    return start, end


# --- creating ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What a run or a sweep runs: the form's validated values."""

    strategy: str
    params: dict[str, Any]
    instrument_id: int
    interval: int
    start_day: date
    end_day: date
    settings: dict[str, Any]  # settings_json(...)


def create_run(session, spec: Spec, *, user_id: int | None, sweep: Sweep | None = None) -> BacktestRun:
    """A QUEUED run; its parameters stored as the strategy validated them (ParamError otherwise)."""
    from webapp.strategies import create_strategy

    run = BacktestRun(
        created_by_id=user_id,
        sweep=sweep,
        strategy=spec.strategy,
        params=dict(create_strategy(spec.strategy, spec.params).values),
        instrument_id=spec.instrument_id,
        interval=spec.interval,
        start_day=spec.start_day,
        end_day=spec.end_day,
        settings=dict(spec.settings),
        state=QUEUED,
    )
    session.add(run)
    return run


def combinations(grid: Mapping[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's order (the first parameter slowest)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def count_combinations(grid: Mapping[str, list]) -> int:
    return math.prod(len(values) for values in grid.values()) if grid else 0


def create_sweep(
    session, spec: Spec, grid: Mapping[str, list], *, user_id: int | None
) -> tuple[Sweep, list[BacktestRun]]:
    """The sweep and one QUEUED run per combination whose parameters the strategy accepts (the others
    are skipped: with fast ≥ slow an EMA crossover has no meaning). SweepTooLarge past MAX_COMBINATIONS;
    ValueError when no combination is valid."""
    from webapp.strategies import ParamError, create_strategy

    total = count_combinations(grid)
    if total > MAX_COMBINATIONS:
        raise SweepTooLarge(f"{total} combinations: a sweep may run at most {MAX_COMBINATIONS}.")
    valid = []
    for combo in combinations(grid):
        params = {**spec.params, **combo}
        try:
            valid.append(dict(create_strategy(spec.strategy, params).values))
        except ParamError:
            continue
    if not valid:
        raise ValueError("No combination of these values is valid for the strategy.")
    sweep = Sweep(
        created_by_id=user_id,
        strategy=spec.strategy,
        params=valid[0],
        grid={name: list(values) for name, values in grid.items()},
        instrument_id=spec.instrument_id,
        interval=spec.interval,
        start_day=spec.start_day,
        end_day=spec.end_day,
        settings=dict(spec.settings),
        combinations=len(valid),
    )
    session.add(sweep)
    runs = [
        create_run(session, Spec(**{**spec.__dict__, "params": params}), user_id=user_id, sweep=sweep)
        for params in valid
    ]
    return sweep, runs


def create_group(
    session, specs: list[Spec], *, user_id: int | None, deployment_id: int | None
) -> tuple[Sweep, list[BacktestRun]]:
    """A deployment's backtest: one run per spec (a client × instrument, each with its own capital and
    sizing in its settings), grouped as a sweep without a grid. SweepTooLarge past MAX_COMBINATIONS."""
    if not specs:
        raise ValueError("Nothing to run.")
    if len(specs) > MAX_COMBINATIONS:
        raise SweepTooLarge(f"{len(specs)} runs: a backtest may group at most {MAX_COMBINATIONS}.")
    first = specs[0]
    sweep = Sweep(
        created_by_id=user_id,
        strategy=first.strategy,
        params=dict(first.params),
        grid={},
        instrument_id=first.instrument_id,
        interval=first.interval,
        start_day=min(spec.start_day for spec in specs),
        end_day=max(spec.end_day for spec in specs),
        settings=dict(first.settings),
        combinations=len(specs),
        deployment_id=deployment_id,
    )
    session.add(sweep)
    return sweep, [create_run(session, spec, user_id=user_id, sweep=sweep) for spec in specs]


def queue_runs(session, run_ids: list[int]) -> None:
    """One job per chunk of runs on the backtests queue; a chunk that cannot be queued is failed at once
    (never run later). The runs must be committed first (a worker may start at once)."""
    from rq import Callback

    from webapp.tasks import QUEUE_BACKTESTS, enqueue

    for chunk in chunks(run_ids):
        try:
            job = enqueue(
                "jobs.backtests.run_backtests",
                chunk,
                queue_name=QUEUE_BACKTESTS,
                job_timeout=JOB_TIMEOUT,
                result_ttl=300,
                failure_ttl=86400,
                on_failure=Callback("jobs.backtests.lost"),
            )
        except Exception:  # noqa: BLE001 - Redis went away between the check and the enqueue
            fail_unqueued(session, chunk, "Could not be queued (Redis unavailable); run it again.")
            session.commit()
            continue
        session.execute(sa.update(BacktestRun).where(BacktestRun.id.in_(chunk)).values(job_id=job.id))
        session.commit()


def start_run(session, spec: Spec, *, user_id: int | None) -> BacktestRun:
    """One run from a spec check_spec passed: stored QUEUED, committed, and its job queued."""
    run = create_run(session, spec, user_id=user_id)
    session.commit()
    queue_runs(session, [run.id])
    return run


def visible_select(user) -> sa.Select:
    """The runs this user may see, newest first: every run of their desk, except a deployment's backtest
    (it names that deployment's clients) when the deployment is not theirs to see."""
    from webapp.automation.deployments import visible_select as visible_deployments

    theirs = visible_deployments(user).with_only_columns(Deployment.id).order_by(None)
    return (
        sa.select(BacktestRun)
        .outerjoin(Sweep, BacktestRun.sweep_id == Sweep.id)
        .where(sa.or_(Sweep.id.is_(None), Sweep.deployment_id.is_(None), Sweep.deployment_id.in_(theirs)))
        .order_by(BacktestRun.id.desc())
    )


def visible_run(session, user, run_id: int) -> BacktestRun | None:
    """The run, or None when it does not exist or is not the user's to see (the caller says 404)."""
    return session.execute(visible_select(user).where(BacktestRun.id == run_id)).scalar_one_or_none()


def chunks(ids: list[int], parts: int = CHUNKS_PER_SWEEP) -> list[list[int]]:
    """The run ids split into at most `parts` jobs of nearly equal size, in order."""
    if not ids:
        return []
    size = math.ceil(len(ids) / max(1, min(parts, len(ids))))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# --- running (the job) -------------------------------------------------------------------------------


class _Watch:
    """The engine's progress and cancelled callbacks for one run: progress to Redis, the cancel flag
    read from Redis at most every CANCEL_CHECK_SECONDS."""

    def __init__(self, redis, run_id: int, sweep_id: int | None):
        self.redis, self.run_id, self.sweep_id = redis, run_id, sweep_id
        self._checked, self._cancelled = 0.0, False

    def progress(self, fraction: float) -> None:
        if self.redis is None:
            return
        try:
            self.redis.set(
                PROGRESS_KEY.format(id=self.run_id), f"{max(0.0, min(1.0, float(fraction))):.4f}", ex=KEY_TTL
            )
        except Exception:  # noqa: BLE001 - Redis away costs the progress bar, never the run
            log.warning("backtest_run=%s progress not written (Redis unavailable)", self.run_id)

    def cancelled(self) -> bool:
        now = clock.monotonic()
        if self._cancelled or self.redis is None or now - self._checked < CANCEL_CHECK_SECONDS:
            return self._cancelled
        self._checked = now
        keys = [CANCEL_KEY.format(id=self.run_id)]
        if self.sweep_id is not None:
            keys.append(SWEEP_CANCEL_KEY.format(id=self.sweep_id))
        try:
            self._cancelled = bool(self.redis.exists(*keys))
        except Exception:  # noqa: BLE001
            pass
        return self._cancelled


def _claim(session, run_id: int) -> bool:
    """QUEUED → RUNNING, once; False when the run is not QUEUED (cancelled, or already run)."""
    claimed = session.execute(
        sa.update(BacktestRun)
        .where(BacktestRun.id == run_id, BacktestRun.state == QUEUED, BacktestRun.cancel_requested.is_(False))
        .values(state=RUNNING, started_at=utcnow())
    ).rowcount
    session.commit()
    return claimed == 1


def _finish(session, run_id: int, state: str, **values) -> None:
    session.execute(
        sa.update(BacktestRun)
        .where(BacktestRun.id == run_id, BacktestRun.state == RUNNING)
        .values(state=state, finished_at=utcnow(), **values)
    )
    session.commit()


def execute_runs(session, run_ids: Iterable[int], redis) -> dict[int, str]:
    """Run each run (a single run, or a chunk of a sweep's): the candles of one (instrument, interval,
    range) are loaded once for all of them. Returns each run's final state."""
    from webapp.backtest.engine import BacktestCancelled
    from webapp.backtest.engine import run as run_engine
    from webapp.marketdata import history
    from webapp.strategies import ParamError, create_strategy

    loaded: dict[tuple, Any] = {}
    states: dict[int, str] = {}
    for run_id in run_ids:
        if not _claim(session, run_id):
            states[run_id] = session.execute(sa.select(BacktestRun.state).where(BacktestRun.id == run_id)).scalar()
            continue
        run = session.get(BacktestRun, run_id)
        watch = _Watch(redis, run.id, run.sweep_id)
        key = (run.instrument_id, run.interval, run.start_day, run.end_day)
        try:
            if key not in loaded:
                try:
                    loaded[key] = history.load(session, run.instrument_id, run.interval, run.start_day, run.end_day)
                except history.NoCandles as exc:
                    loaded[key] = exc
            candles = loaded[key]
            if isinstance(candles, Exception):
                raise candles
            strategy = create_strategy(run.strategy, run.params)
            settings = engine_settings(run.settings, run.instrument)
            session.commit()  # no transaction held open while the engine works
            result = run_engine(strategy, candles, settings, progress=watch.progress, cancelled=watch.cancelled)
        except BacktestCancelled:
            session.rollback()
            _finish(session, run_id, CANCELLED, error="Cancelled.")
            states[run_id] = CANCELLED
            continue
        except (history.NoCandles, ParamError, KeyError, ValueError) as exc:
            session.rollback()
            _finish(session, run_id, FAILED, error=_message(exc))
            states[run_id] = FAILED
            continue
        except Exception as exc:
            session.rollback()
            log.exception("backtest_run=%s failed", run_id)
            _finish(session, run_id, FAILED, error=f"The run failed: {type(exc).__name__}: {exc}"[:500])
            states[run_id] = FAILED
            continue
        _finish(
            session,
            run_id,
            DONE,
            progress=1.0,
            bars=len(candles),
            metrics=metrics_json(result.metrics),
            trades_blob=encode_trades(result.trades),
            curve_blob=encode_curve(result.times, result.equity, result.drawdown),
        )
        watch.progress(1.0)
        states[run_id] = DONE
    return states


def _message(exc: Exception) -> str:
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return text[:500]


# --- cancelling --------------------------------------------------------------------------------------


def cancel_run(session, run: BacktestRun, redis) -> bool:
    """Ask the run to stop: a QUEUED run is CANCELLED now, a RUNNING one at the engine's next check.
    False when it had already ended. The caller commits."""
    if run.state in FINISHED:
        return False
    run.cancel_requested = True
    session.execute(
        sa.update(BacktestRun)
        .where(BacktestRun.id == run.id, BacktestRun.state == QUEUED)
        .values(state=CANCELLED, finished_at=utcnow(), error="Cancelled before it started.")
    )
    _flag(redis, CANCEL_KEY.format(id=run.id))
    return True


def cancel_sweep(session, sweep: Sweep, redis) -> int:
    """Every run of the sweep not yet ended: the queued ones at once, the running ones at their next
    check. Returns how many were asked. The caller commits."""
    sweep.cancel_requested = True
    asked = session.execute(
        sa.update(BacktestRun)
        .where(BacktestRun.sweep_id == sweep.id, BacktestRun.state.in_((QUEUED, RUNNING)))
        .values(cancel_requested=True)
    ).rowcount
    session.execute(
        sa.update(BacktestRun)
        .where(BacktestRun.sweep_id == sweep.id, BacktestRun.state == QUEUED)
        .values(state=CANCELLED, finished_at=utcnow(), error="Cancelled before it started.")
    )
    _flag(redis, SWEEP_CANCEL_KEY.format(id=sweep.id))
    return asked


def _flag(redis, key: str) -> None:
    if redis is None:
        return
    try:
        redis.set(key, "1", ex=KEY_TTL)
    except Exception:  # noqa: BLE001 - the row says cancel; a running run then ends on its own
        log.warning("cancel flag %s not written (Redis unavailable)", key)


def fail_unqueued(session, run_ids: list[int], message: str) -> None:
    """Runs whose job could not be queued: FAILED now, never run later without a person asking."""
    session.execute(
        sa.update(BacktestRun)
        .where(BacktestRun.id.in_(run_ids), BacktestRun.state == QUEUED)
        .values(state=FAILED, finished_at=utcnow(), error=message)
    )


def fail_lost(session, run_ids: list[int], message: str) -> None:
    """Runs whose job died (raised, timed out, or its worker was killed): FAILED with the reason, never
    left RUNNING or QUEUED for ever. The caller commits."""
    session.execute(
        sa.update(BacktestRun)
        .where(BacktestRun.id.in_(run_ids), BacktestRun.state.in_((QUEUED, RUNNING)))
        .values(state=FAILED, finished_at=utcnow(), error=message[:500])
    )


# --- reading -----------------------------------------------------------------------------------------


def progress_of(redis, run: BacktestRun) -> float:
    """0..1: what the job last wrote while the run runs, else the row's (Redis away: the row's too)."""
    if run.state == DONE:
        return 1.0
    if run.state != RUNNING or redis is None:
        return run.progress
    try:
        value = redis.get(PROGRESS_KEY.format(id=run.id))
        return float(value) if value is not None else run.progress
    except Exception:  # noqa: BLE001 - Redis away or a value not a number: the row's
        return run.progress


def sweep_counts(session, sweep_id: int) -> dict[str, int]:
    rows = session.execute(
        sa.select(BacktestRun.state, sa.func.count())
        .where(BacktestRun.sweep_id == sweep_id)
        .group_by(BacktestRun.state)
    ).all()
    counts = {state: 0 for state in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)}
    counts.update({state: n for state, n in rows})
    return counts


# --- storing results compactly -----------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def metrics_json(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _json_value(value) for name, value in metrics.items()}


def encode_trades(trades) -> bytes:
    rows = []
    for trade in trades:
        row = []
        for column in TRADE_COLUMNS:
            value = getattr(trade, column)
            row.append(int(value.timestamp()) if isinstance(value, datetime) else _json_value(value))
        rows.append(row)
    return zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 6)


def decode_trades(blob: bytes | None) -> list[dict[str, Any]]:
    """The trades as dicts: times aware UTC, money and prices Decimal."""
    if not blob:
        return []
    trades = []
    for row in json.loads(zlib.decompress(blob)):
        trade = dict(zip(TRADE_COLUMNS, row, strict=True))
        for name in ("entry_time", "exit_time"):
            trade[name] = datetime.fromtimestamp(trade[name], UTC) if trade[name] is not None else None
        for name in ("entry_price", "exit_price", "gross", "charges", "net"):
            trade[name] = Decimal(trade[name]) if trade[name] is not None else None
        trades.append(trade)
    return trades


def downsample(times: np.ndarray, equity: np.ndarray, drawdown: np.ndarray, points: int = CURVE_POINTS):
    """At most `points` points: each bucket keeps its last time and equity and its deepest drawdown."""
    times = np.asarray(times, dtype=np.int64)
    if times.size and np.issubdtype(np.asarray(times).dtype, np.datetime64):
        times = np.asarray(times, dtype="datetime64[s]").astype(np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    drawdown = np.asarray(drawdown, dtype=np.float64)
    n = len(times)
    if n <= points:
        return times, equity, drawdown
    edges = np.linspace(0, n, points + 1).astype(np.int64)
    last = edges[1:] - 1
    deepest = np.array(
        [drawdown[a:b][np.argmax(np.abs(drawdown[a:b]))] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    return times[last], equity[last], deepest


def encode_curve(times, equity, drawdown) -> bytes:
    t, e, d = downsample(times, equity, drawdown)
    n = np.array([len(t)], dtype=np.int64)
    return zlib.compress(
        n.tobytes() + t.astype("<i8").tobytes() + e.astype("<f8").tobytes() + d.astype("<f8").tobytes(), 6
    )


def decode_curve(blob: bytes | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not blob:
        empty = np.array([], dtype=np.float64)
        return np.array([], dtype=np.int64), empty, empty
    raw = zlib.decompress(blob)
    n = int(np.frombuffer(raw[:8], dtype="<i8")[0])
    times = np.frombuffer(raw[8 : 8 + 8 * n], dtype="<i8")
    equity = np.frombuffer(raw[8 + 8 * n : 8 + 16 * n], dtype="<f8")
    drawdown = np.frombuffer(raw[8 + 16 * n : 8 + 24 * n], dtype="<f8")
    return times, equity, drawdown


IST_SECONDS = 19800  # lightweight-charts draws a time as UTC: the chart gets IST wall-clock seconds


def chart_series(run: BacktestRun) -> dict[str, list[dict[str, Any]]]:
    """The equity and drawdown curves for lightweight-charts, times as IST wall clock."""
    times, equity, drawdown = decode_curve(run.curve_blob)
    shifted = (times + IST_SECONDS).tolist()
    return {
        "equity": [{"time": t, "value": round(float(v), 2)} for t, v in zip(shifted, equity.tolist(), strict=True)],
        "drawdown": [{"time": t, "value": round(float(v), 4)} for t, v in zip(shifted, drawdown.tolist(), strict=True)],
    }


TRADE_HEADER = [
    "entry_time_ist",
    "exit_time_ist",
    "side",
    "quantity",
    "entry_price",
    "exit_price",
    "gross",
    "charges",
    "net",
    "exit_reason",
]


def trade_rows(run: BacktestRun) -> tuple[list[str], list[list[Any]]]:
    """The trade list for a CSV: times in IST, money exact."""
    rows = [
        [
            format_ist(trade["entry_time"], "%Y-%m-%d %H:%M:%S").removesuffix(" IST"),
            format_ist(trade["exit_time"], "%Y-%m-%d %H:%M:%S").removesuffix(" IST"),
            "long" if trade["direction"] == 1 else "short",
            trade["quantity"],
            trade["entry_price"],
            trade["exit_price"],
            trade["gross"],
            trade["charges"],
            trade["net"],
            trade["exit_reason"],
        ]
        for trade in decode_trades(run.trades_blob)
    ]
    return list(TRADE_HEADER), rows


def metric_number(value: Any) -> float | None:
    """A stored metric as a number for sorting and the heatmap (None: not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- validating a spec (the form's values, before anything is written) -----------------------------


def check_spec(session, spec: Spec, grid: Mapping[str, list] | None = None) -> dict[str, str]:
    """Every rule a run or a sweep must pass, each failure a message for its field (`param_<name>` for
    the strategy's parameters); nothing is written. The candles must cover the range."""
    from webapp.automation import sizing as sizing_rules
    from webapp.marketdata import history
    from webapp.marketdata.intervals import INTERVALS
    from webapp.strategies import ParamError, create_strategy

    errors: dict[str, str] = {}
    swept = set(grid or {})
    base = {name: value for name, value in spec.params.items() if name not in swept}
    try:
        create_strategy(spec.strategy, base)
    except KeyError:
        errors["strategy"] = "Choose a strategy from the list."
    except ParamError as exc:  # a swept parameter's values were each checked; their combinations by create_sweep
        errors.update({f"param_{name}": message for name, message in exc.errors.items() if name not in swept})
    if grid is not None:
        total = count_combinations(grid)
        if not grid:
            errors["sweep"] = "Enter the values to sweep for at least one parameter."
        elif total > MAX_COMBINATIONS:
            errors["sweep"] = f"{total} combinations: a sweep may run at most {MAX_COMBINATIONS}. Use fewer values."
    if spec.interval not in INTERVALS:
        errors["interval"] = "Choose a candle interval of " + ", ".join(str(i) for i in INTERVALS) + " minutes."
    if spec.end_day < spec.start_day:
        errors["end"] = "The last day must not be before the first."
    settings = spec.settings
    if settings.get("sizing") == sizing_rules.RISK_PCT and not (
        (metric_number(spec.params.get("stop_pct")) or 0) > 0 or (metric_number(spec.params.get("stop_atr")) or 0) > 0
    ):  # a value that is not a number has its own message (param_<name>) above
        errors["sizing"] = "Risk % sizing needs a stop: set the strategy's stop-loss % or × ATR."
    if (
        settings.get("sizing") in (sizing_rules.CAPITAL_PCT, sizing_rules.RISK_PCT)
        and Decimal(str(settings.get("sizing_value") or 0)) > 100
    ):
        errors["sizing_value"] = "A percentage of capital is at most 100."
    instrument = session.get(Instrument, spec.instrument_id)
    if instrument is None:
        errors["instrument_id"] = "Choose an instrument from the list."
    else:
        for name, message in engine_settings(spec.settings, instrument).errors().items():
            field = "instrument_id" if name in ("tick_size", "lot_size", "exchange") else name
            errors.setdefault(
                field,
                f"{message[0].upper()}{message[1:]}."
                if field == name
                else f"The instrument's {name.replace('_', ' ')} {message}.",
            )
    if instrument is not None and "interval" not in errors and "end" not in errors:
        covered = history.coverage(session, spec.instrument_id, spec.interval)
        if covered is None:
            errors["interval"] = (
                f"No {spec.interval}-minute candles are stored for {instrument.tradingsymbol}: load its history "
                "first (flask history fetch, import-csv or simulate), or choose another interval."
            )
        else:
            first, last, count = covered
            start, end = range_utc(spec.start_day, spec.end_day)
            if first >= end or last < start:
                errors["start"] = (
                    f"No {spec.interval}-minute candles of {instrument.tradingsymbol} in this range: "
                    f"stored from {_day(first)} to {_day(last)} ({count:,} bars)."
                )
    return errors


def _day(value: datetime) -> str:
    return value.astimezone(IST).strftime("%d %b %Y")


def coverage_text(session, instrument_id: int, interval: int) -> str:
    from webapp.marketdata import history

    covered = history.coverage(session, instrument_id, interval)
    if covered is None:
        return f"no {interval}-minute candles stored"
    first, last, count = covered
    return f"{interval}-minute candles from {_day(first)} to {_day(last)} ({count:,} bars)"


def default_range(session, instrument_id: int, interval: int) -> tuple[date, date] | None:
    """The last year of the stored candles (IST days), or None without any."""
    from webapp.marketdata import history

    covered = history.coverage(session, instrument_id, interval)
    if covered is None:
        return None
    first, last, _ = covered
    end = last.astimezone(IST).date()
    return max(first.astimezone(IST).date(), end - timedelta(days=365)), end
