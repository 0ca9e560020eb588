"""The runner: at each candle close, every ACTIVE deployment on that instrument and interval is
evaluated once, and its signal becomes one batch across the deployment's clients (their paper twins
in paper mode) through the same ticket → risk review → batch → engine path as a person's ticket.

Exactly once per (deployment, instrument, bar): the evaluation cursor `DeploymentInstrument.last_bar`
moves forward with ONE conditional UPDATE (`WHERE last_bar IS NULL OR last_bar < :bar`) in the
transaction that stores the signal and its batch. Of two evaluators, one moves it; the other finds
nothing to move and writes nothing. A worker killed before that commit leaves the cursor where it was:
the catch-up sweep (cron) evaluates the bar again — but a signal whose bar closed longer ago than the
send deadline is stored "expired: not sent late" and makes no batch (a market order is never sent
late without a person choosing it).

The position a signal acts on, per client: the deployment's own net quantity in that instrument (its
batches' children, in-flight ones counted at their full quantity, plus exits its stop rules fired),
bounded by what the client's book actually holds once nothing is in flight — so a position closed by a
kill switch or square-off is not sold again. Clients can differ (one refused by risk stays flat while
the others enter); each gets `next_side` from its own position, and the orders of one side form one
ticket (two only when clients' positions point different ways).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError

from webapp.automation import sizing, stops, twins
from webapp.automation.alerts import announce, raise_alert
from webapp.events import publish
from webapp.extensions import db
from webapp.marketdata.intervals import INTERVALS, bucket_end, bucket_start, closes_bucket, load_series
from webapp.marketdata.store import read_quote
from webapp.models import (
    Batch,
    Candle,
    Client,
    Deployment,
    DeploymentInstrument,
    DeskState,
    FundsSnapshot,
    Instrument,
    Order,
    Position,
    RiskAlert,
    StopRule,
    StrategySignal,
    User,
)
from webapp.models.automation import ACTIVE, PAUSED
from webapp.models.base import in_ids
from webapp.money import round_to_tick, rupees
from webapp.strategies import Action, Signal, create_strategy, next_side
from webapp.tasks import QUEUE_STRATEGIES, enqueue
from webapp.timeutil import IST, MARKET_CLOSE, UTC, as_utc, utcnow
from webapp.trading import states
from webapp.trading.batch_requests import queue_send
from webapp.trading.exits import Holder, create_exit_batch
from webapp.trading.risk import start_of_day
from webapp.trading.tickets import Ticket, create_batch, review_ticket
from webapp.trading.unsent import send_deadline

log = logging.getLogger(__name__)

EXPIRED = "expired: not sent late"
ANNOUNCED_KEY = "fanout:eval:{instrument}:{interval}:{bar}"  # one evaluation job per bar, however often announced
SWEPT_KEY = "fanout:eval:swept:{instrument}:{interval}:{bar}"
ANNOUNCED_TTL = 3600
SWEEP_GRACE = timedelta(seconds=3)  # a bar closed this recently is left to its announcement
SWEEP_REPEAT = 10  # seconds before the sweep queues the same bar again
SQUAREOFF_KIND = "deployment.squareoff"
ANNOUNCE_CHUNKS = 2  # evaluation jobs per closed bucket: the Procfile's strategies workers share them
EVAL_JOB = {"result_ttl": 60, "failure_ttl": 3600}


# ----------------------------------------------------------------------------- announcing bars


def active_pairs(instrument_ids: Iterable[int] | None = None) -> set[tuple[int, int]]:
    """(instrument id, interval) traded by some ACTIVE deployment."""
    query = (
        sa.select(DeploymentInstrument.instrument_id, Deployment.interval)
        .join(Deployment, Deployment.id == DeploymentInstrument.deployment_id)
        .where(Deployment.state == ACTIVE)
        .distinct()
    )
    if instrument_ids is not None:
        query = query.where(in_ids(DeploymentInstrument.instrument_id, list(instrument_ids)))
    return {(i, n) for i, n in db.session.execute(query).all()}


def deployed_instruments() -> sa.Select:
    """The instruments ACTIVE deployments trade, as a SELECT of ids (the feed subscribes to them)."""
    return (
        sa.select(DeploymentInstrument.instrument_id)
        .join(Deployment, Deployment.id == DeploymentInstrument.deployment_id)
        .where(Deployment.state == ACTIVE)
    )


def closed_buckets(closed: Iterable[tuple[int, datetime]]) -> list[tuple[int, int, datetime]]:
    """(instrument id, interval, bucket start) of every bucket these closed 1-minute bars close, for
    the intervals some ACTIVE deployment trades that instrument at."""
    closed = list(closed)
    if not closed:
        return []
    pairs = active_pairs({i for i, _ in closed})
    return [
        (instrument_id, interval, bucket_start(minute, interval))
        for instrument_id, minute in closed
        for interval in INTERVALS
        if (instrument_id, interval) in pairs and closes_bucket(minute, interval)
    ]


def eval_job_id(instrument_id: int, interval: int, bar: datetime, prefix: str = "eval") -> str:
    return f"{prefix}-{instrument_id}-{interval}-{int(as_utc(bar).timestamp())}"


def _enqueue_once(redis, key: str, ttl: int, job_id: str, instrument_id: int, interval: int, bar: datetime) -> bool:
    """Queue the evaluation unless this key says it already was (SET NX): True when queued."""
    if not redis.set(key, "1", nx=True, ex=ttl):
        return False
    try:
        enqueue(
            "jobs.automation.evaluate",
            instrument_id,
            interval,
            as_utc(bar).isoformat(),
            queue_name=QUEUE_STRATEGIES,
            job_id=job_id,
            **EVAL_JOB,
        )
    except RedisError:
        redis.delete(key)  # best effort; the sweep finds the bar anyway
        raise
    return True


def announce_closed(redis, closed: Iterable[tuple[int, datetime]]) -> int:
    """The feed's candle close: every (instrument, interval, bucket) it closes is evaluated once — a
    SET NX key per bucket, so a repeated announcement of the same bar queues nothing. The instruments
    that closed the same bucket together are split into ANNOUNCE_CHUNKS jobs (deterministic ids), not
    one job each: a job's own cost (its Redis round trips, a deployments query, a commit) was most of a
    50-instrument close (docs/BENCHMARKS.md). How many (instrument, interval, bucket) were queued."""
    fresh: dict[tuple[int, datetime], list[int]] = {}

    def key(instrument_id: int, interval: int, bar: datetime) -> str:
        return ANNOUNCED_KEY.format(instrument=instrument_id, interval=interval, bar=int(bar.timestamp()))

    for instrument_id, interval, bar in closed_buckets(closed):
        if redis.set(key(instrument_id, interval, bar), "1", nx=True, ex=ANNOUNCED_TTL):
            fresh.setdefault((interval, bar), []).append(instrument_id)
    for (interval, bar), instrument_ids in fresh.items():
        for n in range(min(ANNOUNCE_CHUNKS, len(instrument_ids))):
            chunk = instrument_ids[n::ANNOUNCE_CHUNKS]
            try:
                enqueue(
                    "jobs.automation.evaluate_many",
                    chunk,
                    interval,
                    as_utc(bar).isoformat(),
                    queue_name=QUEUE_STRATEGIES,
                    job_id=f"{eval_job_id(chunk[0], interval, bar)}-{n}",
                    **EVAL_JOB,
                )
            except RedisError:
                for instrument_id in chunk:  # best effort; the sweep finds the bars anyway
                    redis.delete(
                        ANNOUNCED_KEY.format(instrument=instrument_id, interval=interval, bar=int(bar.timestamp()))
                    )
                raise
    return sum(len(ids) for ids in fresh.values())


# ----------------------------------------------------------------------------- the catch-up sweep


def latest_closed_bar(instrument_id: int, interval: int) -> datetime | None:
    """The start of the instrument's last `interval` bar whose every minute is stored."""
    minute = db.session.execute(
        sa.select(sa.func.max(Candle.start)).where(Candle.instrument_id == instrument_id, Candle.interval == 1)
    ).scalar()
    if minute is None:
        return None
    minute = as_utc(minute)
    if closes_bucket(minute, interval):
        return bucket_start(minute, interval)
    series = load_series(db.session, instrument_id, interval, 1, until=minute + timedelta(minutes=1))
    return datetime.fromtimestamp(int(series.time[-1]), UTC) if len(series) else None


