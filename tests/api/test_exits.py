"""Exits and kill switches through the API: the pages' rules (roles, grants, shares, quantities, the
queue check) with keys; one batch per exit; nothing written when refused; the same Idempotency-Key
twice makes one batch. Positions are real: paper-broker fills synced into the ledger."""

from __future__ import annotations

import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.orders.conftest import Desk
from webapp.extensions import db
from webapp.models import AuditEvent, Batch, Client, DeskState, Instrument, Order, Position, User
from webapp.trading import engine, sync
from webapp.trading.risk import check_children


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


def buy(app, desk, factory, clients, quantities):
    """Each client buys its quantity of the desk's instrument on the paper broker, synced into the ledger."""
    buyer = factory.user("system-buyer", role="admin")
    for client, qty in zip(clients, quantities, strict=True):
        batch = factory.batch(buyer, [client], desk.instrument, quantity=qty)
        with app.app_context():
            engine.send_batch(batch.id, desk.context())
            sync.sync_client(client.id, desk.context())


@pytest.fixture
def book(app, desk, factory):
    """Three paper clients who bought INFY intraday: 7, 4 and 1 shares."""
    clients = [desk.paper_client(name) for name in ("Alpha", "Beta", "Gamma")]
    buy(app, desk, factory, clients, (7, 4, 1))
    return clients


def written(app) -> tuple[int, int, int]:
    """(batches, orders, audit events): what a refused request must leave as it was."""
    with app.app_context():
        return tuple(
            db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
            for model in (Batch, Order, AuditEvent)
        )


def exit_batches(app) -> list[Batch]:
    with app.app_context():
        return list(db.session.execute(sa.select(Batch).where(Batch.kind != "ticket").order_by(Batch.id)).scalars())


def held(app) -> dict[int, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(Position.client_id, Position.quantity)).all())


def audit_of(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)).scalars())


def test_exit_an_instrument_across_twelve_clients(app, desk, factory, api_as):
    clients = [desk.paper_client(f"Client {n:02d}") for n in range(12)]
    quantities = [n + 1 for n in range(12)]
    buy(app, desk, factory, clients, quantities)
    api = api_as(factory.user("tara", role="trader", clients=clients))

    listed = api.get(f"/api/v1/exits/holders?instrument_id={desk.instrument.id}").get_json()
    assert listed["total"] == 12
    assert {h["client_id"]: (h["quantity"], h["side"]) for h in listed["items"]} == {
        c.id: (q, "SELL") for c, q in zip(clients, quantities)
    }

    reply = api.post("/api/v1/exits", json={"instrument_id": desk.instrument.id, "client_ids": None, "share": 100})
    assert reply.status_code == 201, reply.get_json()
    body = reply.get_json()
    assert body["kind"] == "exit" and body["action"] == "EXIT"
    assert body["instrument"] == {"id": desk.instrument.id, "exchange": "NSE", "symbol": "INFY"}
    assert {(c["client_id"], c["side"], c["quantity"]) for c in body["children"]} == {
        (c.id, "SELL", q) for c, q in zip(clients, quantities)
    }
    assert [b.id for b in exit_batches(app)] == [body["id"]]

    desk.run_worker()  # the send job was queued: a worker sends every child, then the books sync
    with app.app_context():
        for c in clients:
            sync.sync_client(c.id, desk.context())
    assert set(held(app).values()) == {0}
    with app.app_context():
        statuses = db.session.execute(sa.select(Order.status).where(Order.batch_id == body["id"])).scalars().all()
    assert statuses == ["COMPLETE"] * 12


