"""Syncs wanted after sends and changes, coalesced: batches sent back to back share one queued sync
job instead of each queuing its own sync of the same clients."""

from __future__ import annotations

from webapp.tasks import QUEUE_SYNC, enqueue

SYNC_WANTED = "fanout:sync:wanted"  # clients whose books a send changed, not synced yet
SYNC_QUEUED = "fanout:sync:queued"  # a sync_wanted job is queued and has not started


def request_sync(redis, client_ids: list[int]) -> None:
    """Sync these clients soon: add them to the wanted set; queue the job unless one is waiting."""
    if not client_ids:
        return
    pipe = redis.pipeline()
    pipe.sadd(SYNC_WANTED, *client_ids)
    pipe.set(SYNC_QUEUED, "1", nx=True, ex=600)
    if pipe.execute()[1]:
        enqueue("jobs.orders.sync_wanted", queue_name=QUEUE_SYNC, result_ttl=60, failure_ttl=3600)


def take_wanted(redis) -> list[int]:
    """The clients wanted so far, taken (the job that syncs them calls this first)."""
    pipe = redis.pipeline()  # MULTI: a request after this starts a new job, one before is ours
    pipe.delete(SYNC_QUEUED)
    pipe.smembers(SYNC_WANTED)
    pipe.delete(SYNC_WANTED)
    return sorted(int(i) for i in pipe.execute()[1])