def behind(now: datetime | None = None) -> list[tuple[int, int, datetime]]:
    """(instrument, interval, bar) where some ACTIVE deployment's cursor is behind the latest closed
    bar, and that bar closed long enough ago that its own announcement should have run."""
    now = now or utcnow()
    rows = db.session.execute(
        sa.select(DeploymentInstrument.instrument_id, Deployment.interval, DeploymentInstrument.last_bar)
        .join(Deployment, Deployment.id == DeploymentInstrument.deployment_id)
        .where(Deployment.state == ACTIVE)
    ).all()
    cursors: dict[tuple[int, int], list[datetime | None]] = {}
    for instrument_id, interval, last_bar in rows:
        cursors.setdefault((instrument_id, interval), []).append(last_bar and as_utc(last_bar))
    found = []
    for (instrument_id, interval), lasts in cursors.items():
        bar = latest_closed_bar(instrument_id, interval)
        if bar is None or bucket_end(bar, interval) > now - SWEEP_GRACE:
            continue
        if any(last is None or last < bar for last in lasts):
            found.append((instrument_id, interval, bar))
    return found


def sweep(redis, now: datetime | None = None) -> int:
    """Queue an evaluation for every bar some ACTIVE deployment has not evaluated (a worker died, the
    announcement was lost, the deployment was just started). How many were queued."""
    queued = 0
    for instrument_id, interval, bar in behind(now):
        key = SWEPT_KEY.format(instrument=instrument_id, interval=interval, bar=int(bar.timestamp()))
        job_id = f"{eval_job_id(instrument_id, interval, bar, 'sweep')}-{int((now or utcnow()).timestamp())}"
        queued += _enqueue_once(redis, key, SWEEP_REPEAT, job_id, instrument_id, interval, bar)
    return queued


