"""The API key pages: a user's own keys on /account/keys, an admin's for anyone on the user's page.
Keys are made through the pages here and then used on the real /api/v1 (same app, same database)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import count
from webapp import apikeys as keys
from webapp.extensions import db
from webapp.models import ApiKey, AuditEvent, User
from webapp.timeutil import format_ist, utcnow

KEY_SHOWN = re.compile(r'id="new-key">(fo_[A-Za-z0-9]{32})<')
ANY_KEY = re.compile(r"fo_[A-Za-z0-9]{32}")


def key_form(name="script", scopes=("read",), allowed_ips="", expires="never") -> dict:
    return {"key-name": name, "key-scopes": list(scopes), "key-allowed_ips": allowed_ips, "key-expires": expires}


def create(client, url="/account/keys", **fields):
    return client.post(url, data=key_form(**fields))


def shown_key(response) -> str:
    assert response.status_code == 201, response.data.decode()[:2000]
    return KEY_SHOWN.search(response.data.decode()).group(1)


def me(client, key: str):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})


def text_of(response) -> str:
    return html.unescape(response.data.decode())


def stored_keys(app) -> list[ApiKey]:
    with app.app_context():
        rows = db.session.execute(sa.select(ApiKey).order_by(ApiKey.id)).scalars().all()
        db.session.expunge_all()
        return rows


@pytest.fixture
def trader(factory, auth):
    user = factory.user("tara", role="trader")
    auth.login("tara")
    return user


def test_a_key_made_on_the_page_works_and_is_shown_once(client, trader, app):
    response = create(client, name="excel sheet", scopes=["read", "trade"])
    key = shown_key(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers
    assert key not in response.headers.get("Set-Cookie", "")  # not in the session, not flashed
    assert f'curl -H "Authorization: Bearer {key}" http://localhost/api/v1/me' in text_of(response)

    answer = me(client, key)
    assert answer.status_code == 200
    assert answer.json["username"] == "tara"
    assert answer.json["key_name"] == "excel sheet"
    assert answer.json["scopes"] == ["read", "trade"]

    again = client.get("/account/keys")  # reload: listed by its prefix, never its text
    assert again.status_code == 200
    page = again.data.decode()
    assert ANY_KEY.search(page) is None
    assert f"{key[:10]}…" in page and "excel sheet" in page
    assert "127.0.0.1" in page  # last used, and from where
    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "apikey.create")).scalar_one()
        assert event.actor == "tara" and key not in str(event.detail)


def test_the_form_offers_only_the_scopes_of_the_role(client, factory, auth):
    factory.user("vic", role="viewer")
    auth.login("vic")
    page = client.get("/account/keys").data.decode()
    assert re.findall(r'name="key-scopes" type="checkbox" value="(\w+)"', page) == ["read"]


def test_expiry_in_days(client, trader, app):
    shown_key(create(client, expires="30"))
    (key,) = stored_keys(app)
    assert timedelta(days=29) < key.expires_at - utcnow() <= timedelta(days=30)
    row = client.get("/account/keys").data.decode().split(f'id="api-key-{key.id}"')[1].split("</tr>")[0]
    assert format_ist(key.expires_at, "%d %b %Y %H:%M") in row


@pytest.mark.parametrize(
    "role, scopes, message",
    [
        ("trader", ["read", "admin"], "A trader's key cannot hold admin."),
        ("limited", ["admin"], "A limited's key cannot hold admin."),
        ("viewer", ["trade"], "A viewer's key cannot hold trade."),
        ("viewer", [], "Choose at least one scope: read, trade or admin."),
        ("trader", ["root"], "Choose at least one scope: read, trade or admin."),
    ],
)
def test_scopes_beyond_the_role_are_refused(client, factory, auth, app, role, scopes, message):
    factory.user("sam", role=role)
    auth.login("sam")
    response = create(client, scopes=scopes)
    assert response.status_code == 200
    assert message in text_of(response)
    assert ANY_KEY.search(response.data.decode()) is None
    assert stored_keys(app) == []


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"allowed_ips": "10.0.0.300"}, "'10.0.0.300' is not an IP address or network"),
        ({"allowed_ips": "203.0.113.7, intranet"}, "'intranet' is not an IP address or network"),
        ({"allowed_ips": " ".join(f"10.0.0.{n}" for n in range(21))}, "At most 20 addresses or networks."),
        ({"name": "  "}, "Name the key (at most 64 characters)"),
        ({"name": "x" * 65}, "Name the key (at most 64 characters)"),
        ({"expires": "7"}, "Not a valid choice"),
    ],
)
def test_bad_input_gets_a_message_and_writes_nothing(client, trader, app, fields, message):
    response = create(client, **fields)
    assert response.status_code == 200
    assert message in text_of(response)
    assert stored_keys(app) == []
    with app.app_context():
        assert count(AuditEvent) == 1  # the login only


def test_hostile_values_never_give_a_500(client, trader, app):
    for data in (
        {"key-name": "ü" * 5000, "key-scopes": ["read"] * 500, "key-allowed_ips": "::1/200 " * 1000},
        {"key-name": "n", "key-scopes": "read", "key-allowed_ips": "1.2.3.4/99", "key-expires": "-30"},
        {},
    ):
        assert client.post("/account/keys", data=data).status_code == 200
    assert client.post("/account/keys/revoke", data={"key_id": "99999999999"}).status_code == 404
    assert client.post("/account/keys/revoke", data={"key_id": "1 OR 1=1"}).status_code == 404
    assert client.post("/account/keys/revoke").status_code == 404
    assert stored_keys(app) == []


def test_networks_are_stored_and_a_key_from_another_address_is_refused(client, trader, app):
    key = shown_key(create(client, allowed_ips="203.0.113.7,\n10.0.0.0/8  10.1.2.3"))
    (stored,) = stored_keys(app)
    assert stored.allowed_ips == "203.0.113.7/32,10.0.0.0/8,10.1.2.3/32"
    assert me(client, key).status_code == 403  # the test client calls from 127.0.0.1


def test_more_than_twenty_live_keys_are_refused(client, trader, app):
    with app.app_context():
        owner = db.session.get(User, trader.id)
        for n in range(keys.MAX_KEYS_PER_USER):
            keys.create_key(owner, name=f"k{n}", scopes=["read"], by=owner)
        db.session.commit()
    response = create(client, name="one more")
    assert response.status_code == 200
    assert "At most 20 live keys per user; revoke one first." in text_of(response)
    assert len(stored_keys(app)) == keys.MAX_KEYS_PER_USER


def test_revoking_on_the_page_stops_the_key_at_once(client, trader, app):
    key = shown_key(create(client))
    assert me(client, key).status_code == 200
    (stored,) = stored_keys(app)
    response = client.post("/account/keys/revoke", data={"key_id": stored.id}, follow_redirects=True)
    assert response.status_code == 200
    assert f"Key script ({key[:10]}…, #{stored.id}) revoked" in text_of(response)
    assert me(client, key).status_code == 401
    assert "already revoked" in text_of(
        client.post("/account/keys/revoke", data={"key_id": stored.id}, follow_redirects=True)
    )
    with app.app_context():
        assert count(AuditEvent) == 3  # login, create, one revoke


def test_another_users_key_cannot_be_revoked_by_a_non_admin(client, factory, auth, app):
    other = factory.user("olga", role="trader")
    with app.app_context():
        _, other_key = keys.create_key(db.session.get(User, other.id), name="olga's", scopes=["read"], by=other)
        db.session.commit()
    (stored,) = stored_keys(app)
    factory.user("tara", role="trader")
    auth.login("tara")
    assert client.post("/account/keys/revoke", data={"key_id": stored.id}).status_code == 404
    assert client.post(f"/admin/users/{other.id}/keys/revoke", data={"key_id": stored.id}).status_code == 403
    assert client.post(f"/admin/users/{other.id}/keys", data=key_form()).status_code == 403
    assert "olga" not in client.get("/account/keys").data.decode()
    assert me(client, other_key).status_code == 200
    assert stored_keys(app)[0].revoked_at is None


def test_an_admin_makes_and_revokes_a_key_for_another_user(client, factory, auth, app):
    user = factory.user("tara", role="trader")
    factory.user("root", role="admin")
    auth.login("root")
    page = client.get(f"/admin/users/{user.id}").data.decode()
    assert "API keys of tara" in page
    offered = re.findall(r'name="key-scopes" type="checkbox" value="(\w+)"', page)
    assert offered == ["read", "trade"]  # tara's role allows, not the admin's

    refused = create(client, f"/admin/users/{user.id}/keys", scopes=["read", "admin"])
    assert refused.status_code == 200
    assert "A trader's key cannot hold admin." in text_of(refused)
    assert stored_keys(app) == []

    made = create(client, f"/admin/users/{user.id}/keys", name="for tara", scopes=["read", "trade"])
    key = shown_key(made)
    assert made.headers["Cache-Control"] == "no-store"
    assert me(client, key).json["username"] == "tara"  # the key acts as its user, not as the admin
    (stored,) = stored_keys(app)
    assert stored.user_id == user.id
    assert ANY_KEY.search(client.get(f"/admin/users/{user.id}").data.decode()) is None

    admin_own = factory.user("ada", role="admin")
    assert (
        client.post(f"/admin/users/{admin_own.id}/keys/revoke", data={"key_id": stored.id}).status_code == 404
    )  # not ada's key
    response = client.post(f"/admin/users/{user.id}/keys/revoke", data={"key_id": stored.id})
    assert response.status_code == 302
    assert me(client, key).status_code == 401
    with app.app_context():
        revoked = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "apikey.revoke")).scalar_one()
        assert revoked.actor == "root" and revoked.target == f"user:{user.id}"


def test_the_pages_need_a_login_and_are_linked(client, trader):
    assert 'href="/account/keys"' in client.get("/account/password").data.decode()
    client.post("/logout")
    response = client.get("/account/keys")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post("/account/keys", data=key_form()).status_code == 302


def test_a_key_is_not_accepted_on_the_pages(client, factory, app):
    user = factory.user("tara", role="trader")
    with app.app_context():
        _, key = keys.create_key(db.session.get(User, user.id), name="k", scopes=["read"], by=user)
        db.session.commit()
    response = client.get("/account/keys", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.csrf
def test_csrf_is_enforced_on_create_and_revoke(client, factory, app):
    factory.user("tara", role="trader")
    login_page = client.get("/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
    assert client.post("/login", data={"username": "tara", "password": "Correct-horse-42", "csrf_token": token})

    assert client.post("/account/keys", data=key_form()).status_code == 400
    assert stored_keys(app) == []

    page = client.get("/account/keys").data.decode()
    token = re.search(r'id="key-csrf_token" name="key-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    key = shown_key(client.post("/account/keys", data={**key_form(), "key-csrf_token": token}))
    (stored,) = stored_keys(app)

    assert client.post("/account/keys/revoke", data={"key_id": stored.id}).status_code == 400
    assert me(client, key).status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/account/keys").data.decode()).group(1)
    assert client.post("/account/keys/revoke", data={"key_id": stored.id, "csrf_token": token}).status_code == 302
    assert me(client, key).status_code == 401
