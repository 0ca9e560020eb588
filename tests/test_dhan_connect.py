"""A Dhan client connected through the UI: the login form posted through the test client, the token
check or exchange run in a real RQ worker (SimpleWorker) against the Dhan emulator over loopback."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyotp
import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from tests.emulators.common import EmulatorServer
from tests.emulators.dhan import DhanEmulator
from webapp.extensions import db, get_rq_redis
from webapp.models import AuditEvent, Client
from webapp.timeutil import UTC
from webapp.trading.accounts import stored_session
from webapp.vault import current_vault


@pytest.fixture(scope="module")
def dhan_server():
    with EmulatorServer(DhanEmulator()) as server:
        yield server


@pytest.fixture
def dhan(app, dhan_server):
    app.config.update(DHAN_API_URL=dhan_server.url, DHAN_AUTH_URL=dhan_server.url)
    return dhan_server.app


def run_jobs(app) -> None:
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        SimpleWorker([Queue("orders", connection=connection)], connection=connection).work(burst=True)


@pytest.fixture
def desk_client(factory, auth, dhan):
    def make():
        creds = dhan.add_account()
        client = factory.client("Dev", broker="dhan", code=creds["client_id"], credentials={})
        factory.user("tara", role="trader", clients=[client])
        auth.login("tara")
        return client, creds

    return make


def saved_client(app, client_id):
    with app.app_context():
        client = db.session.get(Client, client_id)
        db.session.expunge(client)
        return client


def login_audit(app) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "broker.login")).scalars())


def test_connect_with_a_pasted_access_token(app, client, desk_client):
    desk, creds = desk_client()
    form = client.get(f"/clients/{desk.id}/connect").data.decode()
    assert 'name="access_token"' in form and 'name="pin"' in form and 'name="totp"' in form
    response = client.post(f"/clients/{desk.id}/connect", data={"access_token": creds["access_token"]})
    assert response.status_code == 302
    assert "connecting…" in client.get(f"/clients/{desk.id}").data.decode()
    run_jobs(app)
    saved = saved_client(app, desk.id)
    assert saved.session_state() == "connected"
    token_expiry = datetime.fromisoformat(creds["expires_at"]).astimezone(UTC)
    assert abs(saved.session_expires_at.replace(tzinfo=UTC) - token_expiry) < timedelta(minutes=1)
    with app.app_context():
        session = stored_session(saved, current_vault())
        assert session.access_token == creds["access_token"]
    assert creds["access_token"] not in saved.session_enc  # sealed by the vault
    panel = client.get(f"/clients/{desk.id}/session", headers={"HX-Request": "true"}).data.decode()
    assert "connected · expires" in panel
    [event] = login_audit(app)
    assert event.result != "failed" and creds["access_token"] not in str(event.detail)


def test_connect_with_pin_and_totp(app, client, desk_client, dhan):
    desk, creds = desk_client()
    totp = pyotp.TOTP(creds["totp_secret"]).now()
    response = client.post(f"/clients/{desk.id}/connect", data={"pin": creds["pin"], "totp": totp})
    assert response.status_code == 302
    run_jobs(app)
    saved = saved_client(app, desk.id)
    assert saved.session_state() == "connected"
    with app.app_context():
        session = stored_session(saved, current_vault())
    assert (
        session.access_token != creds["access_token"] and dhan.stream_account(session.access_token) == desk.client_code
    )
    event = login_audit(app)[0]
    assert creds["pin"] not in str(event.detail) and totp not in str(event.detail)  # typed secrets are not kept


def test_neither_token_nor_pin_and_totp_says_what_is_missing(app, client, desk_client):
    desk, _ = desk_client()
    client.post(f"/clients/{desk.id}/connect", data={"pin": "123456"})
    run_jobs(app)
    assert saved_client(app, desk.id).session_state() == "none"
    page = client.get(f"/clients/{desk.id}").data.decode()
    assert "Login failed:" in page and "Paste the access token from web.dhan.co" in page


def test_a_wrong_pin_fails_and_saves_nothing(app, client, desk_client):
    desk, creds = desk_client()
    wrong = "000000" if creds["pin"] != "000000" else "111111"
    totp = pyotp.TOTP(creds["totp_secret"]).now()
    client.post(f"/clients/{desk.id}/connect", data={"pin": wrong, "totp": totp})
    run_jobs(app)
    assert saved_client(app, desk.id).session_state() == "none"
    assert "Login failed:" in client.get(f"/clients/{desk.id}").data.decode()
    [event] = login_audit(app)
    assert event.result == "failed" and wrong not in str(event.detail)