# ----------------------------------------------------------------------------- evaluating a bar


@dataclass
class Evaluation:
    deployment_id: int
    signal_id: int | None = None
    batch_ids: tuple[int, ...] = ()
    outcome: str = ""
    alerts: tuple[RiskAlert, ...] = ()


def evaluate_bar(
    instrument_id: int, interval: int, bar: datetime, *, config: Mapping[str, Any], redis, now: datetime | None = None
) -> list[Evaluation]:
    """Evaluate every ACTIVE deployment on this instrument and interval at this bar. The candles are
    read once for all of them; the cursors of those that signal nothing move together in one
    transaction, and each signal is stored with its batch in its own: one deployment that fails (a
    strategy that raises, a refusal, a database error) never stops the others."""
    return _evaluate(instrument_id, interval, as_utc(bar), None, config, redis, now)


def evaluate_one(
    deployment_id: int,
    instrument_id: int,
    bar: datetime,
    *,
    config: Mapping[str, Any],
    redis,
    now: datetime | None = None,
) -> Evaluation | None:
    """One (deployment, instrument, bar). None when there was nothing to do (not ACTIVE, already
    evaluated by someone else). Commits; sends and events go out after the commit."""
    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None:
        return None
    results = _evaluate(instrument_id, deployment.interval, as_utc(bar), [deployment_id], config, redis, now)
    return results[0] if results else None


@dataclass
class _Due:
    deployment: Deployment
    cursor_id: int
    strategy: Any
    deployment_id: int = 0  # read before the rollback expires `deployment` (a reload each cost a query)

    def __post_init__(self) -> None:
        self.deployment_id = self.deployment.id


def _due(instrument_id: int, interval: int, bar: datetime, deployment_ids: list[int] | None) -> list[_Due]:
    """The ACTIVE deployments among these (None: every one on this instrument and interval) whose
    cursor on this instrument is before `bar`."""
    if deployment_ids is not None and not deployment_ids:
        return []
    query = (
        sa.select(Deployment, DeploymentInstrument.id, DeploymentInstrument.last_bar)
        .join(DeploymentInstrument, DeploymentInstrument.deployment_id == Deployment.id)
        .where(Deployment.state == ACTIVE, DeploymentInstrument.instrument_id == instrument_id)
        .order_by(Deployment.id)
    )
    query = (
        query.where(in_ids(Deployment.id, deployment_ids))
        if deployment_ids is not None
        else query.where(Deployment.interval == interval)
    )
    rows = db.session.execute(query).all()
    return [_Due(d, cursor_id, None) for d, cursor_id, last in rows if last is None or as_utc(last) < bar]


