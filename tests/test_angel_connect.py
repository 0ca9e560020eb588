"""An Angel One client connected through the UI: the login form (MPIN and TOTP) on the client page, the
token exchange (loginByPassword) in a real RQ worker against the Angel emulator, the session sealed by
the vault with the feed token the stream needs, and the session badge with its expiry."""

from __future__ import annotations

import pyotp
import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from tests.emulators.angel import AngelEmulator
from tests.emulators.common import EmulatorServer
from webapp.extensions import db, get_rq_redis
from webapp.models import AuditEvent, Client
from webapp.timeutil import IST
from webapp.trading.accounts import stored_session
from webapp.vault import current_vault


@pytest.fixture(scope="module")
def angel_server():
    with EmulatorServer(AngelEmulator()) as server:
        yield server


def run_jobs(app) -> None:
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        SimpleWorker([Queue("orders", connection=connection)], connection=connection).work(burst=True)


@pytest.fixture
def angel_client(app, factory, auth, angel_server):
    """A desk client at Angel with its SmartAPI key saved, granted to a logged-in trader."""
    app.config.update(ANGEL_API_URL=angel_server.url)
    creds = angel_server.app.add_account()
    desk_client = factory.client(
        "Devi", broker="angel", code=creds["client_code"], credentials={"api_key": creds["api_key"]}
    )
    factory.user("tara", role="trader", clients=[desk_client])
    auth.login("tara")
    return desk_client, creds


def saved_client(app, client_id):
    with app.app_context():
        client = db.session.get(Client, client_id)
        db.session.expunge(client)
        return client


def test_angel_connect_with_mpin_and_totp(app, client, angel_client, angel_server):
    desk_client, creds = angel_client
    form = client.get(f"/clients/{desk_client.id}/connect").data.decode()
    assert 'name="mpin"' in form and 'name="totp"' in form and 'type="password"' in form
    missing = client.post(f"/clients/{desk_client.id}/connect", data={"mpin": "", "totp": ""})
    assert "Enter the MPIN." in missing.data.decode()
    response = client.post(
        f"/clients/{desk_client.id}/connect",
        data={"mpin": creds["mpin"], "totp": pyotp.TOTP(creds["totp_secret"]).now()},
    )
    assert response.status_code == 302
    assert "connecting…" in client.get(f"/clients/{desk_client.id}").data.decode()
    run_jobs(app)
    saved = saved_client(app, desk_client.id)
    assert saved.session_state() == "connected"
    with app.app_context():
        session = stored_session(saved, current_vault())
        credentials = current_vault().decrypt(saved.credentials_enc)
    emulator = angel_server.app
    assert emulator.sessions[session.access_token] == creds["client_code"]
    assert emulator.feed_tokens[session.extra["feed_token"]] == creds["client_code"]
    assert session.access_token not in saved.session_enc and creds["api_key"] not in saved.credentials_enc
    assert credentials == {"api_key": creds["api_key"]}  # the MPIN and TOTP typed in the form are not kept
    expiry = session.expires_at.astimezone(IST)
    assert (expiry.hour, expiry.minute) == (5, 0)
    panel = client.get(f"/clients/{desk_client.id}/session", headers={"HX-Request": "true"}).data.decode()
    assert "connected · expires" in panel and "hx-trigger" not in panel


def test_a_wrong_mpin_is_shown_and_saves_nothing(app, client, angel_client):
    desk_client, creds = angel_client
    wrong = "9" * 5
    client.post(
        f"/clients/{desk_client.id}/connect", data={"mpin": wrong, "totp": pyotp.TOTP(creds["totp_secret"]).now()}
    )
    run_jobs(app)
    assert saved_client(app, desk_client.id).session_state() == "none"
    page = client.get(f"/clients/{desk_client.id}").data.decode()
    assert "Login failed:" in page and "Invalid clientcode or MPIN" in page
    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "broker.login")).scalar_one()
        assert event.result == "failed" and wrong not in (event.detail or "")
