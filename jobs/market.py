"""Repricing: mark every open position to market and publish what changed."""
from __future__ import annotations

from jobs.context import app_job
from webapp.events import publish
from webapp.extensions import get_redis
from webapp.trading.pnl import mark_to_market, record_day


@app_job
def reprice() -> int:
    redis = get_redis()
    changed = mark_to_market(redis)
    if changed:
        clients = sorted({m.client_id for m in changed})
        record_day(clients, redis)
        publish(redis, "pnl.updated", clients=clients, positions=[m.position_id for m in changed])
    return len(changed)