def _evaluate(
    instrument_id: int,
    interval: int,
    bar: datetime,
    deployment_ids: list[int] | None,
    config: Mapping[str, Any],
    redis,
    now: datetime | None,
) -> list[Evaluation]:
    due, failed = [], []
    for item in _due(instrument_id, interval, bar, deployment_ids):
        try:
            item.strategy = create_strategy(item.deployment.strategy, item.deployment.params)
            due.append(item)
        except Exception as exc:  # noqa: BLE001  (parameters its strategy no longer takes: pause it, alone)
            failed.append((item.deployment.id, f"{type(exc).__name__}: {exc}"))
    needed = max((item.strategy.warmup + 1 for item in due), default=0)
    series = load_series(db.session, instrument_id, interval, needed, until=bucket_end(bar, interval))
    bar_epoch = int(bar.timestamp())
    quiet, signalled = [], []
    for item in due:
        window = series.tail(item.strategy.warmup + 1)
        ready = len(window) == item.strategy.warmup + 1 and int(window.time[-1]) == bar_epoch
        try:
            signal = item.strategy.signal_at_last(window) if ready else None
        except Exception as exc:  # noqa: BLE001  (the strategy failed on these candles: pause it, alone)
            failed.append((item.deployment.id, f"{type(exc).__name__}: {exc}"))
            continue
        if signal is None:
            quiet.append(item)
        else:
            signalled.append((item, signal, float(window.close[-1])))
    db.session.rollback()  # what was read is not held while others write
    moved = _claim_many([item.cursor_id for item in quiet], bar)
    results = [Evaluation(item.deployment_id) for item in quiet if item.cursor_id in moved]
    db.session.commit()
    for deployment_id, error in failed:
        results.append(_pause(deployment_id, f"The strategy failed at the bar of {_ist(bar)}: {error}", redis))
    for item, signal, close in signalled:
        deployment_id = item.deployment_id
        try:
            result = _store_signal(deployment_id, item.cursor_id, instrument_id, bar, signal, close, config, redis, now)
        except Exception:  # one deployment's trouble is its own: the sweep tries it again
            db.session.rollback()
            log.exception(
                "op=evaluate deployment=%s instrument=%s bar=%s result=error", deployment_id, instrument_id, bar
            )
            continue
        if result is not None:
            results.append(result)
    return results


def _store_signal(
    deployment_id: int,
    cursor_id: int,
    instrument_id: int,
    bar: datetime,
    signal: Signal,
    close: float,
    config: Mapping[str, Any],
    redis,
    now: datetime | None,
) -> Evaluation | None:
    """The cursor moved, the signal stored and its batch written, in one transaction; None when
    another evaluator moved the cursor first (it wrote the signal)."""
    if not _claim(cursor_id, bar):
        db.session.rollback()
        return None
    deployment = db.session.get(Deployment, deployment_id)
    instrument = db.session.get(Instrument, instrument_id)
    row = _signal_row(deployment, instrument, bar, signal, close)
    stored = _record(deployment, instrument, row, signal, bucket_end(bar, deployment.interval), config, redis, now)
    db.session.commit()
    stored.announce(redis)
    return stored.evaluation


def act_on_external_signal(
    deployment_id: int,
    signals: Sequence[tuple[int, Action, Decimal]],
    at: datetime,
    *,
    claim: Callable[[], bool],
    settle: Callable[[list[Evaluation]], None],
    config: Mapping[str, Any],
    redis,
    now: datetime | None = None,
) -> list[Evaluation]:
    """Signals from outside the strategy (a webhook alert received `at`): for each (instrument, action,
    price), a StrategySignal row of the deployment at bar_time `at`, acted on as the strategy's own
    (_act: the automation switch, kill switches, the window and limits judged at `at`, sizing, twins,
    one batch) — or refused when the deployment is not ACTIVE. The bar cursor does not move.

    One transaction: `claim()` runs first (the source's conditional UPDATE: False → rolled back, nothing
    stored or sent, []), then the rows and batches, then `settle(evaluations)` (the source records
    them), one commit; sends, alerts and events go out after it. An alert older than the send
    deadline at `now` is stored expired, never sent late."""
    if not claim():
        db.session.rollback()
        return []
    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None:
        db.session.rollback()
        return []
    refusal = "" if deployment.state == ACTIVE else f"refused: the deployment is {deployment.state.lower()}"
    stored = []
    for instrument_id, action, price in signals:
        instrument = db.session.get(Instrument, instrument_id)
        signal = Signal(index=-1, action=Action(action), values={})
        row = _signal_row(deployment, instrument, at, signal, price)
        stored.append(_record(deployment, instrument, row, signal, as_utc(at), config, redis, now, refusal))
    results = [s.evaluation for s in stored]
    settle(results)
    db.session.commit()
    for item in stored:
        item.announce(redis)
    return results


@dataclass
class _Stored:
    evaluation: Evaluation
    batches: list[Batch]
    stops_changed: bool

    def announce(self, redis) -> None:
        e = self.evaluation
        _after_commit(redis, e.deployment_id, e.signal_id, self.batches, list(e.alerts), self.stops_changed)


def _record(
    deployment: Deployment,
    instrument: Instrument,
    row: StrategySignal,
    signal: Signal,
    closed_at: datetime,
    config: Mapping[str, Any],
    redis,
    now: datetime | None,
    refusal: str = "",
) -> _Stored:
    """The signal row stored and acted on (or refused), not committed: announce() after the commit."""
    db.session.add(row)
    db.session.flush()
    alerts: list[RiskAlert] = []
    batches: list[Batch] = []
    outcome = refusal or _act(
        deployment, instrument, row, signal, closed_at, config, redis, now or utcnow(), alerts, batches
    )
    row.outcome = outcome[:300]
    if batches:
        row.batch_id = max(batches, key=lambda b: len(b.orders)).id
    levels = bool(batches) and any(v is not None for v in (row.stop, row.target, row.trail))
    evaluation = Evaluation(deployment.id, row.id, tuple(b.id for b in batches), row.outcome, tuple(alerts))
    return _Stored(evaluation, batches, levels)


