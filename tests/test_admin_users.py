import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import User


@pytest.fixture
def admin(factory, auth):
    user = factory.user("root", role="admin")
    auth.login("root")
    return user


def new_user(client, **fields):
    data = {"username": "tara", "email": "", "role": "trader", "password": "Sharp-trader-9"}
    data.update(fields)
    return client.post("/admin/users/new", data=data)


def test_admin_creates_trader_grants_two_clients_and_trader_sees_only_those(client, auth, admin, factory, app):
    a, b, c = factory.client("Alpha"), factory.client("Beta"), factory.client("Gamma")
    response = new_user(client, clients=[a.id, b.id])
    assert response.status_code == 302
    auth.logout()
    auth.login("tara", "Sharp-trader-9")
    page = client.get("/").data.decode()
    assert "Alpha" in page and "Beta" in page and "Gamma" not in page
    assert client.get(f"/clients/{a.id}").status_code == 200
    assert client.get(f"/clients/{c.id}").status_code == 404


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"username": "root"}, "That username is taken."),
        ({"username": "ROOT"}, "That username is taken."),
        ({"username": "a b"}, "Letters, digits, dot, dash and underscore only."),
        ({"username": ""}, "Choose a username."),
        ({"password": "short"}, "Use at least 10 characters."),
        ({"password": "aaaaaaaaaaaa"}, "too common or repetitive"),
        ({"password": ""}, "Set an initial password."),
        ({"email": "not-an-email"}, "Not an email address."),
        ({"role": "superuser"}, "Not a valid choice"),
    ],
)
def test_create_user_rejects_bad_input(client, admin, app, fields, message):
    response = new_user(client, **fields)
    assert response.status_code == 200
    assert message in response.data.decode()
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(User)).scalar_one() == 1


def test_edit_role_and_grants(client, admin, factory, app):
    a, b = factory.client("Alpha"), factory.client("Beta")
    user = factory.user("tara", clients=[a])
    response = client.post(
        f"/admin/users/{user.id}",
        data={
            "email": "t@example.com",
            "role": "viewer",
            "clients": [b.id],
            "max_orders_per_day": "40",
            "max_daily_loss": "25000",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        saved = db.session.get(User, user.id)
        assert saved.role == "viewer" and [c.name for c in saved.clients] == ["Beta"]
        assert saved.max_orders_per_day == 40 and str(saved.max_daily_loss) == "25000.0000"
    bad = client.post(f"/admin/users/{user.id}", data={"role": "viewer", "max_orders_per_day": "-1"})
    assert "Must be zero or more." in bad.data.decode()


def test_admin_cannot_demote_self(client, admin):
    response = client.post(f"/admin/users/{admin.id}", data={"role": "viewer"})
    assert b"You cannot remove your own admin role." in response.data


def test_deactivate_and_reactivate(client, admin, factory, app, auth):
    user = factory.user("tara")
    assert client.post(f"/admin/users/{user.id}/active", data={"active": "0"}).status_code == 302
    with app.app_context():
        assert db.session.get(User, user.id).active is False
    assert client.post(f"/admin/users/{user.id}/active", data={"active": "1"}).status_code == 302
    with app.app_context():
        assert db.session.get(User, user.id).active is True


def test_reset_password(client, admin, factory, auth):
    user = factory.user("tara")
    assert (
        b"Use at least 10 characters." in client.post(f"/admin/users/{user.id}/password", data={"password": "x"}).data
    )
    assert client.post(f"/admin/users/{user.id}/password", data={"password": "Fresh-start-11"}).status_code == 302
    auth.logout()
    assert auth.login("tara", "Fresh-start-11").status_code == 302


def test_unknown_user_is_404(client, admin):
    assert client.get("/admin/users/9999").status_code == 404
