"""Where the feed's ticks come from: the paper simulator (the embedded default) or a broker stream."""
from __future__ import annotations

from datetime import datetime
from typing import Mapping

import sqlalchemy as sa
from flask import Flask

from webapp.brokers.base import Quote
from webapp.extensions import db, get_redis
from webapp.marketdata.simulator import MarketSimulator
from webapp.models import Instrument
from webapp.tasks import QUEUE_SYNC, queue
from webapp.trading.accounts import broker_options


class PaperSource:
    """Moves every instrument of the master (so every ticket has a price); fills resting paper orders."""

    def __init__(self, app: Flask, seed: int = 0):
        from webapp.brokers.paper import PaperExchange

        with app.app_context():
            instruments = db.session.execute(sa.select(Instrument)).scalars().all()
            self.simulator = MarketSimulator(instruments, seed)
            options = {**broker_options(app.config, "paper"), "redis": get_redis()}
            self.exchange = PaperExchange.from_options(db.engine, options)

    def __call__(self, now: datetime, wanted: set[int]) -> Mapping[int, Quote]:
        return self.simulator.step_by_token(now)

    def after(self, quotes: Mapping[int, Quote]) -> None:
        """Fill what the move reaches; the desk picks the fills up with one sync job."""
        if self.exchange.match_resting(quotes.values()):
            from rq.exceptions import DuplicateJobError

            try:
                queue(QUEUE_SYNC).enqueue("jobs.orders.sync_open_orders", job_id="sync-open-orders-feed",
                                          unique=True, result_ttl=0, failure_ttl=60)
            except DuplicateJobError:  # one already waiting will pick these up too
                pass