def _claim(cursor_id: int, bar: datetime) -> bool:
    """Move the cursor to `bar` unless it is there already: one conditional UPDATE."""
    table = DeploymentInstrument.__table__
    moved = db.session.execute(
        sa.update(table)
        .where(table.c.id == cursor_id, sa.or_(table.c.last_bar.is_(None), table.c.last_bar < bar))
        .values(last_bar=bar)
    )
    return moved.rowcount == 1


def _claim_many(cursor_ids: list[int], bar: datetime) -> set[int]:
    """_claim for many cursors in one statement (the deployments that signalled nothing): the ids moved."""
    if not cursor_ids:
        return set()
    table = DeploymentInstrument.__table__
    moved = db.session.execute(
        sa.update(table)
        .where(in_ids(table.c.id, cursor_ids), sa.or_(table.c.last_bar.is_(None), table.c.last_bar < bar))
        .values(last_bar=bar)
        .returning(table.c.id)
    )
    return set(moved.scalars())


def _after_commit(
    redis, deployment_id: int, signal_id: int, batches: list[Batch], alerts: list[RiskAlert], stops_changed: bool
) -> None:
    for batch in batches:
        if any(child.status == states.NEW for child in batch.orders):
            queue_send(batch.id)
    if redis is not None:
        if stops_changed:
            stops.notify_changed(redis)
        publish(redis, "signal.created", deployment=deployment_id, signal=signal_id)
        for alert in alerts:
            announce(redis, alert)


def _ist(at: datetime) -> str:
    return f"{as_utc(at).astimezone(IST):%d %b %H:%M} IST"


def _price(value: float | Decimal | None, tick: Decimal) -> Decimal | None:
    if isinstance(value, Decimal):  # a price from outside (a webhook's): exact, never through a float
        return round_to_tick(value, tick) if value.is_finite() else None
    if value is None or not math.isfinite(value):
        return None
    return round_to_tick(Decimal(repr(float(value))), tick)


def _signal_row(
    deployment: Deployment, instrument: Instrument, bar: datetime, signal: Signal, close: float | Decimal
) -> StrategySignal:
    tick = instrument.tick_size or Decimal("0.05")
    values = {k: (float(v) if v is not None and math.isfinite(float(v)) else None) for k, v in signal.values.items()}
    return StrategySignal(
        deployment_id=deployment.id,
        instrument_id=instrument.id,
        bar_time=bar,
        action=Action(signal.action).value,
        price=_price(close, tick),
        stop=_price(signal.stop, tick),
        target=_price(signal.target, tick),
        trail=_price(signal.trail, tick),
        values=values,
    )


def _pause(deployment_id: int, reason: str, redis) -> Evaluation:
    """PAUSED with the reason, and the alert; committed."""
    deployment = db.session.get(Deployment, deployment_id)
    alerts = []
    if deployment is not None and deployment.state == ACTIVE:
        deployment.state, deployment.state_reason = PAUSED, reason[:300]
        alerts.append(pause_alert(deployment, reason))
        db.session.commit()
        if redis is not None:
            for alert in alerts:
                announce(redis, alert)
    return Evaluation(deployment_id, outcome=reason, alerts=tuple(alerts))


def pause_alert(deployment: Deployment, reason: str) -> RiskAlert:
    return raise_alert(
        "deployment.paused",
        f"Deployment {deployment.name} paused: {reason}",
        level="red",
        deployment_id=deployment.id,
        detail={"reason": reason},
    )


# ----------------------------------------------------------------------------- a signal → its batch


