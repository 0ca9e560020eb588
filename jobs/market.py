"""Repricing: mark every open position to market and publish what changed."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from jobs.context import app_job
from webapp.automation import breakers
from webapp.events import publish
from webapp.extensions import get_redis
from webapp.trading.pnl import mark_to_market, record_day
from webapp.trading.quote_fallback import BrokerQuotes
from webapp.vault import current_vault


@app_job
def reprice(now: datetime | None = None) -> int:
    """Prices from the feed's ticks; without a fresh one, a broker's quote API (called here, in the
    job, never on a web request), else the last known price, marked stale."""
    redis = get_redis()
    changed = mark_to_market(redis, fallback=BrokerQuotes(current_app.config, current_vault(), redis), now=now)
    if changed:
        clients = sorted({m.client_id for m in changed})
        record_day(clients, redis, now=now)
        publish(redis, "pnl.updated", clients=clients, positions=[m.position_id for m in changed])
    breakers.check(redis, now)  # every client's MTM is current: loss and drawdown limits act now
    return len(changed)
