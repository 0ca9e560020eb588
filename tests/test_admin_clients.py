import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import AuditEvent, Client
from webapp.vault import current_vault


@pytest.fixture
def admin(factory, auth):
    user = factory.user("root", role="admin")
    auth.login("root")
    return user


def client_data(**fields):
    data = {
        "name": "Asha Rao",
        "broker": "kite",
        "client_code": "AB1234",
        "algo_id": "",
        "enabled": "y",
        "allowed_products": ["CNC", "MIS"],
        "cred_api_key": "kitekey123",
        "cred_api_secret": "s3cr3t-kite-secret",
    }
    data.update(fields)
    return data


def test_create_client_encrypts_credentials(client, admin, app):
    response = client.post("/admin/clients/new", data=client_data(max_order_value="500000.50", max_quantity="1000"))
    assert response.status_code == 302
    with app.app_context():
        saved = db.session.execute(sa.select(Client)).scalar_one()
        assert "s3cr3t" not in saved.credentials_enc
        assert current_vault().decrypt(saved.credentials_enc) == {
            "api_key": "kitekey123",
            "api_secret": "s3cr3t-kite-secret",
        }
        assert str(saved.max_order_value) == "500000.5000" and saved.allowed_products == "CNC,MIS"
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "client.created")).scalar_one()
        assert "s3cr3t" not in event.detail and "api_secret" in event.detail  # names of what changed, never values
        client_id = saved.id
    page = client.get(f"/admin/clients/{client_id}").data.decode()
    assert "s3cr3t-kite-secret" not in page and "stored ••••cret" in page


def test_blank_secret_keeps_the_stored_one(client, admin, app):
    client.post("/admin/clients/new", data=client_data())
    with app.app_context():
        client_id = db.session.execute(sa.select(Client.id)).scalar_one()
    response = client.post(f"/admin/clients/{client_id}", data=client_data(name="Asha R.", cred_api_secret=""))
    assert response.status_code == 302
    with app.app_context():
        saved = db.session.get(Client, client_id)
        assert saved.name == "Asha R."
        assert current_vault().decrypt(saved.credentials_enc)["api_secret"] == "s3cr3t-kite-secret"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": ""}, "Name the client."),
        ({"client_code": ""}, "Enter the client&#39;s code at the broker."),
        ({"client_code": "AB 12"}, "Letters, digits, dash and underscore only."),
        ({"broker": "nosuch"}, "Not a valid choice"),
        ({"cred_api_secret": ""}, "Enter the API secret."),
        ({"max_quantity": "-5"}, "Must be zero or more."),
        ({"max_order_value": "lots"}, "Enter a number using the digits 0-9"),
        ({"allowed_products": []}, "Allow at least one product."),
    ],
)
def test_client_form_rejects_bad_input(client, admin, app, fields, message):
    response = client.post("/admin/clients/new", data=client_data(**fields))
    assert response.status_code == 200
    assert message in response.data.decode()
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Client)).scalar_one() == 0


def test_client_code_unique_per_broker(client, admin, factory, app):
    factory.client("Existing", broker="kite", code="AB1234")
    response = client.post("/admin/clients/new", data=client_data(client_code="ab1234"))
    assert "Another client already uses code ab1234 at this broker." in response.data.decode()
    response = client.post("/admin/clients/new", data=client_data(broker="paper", client_code="AB1234"))
    assert response.status_code == 302  # the same code at another broker is another account


def test_disable_client(client, admin, factory, app):
    existing = factory.client("Paper One", broker="paper", code="PA0001")
    data = {"name": "Paper One", "broker": "paper", "client_code": "PA0001", "allowed_products": ["CNC"]}
    assert client.post(f"/admin/clients/{existing.id}", data=data).status_code == 302  # no 'enabled' = unticked
    with app.app_context():
        assert db.session.get(Client, existing.id).enabled is False


def test_credential_fields_follow_the_broker(client, admin):
    response = client.get("/admin/clients/credential-fields?broker=kite", headers={"HX-Request": "true"})
    assert b"cred_api_secret" in response.data and b"<html" not in response.data
    assert client.get("/admin/clients/credential-fields?broker=nosuch").status_code == 404