def _act(
    deployment: Deployment,
    instrument: Instrument,
    row: StrategySignal,
    signal: Signal,
    closed_at: datetime,
    config: Mapping[str, Any],
    redis,
    now: datetime,
    alerts: list[RiskAlert],
    batches: list[Batch],
) -> str:
    """What becomes of a stored signal: a batch (appended to `batches`) or why none. `closed_at`: when
    the signal was given (its bar's close; a webhook alert's receipt) — the deadline and the window
    are judged at it."""
    if now - closed_at > send_deadline(config):
        return EXPIRED
    desk = db.session.get(DeskState, 1)
    entry = Action(signal.action) in (Action.ENTER_LONG, Action.ENTER_SHORT)
    if desk is not None and desk.automation_off:
        return "refused: automation is off for the desk"
    if entry and desk is not None and desk.kill_switch:
        return "refused: the desk kill switch is on"
    if refusal := window_refusal(deployment, closed_at, entry):
        return refusal
    if twins.is_paper(deployment):
        twins.ensure_twins(deployment)
    links = list(deployment.clients)
    traders = {dc.id: (dc.twin if twins.is_paper(deployment) else dc.client) for dc in links}
    client_ids = [c.id for c in traders.values() if c is not None]
    held = holdings(deployment.id, instrument.id, deployment.product, client_ids)
    if entry and (reason := limit_breached(deployment, instrument.id, held)):
        deployment.state, deployment.state_reason = PAUSED, reason[:300]
        alerts.append(pause_alert(deployment, reason))
        return f"refused: deployment paused — {reason}"
    user = db.session.get(User, deployment.created_by_id) if deployment.created_by_id else None
    if user is None:
        return "refused: the deployment has no creator to act for"
    price = row.price
    capital = _available([c for c in client_ids])
    plans: dict[str, dict[int, int]] = {}
    opening: dict[int, int] = {}
    reduces: dict[int, bool] = {}
    notes: list[str] = []
    for dc in links:
        client = traders[dc.id]
        if client is None:
            notes.append(f"{dc.client.name}: no paper twin")
            continue
        current = held.get(client.id, 0)
        side = (current > 0) - (current < 0)
        target = next_side(side, signal.action, deployment.allow_short)
        if target == side:
            continue
        closing = abs(current) if side else 0
        entering = 0
        if target and client is not dc.client and dc.client.kill_switch:  # a twin stops with its client
            notes.append(f"{dc.client.name}: the client's kill switch is on: no entry on its paper twin")
        elif target:
            entering, why = sizing.quantity(
                deployment.sizing,
                dc.sizing_value if dc.sizing_value is not None else deployment.sizing_value,
                price=price,
                lot_size=instrument.lot_size,
                capital=dc.capital if dc.capital is not None else capital.get(client.id),
                stop=row.stop,
                cap=client.max_quantity,
                max_value=client.max_order_value,
            )
            if not entering:
                notes.append(f"{client.name}: {why}")
        if closing + entering:
            plans.setdefault("BUY" if target > side else "SELL", {})[client.id] = closing + entering
            opening[client.id], reduces[client.id] = entering * target, entering == 0
    if not plans:
        return "; ".join(["nothing to do: every client is already where the signal puts it", *notes])
    clients = {c.id: c for c in traders.values() if c is not None}
    parts = []
    for action, quantities in sorted(plans.items()):
        ticket = Ticket(
            ticket_id=f"signal-{row.id}-{action}",
            action=action,
            instrument_id=instrument.id,
            product=deployment.product,
            order_type="MARKET",
            quantities=quantities,
            kind="signal",
            note=f"{deployment.name}: {row.action} at the {_ist(row.bar_time)} bar"[:200],
        )
        review = review_ticket(user, ticket, [clients[i] for i in quantities], redis, reduces=reduces)
        if not review.checks:
            problems = [*review.errors.values(), *review.quantity_errors.values()]
            parts.append(f"{action}: no batch — {'; '.join(problems) or 'no price'}")
            continue
        batch = create_batch(user, ticket, review)
        batch.deployment_id = deployment.id
        db.session.flush()
        db.session.refresh(batch)
        batches.append(batch)
        went = [c for c in review.checks if not c.block]
        refused = [c for c in review.checks if c.block]
        text = f"batch #{batch.id}: {len(went)} {action} sent"
        if refused:
            text += f", {len(refused)} refused (" + "; ".join(f"{c.client.name}: {c.block}" for c in refused) + ")"
        parts.append(text)
        armed = _arm_stops(deployment, instrument, row, [c.client.id for c in went], opening)
        if armed:
            parts.append(armed)
    return "; ".join(parts + notes)


def _arm_stops(
    deployment: Deployment, instrument: Instrument, row: StrategySignal, client_ids: list[int], opening: dict[int, int]
) -> str:
    """The signal's stop / target / trail, armed for each client that enters (H2's stop rules)."""
    if row.stop is None and row.target is None and row.trail is None:
        return ""
    armed, refused = 0, ""
    for client_id in client_ids:
        quantity = opening.get(client_id, 0)
        if not quantity:
            continue
        try:
            stops.arm(
                client_id=client_id,
                instrument_id=instrument.id,
                product=deployment.product,
                direction=1 if quantity > 0 else -1,
                stop=row.stop,
                target=row.target,
                trail=row.trail,
                quantity=abs(quantity),
                source="signal",
                deployment_id=deployment.id,
                price=row.price,
            )
        except stops.StopError as exc:  # levels on the wrong side of the close: the entry goes, unprotected
            refused = "stops not armed: " + "; ".join(exc.errors.values())
            continue
        armed += 1
    return refused or (f"stops armed for {armed}" if armed else "")


