"""The one event publisher: small JSON events on one Redis channel (order.updated, batch.progress,
position.updated, ...). Web processes render them into HTML for the sockets allowed to see them."""

from __future__ import annotations

import logging
from typing import Any

import redis as redis_lib

from webapp.jsonutil import text_json

CHANNEL = "fanout:events"
log = logging.getLogger(__name__)


def publish(redis: redis_lib.Redis, event: str, **payload: Any) -> None:
    try:
        redis.publish(CHANNEL, text_json({"event": event, **payload}))
    except redis_lib.RedisError as exc:  # an event lost is a page refreshed later, never a failed order
        log.warning("event=%s publish=failed error=%s", event, exc)


def publish_many(redis: redis_lib.Redis, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Several events in one round trip (a batch's children answering together)."""
    if not events:
        return
    pipe = redis.pipeline(transaction=False)
    for event, payload in events:
        pipe.publish(CHANNEL, text_json({"event": event, **payload}))
    try:
        pipe.execute()
    except redis_lib.RedisError as exc:
        log.warning("event=%s publish=failed count=%s error=%s", events[0][0], len(events), exc)
