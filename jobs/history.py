"""History jobs: the demo's simulated year, made in the background the first time the demo world is
seeded (a year of 1-minute bars for a handful of instruments takes several seconds each)."""

from __future__ import annotations

import logging

from jobs.context import app_job
from webapp.extensions import db
from webapp.marketdata import history
from webapp.timeutil import IST, utcnow

log = logging.getLogger(__name__)


@app_job
def simulate_demo(seed: int = 0) -> dict[str, int]:
    """A deterministic year for each demo instrument without history yet (idempotent)."""
    loaded = history.simulate_missing(db.session, history.DEMO_SYMBOLS, seed, utcnow().astimezone(IST).date())
    log.info("history=simulated seed=%s bars=%s", seed, loaded)
    return loaded
