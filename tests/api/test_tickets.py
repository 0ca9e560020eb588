"""POST /api/v1/tickets and /tickets/preview: the web ticket's path through a key. One batch with a NEW
child per client and one send job; the Idempotency-Key makes one batch however often it is sent; bad
input, a client not granted or a queue away: a JSON 4xx/503 and nothing written."""

from __future__ import annotations

import socket
import threading
from decimal import Decimal

import pytest
import redis as redis_lib
import sqlalchemy as sa
from rq import Queue

from tests.api.conftest import Api
from webapp.brokers.paper import ensure_account
from webapp.extensions import db, get_rq_redis
from webapp.models import AuditEvent, Batch, FundsSnapshot, IdempotentReply, Order, StopRule


@pytest.fixture
def desk(app, factory):
    """INFY (tick 0.10, band 10%), twelve funded paper clients and a trader granted them."""
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.10", band="10")
    clients = [factory.client(f"Client {n:02d}", broker="paper") for n in range(12)]
    with app.app_context():
        for client in clients:
            ensure_account(client.client_code, Decimal("1000000"))
    trader = factory.user("tara", role="trader", clients=clients)
    return instrument, clients, trader


def ticket(instrument, clients, qty=10, **fields):
    return {"instrument_id": instrument.id, "action": "BUY", "quantities": {str(c.id): qty for c in clients}, **fields}


def written(app) -> tuple[int, int, int]:
    """(batches, orders, audit events): what a refused request must leave as it was."""
    with app.app_context():
        return tuple(
            db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
            for model in (Batch, Order, AuditEvent)
        )


def queued(app) -> int:
    with app.app_context():
        return Queue("orders", connection=get_rq_redis()).count


def test_a_ticket_for_twelve_clients_is_one_batch_of_twelve_new_children_and_one_send_job(app, desk, api_as):
    instrument, clients, trader = desk
    reply = api_as(trader).post("/api/v1/tickets", json=ticket(instrument, clients))
    assert reply.status_code == 201, reply.get_json()
    body = reply.get_json()
    assert reply.headers["Location"].endswith(f"/api/v1/batches/{body['id']}")
    assert body["kind"] == "ticket" and body["action"] == "BUY" and body["instrument"]["symbol"] == "INFY"
    assert body["counts"] == {"NEW": 12} and body["acknowledged"] is False
    assert sorted(c["client_id"] for c in body["children"]) == sorted(c.id for c in clients)
    assert {(c["quantity"], c["side"]) for c in body["children"]} == {(10, "BUY")}
    assert written(app)[:2] == (1, 12) and queued(app) == 1
    with app.app_context():
        job = Queue("orders", connection=get_rq_redis()).jobs[0]
        assert job.func_name == "jobs.orders.send_batch" and job.args == (body["id"],)


def test_the_batch_is_audited_naming_the_key(app, desk, api_as):
    instrument, clients, trader = desk
    reply = api_as(trader, name="excel sheet").post("/api/v1/tickets", json=ticket(instrument, clients[:2]))
    assert reply.status_code == 201
    with app.app_context():
        event = db.session.execute(
            sa.select(AuditEvent).where(
                AuditEvent.action == "batch.ticket", AuditEvent.target == f"batch:{reply.get_json()['id']}"
            )
        ).scalar_one()
        assert "excel sheet" in event.detail and event.actor == "tara"


def test_a_symbol_names_the_instrument(app, desk, api_as):
    instrument, clients, trader = desk
    body = {"symbol": "NSE:INFY", "action": "SELL", "quantities": {str(clients[0].id): 3}}
    reply = api_as(trader).post("/api/v1/tickets", json=body)
    assert reply.status_code == 201
    assert reply.get_json()["instrument"]["id"] == instrument.id and reply.get_json()["children"][0]["side"] == "SELL"


