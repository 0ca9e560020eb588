"""A Kotak Neo client connected through the UI: the login form (TOTP and MPIN), the two-step token
exchange in a real RQ worker (SimpleWorker) against the Kotak emulator, the session sealed by the
vault and shown with its expiry."""

from __future__ import annotations

import pyotp
import pytest
import sqlalchemy as sa

from tests.emulators.common import EmulatorServer
from tests.emulators.kotak import KotakEmulator
from tests.test_broker_connect import run_jobs, saved_client
from webapp.extensions import db
from webapp.models import AuditEvent
from webapp.trading.accounts import stored_session
from webapp.vault import current_vault


@pytest.fixture(scope="module")
def kotak_server():
    with EmulatorServer(KotakEmulator()) as server:
        server.app.public_url = server.url
        yield server


@pytest.fixture
def kotak_client(app, factory, auth, kotak_server):
    app.config.update(KOTAK_API_URL=kotak_server.url)
    creds = kotak_server.app.add_account()
    desk_client = factory.client(
        "Kavya",
        broker="kotak",
        code=creds["ucc"],
        credentials={"consumer_key": creds["consumer_key"], "mobile_number": creds["mobile_number"]},
    )
    factory.user("tara", role="trader", clients=[desk_client])
    auth.login("tara")
    return desk_client, creds


def test_kotak_connect_with_totp_then_mpin(app, client, kotak_client, kotak_server):
    desk_client, creds = kotak_client
    form = client.get(f"/clients/{desk_client.id}/connect").data.decode()
    assert 'name="totp"' in form and 'name="mpin"' in form
    missing = client.post(f"/clients/{desk_client.id}/connect", data={"totp": "", "mpin": ""})
    assert "Enter the TOTP." in missing.data.decode()
    totp = pyotp.TOTP(creds["totp_secret"]).now()
    response = client.post(f"/clients/{desk_client.id}/connect", data={"totp": totp, "mpin": creds["mpin"]})
    assert response.status_code == 302
    run_jobs(app)
    saved = saved_client(app, desk_client.id)
    assert saved.session_state() == "connected"
    with app.app_context():
        vault = current_vault()
        session = stored_session(saved, vault)
        assert session.access_token in kotak_server.app.sessions
        assert session.extra["base_url"] == kotak_server.url and session.extra["sid"]
        assert session.access_token not in saved.session_enc
        assert creds["consumer_key"] not in saved.credentials_enc  # sealed by the vault
        assert vault.decrypt(saved.credentials_enc)["consumer_key"] == creds["consumer_key"]
        # the secrets typed in the login form are not stored anywhere
        assert creds["mpin"] not in vault.decrypt(saved.credentials_enc).values()
        details = db.session.execute(sa.select(AuditEvent.detail)).scalars().all()
        assert details and not any(creds["mpin"] in str(d) or totp in str(d) for d in details)
    panel = client.get(f"/clients/{desk_client.id}/session", headers={"HX-Request": "true"}).data.decode()
    assert "connected · expires" in panel


def test_a_wrong_mpin_is_shown_and_saves_nothing(app, client, kotak_client):
    desk_client, creds = kotak_client
    wrong = f"{(int(creds['mpin']) + 1) % 10**6:06d}"
    totp = pyotp.TOTP(creds["totp_secret"]).now()
    client.post(f"/clients/{desk_client.id}/connect", data={"totp": totp, "mpin": wrong})
    run_jobs(app)
    assert saved_client(app, desk_client.id).session_state() == "none"
    page = client.get(f"/clients/{desk_client.id}").data.decode()
    assert "Login failed:" in page and "Invalid MPIN" in page
