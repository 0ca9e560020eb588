"""Batch actions: retry only what was provably not placed, cancel and modify open children."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Batch, Order
from webapp.trading import engine, states, sync


@pytest.fixture
def trader(factory, auth):
    def login(clients):
        factory.user("tara", role="trader", clients=clients)
        auth.login("tara")

    return login


def test_live_batch_page_polls_until_final(app, client, desk, factory, trader):
    paper = desk.paper_client("P")
    trader([paper])
    batch = factory.batch(factory.user("root", role="admin"), [paper], desk.instrument)
    page = client.get(f"/orders/batches/{batch.id}").data.decode()
    assert 'hx-trigger="every 1s" data-poll="offline"' in page and "NEW" in page  # polls while the socket is down
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(paper.id, desk.context())
    partial = client.get(f"/orders/batches/{batch.id}/children", headers={"HX-Request": "true"}).data.decode()
    assert "COMPLETE" in partial and "every 1s" not in partial


def test_retry_sends_only_failed_children_again(app, client, desk, factory, trader):
    ok, failed = desk.paper_client("Ok"), desk.paper_client("Failed")
    trader([ok, failed])
    batch = factory.batch(factory.user("root", role="admin"), [ok, failed], desk.instrument)
    with app.app_context():
        for order in db.session.execute(sa.select(Order).where(Order.batch_id == batch.id)).scalars():
            order.status, order.reason = (
                (states.COMPLETE, "") if order.client_id == ok.id else (states.FAILED, "Login needed")
            )
        db.session.commit()
    assert client.post(f"/orders/batches/{batch.id}/retry").status_code == 302
    with app.app_context():
        retry = db.session.execute(sa.select(Batch).order_by(Batch.id.desc())).scalars().first()
        assert retry.kind == "retry" and retry.note == f"retry of batch {batch.id}"
        assert [(o.client_id, o.status) for o in retry.orders] == [(failed.id, states.NEW)]


def test_cancel_and_modify_open_limit_children(app, client, desk, factory, trader):
    paper = desk.paper_client("P")
    trader([paper])
    batch = factory.batch(
        factory.user("root", role="admin"), [paper], desk.instrument, order_type="LIMIT", price=Decimal("1400.00")
    )
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(paper.id, desk.context())
        assert db.session.execute(sa.select(Order.status).where(Order.batch_id == batch.id)).scalar_one() == states.OPEN
    bad = client.post(f"/orders/batches/{batch.id}/modify", data={"price": "1400.03"}, follow_redirects=True)
    assert "Price not changed: Price must be a multiple of the tick size" in bad.data.decode()
    assert client.post(f"/orders/batches/{batch.id}/modify", data={"price": "1410.00"}).status_code == 302
    desk.run_worker()
    with app.app_context():
        assert db.session.execute(sa.select(Order.price).where(Order.batch_id == batch.id)).scalar_one() == Decimal(
            "1410"
        )
    assert client.post(f"/orders/batches/{batch.id}/cancel").status_code == 302
    desk.run_worker()
    with app.app_context():
        assert (
            db.session.execute(sa.select(Order.status).where(Order.batch_id == batch.id)).scalar_one()
            == states.CANCELLED
        )
