"""Sessions end when they should (issue 10, item 6): logout, a password change, an admin's reset,
deactivation, reactivation and a change of role or grants each end the user's sessions in every
other browser — the next page is the login page, a partial an HX-Redirect to it. Open sockets:
tests/live/test_ws_sessions.py."""

import json

import pytest
import sqlalchemy as sa

from tests.factories import DEFAULT_PASSWORD
from webapp.events import CHANNEL
from webapp.extensions import db
from webapp.models import AuditEvent, User


def browser_of(app):
    """A browser of its own. Not pytest-flask's `client`: it keeps its last request's context (and
    so Flask-Login's cached user in `g`) pushed, which a second browser's request would reuse."""
    return app.test_client()


def log_in(browser, username: str, password: str = DEFAULT_PASSWORD) -> None:
    response = browser.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def assert_logged_in(browser) -> None:
    assert browser.get("/").status_code == 200
    assert "HX-Redirect" not in browser.get("/desk/live", headers={"HX-Request": "true"}).headers


def assert_ended(browser) -> None:
    page = browser.get("/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    partial = browser.get("/desk/live", headers={"HX-Request": "true"})
    assert partial.headers["HX-Redirect"].startswith("/login")


@pytest.fixture
def grants(factory):
    return [factory.client("Alpha"), factory.client("Beta")]


@pytest.fixture
def tara(factory, grants):
    return factory.user("tara", clients=grants)


@pytest.fixture
def elsewhere(app, tara):
    """Tara logged in from another browser."""
    browser = browser_of(app)
    log_in(browser, "tara")
    assert_logged_in(browser)
    return browser


@pytest.fixture
def admin(app, factory):
    factory.user("root", role="admin")
    browser = browser_of(app)
    log_in(browser, "root")
    return browser


@pytest.fixture
def here(app):
    """The browser the user acts from."""
    return browser_of(app)


def actions(app, action: str) -> list[str]:
    with app.app_context():
        return list(db.session.execute(sa.select(AuditEvent.action).where(AuditEvent.action == action)).scalars())


def test_logout_ends_this_and_every_other_session(app, here, tara, elsewhere):
    log_in(here, "tara")
    assert here.post("/logout").headers["Location"] == "/login"
    assert_ended(here)
    assert_ended(elsewhere)  # logging out is logging out everywhere (webapp/auth/routes.py says why)


def test_a_password_change_keeps_this_session_and_ends_the_others(app, here, tara, elsewhere):
    log_in(here, "tara")
    response = here.post(
        "/account/password",
        data={"current": DEFAULT_PASSWORD, "new": "Fresh-mango-train-71", "confirm": "Fresh-mango-train-71"},
    )
    assert response.status_code == 302
    assert_logged_in(here)  # re-issued with the new session version
    assert_ended(elsewhere)
    assert actions(app, "user.password_changed") == ["user.password_changed"]


def test_a_wrong_current_password_changes_nothing(app, here, tara, elsewhere):
    log_in(here, "tara")
    response = here.post(
        "/account/password",
        data={"current": "not-my-password", "new": "Fresh-mango-train-71", "confirm": "Fresh-mango-train-71"},
    )
    assert "That is not your current password." in response.data.decode()
    assert_logged_in(elsewhere)


@pytest.mark.parametrize(
    "action, audited",
    [
        ("reset", "user.password_reset"),
        ("deactivate", "user.deactivated"),
        ("role", "user.updated"),
        ("grants", "user.updated"),
    ],
)
def test_admin_actions_end_the_users_sessions(app, admin, grants, tara, elsewhere, action, audited):
    post = {
        "reset": (f"/admin/users/{tara.id}/password", {"password": "Brand-new-sailor-58"}),
        "deactivate": (f"/admin/users/{tara.id}/active", {"active": "0"}),
        "role": (f"/admin/users/{tara.id}", {"email": "", "role": "viewer", "clients": [c.id for c in grants]}),
        "grants": (f"/admin/users/{tara.id}", {"email": "", "role": "trader", "clients": [grants[1].id]}),
    }[action]
    assert admin.post(post[0], data=post[1]).status_code == 302
    assert_ended(elsewhere)
    assert_logged_in(admin)  # the admin's own session is not touched
    assert actions(app, audited) == [audited]  # the audited action is the record: no extra event


def test_an_edit_that_keeps_role_and_grants_keeps_the_sessions(app, admin, grants, tara, elsewhere):
    response = admin.post(
        f"/admin/users/{tara.id}",
        data={
            "email": "tara@example.com",
            "role": "trader",
            "clients": [c.id for c in grants],
            "max_orders_per_day": "40",
        },
    )
    assert response.status_code == 302
    assert_logged_in(elsewhere)


def test_reactivation_does_not_revive_an_old_cookie(app, admin, tara, elsewhere):
    assert admin.post(f"/admin/users/{tara.id}/active", data={"active": "0"}).status_code == 302
    assert_ended(elsewhere)
    assert admin.post(f"/admin/users/{tara.id}/active", data={"active": "1"}).status_code == 302
    assert_ended(elsewhere)
    log_in(elsewhere, "tara")  # a fresh login works again
    assert_logged_in(elsewhere)


def test_reactivation_ends_a_cookie_from_before_an_out_of_band_deactivation(app, admin, tara, elsewhere):
    with app.app_context():  # deactivated by hand in the database, not through the admin page
        db.session.get(User, tara.id).active = False
        db.session.commit()
    assert_ended(elsewhere)
    assert admin.post(f"/admin/users/{tara.id}/active", data={"active": "1"}).status_code == 302
    assert_ended(elsewhere)


def test_an_admin_who_resets_their_own_password_stays_logged_in(app, admin, factory):
    with app.app_context():
        root = db.session.execute(sa.select(User).where(User.username == "root")).scalar_one()
        root_id = root.id
    other = browser_of(app)
    log_in(other, "root")
    assert admin.post(f"/admin/users/{root_id}/password", data={"password": "Brand-new-sailor-58"}).status_code == 302
    assert_logged_in(admin)
    assert_ended(other)


def test_a_session_from_before_versions_is_not_current(app, here, tara):
    with here.session_transaction() as session:
        session["_user_id"] = str(tara.id)  # what a session stored before migration 0009
        session["_fresh"] = True
    assert here.get("/").status_code == 302


def test_the_event_for_open_sockets_goes_out_after_the_commit(app, admin, tara, redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    pubsub.get_message(timeout=5)  # the subscribe confirmation (returned as None)
    try:
        assert admin.post(f"/admin/users/{tara.id}/active", data={"active": "0"}).status_code == 302
        message = pubsub.get_message(timeout=5)
        assert message is not None
        event = json.loads(message["data"])
        with app.app_context():
            version = db.session.get(User, tara.id).session_version
        assert event == {"event": "user.sessions_ended", "user_id": tara.id, "session_version": version}
    finally:
        pubsub.close()