def test_half_share_is_rounded_down_to_the_lot(app, desk, factory, api_as):
    clients = [desk.paper_client(name) for name in ("Alpha", "Beta", "Gamma", "Delta")]
    quantities = (7, 4, 1, 12)
    buy(app, desk, factory, clients, quantities)
    with app.app_context():
        db.session.get(Instrument, desk.instrument.id).lot_size = 2
        db.session.commit()
    api = api_as(factory.user("tara", role="trader", clients=clients))
    reply = api.post("/api/v1/exits", json={"instrument_id": desk.instrument.id, "share": 50})
    assert reply.status_code == 201
    expected = {c.id: (q // 2) - (q // 2) % 2 for c, q in zip(clients, quantities)}  # 7 -> 2, 4 -> 2, 1 -> 0, 12 -> 6
    assert {c["client_id"]: c["quantity"] for c in reply.get_json()["children"]} == {
        client_id: qty for client_id, qty in expected.items() if qty
    }


def test_explicit_quantities(app, desk, factory, api_as, book):
    alpha, beta, gamma = book
    api = api_as(factory.user("tara", role="trader", clients=book))
    reply = api.post(
        "/api/v1/exits", json={"instrument_id": desk.instrument.id, "quantities": {str(alpha.id): 5, str(beta.id): 0}}
    )
    assert reply.status_code == 201
    assert [(c["client_id"], c["quantity"]) for c in reply.get_json()["children"]] == [(alpha.id, 5)]


def test_quantities_over_the_holding_are_refused_and_nothing_is_written(app, desk, factory, api_as, book):
    alpha, beta, gamma = book
    api = api_as(factory.user("tara", role="trader", clients=book))
    before = written(app)
    reply = api.post(
        "/api/v1/exits", json={"instrument_id": desk.instrument.id, "quantities": {str(alpha.id): 7, str(beta.id): 5}}
    )
    assert reply.status_code == 422
    assert reply.get_json()["error"]["fields"] == {f"quantities.{beta.id}": "At most 4."}
    assert written(app) == before


def test_a_client_not_granted_is_404_and_nothing_is_written(app, desk, factory, api_as, book):
    alpha, beta, gamma = book
    api = api_as(factory.user("tara", role="trader", clients=[alpha, beta]))
    before = written(app)
    by_ids = api.post("/api/v1/exits", json={"instrument_id": desk.instrument.id, "client_ids": [alpha.id, gamma.id]})
    assert by_ids.status_code == 404
    assert by_ids.get_json()["error"]["fields"] == {"client_ids.1": "No such client, or not yours."}
    by_quantity = api.post(
        "/api/v1/exits", json={"instrument_id": desk.instrument.id, "quantities": {str(gamma.id): 1}}
    )
    assert by_quantity.status_code == 404 and f"quantities.{gamma.id}" in by_quantity.get_json()["error"]["fields"]
    one = api.post(
        "/api/v1/exits/position", json={"client_id": gamma.id, "instrument_id": desk.instrument.id, "product": "MIS"}
    )
    assert one.status_code == 404 and one.get_json()["error"]["code"] == "not_found"
    assert api.post(f"/api/v1/clients/{gamma.id}/square-off", json={}).status_code == 404
    assert api.post(f"/api/v1/clients/{gamma.id}/kill", json={"on": True}).status_code == 404
    assert written(app) == before
    # null client_ids: every holder this key's user may act for, and no one else
    everyone = api.post("/api/v1/exits", json={"instrument_id": desk.instrument.id})
    assert {c["client_id"] for c in everyone.get_json()["children"]} == {alpha.id, beta.id}
    listed = api.get(f"/api/v1/exits/holders?instrument_id={desk.instrument.id}").get_json()
    assert {h["client_id"] for h in listed["items"]} == {alpha.id, beta.id}


def test_nothing_held_is_409(app, desk, factory, api_as, book):
    other = factory.instrument("SBIN", 3045, price="800.00")
    api = api_as(factory.user("tara", role="trader", clients=book))
    reply = api.post("/api/v1/exits", json={"instrument_id": other.id})
    assert reply.status_code == 409 and reply.get_json()["error"]["code"] == "nothing_to_exit"
    assert api.post("/api/v1/exits", json={"instrument_id": 999_999}).status_code == 404
    assert exit_batches(app) == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"share": 30}, "share"),
        ({"share": "50"}, "share"),
        ({"quantities": {"1": -1}}, "quantities.1"),
        ({"quantities": {"1": 1.5}}, "quantities.1"),
        ({"client_ids": [0]}, "client_ids.0"),
        ({"client_ids": list(range(1, 1002))}, "client_ids"),
        ({"sizing": "all"}, "sizing"),
    ],
)
def test_bad_exit_bodies_are_422_per_field(app, desk, factory, api_as, book, body, field):
    api = api_as(factory.user("tara", role="trader", clients=book))
    reply = api.post("/api/v1/exits", json={"instrument_id": desk.instrument.id, **body})
    assert reply.status_code == 422
    assert field in reply.get_json()["error"]["fields"]
    assert exit_batches(app) == []


