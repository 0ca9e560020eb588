"""CSRF is on in this module: every state change needs the token (form field or htmx header)."""

import re

import pytest

pytestmark = pytest.mark.csrf


def token_from(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_login_without_token_is_400(client, factory):
    factory.user("tara")
    response = client.post("/login", data={"username": "tara", "password": "Correct-horse-42"})
    assert response.status_code == 400
    assert b"Your form expired or was not sent from this site." in response.data


def login(client) -> str:
    token = token_from(client.get("/login").data.decode())
    response = client.post("/login", data={"username": "root", "password": "Correct-horse-42", "csrf_token": token})
    assert response.status_code == 302
    return token


def test_login_with_token(client, factory):
    factory.user("root", role="admin")
    login(client)


def test_admin_post_without_token_is_400_and_changes_nothing(client, factory, app):
    factory.user("root", role="admin")
    login(client)
    response = client.post(
        "/admin/users/new", data={"username": "x1234", "role": "viewer", "password": "Sharp-trader-9"}
    )
    assert response.status_code == 400
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import User

    with app.app_context():
        assert db.session.execute(sa.select(User).where(User.username == "x1234")).first() is None


def test_htmx_header_token_is_accepted(client, factory):
    factory.user("root", role="admin")
    login(client)
    page = client.get("/").data.decode()
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    response = client.post("/logout", headers={"X-CSRFToken": header_token, "HX-Request": "true"})
    assert response.status_code == 302
    assert client.post("/logout").status_code in (302, 400)  # logged out already or refused, never a 500


def test_order_posts_need_the_token(client, factory, app):
    factory.user("root", role="admin")
    login(client)
    for path in ("/orders/new", "/orders/preview", "/exits/desk/kill", "/exits/position", "/clients/1/connect"):
        assert client.post(path, data={"on": "1"}).status_code == 400, path
