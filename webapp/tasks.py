"""The web side of the job queues: queue names and enqueue helpers (jobs are enqueued by dotted path)."""

from __future__ import annotations

from redis.exceptions import RedisError
from rq import Queue, Retry

from webapp.extensions import get_rq_redis

QUEUE_ORDERS = "orders"  # first: anything that talks to a broker for a trader waiting on screen
QUEUE_SYNC = "sync"
QUEUE_DEFAULT = "default"
QUEUE_STRATEGIES = "strategies"  # a closed bar's evaluations (jobs.automation): first on the worker role
QUEUE_BACKTESTS = "backtests"  # last: long CPU work nobody waits on second by second
QUEUES = (QUEUE_ORDERS, QUEUE_STRATEGIES, QUEUE_SYNC, QUEUE_DEFAULT, QUEUE_BACKTESTS)

CRON_HEARTBEAT_KEY = "fanout:cron:heartbeat"

# A send job is retried when its worker dies: children already sent are resolved by tag, never sent twice.
SEND_JOB = {"result_ttl": 300, "failure_ttl": 3600, "retry": Retry(max=3, interval=[2, 10, 30])}


QUEUE_UNAVAILABLE = "Orders cannot be queued right now (Redis is unavailable); nothing was sent."


def queue_available() -> bool:
    """Can a job be queued now? Asked before a batch is written, so a refused ticket writes nothing.
    Fails within about a second when Redis is away (the client fails fast: webapp.redisconn)."""
    try:
        get_rq_redis().ping()
    except RedisError:
        return False
    return True


def queue(name: str) -> Queue:
    return Queue(name, connection=get_rq_redis())


def enqueue(func: str, *args, queue_name: str = QUEUE_DEFAULT, **options):
    """Enqueue a job by dotted path, so the web process never imports job modules."""
    return queue(queue_name).enqueue(func, *args, **options)