def test_the_same_idempotency_key_twice_makes_one_batch_and_replays_the_first_reply(app, desk, api_as):
    instrument, clients, trader = desk
    api = api_as(trader)
    headers = {"Idempotency-Key": "order-42"}
    first = api.post("/api/v1/tickets", json=ticket(instrument, clients), headers=headers)
    second = api.post("/api/v1/tickets", json=ticket(instrument, clients), headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert second.get_json() == first.get_json()
    assert written(app)[:2] == (1, 12) and queued(app) == 1
    with app.app_context():  # the batch's ticket id comes from (user, key): the database refuses a second one
        batch = db.session.execute(sa.select(Batch)).scalar_one()
        import uuid

        from webapp.api.tickets import TICKET_NAMESPACE

        assert batch.ticket_id == str(uuid.uuid5(TICKET_NAMESPACE, f"{trader.id}:order-42"))


def test_the_ticket_id_alone_stops_a_second_batch_if_the_stored_reply_is_gone(app, desk, api_as):
    instrument, clients, trader = desk
    api = api_as(trader)
    headers = {"Idempotency-Key": "order-43"}
    assert api.post("/api/v1/tickets", json=ticket(instrument, clients), headers=headers).status_code == 201
    with app.app_context():
        db.session.execute(sa.delete(IdempotentReply))
        db.session.commit()
    again = api.post("/api/v1/tickets", json=ticket(instrument, clients), headers=headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "duplicate"
    assert written(app)[:2] == (1, 12) and queued(app) == 1


def test_the_same_idempotency_key_in_parallel_makes_one_batch(app, desk, make_key):
    instrument, clients, trader = desk
    key = make_key(trader)
    replies, start = [], threading.Barrier(2)

    def post():
        api = Api(app.test_client(), key)
        start.wait()
        replies.append(
            api.post("/api/v1/tickets", json=ticket(instrument, clients), headers={"Idempotency-Key": "k-1"})
        )

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.status_code for r in replies)
    assert codes in ([201, 201], [201, 409]), [r.get_json() for r in replies]
    if codes == [201, 201]:  # the second came after the first finished: a replay of it
        assert sorted(r.headers.get("Idempotent-Replayed", "") for r in replies) == ["", "true"]
    else:
        assert next(r for r in replies if r.status_code == 409).get_json()["error"]["code"] == "in_progress"
    assert written(app)[:2] == (1, 12) and queued(app) == 1


def test_the_same_key_with_another_body_is_refused(app, desk, api_as):
    instrument, clients, trader = desk
    api = api_as(trader)
    headers = {"Idempotency-Key": "k-2"}
    assert api.post("/api/v1/tickets", json=ticket(instrument, clients), headers=headers).status_code == 201
    other = api.post("/api/v1/tickets", json=ticket(instrument, clients, qty=20), headers=headers)
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert written(app)[:2] == (1, 12)


def test_a_client_not_granted_is_404_and_nothing_is_written(app, desk, factory, api_as):
    instrument, clients, trader = desk
    stranger = factory.client("Someone else's", broker="paper")
    api = api_as(trader)
    before = written(app)
    body = ticket(instrument, [*clients[:3], stranger])
    reply = api.post("/api/v1/tickets", json=body)
    assert reply.status_code == 404
    error = reply.get_json()["error"]
    assert error["code"] == "not_found" and list(error["fields"]) == [f"quantities.{stranger.id}"]
    missing = api.post("/api/v1/tickets", json={**body, "quantities": {"999999": 5}})
    assert missing.status_code == 404 and missing.get_json()["error"]["fields"] == stranger_field(999999)
    assert written(app) == before and queued(app) == 0


def stranger_field(client_id: int) -> dict[str, str]:
    return {f"quantities.{client_id}": "No such client, or not one you may trade."}


def sized(good, rule, value, client):
    body = {k: v for k, v in good.items() if k != "quantities"}
    return {**body, "sizing": {"rule": rule, "value": value, "client_ids": [client.id]}}


def _malformed(instrument, clients):
    good = ticket(instrument, clients[:2])
    return [
        ({**good, "action": 5}, 422, "action"),
        ({**good, "action": "HOLD"}, 422, "action"),
        ({**good, "colour": "red"}, 422, "colour"),
        ({**good, "quantities": {str(clients[0].id): "10"}}, 422, f"quantities.{clients[0].id}"),
        ({**good, "quantities": {str(clients[0].id): -5}}, 422, f"quantities.{clients[0].id}"),
        ({**good, "quantities": {str(clients[0].id): 2.5}}, 422, f"quantities.{clients[0].id}"),
        ({**good, "quantities": {"alpha": 5}}, 422, "quantities.alpha.[key]"),
        ({**good, "quantities": {str(n): 1 for n in range(1, 502)}}, 422, "quantities"),
        ({**good, "order_type": "LIMIT", "price": "1548.25"}, 422, "price"),
        ({**good, "order_type": "LIMIT", "price": "abc"}, 422, "price"),
        ({**good, "order_type": "LIMIT", "price": 1e309}, 422, "price"),
        ({**good, "order_type": "LIMIT"}, 422, "price"),
        ({**good, "order_type": "LIMIT", "price": "2000.00"}, 422, "price"),
        ({**good, "instrument_id": 2**40}, 422, "instrument_id"),
        ({**good, "instrument_id": 999999}, 422, "instrument_id"),
        ({**good, "symbol": "NSE:INFY"}, 422, "symbol"),
        ({k: v for k, v in good.items() if k != "instrument_id"} | {"symbol": "NSE:NOPE"}, 422, "symbol"),
        ({**good, "sizing": {"rule": "fixed", "value": "5", "client_ids": [clients[0].id]}}, 422, "sizing"),
        ({**good, "quantities": {str(c.id): 0 for c in clients[:2]}}, 422, "quantities"),
        ({**good, "stop": "1600.00"}, 422, "stop"),
        (sized(good, "capital_pct", "100.5", clients[0]), 422, "sizing.value"),
        (sized(good, "risk_pct", "1", clients[0]), 422, "sizing.rule"),
        ({**good, "chase": {"seconds": 5, "max_ticks": 10, "then": "leave"}}, 422, "chase"),
    ]


def test_bad_bodies_are_refused_with_a_message_per_field_and_nothing_written(app, desk, api_as):
    instrument, clients, trader = desk
    api = api_as(trader)
    before = written(app)
    for body, status, field in _malformed(instrument, clients):
        reply = api.post("/api/v1/tickets", json=body)
        assert reply.status_code == status, (body, reply.get_json())
        error = reply.get_json()["error"]
        assert field in error["fields"] and error["fields"][field], (field, error)
    assert written(app) == before and queued(app) == 0


def test_a_sizing_past_what_one_order_holds_is_refused(app, desk, api_as):
    instrument, clients, trader = desk
    with app.app_context():
        from webapp.models import Instrument

        db.session.get(Instrument, instrument.id).lot_size = 50
        db.session.commit()
    api = api_as(trader)
    body = sized({"instrument_id": instrument.id, "action": "BUY"}, "multiplier", "99999999", clients[0])
    reply = api.post("/api/v1/tickets", json=body)
    assert reply.status_code == 422
    assert "more than one order can hold" in reply.get_json()["error"]["fields"][f"sizing.client_ids.{clients[0].id}"]
    assert written(app)[:2] == (0, 0)


def test_a_price_off_the_tick_says_so(app, desk, api_as):
    instrument, clients, trader = desk
    body = ticket(instrument, clients[:2], order_type="LIMIT", price="1548.25")
    reply = api_as(trader).post("/api/v1/tickets", json=body)
    assert reply.get_json()["error"]["fields"] == {"price": "Price must be a multiple of the tick size ₹0.1."}


def test_a_lot_size_error_names_the_client(app, desk, api_as):
    instrument, clients, trader = desk
    with app.app_context():
        from webapp.models import Instrument

        db.session.get(Instrument, instrument.id).lot_size = 5
        db.session.commit()
    body = {
        "instrument_id": instrument.id,
        "action": "BUY",
        "quantities": {str(clients[0].id): 5, str(clients[1].id): 7},
    }
    reply = api_as(trader).post("/api/v1/tickets", json=body)
    assert reply.status_code == 422
    assert reply.get_json()["error"]["fields"] == {
        f"quantities.{clients[1].id}": "Quantity must be a multiple of the lot size 5."
    }
    assert written(app)[:2] == (0, 0)


@pytest.mark.parametrize(
    "raw, content_type, status, code",
    [
        ('{"instrument_id": 1, ', "application/json", 400, "malformed_json"),
        ("[1, 2]", "application/json", 400, "malformed_json"),
        ("instrument_id=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_bodies_that_are_not_a_json_object(app, desk, client, make_key, raw, content_type, status, code):
    _, _, trader = desk
    key = make_key(trader)
    reply = client.post(
        "/api/v1/tickets", data=raw, headers={"Authorization": f"Bearer {key}", "Content-Type": content_type}
    )
    assert reply.status_code == status and reply.get_json()["error"]["code"] == code
    assert written(app)[:2] == (0, 0)


def test_risk_refusing_every_client_is_422_with_each_reason(app, desk, factory, api_as):
    instrument, clients, trader = desk
    with app.app_context():
        from webapp.models import Client

        for c in clients[:2]:
            db.session.get(Client, c.id).max_quantity = 5
        db.session.commit()
    reply = api_as(trader).post("/api/v1/tickets", json=ticket(instrument, clients[:2]))
    assert reply.status_code == 422
    fields = reply.get_json()["error"]["fields"]
    assert fields["quantities"].startswith("No client can take this order")
    assert {f"quantities.{c.id}" for c in clients[:2]} <= set(fields)
    assert written(app)[:2] == (0, 0)


def test_a_disabled_client_is_refused(app, desk, api_as):
    instrument, clients, trader = desk
    with app.app_context():
        from webapp.models import Client

        db.session.get(Client, clients[0].id).enabled = False
        db.session.commit()
    reply = api_as(trader).post("/api/v1/tickets", json=ticket(instrument, clients[:2]))
    assert reply.status_code == 422
    assert reply.get_json()["error"]["fields"] == {
        f"quantities.{clients[0].id}": "This client is disabled: it takes no orders."
    }
    assert written(app)[:2] == (0, 0)


def test_a_sizing_rule_sizes_each_client_through_the_same_review(app, desk, api_as):
    instrument, clients, trader = desk
    rich, poor, unsynced = clients[:3]
    with app.app_context():
        db.session.add(FundsSnapshot(client_id=rich.id, available_cash=Decimal("200000"), collateral=0, margin_used=0))
        db.session.add(FundsSnapshot(client_id=poor.id, available_cash=Decimal("1000"), collateral=0, margin_used=0))
        db.session.commit()
    api = api_as(trader)
    sizing = {"rule": "capital_pct", "value": "10", "client_ids": [rich.id, poor.id, unsynced.id]}
    body = {
        "instrument_id": instrument.id,
        "action": "BUY",
        "order_type": "LIMIT",
        "price": "1500.00",
        "sizing": sizing,
    }
    preview = api.post("/api/v1/tickets/preview", json=body).get_json()
    assert preview["ok"] is True and [(c["client_id"], c["quantity"]) for c in preview["children"]] == [(rich.id, 13)]
    assert set(preview["skipped"]) == {str(poor.id), str(unsynced.id)}
    assert "less than one share" in preview["skipped"][str(poor.id)]
    placed = api.post("/api/v1/tickets", json=body)
    assert placed.status_code == 201
    assert [(c["client_id"], c["quantity"]) for c in placed.get_json()["children"]] == [(rich.id, 13)]
    fixed = api.post(
        "/api/v1/tickets", json={**body, "sizing": {"rule": "multiplier", "value": 3, "client_ids": [poor.id]}}
    )
    assert [(c["client_id"], c["quantity"]) for c in fixed.get_json()["children"]] == [(poor.id, 3)]


def test_a_sizing_rule_that_sizes_everyone_to_zero_says_why_per_client(app, desk, api_as):
    instrument, clients, trader = desk
    body = {
        "instrument_id": instrument.id,
        "action": "BUY",
        "sizing": {"rule": "capital_pct", "value": "10", "client_ids": [clients[0].id]},
    }
    reply = api_as(trader).post("/api/v1/tickets", json=body)
    assert reply.status_code == 422
    assert "no capital known" in reply.get_json()["error"]["fields"][f"sizing.client_ids.{clients[0].id}"]
    assert written(app)[:2] == (0, 0)


def test_the_preview_reviews_and_writes_nothing(app, desk, api_as):
    instrument, clients, trader = desk
    api = api_as(trader)
    before = written(app)
    good = api.post("/api/v1/tickets/preview", json=ticket(instrument, clients[:3], stop="1500.00"))
    assert good.status_code == 200
    body = good.get_json()
    assert body["ok"] is True and body["errors"] == {} and Decimal(body["unit_price"]) == Decimal("1548.20")
    assert [(c["quantity"], c["sends"], Decimal(c["value"])) for c in body["children"]] == [(10, True, 15482)] * 3
    bad = api.post("/api/v1/tickets/preview", json=ticket(instrument, clients[:3], order_type="LIMIT", price="1548.25"))
    assert bad.status_code == 200 and bad.get_json()["ok"] is False and "price" in bad.get_json()["errors"]
    wrong_stop = api.post("/api/v1/tickets/preview", json=ticket(instrument, clients[:3], stop="1600.00"))
    assert wrong_stop.get_json()["ok"] is False and "below the price" in wrong_stop.get_json()["errors"]["stop"]
    assert written(app) == before and queued(app) == 0
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(StopRule)).scalar_one() == 0


def test_stop_levels_arm_a_rule_per_child(app, desk, api_as):
    instrument, clients, trader = desk
    reply = api_as(trader).post(
        "/api/v1/tickets", json=ticket(instrument, clients[:3], stop="1500.00", target="1600.00")
    )
    assert reply.status_code == 201
    with app.app_context():
        rules = db.session.execute(sa.select(StopRule)).scalars().all()
        assert sorted(r.client_id for r in rules) == sorted(c.id for c in clients[:3])
        assert {(r.stop_price, r.target_price) for r in rules} == {(Decimal("1500.00"), Decimal("1600.00"))}


def test_a_chased_limit_ticket_keeps_its_settings(app, desk, api_as):
    instrument, clients, trader = desk
    chase = {"seconds": 7, "max_ticks": 4, "then": "market"}
    body = ticket(instrument, clients[:1], order_type="LIMIT", price="1540.00", chase=chase)
    reply = api_as(trader).post("/api/v1/tickets", json=body)
    assert reply.status_code == 201
    with app.app_context():
        batch = db.session.get(Batch, reply.get_json()["id"])
        assert (batch.chase_seconds, batch.chase_max_ticks, batch.chase_then) == (7, 4, "market")


@pytest.mark.parametrize("role, scopes", [("viewer", None), ("trader", ["read"])])
def test_a_viewer_or_a_read_only_key_may_not_place_or_preview(app, desk, factory, api_as, role, scopes):
    instrument, clients, _ = desk
    user = factory.user(f"u-{role}", role=role, clients=clients)
    api = api_as(user, scopes=scopes)
    for path in ("/api/v1/tickets", "/api/v1/tickets/preview"):
        reply = api.post(path, json=ticket(instrument, clients))
        assert reply.status_code == 403 and reply.get_json()["error"]["code"] in ("scope", "forbidden")
    assert written(app)[:2] == (0, 0)


def test_a_limited_trader_may_place(app, desk, factory, api_as):
    instrument, clients, _ = desk
    limited = factory.user("lim", role="limited", clients=clients[:2])
    assert api_as(limited).post("/api/v1/tickets", json=ticket(instrument, clients[:2])).status_code == 201


def _dead_redis() -> redis_lib.Redis:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return redis_lib.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)


def test_no_queue_is_503_and_nothing_written(app, desk, api_as):
    instrument, clients, trader = desk
    api = api_as(trader)
    before = written(app)
    app.extensions["fanout_rq_redis"] = _dead_redis()
    try:
        reply = api.post("/api/v1/tickets", json=ticket(instrument, clients), headers={"Idempotency-Key": "k-503"})
    finally:
        app.extensions.pop("fanout_rq_redis").close()
    assert reply.status_code == 503 and reply.get_json()["error"]["code"] == "unavailable"
    assert written(app) == before
    again = api.post("/api/v1/tickets", json=ticket(instrument, clients), headers={"Idempotency-Key": "k-503"})
    assert again.status_code == 201  # the refused first try freed its key
