"""Backtest jobs on the `backtests` queue: one run, or one chunk of a sweep's runs (ids in, results stored
by webapp/backtest/runs.py). A job run twice does nothing the second time: each run is claimed
QUEUED → RUNNING once."""

from __future__ import annotations

from jobs.context import app_job
from webapp.backtest.runs import execute_runs
from webapp.extensions import db, get_redis


@app_job
def run_backtests(run_ids: list[int]) -> dict[int, str]:
    return execute_runs(db.session, list(run_ids), get_redis())
