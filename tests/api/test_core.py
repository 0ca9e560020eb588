"""The API's door: keys (hashed, scoped, revocable, address-bound, expiring), never a session cookie,
never a key on a page; one JSON error shape; the contract served; rate limits per key."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tests.api.conftest import Api
from webapp import apikeys as keys
from webapp.extensions import db
from webapp.models import ApiKey, AuditEvent, User
from webapp.timeutil import utcnow


def test_a_key_acts_as_its_user(app, factory, api_as):
    user = factory.user("asha", role="trader")
    reply = api_as(user).get("/api/v1/me")
    assert reply.status_code == 200
    body = reply.get_json()
    assert (body["username"], body["role"], body["scopes"]) == ("asha", "trader", ["read", "trade"])


def test_without_a_key_401_even_with_a_session(app, factory, client, auth):
    factory.user("asha")
    assert auth.login("asha").status_code == 302
    reply = client.get("/api/v1/me")
    assert reply.status_code == 401
    assert reply.get_json()["error"]["code"] == "unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_is_not_accepted_on_pages(app, factory, client, make_key):
    key = make_key(factory.user("asha"))
    reply = client.get("/", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 302 and "/login" in reply.headers["Location"]


def test_only_the_hash_is_stored(app, factory, make_key):
    key = make_key(factory.user("asha"))
    with app.app_context():
        row = db.session.execute(sa.select(ApiKey)).scalar_one()
        assert key not in (row.key_hash, row.prefix) and row.key_hash == keys.digest(key)
        assert key.startswith(row.prefix)


def test_revoked_expired_deactivated_and_unknown_keys_fail(app, factory, client, make_key):
    user = factory.user("asha")
    texts = [make_key(user, name=f"k{i}") for i in range(3)]
    for text in texts:
        assert Api(client, text).get("/api/v1/me").status_code == 200
    with app.app_context():
        rows = db.session.execute(sa.select(ApiKey).order_by(ApiKey.id)).scalars().all()
        keys.revoke_key(rows[0], by=db.session.get(User, user.id))
        rows[1].expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert Api(client, texts[0]).get("/api/v1/me").status_code == 401
    assert Api(client, texts[1]).get("/api/v1/me").status_code == 401
    assert Api(client, texts[2]).get("/api/v1/me").status_code == 200
    with app.app_context():
        db.session.get(User, user.id).active = False
        db.session.commit()
    assert Api(client, texts[2]).get("/api/v1/me").status_code == 401
    assert Api(client, "fo_" + "x" * 32).get("/api/v1/me").status_code == 401
    assert Api(client, "garbage").get("/api/v1/me").status_code == 401


def test_an_address_outside_the_allowlist_is_refused(app, factory, client, make_key):
    user = factory.user("asha")
    inside = make_key(user, allowed_ips="127.0.0.0/8", name="inside")
    outside = make_key(user, allowed_ips="203.0.113.7", name="outside")
    assert Api(client, inside).get("/api/v1/me").status_code == 200
    reply = Api(client, outside).get("/api/v1/me")
    assert reply.status_code == 403 and reply.get_json()["error"]["code"] == "address_not_allowed"


def test_scopes_never_wider_than_the_role(app, factory):
    viewer = factory.user("vic", role="viewer")
    with app.app_context():
        owner = db.session.get(User, viewer.id)
        try:
            keys.create_key(owner, name="x", scopes=["read", "trade"], by=owner)
        except keys.KeyProblem as problem:
            assert "trade" in problem.fields["scopes"]
        else:
            raise AssertionError("a viewer's key was given the trade scope")


def test_a_demoted_users_key_loses_what_the_new_role_lacks(app, factory, api_as):
    user = factory.user("asha", role="admin")
    api = api_as(user, scopes=["read", "trade", "admin"])
    assert api.get("/api/v1/me").status_code == 200
    with app.app_context():
        db.session.get(User, user.id).role = "viewer"
        db.session.commit()
    assert api.get("/api/v1/me").status_code == 200  # read: a viewer may
    assert api.get("/api/v1/me").get_json()["role"] == "viewer"
    refused = api.post("/api/v1/tickets/preview", json={})  # trade: the key holds it, the role no longer does
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "scope"


def test_reads_and_writes_name_the_key_in_the_audit(app, factory, make_key):
    user = factory.user("asha")
    make_key(user, name="excel sheet")
    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "apikey.create")).scalar_one()
        assert "excel sheet" in event.detail


def test_the_contract_is_openapi_3_1(app, client):
    reply = client.get("/api/v1/openapi.json")
    assert reply.status_code == 200
    document = reply.get_json()
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/me" in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_docs_page_is_served_from_this_desk(app, client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and b"swagger-ui" in page.data and b"https://" not in page.data
    with client.get("/api/v1/docs/assets/swagger_bundle.js") as asset:
        assert asset.status_code == 200 and asset.mimetype == "text/javascript"
    assert client.get("/api/v1/docs/assets/..%2Fkeys.py").status_code == 404


def test_unknown_paths_and_methods_answer_the_json_error_shape(app, factory, api_as):
    api = api_as(factory.user("asha"))
    for reply in (api.get("/api/v1/nothing-here"), api.post("/api/v1/me", json={})):
        assert reply.status_code in (404, 405)
        assert set(reply.get_json()["error"]) == {"code", "message", "fields"}


def test_rate_limit_per_key_answers_429_with_retry_after(services, encryption_key, factory):
    from tests.conftest import _reset, make_app

    app = make_app(services, encryption_key, API_RATE_LIMIT="3 per minute")
    _reset(app)
    from tests.factories import Factory

    user = Factory(app).user("asha")
    with app.app_context():
        owner = db.session.get(User, user.id)
        _, one = keys.create_key(owner, name="one", scopes=["read"], by=owner)
        _, two = keys.create_key(owner, name="two", scopes=["read"], by=owner)
        db.session.commit()
    client = app.test_client()
    codes = [Api(client, one).get("/api/v1/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = Api(client, one).get("/api/v1/me")
    assert limited.get_json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert Api(client, two).get("/api/v1/me").status_code == 200  # per key, not per address
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_form_post_is_refused_as_not_json(app, factory, api_as):
    api = api_as(factory.user("asha"))
    reply = api.client.post("/api/v1/tickets", data={"action": "BUY"}, headers=api._headers(None))
    assert reply.status_code == 415 and reply.get_json()["error"]["code"] == "unsupported_media_type"


def test_replies_kept_for_idempotency_keys_are_forgotten_after_a_day(app, factory):
    from webapp.api.core import REPLAY_FOR, prune_replies
    from webapp.models import IdempotentReply

    user = factory.user("asha")
    now = utcnow()
    with app.app_context():
        for key, age in (("old", REPLAY_FOR + timedelta(seconds=1)), ("new", REPLAY_FOR - timedelta(minutes=1))):
            db.session.add(
                IdempotentReply(user_id=user.id, key=key, request_hash="0" * 64, status_code=201, created_at=now - age)
            )
        db.session.commit()
        assert prune_replies(now) == 1
        assert db.session.execute(sa.select(IdempotentReply.key)).scalars().all() == ["new"]
