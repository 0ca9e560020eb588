import pytest

from tests.conftest import count
from webapp.models import AuditEvent


def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"Log in to the desk" in response.data


def test_login_and_logout(client, auth, factory):
    factory.user("tara", role="trader")
    response = auth.login("tara")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert b"Desk" in client.get("/").data
    assert auth.logout().headers["Location"] == "/login"
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    "username, password, message",
    [
        ("tara", "wrong-password-1", b"Wrong username or password."),
        ("nobody", "Correct-horse-42", b"Wrong username or password."),
        ("", "x", b"Enter your username."),
        ("tara", "", b"Enter your password."),
    ],
)
def test_login_failures(client, auth, factory, username, password, message):
    factory.user("tara")
    response = auth.login(username, password)
    assert response.status_code == 200
    assert message in response.data
    assert client.get("/").status_code == 302  # still anonymous


def test_deactivated_user_cannot_log_in(client, auth, factory):
    factory.user("gone", active=False)
    response = auth.login("gone")
    assert b"This account is deactivated. Ask an admin to reactivate it." in response.data
    assert client.get("/").status_code == 302


def test_deactivating_ends_an_open_session(client, auth, factory, app):
    user = factory.user("tara")
    auth.login("tara")
    from webapp.extensions import db

    with app.app_context():
        db.session.get(type(user), user.id).active = False
        db.session.commit()
    assert client.get("/").status_code == 302


def test_login_is_throttled(client, auth, factory):
    factory.user("tara")
    for _ in range(5):
        assert auth.login("tara", "wrong-password-1").status_code == 200
    response = auth.login("tara")  # even the right password waits
    assert response.status_code == 429
    assert b"Too many login attempts from your address. Wait a minute and try again." in response.data


def test_logins_are_audited(client, auth, factory, app):
    factory.user("tara")
    auth.login("tara", "wrong-password-1")
    auth.login("tara")
    with app.app_context():
        assert count(AuditEvent) == 2


def test_next_only_redirects_inside_the_site(client, auth, factory):
    factory.user("tara")
    response = client.post(
        "/login?next=https://evil.example/", data={"username": "tara", "password": "Correct-horse-42"}
    )
    assert response.headers["Location"] == "/"


def test_next_is_followed(client, factory):
    factory.user("tara")
    response = client.post("/login?next=/instruments/", data={"username": "tara", "password": "Correct-horse-42"})
    assert response.headers["Location"] == "/instruments/"


def test_expired_session_htmx_gets_hx_redirect(client):
    response = client.get("/instruments/?q=INF", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/login")
    assert b"Log in" not in response.data  # nothing to swap into the fragment


@pytest.mark.parametrize(
    "current, new, confirm, message",
    [
        ("wrong-password-1", "Another-pass-77", "Another-pass-77", b"That is not your current password."),
        ("Correct-horse-42", "short1", "short1", b"Use at least 10 characters."),
        ("Correct-horse-42", "password123", "password123", b"too common"),
        ("Correct-horse-42", "tarapass-123", "tarapass-123", b"must not contain the username"),
        ("Correct-horse-42", "Another-pass-77", "Another-pass-78", b"The two passwords differ."),
    ],
)
def test_change_password_rejects(client, auth, factory, current, new, confirm, message):
    factory.user("tara")
    auth.login("tara")
    response = client.post("/account/password", data={"current": current, "new": new, "confirm": confirm})
    assert response.status_code == 200
    assert message in response.data
    auth.logout()
    assert auth.login("tara").status_code == 302  # old password still works


def test_change_password(client, auth, factory):
    factory.user("tara")
    auth.login("tara")
    response = client.post(
        "/account/password",
        data={"current": "Correct-horse-42", "new": "Another-pass-77", "confirm": "Another-pass-77"},
    )
    assert response.status_code == 302
    auth.logout()
    assert auth.login("tara").status_code == 200  # the old one no longer works
    assert auth.login("tara", "Another-pass-77").status_code == 302