def test_share_and_quantities_together_are_refused(app, desk, factory, api_as, book):
    api = api_as(factory.user("tara", role="trader", clients=book))
    reply = api.post(
        "/api/v1/exits", json={"instrument_id": desk.instrument.id, "share": 50, "quantities": {str(book[0].id): 1}}
    )
    assert reply.status_code == 422 and "quantities" in reply.get_json()["error"]["fields"]


def test_one_position(app, desk, factory, api_as, book):
    alpha = book[0]
    api = api_as(factory.user("lim", role="limited", clients=book))
    position = {"client_id": alpha.id, "instrument_id": desk.instrument.id, "product": "MIS"}
    too_many = api.post("/api/v1/exits/position", json={**position, "quantity": 8})
    assert too_many.status_code == 422 and too_many.get_json()["error"]["fields"] == {"quantity": "At most 7."}
    part = api.post("/api/v1/exits/position", json={**position, "quantity": 3})
    assert part.status_code == 201
    assert [(c["client_id"], c["side"], c["quantity"]) for c in part.get_json()["children"]] == [(alpha.id, "SELL", 3)]
    whole = api.post("/api/v1/exits/position", json={**position, "quantity": None})
    assert [c["quantity"] for c in whole.get_json()["children"]] == [7]  # what is held: the first is not sent yet
    flat = api.post("/api/v1/exits/position", json={**position, "product": "CNC"})
    assert flat.status_code == 409


def test_viewer_and_limited_keys_may_not_exit_across_clients_or_kill(app, desk, factory, api_as, book):
    viewer = api_as(factory.user("vic", role="viewer", clients=book))
    limited = api_as(factory.user("lim", role="limited", clients=book))
    before = written(app)
    instrument = {"instrument_id": desk.instrument.id}
    for api in (viewer, limited):
        assert api.get(f"/api/v1/exits/holders?instrument_id={desk.instrument.id}").status_code == 403
        assert api.post("/api/v1/exits", json=instrument).status_code == 403
        assert api.post(f"/api/v1/clients/{book[0].id}/square-off", json={}).status_code == 403
        assert api.post(f"/api/v1/clients/{book[0].id}/kill", json={"on": True}).status_code == 403
        assert api.post("/api/v1/desk/kill", json={"on": True}).status_code == 403
    position = {"client_id": book[0].id, "instrument_id": desk.instrument.id, "product": "MIS"}
    refused = viewer.post("/api/v1/exits/position", json=position)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "scope"  # a viewer's key reads only
    assert written(app) == before


def test_a_read_scoped_trader_key_reads_but_does_not_exit(app, desk, factory, api_as, book):
    api = api_as(factory.user("tara", role="trader", clients=book), scopes=["read"])
    assert api.get(f"/api/v1/exits/holders?instrument_id={desk.instrument.id}").status_code == 200
    for path, body in [
        ("/api/v1/exits", {"instrument_id": desk.instrument.id}),
        ("/api/v1/exits/position", {"client_id": book[0].id, "instrument_id": desk.instrument.id, "product": "MIS"}),
        (f"/api/v1/clients/{book[0].id}/square-off", {}),
        (f"/api/v1/clients/{book[0].id}/kill", {"on": True}),
    ]:
        reply = api.post(path, json=body)
        assert reply.status_code == 403 and reply.get_json()["error"]["code"] == "scope", path
    assert exit_batches(app) == []


def test_square_off_a_client(app, desk, factory, api_as, book):
    beta = book[1]
    api = api_as(factory.user("tara", role="trader", clients=book))
    reply = api.post(f"/api/v1/clients/{beta.id}/square-off", json={})
    assert reply.status_code == 201
    body = reply.get_json()
    assert body["kind"] == "square_off" and [(c["side"], c["quantity"]) for c in body["children"]] == [("SELL", 4)]
    desk.run_worker()
    with app.app_context():
        sync.sync_client(beta.id, desk.context())
    flat = api.post(f"/api/v1/clients/{beta.id}/square-off", json={})
    assert flat.status_code == 200 and flat.get_json() == {"batch": None, "cancelled": 0}


