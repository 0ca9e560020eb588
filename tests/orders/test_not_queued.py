"""Written but not queued (issue 10 item 2): the batch is committed, then Redis goes away before its
send job is queued. The trader sees it at once, and none of its children is ever sent later.

Redis really goes away: the web's queue connection points at a redis-server of the test's own,
which is stopped just before the enqueue (after anything the route checks first)."""

import uuid
from collections import Counter

import pytest
import redis as redis_lib
import sqlalchemy as sa

import webapp.trading.batch_requests
from webapp.embedded_redis import EmbeddedRedis
from webapp.extensions import db
from webapp.models import Batch, Order
from webapp.models.paper import PaperOrder
from webapp.trading import states, unsent
from webapp.trading.exits import holders


@pytest.fixture
def queue_goes_away(app, monkeypatch):
    """The orders queue's Redis stops between the batch's commit and the enqueue."""
    with (
        EmbeddedRedis() as outage,
        redis_lib.Redis.from_url(outage.url, socket_timeout=1, socket_connect_timeout=1) as queue_redis,
    ):
        app.extensions["fanout_rq_redis"] = queue_redis
        real_enqueue = webapp.trading.batch_requests.enqueue

        def enqueue_after_the_outage(*args, **kwargs):
            outage.stop()
            return real_enqueue(*args, **kwargs)

        monkeypatch.setattr(webapp.trading.batch_requests, "enqueue", enqueue_after_the_outage)
        yield outage


def batch_rows(app):
    with app.app_context():
        batch = db.session.execute(sa.select(Batch).order_by(Batch.id.desc())).scalars().first()
        return batch, db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalars().all()


def paper_book(app, tags) -> Counter:
    with app.app_context():
        return Counter(db.session.execute(sa.select(PaperOrder.tag).where(PaperOrder.tag.in_(list(tags)))).scalars())


def test_a_ticket_that_cannot_be_queued_fails_its_children_and_says_so(
    app, client, desk, factory, auth, queue_goes_away
):
    clients = [desk.paper_client("Alpha"), desk.paper_client("Beta")]
    factory.user("tara", role="trader", clients=clients)
    auth.login("tara")
    data = {
        "ticket_id": str(uuid.uuid4()),
        "instrument_id": desk.instrument.id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "MARKET",
        "validity": "DAY",
        **{f"qty_{c.id}": "10" for c in clients},
    }
    response = client.post("/orders/new", data=data, follow_redirects=True)
    page = response.data.decode()
    batch, children = batch_rows(app)
    assert response.status_code == 200 and f"Batch #{batch.id}" in page
    assert "Nothing was sent: the orders could not be queued" in page and unsent.NOT_QUEUED in page
    assert {(o.status, o.reason) for o in children} == {(states.FAILED, unsent.NOT_QUEUED)}
    app.extensions.pop("fanout_rq_redis")  # Redis is back: a worker, or reconcile, running now sends nothing
    desk.run_worker()
    with app.app_context():
        from webapp.trading import engine

        engine.reconcile(desk.context())
    assert {o.status for o in batch_rows(app)[1]} == {states.FAILED}
    assert paper_book(app, [o.tag for o in children]) == Counter()


def test_an_exit_that_cannot_be_queued_fails_its_children_and_says_so(
    app, client, desk, factory, auth, queue_goes_away
):
    from webapp.models import Client, Position

    paper = desk.paper_client("Alpha")
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    with app.app_context():
        db.session.add(Position(client_id=paper.id, instrument_id=desk.instrument.id, product="MIS", quantity=5))
        db.session.commit()
        [holder] = holders([db.session.get(Client, paper.id)], desk.instrument.id)
    response = client.post(
        "/exits/position",
        data={"client_id": paper.id, "instrument_id": desk.instrument.id, "product": holder.product},
        follow_redirects=True,
    )
    batch, children = batch_rows(app)
    assert batch.kind == "exit" and "Nothing was sent: the orders could not be queued" in response.data.decode()
    assert {(o.status, o.reason) for o in children} == {(states.FAILED, unsent.NOT_QUEUED)}

    app.extensions.pop("fanout_rq_redis")  # Redis is back: the trader retries from the batch page
    assert client.post(f"/orders/batches/{batch.id}/retry").status_code == 302
    retry, [again] = batch_rows(app)
    assert (retry.kind, retry.action, retry.note) == ("retry", "EXIT", f"retry of batch {batch.id}")
    assert (again.side, again.quantity, again.product, again.status) == ("SELL", 5, "MIS", states.NEW)
    desk.run_worker()
    assert paper_book(app, [children[0].tag, again.tag]) == Counter({again.tag: 1})
    with app.app_context():  # flat now at the desk too: a second retry of the first exit has nothing to do
        db.session.execute(sa.update(Position).where(Position.client_id == paper.id).values(quantity=0))
        db.session.commit()
    page = client.post(f"/orders/batches/{batch.id}/retry", follow_redirects=True).data.decode()
    assert "Nothing to retry: no failed or rejected child of this exit is still held." in page


def test_a_kill_switch_whose_square_off_cannot_be_queued_shows_its_batch(
    app, client, desk, factory, auth, queue_goes_away
):
    """The switch itself is on (the database says so); its square-off was written but not queued:
    the trader is taken to that batch, failed "not queued", instead of being told all is done."""
    from webapp.models import Client, Position

    paper = desk.paper_client("Alpha")
    factory.user("tara", role="trader", clients=[paper])
    auth.login("tara")
    with app.app_context():
        db.session.add(Position(client_id=paper.id, instrument_id=desk.instrument.id, product="MIS", quantity=-3))
        db.session.commit()
    response = client.post(f"/exits/clients/{paper.id}/kill", data={"on": "1"}, follow_redirects=True)
    batch, [child] = batch_rows(app)
    page = response.data.decode()
    assert batch.kind == "kill_switch" and f"Batch #{batch.id}" in page
    assert "Nothing was sent: the orders could not be queued" in page
    assert (child.side, child.quantity, child.status, child.reason) == ("BUY", 3, states.FAILED, unsent.NOT_QUEUED)
    with app.app_context():
        assert db.session.get(Client, paper.id).kill_switch
