"""/api/v1/admin: users and clients through an admin's key, with the admin pages' rules and messages;
no other role's key gets in, a read-only admin key changes nothing, a deactivated user's key stops at
once, and broker credentials never pass through, in or out."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.conftest import count
from webapp.extensions import db
from webapp.models import AuditEvent, Client, User

STRONG = "Tall-giraffe-81"


@pytest.fixture
def ada(factory):
    return factory.user("ada", role="admin")


@pytest.fixture
def admin_api(api_as, ada):
    return api_as(ada)


def new_user(**overrides) -> dict:
    body = {"username": "tina", "email": "tina@example.com", "role": "trader", "password": STRONG}
    body.update(overrides)
    return body


def test_an_admin_creates_reads_lists_and_changes_a_user(app, factory, admin_api):
    one, two = factory.client("Alpha"), factory.client("Beta")
    reply = admin_api.post(
        "/api/v1/admin/users",
        json=new_user(client_ids=[one.id, two.id], max_position_value="250000.50", max_orders_per_day=40),
    )
    assert reply.status_code == 201, reply.get_json()
    made = reply.get_json()
    assert (made["username"], made["role"], made["active"]) == ("tina", "trader", True)
    assert made["client_ids"] == sorted([one.id, two.id])
    assert made["max_position_value"] == "250000.5000" and made["max_orders_per_day"] == 40
    assert "password" not in str(made) and "hash" not in str(made)

    listed = admin_api.get("/api/v1/admin/users").get_json()
    assert [u["username"] for u in listed["items"]] == ["ada", "tina"] and listed["total"] == 2
    assert admin_api.get(f"/api/v1/admin/users/{made['id']}").get_json() == made

    changed = admin_api.patch(
        f"/api/v1/admin/users/{made['id']}", json={"role": "viewer", "client_ids": [two.id], "max_daily_loss": "5000"}
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["role"], body["client_ids"], body["max_daily_loss"]) == ("viewer", [two.id], "5000.0000")
    assert body["max_position_value"] == "250000.5000"  # not sent: kept
    cleared = admin_api.patch(f"/api/v1/admin/users/{made['id']}", json={"max_position_value": None}).get_json()
    assert cleared["max_position_value"] is None and cleared["role"] == "viewer"
    with app.app_context():
        user = db.session.execute(sa.select(User).where(User.username == "tina")).scalar_one()
        assert user.password_hash != STRONG and user.max_daily_loss == Decimal("5000")
        events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.target == f"user:{user.id}")).scalars()
        assert {e.action for e in events} == {"user.created", "user.updated"}
        created = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "user.created")).scalar_one()
        assert created.actor == "ada" and "test key" in created.detail  # the event names the key


def test_a_trader_key_gets_403_on_every_admin_path(app, factory, api_as):
    trader = factory.user("tina", role="trader")
    api = api_as(trader)  # a trader's key cannot hold the admin scope
    replies = [
        api.get("/api/v1/admin/users"),
        api.post("/api/v1/admin/users", json=new_user(username="sneaky", role="admin")),
        api.patch(f"/api/v1/admin/users/{trader.id}", json={"role": "admin"}),
        api.get("/api/v1/admin/clients"),
        api.post("/api/v1/admin/clients", json={"name": "X", "broker": "paper", "client_code": "X1"}),
    ]
    assert [r.status_code for r in replies] == [403] * 5
    assert all(r.get_json()["error"]["code"] in ("scope", "forbidden") for r in replies)
    with app.app_context():
        assert count(User) == 1 and count(Client) == 0
        assert db.session.get(User, trader.id).role == "trader"


def test_an_admin_key_with_only_read_scope_changes_nothing(app, factory, ada, api_as):
    api = api_as(ada, scopes=["read"])
    assert api.get("/api/v1/me").status_code == 200
    assert api.post("/api/v1/admin/users", json=new_user()).status_code == 403
    assert api.patch(f"/api/v1/admin/users/{ada.id}", json={"email": "a@example.com"}).status_code == 403
    assert (
        api.post("/api/v1/admin/clients", json={"name": "X", "broker": "paper", "client_code": "X1"}).status_code == 403
    )
    with app.app_context():
        assert count(User) == 1 and count(Client) == 0


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"password": "short"}, "password", "Use at least 10 characters."),
        ({"password": "tina-is-great-1"}, "password", "The password must not contain the username."),
        ({"password": "abcdefghijkl"}, "password", "Mix letters with digits or symbols."),
        ({"username": "ada"}, "username", "That username is taken."),
        ({"username": "ADA"}, "username", "That username is taken."),
        ({"username": "a b"}, "username", "Letters, digits, dot, dash and underscore only."),
        ({"username": "ab"}, "username", "3 to 64 characters."),
        ({"email": "not-an-email"}, "email", "Not an email address."),
        ({"client_ids": [999999]}, "client_ids", "No such client (id 999999): choose clients from the list."),
    ],
)
def test_bad_user_input_is_422_with_the_forms_message_and_nothing_is_written(app, admin_api, changes, field, message):
    reply = admin_api.post("/api/v1/admin/users", json=new_user(**changes))
    assert reply.status_code == 422
    assert reply.get_json()["error"]["fields"][field] == message
    with app.app_context():
        assert count(User) == 1


def test_unknown_fields_and_wrong_types_are_refused(app, admin_api):
    for body in (
        new_user(password_hash="x"),
        new_user(role="root"),
        new_user(client_ids="1"),
        new_user(max_orders_per_day=-1),
    ):
        reply = admin_api.post("/api/v1/admin/users", json=body)
        assert reply.status_code == 422 and reply.get_json()["error"]["fields"]
    with app.app_context():
        assert count(User) == 1


def test_deactivating_a_user_stops_their_key_at_once(app, factory, admin_api, make_key, client):
    from tests.api.conftest import Api

    tina = factory.user("tina", role="trader")
    theirs = Api(client, make_key(tina))
    assert theirs.get("/api/v1/me").status_code == 200
    reply = admin_api.patch(f"/api/v1/admin/users/{tina.id}", json={"active": False})
    assert reply.status_code == 200 and reply.get_json()["active"] is False
    assert theirs.get("/api/v1/me").status_code == 401
    with app.app_context():
        user = db.session.get(User, tina.id)
        assert user.session_version > tina.session_version  # their page sessions ended too
        assert db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "user.deactivated")).scalar_one()
    assert admin_api.patch(f"/api/v1/admin/users/{tina.id}", json={"active": True}).status_code == 200
    assert theirs.get("/api/v1/me").status_code == 200


def test_an_admin_cannot_lock_themselves_out(app, ada, admin_api):
    reply = admin_api.patch(f"/api/v1/admin/users/{ada.id}", json={"active": False})
    assert reply.status_code == 422
    assert reply.get_json()["error"]["fields"]["active"] == "You cannot deactivate yourself."
    reply = admin_api.patch(f"/api/v1/admin/users/{ada.id}", json={"role": "trader"})
    assert reply.get_json()["error"]["fields"]["role"] == "You cannot remove your own admin role."
    with app.app_context():
        user = db.session.get(User, ada.id)
        assert (user.active, user.role) == (True, "admin")


def test_an_unknown_user_or_client_is_404(admin_api):
    assert admin_api.get("/api/v1/admin/users/999999").status_code == 404
    assert admin_api.patch("/api/v1/admin/users/999999", json={"active": False}).status_code == 404
    assert admin_api.get("/api/v1/admin/clients/999999").status_code == 404


def test_an_admin_creates_and_changes_a_client(app, admin_api):
    reply = admin_api.post(
        "/api/v1/admin/clients",
        json={
            "name": "Gamma",
            "broker": "paper",
            "client_code": "GA01",
            "max_order_value": "100000",
            "max_quantity": 500,
            "allowed_products": ["MIS", "CNC"],
        },
    )
    assert reply.status_code == 201, reply.get_json()
    made = reply.get_json()
    assert (made["name"], made["broker"], made["client_code"], made["enabled"]) == ("Gamma", "paper", "GA01", True)
    assert made["max_order_value"] == "100000.0000" and made["allowed_products"] == ["MIS", "CNC"]
    assert made["credentials_missing"] == [] and made["session"] == "connected"

    changed = admin_api.patch(f"/api/v1/admin/clients/{made['id']}", json={"enabled": False, "max_quantity": None})
    assert changed.status_code == 200
    body = changed.get_json()
    assert (body["enabled"], body["max_quantity"], body["max_order_value"]) == (False, None, "100000.0000")
    listed = admin_api.get("/api/v1/admin/clients").get_json()
    assert [c["client_code"] for c in listed["items"]] == ["GA01"]
    with app.app_context():
        assert db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "client.updated")).scalar_one()


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"client_code": "AB 12"}, "client_code", "Letters, digits, dash and underscore only."),
        ({"client_code": "ab1234"}, "client_code", "Another client already uses code ab1234 at this broker."),
        ({"broker": "nobroker"}, "broker", "Not a valid choice."),
        ({"allowed_products": []}, "allowed_products", "Allow at least one product."),
        ({"name": "   "}, "name", "Name the client."),
    ],
)
def test_bad_client_input_is_422_with_the_forms_message(app, factory, admin_api, changes, field, message):
    factory.client("Existing", code="AB1234")
    body = {"name": "New", "broker": "paper", "client_code": "NEW1", **changes}
    reply = admin_api.post("/api/v1/admin/clients", json=body)
    assert reply.status_code == 422
    assert reply.get_json()["error"]["fields"][field] == message
    with app.app_context():
        assert count(Client) == 1


def test_broker_credentials_never_pass_through_the_api(app, factory, admin_api):
    secret = "s3cr3t-" + "q" * 20
    kite = factory.client(
        "Kite one", broker="kite", code="ZX1234", credentials={"api_key": "key-abc", "api_secret": secret}
    )
    bare = admin_api.post("/api/v1/admin/clients", json={"name": "Kite two", "broker": "kite", "client_code": "ZX9"})
    assert bare.status_code == 201
    assert bare.get_json()["credentials_missing"] == ["api_key", "api_secret"]  # names, to fill in on the page
    for reply in (
        admin_api.get(f"/api/v1/admin/clients/{kite.id}"),
        admin_api.get("/api/v1/admin/clients"),
        admin_api.patch(f"/api/v1/admin/clients/{kite.id}", json={"name": "Kite renamed"}),
    ):
        assert reply.status_code == 200
        assert secret not in reply.get_data(as_text=True) and "key-abc" not in reply.get_data(as_text=True)
    assert admin_api.get(f"/api/v1/admin/clients/{kite.id}").get_json()["credentials_missing"] == []
    refused = admin_api.patch(f"/api/v1/admin/clients/{kite.id}", json={"api_secret": "other"})
    assert refused.status_code == 422 and "api_secret" in refused.get_json()["error"]["fields"]
    refused = admin_api.post(
        "/api/v1/admin/clients",
        json={"name": "K3", "broker": "kite", "client_code": "ZX3", "credentials": {"api_secret": "x"}},
    )
    assert refused.status_code == 422
    with app.app_context():
        from webapp.vault import current_vault

        stored = db.session.get(Client, kite.id)
        assert current_vault().decrypt(stored.credentials_enc)["api_secret"] == secret  # the rename kept them
        assert count(Client) == 2
