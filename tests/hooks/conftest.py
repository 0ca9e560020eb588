"""A desk with a hook: an owner (trader) granted two paper clients, INFY and SBIN in the master, and a
hook whose secret is made at run time. The job runs in-process (jobs.hooks.run), as a worker would."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from webapp.brokers.paper import ensure_account
from webapp.extensions import db, get_rq_redis
from webapp.hooks import alerts
from webapp.models import Batch, Hook, HookAlert, Order


class HookDesk:
    def __init__(self, app, factory):
        self.app, self.factory = app, factory
        self.infy = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")
        self.sbin = factory.instrument("SBIN", 3045, price="612.50", tick="0.05", band="10")
        self.clients = [self.paper_client(f"Hook client {n}") for n in (1, 2)]
        self.owner = factory.user("hookowner", role="trader", clients=self.clients)

    def paper_client(self, name: str):
        client = self.factory.client(name, broker="paper")
        with self.app.app_context():
            ensure_account(client.client_code, Decimal("1000000"))
        return client

    def hook(self, **fields) -> tuple[int, str]:
        """(hook id, secret): quantities 5 and 10 by default, side and instrument from the alert."""
        with self.app.app_context():
            hook = Hook(
                user_id=self.owner.id,
                name=fields.pop("name", "tv"),
                quantities=fields.pop("quantities", {str(self.clients[0].id): 5, str(self.clients[1].id): 10}),
                **fields,
            )
            secret = alerts.set_secret(hook)
            db.session.add(hook)
            db.session.commit()
            return hook.id, secret

    def alerts(self) -> list[HookAlert]:
        with self.app.app_context():
            return list(db.session.execute(sa.select(HookAlert).order_by(HookAlert.id)).scalars())

    def batches(self) -> list[Batch]:
        with self.app.app_context():
            return list(db.session.execute(sa.select(Batch).order_by(Batch.id)).scalars())

    def children(self, batch_id: int) -> dict[int, tuple[str, int, str]]:
        with self.app.app_context():
            rows = db.session.execute(sa.select(Order).where(Order.batch_id == batch_id)).scalars()
            return {o.client_id: (o.side, o.quantity, o.status) for o in rows}

    def run_job(self, alert_id: int) -> list[int]:
        from jobs.hooks import run

        with self.app.app_context():
            try:
                return run(alert_id)
            finally:
                db.session.remove()

    def run_orders(self) -> None:
        """The send jobs the hook job queued, run in this process like `rq worker --burst`."""
        use_app(self.app)
        with self.app.app_context():
            connection = get_rq_redis()
            SimpleWorker([Queue("orders", connection=connection)], connection=connection).work(burst=True)


@pytest.fixture
def desk(app, factory):
    return HookDesk(app, factory)