def window_refusal(deployment: Deployment, closed_at: datetime, entry: bool) -> str:
    """Why a signal at `closed_at` is outside the deployment's IST window ("" when it may act).
    Entries run from window_start to last_entry on the deployment's days; exits go any time."""
    local = as_utc(closed_at).astimezone(IST)
    if not entry:
        return ""
    if local.weekday() not in deployment.day_list:
        return f"refused: {local:%A} is not one of the deployment's days"
    if local.time() < deployment.window_start:
        return f"refused: before the window opens at {deployment.window_start:%H:%M} IST"
    if local.time() > deployment.last_entry:
        return f"refused: no entries after {deployment.last_entry:%H:%M} IST"
    return ""


def _available(client_ids: list[int]) -> dict[int, Decimal]:
    rows = db.session.execute(
        sa.select(
            FundsSnapshot.client_id, FundsSnapshot.available_cash, FundsSnapshot.collateral, FundsSnapshot.margin_used
        ).where(in_ids(FundsSnapshot.client_id, client_ids))
    ).all()
    return {row.client_id: FundsSnapshot.available_margin.fget(row) for row in rows}


# ----------------------------------------------------------------------------- the deployment's book


def deployment_batches(deployment_id: int) -> sa.Select:
    """Its signals' batches and the exits its stop rules fired."""
    return sa.select(Batch.id).where(
        sa.or_(
            Batch.deployment_id == deployment_id,
            Batch.id.in_(sa.select(StopRule.batch_id).where(StopRule.deployment_id == deployment_id)),
        )
    )


def _signed(order_side: str, quantity: int) -> int:
    return quantity if order_side == "BUY" else -quantity


def holdings(
    deployment_id: int, instrument_id: int | None, product: str, client_ids: list[int]
) -> dict[int, int] | dict[tuple[int, int], int]:
    """The deployment's net quantity per client (+ long, − short) in one instrument — or per
    (client, instrument) when `instrument_id` is None. In-flight children count at their full
    quantity (a MARKET order is about to fill); once nothing is in flight, it is bounded by what the
    client's book holds (an exit nobody tagged with the deployment — a kill switch — is seen)."""
    if not client_ids:
        return {}
    query = sa.select(
        Order.client_id, Order.instrument_id, Order.side, Order.status, Order.quantity, Order.filled_quantity
    ).where(Order.batch_id.in_(deployment_batches(deployment_id)), in_ids(Order.client_id, client_ids))
    if instrument_id is not None:
        query = query.where(Order.instrument_id == instrument_id)
    net: dict[tuple[int, int], int] = {}
    pending: set[tuple[int, int]] = set()
    for client_id, inst, side, status, quantity, filled in db.session.execute(query):
        key = (client_id, inst)
        live = status in states.IN_FLIGHT or status in states.AT_BROKER
        net[key] = net.get(key, 0) + _signed(side, quantity if live else filled)
        if live:
            pending.add(key)
    actual = {
        (c, i): q
        for c, i, q in db.session.execute(
            sa.select(Position.client_id, Position.instrument_id, Position.quantity).where(
                in_ids(Position.client_id, client_ids), Position.product == product
            )
        )
    }
    result: dict[tuple[int, int], int] = {}
    for key, quantity in net.items():
        if quantity and key not in pending:
            held = actual.get(key, 0)
            quantity = 0 if held * quantity <= 0 else (1 if quantity > 0 else -1) * min(abs(quantity), abs(held))
        if quantity:
            result[key] = quantity
    if instrument_id is None:
        return result
    return {client_id: q for (client_id, _), q in result.items()}


def deployment_pnl(deployment: Deployment, redis=None) -> dict[int, Decimal]:
    """Each trading client's P&L on this deployment's orders: cash of its fills, plus what is still
    held marked at the feed's price (else the master's close). Exact Decimals."""
    ids = [c.id for c in trading_clients(deployment)]
    if not ids:
        return {}
    rows = db.session.execute(
        sa.select(Order.client_id, Order.instrument_id, Order.side, Order.filled_quantity, Order.average_price).where(
            Order.batch_id.in_(deployment_batches(deployment.id)),
            in_ids(Order.client_id, ids),
            Order.filled_quantity > 0,
        )
    ).all()
    cash: dict[int, Decimal] = {}
    held: dict[tuple[int, int], int] = {}
    for client_id, instrument_id, side, filled, average in rows:
        cash[client_id] = cash.get(client_id, Decimal(0)) - _signed(side, filled) * (average or Decimal(0))
        held[(client_id, instrument_id)] = held.get((client_id, instrument_id), 0) + _signed(side, filled)
    marks = {}
    for instrument in db.session.execute(
        sa.select(Instrument).where(Instrument.id.in_({i for _, i in held} or {0}))
    ).scalars():
        quote = read_quote(redis, instrument) if redis is not None else None
        marks[instrument.id] = quote.last_price if quote else (instrument.last_price or Decimal(0))
    for (client_id, instrument_id), quantity in held.items():
        cash[client_id] = cash.get(client_id, Decimal(0)) + quantity * marks.get(instrument_id, Decimal(0))
    return cash


