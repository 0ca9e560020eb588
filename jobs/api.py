"""API housekeeping: the replies kept for Idempotency-Key are forgotten after a day (webapp/api/core.py)."""

from __future__ import annotations

from jobs.context import app_job
from webapp.api.core import prune_replies
from webapp.timeutil import utcnow


@app_job
def prune() -> int:
    return prune_replies(utcnow())
