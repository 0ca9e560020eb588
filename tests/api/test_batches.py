"""GET /api/v1/batches(/{id}) and POST /batches/{id}/retry|cancel|modify: the batch page's actions
through a key — only the batches and children the user may see; 409 when there is nothing to act on,
422 for a bad price, nothing written by a refusal."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from webapp.brokers.paper import ensure_account
from webapp.extensions import db, get_rq_redis
from webapp.models import AuditEvent, Batch, Order
from webapp.trading import engine, states, sync
from webapp.trading.context import build_context


@pytest.fixture
def desk(app, factory):
    """INFY, two funded paper clients granted to a trader, a third client that is not, and an admin."""
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")
    mine = [factory.client(name, broker="paper") for name in ("Alpha", "Beta")]
    other = factory.client("Gamma", broker="paper")
    with app.app_context():
        for client in (*mine, other):
            ensure_account(client.client_code, Decimal("1000000"))
    trader = factory.user("tara", role="trader", clients=mine)
    admin = factory.user("root", role="admin")
    return instrument, mine, other, trader, admin


def set_status(app, batch_id: int, status_of) -> None:
    with app.app_context():
        for order in db.session.execute(sa.select(Order).where(Order.batch_id == batch_id)).scalars():
            order.status, order.reason = status_of(order)
        db.session.commit()


def send_and_sync(app, batch, clients) -> None:
    """The send job and a sync, in process, as a worker would run them."""
    with app.app_context():
        context = build_context(app)
        engine.send_batch(batch.id, context)
        for client in clients:
            sync.sync_client(client.id, context)


def run_worker(app) -> None:
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        queues = [Queue(name, connection=connection) for name in ("orders", "sync", "default")]
        SimpleWorker(queues, connection=connection).work(burst=True)


def rows(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(
            db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
            for model in (Batch, Order, AuditEvent)
        )


def queued(app) -> int:
    with app.app_context():
        return Queue("orders", connection=get_rq_redis()).count


def test_the_list_shows_only_batches_the_user_may_see_newest_first(app, factory, desk, api_as):
    instrument, (alpha, beta), gamma, trader, admin = desk
    older = factory.batch(admin, [alpha, gamma], instrument)
    hidden = factory.batch(admin, [gamma], instrument)
    newer = factory.batch(admin, [beta], instrument, quantity=2)
    set_status(app, older.id, lambda o: (states.COMPLETE, "") if o.client_id == alpha.id else (states.NEW, ""))
    api = api_as(trader)
    body = api.get("/api/v1/batches").get_json()
    assert [item["id"] for item in body["items"]] == [newer.id, older.id] and body["total"] == 2
    first = body["items"][1]
    assert first["children"] == 1 and first["counts"] == {"COMPLETE": 1} and first["acknowledged"] is True
    assert body["items"][0]["counts"] == {"NEW": 1} and body["items"][0]["acknowledged"] is False
    paged = api.get("/api/v1/batches?per_page=1&page=2").get_json()
    assert [i["id"] for i in paged["items"]] == [older.id] and paged["pages"] == 2 and paged["next_page"] is None
    everything = api_as(admin).get("/api/v1/batches").get_json()
    assert [i["id"] for i in everything["items"]] == [newer.id, hidden.id, older.id]
    assert everything["items"][2]["children"] == 2


def test_a_batch_with_only_its_visible_children(app, factory, desk, api_as):
    instrument, (alpha, _), gamma, trader, admin = desk
    batch = factory.batch(admin, [alpha, gamma], instrument, quantity=4)
    api = api_as(trader)
    body = api.get(f"/api/v1/batches/{batch.id}").get_json()
    assert body["id"] == batch.id and [c["client_id"] for c in body["children"]] == [alpha.id]
    assert body["children"][0]["quantity"] == 4 and body["counts"] == {"NEW": 1}
    hidden = factory.batch(admin, [gamma], instrument)
    for path in (f"/api/v1/batches/{hidden.id}", "/api/v1/batches/999999", f"/api/v1/batches/{2**40}"):
        reply = api.get(path)
        assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found"


def test_retry_sends_only_the_failed_children_again_as_a_new_batch(app, factory, desk, api_as):
    instrument, (alpha, beta), _, trader, admin = desk
    batch = factory.batch(admin, [alpha, beta], instrument, quantity=3)
    set_status(app, batch.id, lambda o: (states.COMPLETE, "") if o.client_id == alpha.id else (states.FAILED, "x"))
    reply = api_as(trader, name="retry bot").post(f"/api/v1/batches/{batch.id}/retry", json={})
    assert reply.status_code == 201, reply.get_json()
    body = reply.get_json()
    assert reply.headers["Location"].endswith(f"/api/v1/batches/{body['id']}")
    assert body["kind"] == "retry" and body["note"] == f"retry of batch {batch.id}"
    assert [(c["client_id"], c["status"], c["quantity"]) for c in body["children"]] == [(beta.id, "NEW", 3)]
    assert queued(app) == 1
    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.target == f"batch:{body['id']}")).scalar_one()
        assert event.action == "batch.retry" and "retry bot" in event.detail


def test_nothing_to_retry_cancel_or_modify_is_409_and_writes_nothing(app, factory, desk, api_as):
    instrument, (alpha, _), _, trader, admin = desk
    batch = factory.batch(admin, [alpha], instrument, status=states.COMPLETE)
    api = api_as(trader)
    before = rows(app)
    for action, body in (("retry", {}), ("cancel", {}), ("modify", {"price": "1500.00"})):
        reply = api.post(f"/api/v1/batches/{batch.id}/{action}", json=body)
        assert reply.status_code == 409, (action, reply.get_json())
        assert reply.get_json()["error"]["code"] == "nothing_to_do" and reply.get_json()["error"]["message"]
    assert rows(app) == before and queued(app) == 0


def test_cancel_and_modify_open_limit_children(app, factory, desk, api_as):
    instrument, (alpha, _), _, trader, admin = desk
    batch = factory.batch(admin, [alpha], instrument, order_type="LIMIT", price=Decimal("1400.00"))
    send_and_sync(app, batch, [alpha])
    api = api_as(trader)
    assert api.get(f"/api/v1/batches/{batch.id}").get_json()["counts"] == {"OPEN": 1}
    before = rows(app)
    for price, message in (
        ("1400.03", "Price must be a multiple of the tick size ₹0.1."),
        ("9000.00", "Price is outside today's circuit band"),
    ):
        bad = api.post(f"/api/v1/batches/{batch.id}/modify", json={"price": price})
        assert bad.status_code == 422 and bad.get_json()["error"]["fields"]["price"].startswith(message)
    for body in ({"price": "abc"}, {"price": "-1"}, {}, {"price": "1410.00", "extra": 1}):
        assert api.post(f"/api/v1/batches/{batch.id}/modify", json=body).status_code == 422
    form = api.post(f"/api/v1/batches/{batch.id}/modify", data={"price": "1410.00"})
    assert form.status_code == 415 and form.get_json()["error"]["code"] == "unsupported_media_type"
    assert rows(app) == before and queued(app) == 0
    modified = api.post(f"/api/v1/batches/{batch.id}/modify", json={"price": "1410.00"})
    assert modified.status_code == 200 and modified.get_json()["id"] == batch.id
    run_worker(app)
    with app.app_context():
        assert db.session.execute(sa.select(Order.price).where(Order.batch_id == batch.id)).scalar_one() == Decimal(
            "1410"
        )
    cancelled = api.post(f"/api/v1/batches/{batch.id}/cancel", json={})
    assert cancelled.status_code == 200
    run_worker(app)
    assert api.get(f"/api/v1/batches/{batch.id}").get_json()["counts"] == {"CANCELLED": 1}
    with app.app_context():
        actions = db.session.execute(
            sa.select(AuditEvent.action).where(AuditEvent.target == f"batch:{batch.id}").order_by(AuditEvent.id)
        ).scalars()
        assert list(actions) == ["batch.modify", "batch.cancel"]


def test_actions_on_a_batch_the_user_may_not_see_are_404(app, factory, desk, api_as):
    instrument, _, gamma, trader, admin = desk
    batch = factory.batch(admin, [gamma], instrument, status=states.FAILED)
    api = api_as(trader)
    before = rows(app)
    for action in ("retry", "cancel"):
        assert api.post(f"/api/v1/batches/{batch.id}/{action}", json={}).status_code == 404
    assert api.post(f"/api/v1/batches/{batch.id}/modify", json={"price": "1500.00"}).status_code == 404
    assert rows(app) == before and queued(app) == 0


@pytest.mark.parametrize("role, scopes", [("viewer", None), ("trader", ["read"])])
def test_a_viewer_or_a_read_only_key_reads_but_may_not_act(app, factory, desk, api_as, role, scopes):
    instrument, (alpha, _), _, _, admin = desk
    batch = factory.batch(admin, [alpha], instrument, status=states.FAILED)
    api = api_as(factory.user(f"u-{role}", role=role, clients=[alpha]), scopes=scopes)
    assert api.get(f"/api/v1/batches/{batch.id}").status_code == 200
    assert api.get("/api/v1/batches").get_json()["total"] == 1
    for action, body in (("retry", {}), ("cancel", {}), ("modify", {"price": "1500.00"})):
        assert api.post(f"/api/v1/batches/{batch.id}/{action}", json=body).status_code == 403
    assert queued(app) == 0


def test_bad_page_queries_are_422(app, desk, api_as):
    api = api_as(desk[3])
    for query in ("page=0", "per_page=1000", "page=x", "colour=red"):
        reply = api.get(f"/api/v1/batches?{query}")
        assert reply.status_code == 422 and reply.get_json()["error"]["fields"], query


def test_a_retry_the_review_refuses_is_422_and_writes_nothing(app, factory, desk, api_as):
    instrument, (alpha, _), _, trader, admin = desk
    batch = factory.batch(admin, [alpha], instrument, quantity=3, status=states.FAILED)
    with app.app_context():
        from webapp.models import Client

        db.session.get(Client, alpha.id).max_quantity = 1
        db.session.commit()
    api = api_as(trader)
    before = rows(app)
    reply = api.post(f"/api/v1/batches/{batch.id}/retry", json={})
    assert reply.status_code == 422 and reply.get_json()["error"]["message"].startswith("Retry refused: ")
    assert reply.get_json()["error"]["fields"]
    assert rows(app) == before and queued(app) == 0


def test_a_retry_without_a_queue_is_503_and_writes_nothing(app, factory, desk, api_as):
    from tests.api.test_tickets import _dead_redis

    instrument, (alpha, _), _, trader, admin = desk
    batch = factory.batch(admin, [alpha], instrument, status=states.FAILED)
    api = api_as(trader)
    before = rows(app)
    app.extensions["fanout_rq_redis"] = _dead_redis()
    try:
        reply = api.post(f"/api/v1/batches/{batch.id}/retry", json={})
    finally:
        app.extensions.pop("fanout_rq_redis").close()
    assert reply.status_code == 503 and reply.get_json()["error"]["code"] == "unavailable"
    assert rows(app) == before