def trading_clients(deployment: Deployment) -> list[Client]:
    """The clients its orders go to: the twins in paper mode, the clients themselves live."""
    if twins.is_paper(deployment):
        return [dc.twin for dc in deployment.clients if dc.twin is not None]
    return [dc.client for dc in deployment.clients]


def limit_breached(deployment: Deployment, instrument_id: int, held: Mapping[int, int], redis=None) -> str:
    """The deployment's own limits, before an entry: max orders a day (its batches today), max open
    positions (instruments it holds), max loss (its clients' P&L on its orders)."""
    if deployment.max_orders_per_day:
        today = db.session.execute(
            sa.select(sa.func.count())
            .select_from(Batch)
            .where(Batch.deployment_id == deployment.id, Batch.created_at >= start_of_day())
        ).scalar_one()
        if today >= deployment.max_orders_per_day:
            return f"it has placed its {deployment.max_orders_per_day} orders for today"
    if deployment.max_open_positions and not any(held.values()):
        ids = [c.id for c in trading_clients(deployment)]
        open_instruments = {i for (_, i) in holdings(deployment.id, None, deployment.product, ids)}
        if len(open_instruments) >= deployment.max_open_positions:
            return f"it holds its limit of {deployment.max_open_positions} open positions"
    if deployment.max_loss:
        total = sum(deployment_pnl(deployment, redis).values(), Decimal(0))
        if total <= -deployment.max_loss:
            return f"its loss ₹{rupees(-total)} has reached its limit of ₹{rupees(deployment.max_loss)}"
    return ""


# ----------------------------------------------------------------------------- the deployment's square-off


def squareoff_due(now: datetime | None = None) -> list[int]:
    """Deployments whose square-off time has come today (IST) and that have not squared off today."""
    now = now or utcnow()
    local = now.astimezone(IST)
    done = sa.select(RiskAlert.deployment_id).where(
        RiskAlert.kind == SQUAREOFF_KIND, RiskAlert.created_at >= start_of_day(now)
    )
    rows = db.session.execute(
        sa.select(Deployment.id, Deployment.squareoff_at).where(
            Deployment.squareoff_at.is_not(None), Deployment.product == "MIS", Deployment.id.not_in(done)
        )
    ).all()
    return [d for d, at in rows if at <= local.time() <= MARKET_CLOSE]


def square_off(deployment_id: int, redis, now: datetime | None = None) -> Batch | None:
    """Exit the deployment's MIS positions (once a day: its alert marks it done). Commits, then sends."""
    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None or deployment_id not in squareoff_due(now):
        db.session.rollback()
        return None
    clients = {c.id: c for c in trading_clients(deployment)}
    held = holdings(deployment.id, None, deployment.product, list(clients))
    instruments = {
        i.id: i
        for i in db.session.execute(
            sa.select(Instrument).where(Instrument.id.in_({i for _, i in held} or {0}))
        ).scalars()
    }
    legs = [(Holder(clients[c], instruments[i], deployment.product, q), abs(q)) for (c, i), q in sorted(held.items())]
    batch = create_exit_batch(None, "squareoff", legs, instrument_id=None, note=f"square-off of {deployment.name}")
    if batch is not None:
        batch.deployment_id = deployment.id
    alert = raise_alert(
        SQUAREOFF_KIND,
        f"Deployment {deployment.name}: intraday square-off at {deployment.squareoff_at:%H:%M} IST"
        + (f", {len(legs)} positions exited" if legs else ", nothing held"),
        level="info",
        deployment_id=deployment.id,
        batch_id=batch.id if batch is not None else None,
    )
    db.session.commit()
    if batch is not None:
        queue_send(batch.id)
    if redis is not None:
        announce(redis, alert)
    return batch


__all__ = [
    "EXPIRED",
    "Evaluation",
    "act_on_external_signal",
    "announce_closed",
    "closed_buckets",
    "deployment_pnl",
    "evaluate_bar",
    "evaluate_one",
    "holdings",
    "square_off",
    "squareoff_due",
    "sweep",
    "trading_clients",
]
