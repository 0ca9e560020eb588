"""Strategy jobs (the `strategies` queue): evaluate the deployments on a closed bar, the catch-up
sweep for bars a dead worker or a lost announcement left unevaluated, the deployments' square-off."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app

from jobs.context import app_job
from webapp.automation import runner
from webapp.extensions import db, get_redis
from webapp.timeutil import as_utc

log = logging.getLogger(__name__)


@app_job
def evaluate(instrument_id: int, interval: int, bar: str) -> dict[str, int]:
    """Every ACTIVE deployment on this instrument and interval, at the bar starting `bar` (ISO, UTC)."""
    return _evaluate(instrument_id, interval, bar)


def _evaluate(instrument_id: int, interval: int, bar: str) -> dict[str, int]:
    results = runner.evaluate_bar(
        instrument_id, interval, as_utc(datetime.fromisoformat(bar)), config=current_app.config, redis=get_redis()
    )
    return {
        "evaluated": len(results),
        "signals": sum(1 for r in results if r.signal_id),
        "batches": sum(len(r.batch_ids) for r in results),
    }


@app_job
def evaluate_many(instrument_ids: list[int], interval: int, bar: str) -> dict[str, int]:
    """`evaluate` for the instruments that closed this bucket together (one job, not one each). One
    instrument's trouble is its own: the others go on, and the sweep evaluates it again."""
    totals = {"evaluated": 0, "signals": 0, "batches": 0}
    for instrument_id in instrument_ids:
        try:
            done = _evaluate(instrument_id, interval, bar)
        except Exception:
            db.session.rollback()
            log.exception("op=evaluate instrument=%s interval=%s bar=%s result=error", instrument_id, interval, bar)
            continue
        totals = {k: totals[k] + done[k] for k in totals}
    return totals


@app_job
def sweep() -> int:
    """Queue an evaluation of every bar some ACTIVE deployment is behind on."""
    return runner.sweep(get_redis())


@app_job
def squareoff() -> int:
    """Exit the MIS positions of every deployment whose square-off time has come (once a day each)."""
    redis = get_redis()
    return sum(1 for d in runner.squareoff_due() if runner.square_off(d, redis) is not None)
