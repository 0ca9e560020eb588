"""The cron heartbeat: proves `rq cron` enqueues and a worker runs what it enqueued."""

from __future__ import annotations

from jobs.context import app_job
from webapp.extensions import get_redis
from webapp.tasks import CRON_HEARTBEAT_KEY
from webapp.timeutil import utcnow


@app_job
def beat() -> str:
    stamp = utcnow().isoformat()
    get_redis().set(CRON_HEARTBEAT_KEY, stamp)
    return stamp