def test_a_killed_client_refuses_new_orders_until_released(app, client, auth, desk, factory, make_key, book):
    from tests.api.conftest import Api

    alpha = book[0]
    factory.user("tara", role="trader", clients=book)
    with app.app_context():
        tara = db.session.execute(sa.select(User).where(User.username == "tara")).scalar_one()
    api = Api(client, make_key(tara, name="desk script"))
    engaged = api.post(f"/api/v1/clients/{alpha.id}/kill", json={"on": True, "reason": "  broker trouble "})
    assert engaged.status_code == 201
    body = engaged.get_json()
    assert body["kind"] == "kill_switch"
    assert [(c["client_id"], c["side"], c["quantity"]) for c in body["children"]] == [(alpha.id, "SELL", 7)]

    def block() -> str:
        with app.app_context():
            killed = db.session.get(Client, alpha.id)
            check = check_children(
                db.session.get(User, tara.id),
                [killed],
                {alpha.id: 1},
                instrument_id=desk.instrument.id,
                product="MIS",
                unit_price=desk.instrument.last_price,
            )[0]
            return check.block

    assert block() == "This client's kill switch is on."
    with app.app_context():
        assert db.session.get(Client, alpha.id).kill_reason == "broker trouble"
    released = api.post(f"/api/v1/clients/{alpha.id}/kill", json={"on": False})
    assert released.status_code == 200
    assert released.get_json() == {
        "scope": "client",
        "client_id": alpha.id,
        "on": False,
        "reason": "",
        "batch": None,
    }
    assert block() == ""
    for action in ("kill_switch.client.on", "kill_switch.client.off"):
        [event] = audit_of(app, action)
        assert "desk script" in event.detail


def test_the_desk_kill_switch_needs_an_admin_key_with_the_admin_scope(app, desk, factory, make_key, client, book):
    from tests.api.conftest import Api

    trader = Api(client, make_key(factory.user("tara", role="trader", clients=book)))
    root = factory.user("root", role="admin")
    narrow = Api(client, make_key(root, scopes=["read", "trade"], name="narrow"))
    admin = Api(client, make_key(root, name="ops console"))
    before = written(app)
    assert trader.post("/api/v1/desk/kill", json={"on": True}).status_code == 403
    refused = narrow.post("/api/v1/desk/kill", json={"on": True})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "scope"
    assert written(app) == before

    long_reason = admin.post("/api/v1/desk/kill", json={"on": True, "reason": "x" * 201})
    assert long_reason.status_code == 422 and "reason" in long_reason.get_json()["error"]["fields"]
    engaged = admin.post("/api/v1/desk/kill", json={"on": True, "reason": "feed is stale"})
    assert engaged.status_code == 201
    assert sorted(c["quantity"] for c in engaged.get_json()["children"]) == [1, 4, 7]
    with app.app_context():
        state = db.session.get(DeskState, 1)
        assert state.kill_switch and state.kill_reason == "feed is stale"
    [event] = audit_of(app, "kill_switch.desk.on")
    assert "ops console" in event.detail and "feed is stale" in event.detail
    released = admin.post("/api/v1/desk/kill", json={"on": False})
    assert released.status_code == 200 and released.get_json()["on"] is False
    with app.app_context():
        assert not db.session.get(DeskState, 1).kill_switch


def test_the_same_idempotency_key_twice_makes_one_exit_batch(app, desk, factory, api_as, book):
    api = api_as(factory.user("tara", role="trader", clients=book))
    body = {"instrument_id": desk.instrument.id, "share": 100}
    headers = {"Idempotency-Key": "exit-infy-1"}
    first = api.post("/api/v1/exits", json=body, headers=headers)
    second = api.post("/api/v1/exits", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.get_json() == first.get_json()
    assert [b.id for b in exit_batches(app)] == [first.get_json()["id"]]
    assert len(audit_of(app, "batch.exit")) == 1


def test_nothing_is_written_when_orders_cannot_be_queued(app, desk, factory, api_as, book):
    api = api_as(factory.user("tara", role="trader", clients=book))
    before = written(app)
    queue_redis = app.extensions.get("fanout_rq_redis")
    with redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1) as away:  # nothing listens there
        app.extensions["fanout_rq_redis"] = away
        reply = api.post("/api/v1/exits", json={"instrument_id": desk.instrument.id})
        kill = api.post(f"/api/v1/clients/{book[0].id}/kill", json={"on": True})
    app.extensions["fanout_rq_redis"] = queue_redis
    assert reply.status_code == 503 and reply.get_json()["error"]["code"] == "queue_unavailable"
    assert kill.status_code == 503
    assert written(app) == before
    with app.app_context():
        assert not db.session.get(Client, book[0].id).kill_switch
