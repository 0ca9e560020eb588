"""Backtest jobs on the `backtests` queue: one run, or one chunk of a sweep's runs (ids in, results stored
by webapp/backtest/runs.py). A job run twice does nothing the second time: each run is claimed
QUEUED → RUNNING once."""

from __future__ import annotations

from jobs.context import app_job
from webapp.backtest.runs import execute_runs, fail_lost
from webapp.extensions import db, get_redis


@app_job
def run_backtests(run_ids: list[int]) -> dict[int, str]:
    return execute_runs(db.session, list(run_ids), get_redis())


@app_job
def lost(job, connection, exc_type=None, exc_value=None, traceback=None) -> None:
    """RQ's failure callback (a job that raised, timed out or was abandoned by a dead worker): its runs
    not yet ended are FAILED with the reason, never left RUNNING for a page to poll for ever."""
    reason = f"{exc_type.__name__}: {exc_value}" if exc_type is not None else "the job failed"
    fail_lost(db.session, list(job.args[0]) if job.args else [], f"The backtest job stopped ({reason}); run it again.")
    db.session.commit()
