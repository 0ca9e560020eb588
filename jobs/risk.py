"""The desk's day, from cron: the intraday square-off at the desk's time and the day-end roll (with
the brokers' own end of day for a broker the desk runs itself). Thin: webapp/automation/dayend.py."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app

from jobs.context import app_job
from webapp.automation import dayend
from webapp.brokers import broker_class, broker_names, broker_options
from webapp.extensions import db, get_redis

log = logging.getLogger(__name__)


@app_job
def day_tick(now: datetime | None = None) -> dict:
    """Run whichever of the square-off and the roll is due (each once per IST day, however often
    this runs); a missed roll catches up here at start."""
    return run_day(get_redis(), current_app.config, now)


def run_day(redis, config, now: datetime | None = None) -> dict:
    squared = dayend.intraday_squareoff(redis, now)
    rolled = dayend.roll_day(redis, now)
    state = dayend.desk_state()
    db.session.commit()
    # outside a session only: a simulated exchange's roll expires open orders and squares off MIS
    if state is not None and state.last_rolled_day is not None and not dayend.in_session(now):
        brokers_end_day(config, dayend.close_of(state.last_rolled_day))
    return {
        "squareoff": squared.kind if squared else None,
        "rolled": rolled.kind if rolled else None,
    }


def brokers_end_day(config, at: datetime) -> None:
    """Each broker's own end of the rolled day (idempotent: a simulated exchange rolls once per day),
    as of that day's close, so a roll caught up the next morning is the same day's roll there too."""
    for name in broker_names():
        try:
            broker_class(name).end_day(broker_options(name, config), at)
        except Exception:  # one broker's failure must not stop the others; retried on the next run
            log.exception("op=end_day broker=%s result=failed", name)
