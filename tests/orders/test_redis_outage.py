"""The web while Redis is away (issue 10, item 2), in process against a redis-server of the test's own
that it pauses (SIGSTOP: connections hang) or stops (connections refused): the pages drawn from the
database answer with their prices marked stale; the ticket, exits and kill switch refuse with one
clear message and write nothing; login works, still throttled, in this process's memory."""

from __future__ import annotations

import os
import signal

import pytest
import sqlalchemy as sa

from tests.conftest import _reset, make_app
from webapp.embedded_redis import EmbeddedRedis
from webapp.extensions import db
from webapp.models import AuditEvent, Batch, DeskState, Order, Position
from webapp.redisconn import reset_breaker
from webapp.tasks import QUEUE_UNAVAILABLE
from webapp.timeutil import utcnow
from webapp.trading import engine, sync


class Outage:
    """A redis-server this test owns: `begin(mode)` pauses or stops it."""

    def __init__(self):
        self.server = EmbeddedRedis().start()

    @property
    def url(self) -> str:
        return self.server.url

    def begin(self, mode: str) -> None:
        if mode == "paused":
            os.kill(self.server.process.pid, signal.SIGSTOP)
        else:
            self.server.process.kill()
            self.server.process.wait()

    def end(self) -> None:
        if self.server.process.poll() is None:
            os.kill(self.server.process.pid, signal.SIGCONT)
        self.server.stop()
        reset_breaker()


@pytest.fixture
def outage(services):
    found = Outage()
    yield found
    found.end()


@pytest.fixture
def app(services, encryption_key, outage):
    """The app on the test's own Redis (the suite's Redis is never paused)."""
    app = make_app((services[0], outage.url), encryption_key)
    _reset(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def book(app, desk, factory, auth):
    """Two paper clients holding INFY intraday, a trader who sees them, logged in."""
    clients = [desk.paper_client(name) for name in ("Alpha", "Beta")]
    buyer = factory.user("system-buyer", role="admin")
    for client, qty in zip(clients, (6, 3)):
        batch = factory.batch(buyer, [client], desk.instrument, quantity=qty)
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())
    with app.app_context():  # marked to market from a live tick before Redis went away
        db.session.execute(
            sa.update(Position).values(last_price=desk.instrument.last_price, price_stale=False, price_at=utcnow())
        )
        db.session.commit()
    factory.user("tara", role="admin", clients=clients)
    assert auth.login("tara").status_code == 302
    return clients


def rows(app) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
            for model in (Batch, Order, AuditEvent, DeskState)
        )


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize("mode", ["paused", "stopped"])
def test_pages_drawn_from_the_database_answer_with_stale_prices(app, client, book, desk, outage, mode):
    alpha, _ = book
    with app.app_context():
        batch_id = db.session.execute(sa.select(Batch.id)).scalars().first()
        assert db.session.execute(sa.select(Position.price_stale)).scalars().all() == [False, False]
    outage.begin(mode)
    pages = {
        "/": 'id="prices-state">stale',
        "/clients/": alpha.name,
        f"/clients/{alpha.id}": "· stale",
        "/orders/": "INFY",
        "/orders/batches": "INFY",
        f"/orders/batches/{batch_id}": "INFY",
        "/instruments/?q=INF": "INFY",
        f"/instruments/{desk.instrument.id}": "· stale",
        f"/orders/new?instrument_id={desk.instrument.id}": "NSE:INFY",
    }
    for path, expected in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert expected in text(response), path


@pytest.mark.parametrize("mode", ["paused", "stopped"])
def test_orders_exits_and_kill_switches_refuse_and_write_nothing(app, client, book, desk, outage, mode):
    from tests.orders.test_ticket import ticket_data

    alpha, beta = book
    before = rows(app)
    outage.begin(mode)
    ticket = client.post("/orders/new", data=ticket_data(desk, book, ticket_id="8d0c2f0e-7d3a-4f43-9a57-3c8c1b2b7f10"))
    assert ticket.status_code == 503 and QUEUE_UNAVAILABLE in text(ticket)
    key = f"{alpha.id}-{desk.instrument.id}-MIS"
    exit_all = client.post(f"/exits/{desk.instrument.id}", data={"share": "100", f"pick_{key}": "1"})
    assert QUEUE_UNAVAILABLE in text(exit_all)
    for path, form in (
        ("/exits/position", {"client_id": alpha.id, "instrument_id": desk.instrument.id, "product": "MIS"}),
        (f"/exits/clients/{beta.id}/square-off", {}),
        (f"/exits/clients/{beta.id}/kill", {"on": "1"}),
        ("/exits/desk/kill", {"on": "1"}),
    ):
        refused = client.post(path, data=form, follow_redirects=True)
        assert refused.status_code == 200 and QUEUE_UNAVAILABLE in text(refused), path
    assert rows(app) == before


@pytest.mark.parametrize("mode", ["paused", "stopped"])
def test_login_works_and_is_throttled_in_process_memory(app, client, factory, outage, mode):
    factory.user("tara", role="trader")
    outage.begin(mode)
    assert client.post("/login", data={"username": "tara", "password": "wrong"}).status_code == 200
    from tests.factories import DEFAULT_PASSWORD

    assert client.post("/login", data={"username": "tara", "password": DEFAULT_PASSWORD}).status_code == 302
    client.post("/logout")
    statuses = [client.post("/login", data={"username": "tara", "password": "wrong"}).status_code for _ in range(5)]
    assert statuses[-1] == 429 and 429 not in statuses[:3]  # "5 per minute", counted in this process
