"""Webhook jobs (the `strategies` queue, whose workers are warm): turn a stored alert into its batches
and queue their sends; the sweep re-queues fresh alerts a dead worker left RECEIVED and expires stale ones."""

from __future__ import annotations

import logging

from flask import current_app

from jobs.context import app_job
from webapp.extensions import get_redis
from webapp.hooks import alerts
from webapp.trading.batch_requests import queue_send

log = logging.getLogger(__name__)

REQUEUED_KEY = "fanout:hooks:requeued:{alert}"  # one re-queue per alert per few seconds


def fresh_seconds() -> int:
    return int(current_app.config.get("HOOK_FRESH_SECONDS", alerts.FRESH_SECONDS))


@app_job
def process(alert_id: int) -> list[int]:
    """The alert's batches, written and then queued to send (none when it was done, duplicate or stale; a
    signal hook's alert makes its deployment's signal, whose batch the runner queues itself)."""
    return run(alert_id)


def run(alert_id: int) -> list[int]:
    batch_ids = alerts.process(alert_id, get_redis(), fresh_seconds(), config=current_app.config)
    for batch_id in batch_ids:
        queue_send(batch_id)
    log.info("op=hook_alert alert=%s batches=%s", alert_id, batch_ids)
    return batch_ids


@app_job
def sweep() -> int:
    """Expire stale RECEIVED alerts; queue again the fresh ones nobody is processing."""
    redis = get_redis()
    queued = 0
    for alert_id in alerts.sweep(fresh_seconds()):
        if redis.set(REQUEUED_KEY.format(alert=alert_id), "1", nx=True, ex=5) and alerts.queue_alert(alert_id):
            queued += 1
    return queued
