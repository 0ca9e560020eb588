"""No late surprises (issue 10 item 3): a child not sent SEND_DEADLINE_SECONDS after the ticket is
FAILED "not sent in time", by the send job and by reconcile, and never placed; retry sends it as a
new child with a fresh deadline. Counted at the paper exchange's book and the Kite emulator's ledger."""

from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Batch, Order
from webapp.models.paper import PaperOrder
from webapp.timeutil import utcnow
from webapp.trading import engine, states, unsent

LATE = timedelta(seconds=unsent.DEFAULT_DEADLINE_SECONDS + 1)


@pytest.fixture
def trader(factory, auth):
    def login(clients):
        user = factory.user("tara", role="trader", clients=clients)
        auth.login("tara")
        return user

    return login


def children(app, batch_id):
    with app.app_context():
        return db.session.execute(sa.select(Order).where(Order.batch_id == batch_id).order_by(Order.id)).scalars().all()


def submitted_ago(app, batch_id, ago: timedelta) -> None:
    """The trader submitted this batch `ago` (its children were written then)."""
    with app.app_context():
        db.session.execute(
            sa.update(Order)
            .where(Order.batch_id == batch_id)
            .values(created_at=utcnow() - ago, updated_at=utcnow() - ago)
        )
        db.session.commit()


def paper_book(app, tags) -> Counter:
    """How many orders the paper exchange booked under each of these tags."""
    with app.app_context():
        return Counter(db.session.execute(sa.select(PaperOrder.tag).where(PaperOrder.tag.in_(list(tags)))).scalars())


def emulator_book(emulator, clients) -> Counter:
    codes = {c.client_code for c in clients}
    return Counter((e.account, e.tag) for e in emulator.ledger.entries() if e.account in codes)


def test_the_send_job_fails_a_child_past_its_deadline_and_places_nothing(app, desk, factory):
    clients = [desk.paper_client(f"P{n}") for n in range(3)]
    late = factory.batch(factory.user("root", role="admin"), clients, desk.instrument)
    submitted_ago(app, late.id, LATE)
    with app.app_context():
        assert engine.send_batch(late.id, desk.context()) == {states.FAILED: 3}
    rows = children(app, late.id)
    assert {(o.status, o.reason, o.attempts) for o in rows} == {(states.FAILED, unsent.NOT_SENT_IN_TIME, 0)}
    assert paper_book(app, [o.tag for o in rows]) == Counter()


def test_a_child_within_its_deadline_is_sent(app, desk, factory):
    paper = desk.paper_client("P")
    batch = factory.batch(factory.user("root", role="admin"), [paper], desk.instrument)
    submitted_ago(app, batch.id, LATE - timedelta(seconds=5))
    with app.app_context():
        assert engine.send_batch(batch.id, desk.context()) == {states.PLACED: 1}
    assert paper_book(app, [o.tag for o in children(app, batch.id)]) == Counter({children(app, batch.id)[0].tag: 1})


def test_the_deadline_is_configurable(app, desk, factory):
    paper = desk.paper_client("P")
    batch = factory.batch(factory.user("root", role="admin"), [paper], desk.instrument)
    submitted_ago(app, batch.id, LATE)
    app.config["SEND_DEADLINE_SECONDS"] = 120
    with app.app_context():
        assert engine.send_batch(batch.id, desk.context()) == {states.PLACED: 1}


def test_reconcile_fails_new_children_past_their_deadline_and_leaves_fresh_ones(app, desk, factory, kite):
    clients = [desk.kite_client(f"K{n}", kite) for n in range(2)]
    admin = factory.user("root", role="admin")
    stale, fresh = factory.batch(admin, clients, desk.instrument), factory.batch(admin, clients, desk.instrument)
    submitted_ago(app, stale.id, LATE)
    with app.app_context():
        engine.reconcile(desk.context())
    assert {(o.status, o.reason) for o in children(app, stale.id)} == {(states.FAILED, unsent.NOT_SENT_IN_TIME)}
    assert {o.status for o in children(app, fresh.id)} == {states.NEW}  # its send job is still to come
    assert emulator_book(kite, clients) == Counter()


def test_a_single_send_of_a_late_child_fails_it(app, desk, factory, kite):
    """The one-child path (a 429's follow-up, a dead worker's leftovers) claims with the deadline too."""
    client = desk.kite_client("K", kite)
    batch = factory.batch(factory.user("root", role="admin"), [client], desk.instrument)
    submitted_ago(app, batch.id, LATE)
    with app.app_context():
        assert engine.send_child(children(app, batch.id)[0].id, desk.context()) == states.FAILED
    assert children(app, batch.id)[0].reason == unsent.NOT_SENT_IN_TIME
    assert emulator_book(kite, [client]) == Counter()


def test_a_provably_absent_child_past_its_deadline_is_failed_not_placed_again(app, desk, factory, kite):
    """The 5xx came before the broker accepted: after ARRIVAL_GRACE the child is provably absent,
    but by then (30 s) its deadline has passed as well: no re-place."""
    client = desk.kite_client("K", kite)
    batch = factory.batch(factory.user("root", role="admin"), [client], desk.instrument)
    kite.faults.script("place", "error_5xx", "ok")
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        assert children(app, batch.id)[0].status == states.UNKNOWN
        engine.reconcile(desk.context(), now=utcnow() + engine.ARRIVAL_GRACE + timedelta(seconds=1))
    [child] = children(app, batch.id)
    assert (child.status, child.reason, child.attempts) == (states.FAILED, unsent.NOT_SENT_IN_TIME, 1)
    assert emulator_book(kite, [client]) == Counter()


def test_retry_sends_a_late_child_again_with_a_fresh_deadline(app, client, desk, factory, trader):
    paper = desk.paper_client("P")
    trader([paper])
    late = factory.batch(factory.user("root", role="admin"), [paper], desk.instrument)
    submitted_ago(app, late.id, LATE)
    with app.app_context():
        engine.send_batch(late.id, desk.context())
    page = client.get(f"/orders/batches/{late.id}").data.decode()
    assert unsent.NOT_SENT_IN_TIME in page and "Retry failed children" in page
    assert "FAILED 1" in page and "FAILED 1" in client.get("/orders/batches").data.decode()  # counted as failed
    assert client.post(f"/orders/batches/{late.id}/retry").status_code == 302
    desk.run_worker()
    with app.app_context():
        retry = db.session.execute(sa.select(Batch).order_by(Batch.id.desc())).scalars().first()
    [old], [new] = children(app, late.id), children(app, retry.id)
    assert retry.note == f"retry of batch {late.id}" and new.status == states.COMPLETE
    assert paper_book(app, [old.tag, new.tag]) == Counter({new.tag: 1})
