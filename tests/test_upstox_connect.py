"""An Upstox client connected through the UI: Connect sends the browser to the emulator's
authorization dialog, which comes back to the desk's callback with ?code=&state=; the code exchange
runs in a real RQ worker (SimpleWorker); the session is sealed by the vault and shown with its
03:30 IST expiry (modelled on tests/test_broker_connect.py)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from tests.emulators.common import EmulatorServer
from tests.emulators.upstox import UpstoxEmulator
from webapp.brokers.upstox import UpstoxBroker
from webapp.extensions import db, get_rq_redis
from webapp.models import AuditEvent, Client
from webapp.timeutil import IST
from webapp.trading.accounts import stored_session
from webapp.vault import current_vault

CALLBACK = "http://localhost/clients/connect/callback"


@pytest.fixture(scope="module")
def upstox_server():
    with EmulatorServer(UpstoxEmulator()) as server:
        yield server


def run_jobs(app) -> None:
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        SimpleWorker([Queue("orders", connection=connection)], connection=connection).work(burst=True)


@pytest.fixture
def trader(factory, auth):
    def make(client):
        factory.user("tara", role="trader", clients=[client])
        auth.login("tara")

    return make


def saved_client(app, client_id):
    with app.app_context():
        client = db.session.get(Client, client_id)
        db.session.expunge(client)
        return client


def upstox_client(app, factory, server, *, secret: str | None = None):
    app.config.update(UPSTOX_API_URL=server.url)
    creds = server.app.add_account(redirect_uri=CALLBACK)
    desk_client = factory.client(
        "Uma",
        broker="upstox",
        code=creds["user_id"],
        credentials={"api_key": creds["client_id"], "api_secret": secret or creds["client_secret"]},
    )
    return creds, desk_client


def approve(server, creds, dialog_url: str) -> str:
    """The trader's browser on Upstox's authorization dialog: load it, approve, follow nothing."""
    query = dict(parse_qsl(urlsplit(dialog_url).query))
    assert query["client_id"] == creds["client_id"] and query["redirect_uri"] == CALLBACK
    assert query["response_type"] == "code" and query["state"]
    with requests.Session() as browser:
        assert "Login to Upstox" in browser.get(dialog_url, timeout=5).text
        back = browser.post(
            server.url + "/v2/login/authorization/dialog",
            data={**query, "user_id": creds["user_id"]},
            allow_redirects=False,
            timeout=5,
        )
    assert back.status_code == 302
    return back.headers["Location"]


def test_upstox_connect_through_the_authorization_dialog(app, client, factory, trader, upstox_server):
    creds, desk_client = upstox_client(app, factory, upstox_server)
    trader(desk_client)
    to_upstox = client.get(f"/clients/{desk_client.id}/connect")
    assert to_upstox.status_code == 302
    dialog = to_upstox.headers["Location"]
    assert dialog.startswith(upstox_server.url + "/v2/login/authorization/dialog?")
    callback = urlsplit(approve(upstox_server, creds, dialog))
    assert callback.path == "/clients/connect/callback" and "code=" in callback.query and "state=" in callback.query
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302
    run_jobs(app)
    saved = saved_client(app, desk_client.id)
    assert saved.session_state() == "connected"
    with app.app_context():
        session = stored_session(saved, current_vault())
        assert len(session.access_token) > 10 and session.access_token not in saved.session_enc
        assert session.expires_at.astimezone(IST).time().strftime("%H:%M") == "03:30"
        assert creds["client_secret"] not in (saved.credentials_enc or "")
    panel = client.get(f"/clients/{desk_client.id}/session", headers={"HX-Request": "true"}).data.decode()
    assert "connected · expires" in panel
    assert client.get(f"{callback.path}?{callback.query}").status_code == 400  # the state is single use


def test_upstox_connect_sends_the_browser_to_the_dialog_with_the_desks_callback(
    app, client, factory, trader, upstox_server
):
    creds, desk_client = upstox_client(app, factory, upstox_server)
    trader(desk_client)
    to_upstox = client.get(f"/clients/{desk_client.id}/connect")
    assert to_upstox.status_code == 302
    location = approve(upstox_server, creds, to_upstox.headers["Location"])
    back = dict(parse_qsl(urlsplit(location).query))
    assert location.startswith(CALLBACK + "?") and back["code"] and back["state"]
    assert UpstoxBroker.login_kind == "redirect"


def test_a_failed_upstox_code_exchange_is_shown_and_saves_nothing(app, client, factory, trader, upstox_server):
    """The job itself, fed the callback's params as the desk passes them: a wrong API secret is
    refused by Upstox (UDAPI100016), recorded, and nothing is stored."""
    from webapp.trading import sessions

    creds, desk_client = upstox_client(app, factory, upstox_server, secret="wrong-secret-value")
    trader(desk_client)
    location = approve(upstox_server, creds, client.get(f"/clients/{desk_client.id}/connect").headers["Location"])
    params = dict(parse_qsl(urlsplit(location).query)) | {"redirect_uri": CALLBACK}  # as the callback route passes
    with app.app_context():
        connected = sessions.connect(
            desk_client.id,
            params,
            actor_id=None,
            actor="tara",
            config=app.config,
            vault=current_vault(),
            redis=get_rq_redis(),
        )
        db.session.commit()
        assert connected is False
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "broker.login")).scalar_one()
        assert event.result == "failed" and params["code"] not in event.detail
    assert saved_client(app, desk_client.id).session_state() == "none"


def test_the_code_exchange_job_connects_the_client(app, client, factory, trader, upstox_server):
    """The same job with the right secret: the session is sealed and expires at 03:30 IST."""
    from webapp.trading import sessions

    creds, desk_client = upstox_client(app, factory, upstox_server)
    trader(desk_client)
    location = approve(upstox_server, creds, client.get(f"/clients/{desk_client.id}/connect").headers["Location"])
    with app.app_context():
        assert sessions.connect(
            desk_client.id,
            dict(parse_qsl(urlsplit(location).query)) | {"redirect_uri": CALLBACK},
            actor_id=None,
            actor="tara",
            config=app.config,
            vault=current_vault(),
            redis=get_rq_redis(),
        )
        db.session.commit()
    saved = saved_client(app, desk_client.id)
    assert saved.session_state() == "connected"
    with app.app_context():
        session = stored_session(saved, current_vault())
        assert session.access_token not in saved.session_enc
        assert session.expires_at.astimezone(IST).strftime("%H:%M") == "03:30"
    panel = client.get(f"/clients/{desk_client.id}/session", headers={"HX-Request": "true"}).data.decode()
    assert "connected · expires" in panel
