"""Where the feed's ticks come from: the paper simulator (the embedded default) or the stream of a
broker whose adapter declares one (`capabilities.streaming`, `stream_key`, `open_stream`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from flask import Flask

from webapp.brokers import SIMULATED_FEED, broker_class, broker_options
from webapp.brokers.base import InstrumentRef, Quote
from webapp.extensions import db, get_redis
from webapp.marketdata.simulator import MarketSimulator
from webapp.models import Instrument
from webapp.tasks import QUEUE_SYNC, queue
from webapp.timeutil import market_hours  # the watchdog's hours (also repricing's)


class PaperSource:
    """Moves every instrument of the master (so every ticket has a price); fills resting paper orders."""

    def __init__(self, app: Flask, seed: int = 0):
        from webapp.brokers.paper import PaperExchange

        with app.app_context():
            instruments = db.session.execute(sa.select(Instrument)).scalars().all()
            self.simulator = MarketSimulator(instruments, seed)
            options = {**broker_options(SIMULATED_FEED, app.config), "redis": get_redis()}
            self.exchange = PaperExchange.from_options(db.engine, options)

    def __call__(self, now: datetime, wanted: set[int]) -> Mapping[int, Quote]:
        return self.simulator.step_by_token(now)

    def after(self, quotes: Mapping[int, Quote]) -> None:
        """Fill what the move reaches; the desk picks the fills up with one sync job."""
        if self.exchange.match_resting(quotes.values()):
            from rq.exceptions import DuplicateJobError

            try:
                queue(QUEUE_SYNC).enqueue(
                    "jobs.orders.sync_open_orders",
                    job_id="sync-open-orders-feed",
                    unique=True,
                    result_ttl=0,
                    failure_ttl=60,
                )
            except DuplicateJobError:  # one already waiting will pick these up too
                pass


class StreamSource:
    """A broker's streaming API through one connected client's session (the desk needs one
    market-data session, not one per client). The adapter says which token its stream addresses
    instruments by (`stream_token`); ticks are mapped back to instrument tokens here."""

    def __init__(self, app: Flask, broker: str, read_timeout: float = 0.9):
        from webapp.marketdata.streams import StreamSupervisor

        self.app, self.broker, self.read_timeout = app, broker, read_timeout
        with app.app_context():
            rows = db.session.execute(
                sa.select(
                    Instrument.exchange,
                    Instrument.tradingsymbol,
                    Instrument.exchange_token,
                    Instrument.instrument_token,
                    Instrument.isin,
                )
            ).all()
        stream_token = broker_class(broker).stream_token
        self.to_stream: dict[int, int | str] = {}
        for row in rows:
            key = stream_token(InstrumentRef(*row))
            if key is not None:  # a broker's stream may not carry every instrument (Upstox: no ISIN, no key)
                self.to_stream[row.instrument_token] = key
        self.from_stream = {v: k for k, v in self.to_stream.items()}
        self.supervisor = StreamSupervisor(
            self._make,
            name=f"feed-{broker}",
            watchdog_seconds=float(app.config.get("FEED_WATCHDOG_SECONDS", 30)),
            watchdog_active=market_hours,
        )

    def _make(self):
        from webapp.brokers.base import AuthExpired
        from webapp.trading.accounts import adapter_for
        from webapp.vault import current_vault

        with self.app.app_context():
            client = _feed_client(self.app.config, self.broker)
            if client is None:
                raise AuthExpired(f"no connected {self.broker} client to stream prices with: connect one")
            adapter = adapter_for(client, self.app.config, current_vault())
            account = adapter.account
            adapter.close()
        return broker_class(self.broker).open_stream(account, self.app.config)

    def __call__(self, now: datetime, wanted: set[int]) -> Mapping[int, Quote]:
        wanted_stream = {self.to_stream[t] for t in wanted if t in self.to_stream}
        current = set(self.supervisor.subscriptions)
        if wanted_stream - current:
            self.supervisor.subscribe(wanted_stream - current)
        if current - wanted_stream:
            self.supervisor.unsubscribe(current - wanted_stream)
        quotes: dict[int, Quote] = {}
        for stream_token, quote in self.supervisor.run_once(self.read_timeout):
            token = self.from_stream.get(stream_token)
            if token is not None:
                quotes[token] = quote  # the latest of the round wins
        return quotes

    def after(self, quotes: Mapping[int, Quote]) -> None:
        """Real brokers fill their own orders; the sync jobs pick the fills up."""


def _feed_client(config, broker: str):
    from webapp.models import Client

    if config.get("FEED_CLIENT_ID"):
        client = db.session.get(Client, int(config["FEED_CLIENT_ID"]))
        return client if client is not None and client.session_state() == "connected" else None
    for client in db.session.execute(
        sa.select(Client).where(Client.broker == broker, Client.enabled.is_(True)).order_by(Client.id)
    ).scalars():
        if client.session_state() == "connected":
            return client
    return None


def make_source(app: Flask, seed: int = 0):
    source = app.config.get("FEED_SOURCE", SIMULATED_FEED)
    return PaperSource(app, seed=seed) if source == SIMULATED_FEED else StreamSource(app, source)
