"""Fixtures for the order path: a ready desk (instrument, paper and Kite-emulator clients with live
sessions, a trader) and a way to run the send job in-process, exactly as a worker would."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from rq import Queue, SimpleWorker

from jobs.context import use_app
from tests.emulators.common import EmulatorServer, FaultPlan
from tests.emulators.kite import KiteEmulator
from webapp.brokers.base import BrokerSession
from webapp.brokers.paper import ensure_account
from webapp.extensions import db, get_rq_redis
from webapp.models import Client
from webapp.timeutil import utcnow
from webapp.trading.context import Context, build_context
from webapp.trading.sessions import store_session
from webapp.vault import current_vault


@pytest.fixture(scope="module")
def kite_server():
    with EmulatorServer(KiteEmulator(faults=FaultPlan(hang_seconds=1.0))) as server:
        yield server


@pytest.fixture
def kite(kite_server, app):
    emulator = kite_server.app
    emulator.faults = FaultPlan(hang_seconds=1.0)
    app.config.update(KITE_API_URL=kite_server.url, KITE_LOGIN_URL=kite_server.url, BROKER_TIMEOUT_SECONDS=0.3)
    return emulator


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


class Desk:
    def __init__(self, app, factory):
        self.app, self.factory = app, factory
        self.instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")

    def paper_client(self, name: str, cash: str = "1000000", **fields) -> Client:
        client = self.factory.client(name, broker="paper", **fields)
        with self.app.app_context():
            ensure_account(client.client_code, Decimal(cash))
        return client

    def kite_client(self, name: str, emulator: KiteEmulator, **fields) -> Client:
        creds = emulator.add_account()
        client = self.factory.client(
            name,
            broker="kite",
            code=creds["user_id"],
            credentials={"api_key": creds["api_key"], "api_secret": creds["api_secret"]},
            **fields,
        )
        with self.app.app_context():
            stored = db.session.get(Client, client.id)
            store_session(stored, BrokerSession(creds["access_token"], utcnow() + timedelta(hours=8)), current_vault())
            db.session.commit()
        return client

    def context(self) -> Context:
        return build_context(self.app)

    def run_worker(self) -> None:
        """Run every queued job (orders, then sync) in this process, like `rq worker --burst`."""
        use_app(self.app)
        with self.app.app_context():
            connection = get_rq_redis()
            queues = [Queue(name, connection=connection) for name in ("orders", "sync", "default")]
            SimpleWorker(queues, connection=connection).work(burst=True)
