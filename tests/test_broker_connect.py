"""A client connected to each broker's emulator through the UI: the browser part through the test
client and the emulator's own login page, the token exchange in a real RQ worker (SimpleWorker)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pyotp
import pytest
import requests
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from tests.emulators.common import EmulatorServer
from tests.emulators.kite import KiteEmulator
from tests.emulators.motilal import MotilalEmulator
from tests.emulators.sharekhan import ShareKhanEmulator
from webapp.extensions import db, get_rq_redis
from webapp.models import AuditEvent, Client
from webapp.trading import sessions
from webapp.trading.accounts import stored_session
from webapp.vault import current_vault


@pytest.fixture(scope="module")
def kite_server():
    with EmulatorServer(KiteEmulator()) as server:
        yield server


@pytest.fixture(scope="module")
def motilal_server():
    with EmulatorServer(MotilalEmulator()) as server:
        yield server


@pytest.fixture(scope="module")
def sharekhan_server():
    with EmulatorServer(ShareKhanEmulator()) as server:
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


def test_kite_connect_through_the_emulators_login_page(app, client, factory, trader, kite_server):
    app.config.update(KITE_API_URL=kite_server.url, KITE_LOGIN_URL=kite_server.url)
    creds = kite_server.app.add_account(redirect_url="http://localhost/clients/connect/callback")
    desk_client = factory.client(
        "Asha",
        broker="kite",
        code=creds["user_id"],
        credentials={"api_key": creds["api_key"], "api_secret": creds["api_secret"]},
    )
    trader(desk_client)
    to_kite = client.get(f"/clients/{desk_client.id}/connect")
    assert to_kite.status_code == 302 and to_kite.headers["Location"].startswith(kite_server.url + "/connect/login?")
    with requests.Session() as browser:  # the trader's browser on Kite's login page
        query = dict(parse_qsl(urlsplit(to_kite.headers["Location"]).query))
        assert 'name="user_id"' in browser.get(to_kite.headers["Location"]).text
        back = browser.post(
            kite_server.url + "/connect/login",
            allow_redirects=False,
            data={
                "api_key": query["api_key"],
                "redirect_params": query["redirect_params"],
                "user_id": creds["user_id"],
                "password": creds["password"],
            },
        )
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/clients/connect/callback" and "request_token" in callback.query
    page = client.get(f"{callback.path}?{callback.query}")
    assert page.status_code == 302
    assert "connecting…" in client.get(f"/clients/{desk_client.id}").data.decode()
    run_jobs(app)
    saved = saved_client(app, desk_client.id)
    assert saved.session_state() == "connected"
    with app.app_context():
        session = stored_session(saved, current_vault())
        assert len(session.access_token) > 10 and session.access_token not in saved.session_enc
    panel = client.get(f"/clients/{desk_client.id}/session", headers={"HX-Request": "true"}).data.decode()
    assert "connected · expires" in panel and "hx-trigger" not in panel  # polling stopped
    # the state is single use: replaying the callback is refused
    assert client.get(f"{callback.path}?{callback.query}").status_code == 400


def test_a_failed_kite_login_is_shown_and_saves_nothing(app, client, factory, trader, kite_server):
    app.config.update(KITE_API_URL=kite_server.url, KITE_LOGIN_URL=kite_server.url)
    creds = kite_server.app.add_account(redirect_url="http://localhost/clients/connect/callback")
    desk_client = factory.client(
        "Asha",
        broker="kite",
        code=creds["user_id"],
        credentials={"api_key": creds["api_key"], "api_secret": "wrong-secret-value"},
    )
    trader(desk_client)
    state = dict(
        parse_qsl(
            dict(parse_qsl(urlsplit(client.get(f"/clients/{desk_client.id}/connect").headers["Location"]).query))[
                "redirect_params"
            ]
        )
    )["state"]
    client.get(f"/clients/connect/callback?request_token=forged-token&status=success&state={state}")
    run_jobs(app)
    assert saved_client(app, desk_client.id).session_state() == "none"
    page = client.get(f"/clients/{desk_client.id}").data.decode()
    assert "Login failed:" in page
    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "broker.login")).scalar_one()
        assert event.result == "failed" and "forged" not in event.detail


def test_motilal_connect_with_password_dob_and_totp(app, client, factory, trader, motilal_server):
    app.config.update(MOTILAL_API_URL=motilal_server.url)
    creds = motilal_server.app.add_account()
    desk_client = factory.client(
        "Bina",
        broker="motilal",
        code=creds["client_code"],
        credentials={"api_key": creds["api_key"], "user_id": creds["user_id"]},
    )
    trader(desk_client)
    form = client.get(f"/clients/{desk_client.id}/connect").data.decode()
    assert 'name="two_fa"' in form and 'name="totp"' in form
    missing = client.post(f"/clients/{desk_client.id}/connect", data={"password": "", "two_fa": ""})
    assert "Enter the Password." in missing.data.decode()
    response = client.post(
        f"/clients/{desk_client.id}/connect",
        data={"password": creds["password"], "two_fa": creds["dob"], "totp": pyotp.TOTP(creds["totp_secret"]).now()},
    )
    assert response.status_code == 302
    run_jobs(app)
    assert saved_client(app, desk_client.id).session_state() == "connected"


def test_sharekhan_connect_through_the_token_handshake(app, client, factory, trader, sharekhan_server):
    app.config.update(SHAREKHAN_API_URL=sharekhan_server.url, SHAREKHAN_LOGIN_URL=sharekhan_server.url)
    creds = sharekhan_server.app.add_account(redirect_url="http://localhost/clients/connect/callback", logged_in=False)
    desk_client = factory.client(
        "Chirag",
        broker="sharekhan",
        code=creds["customer_id"],
        credentials={"api_key": creds["api_key"], "secret_key": creds["secret_key"]},
    )
    trader(desk_client)
    to_sharekhan = client.get(f"/clients/{desk_client.id}/connect").headers["Location"]
    query = dict(parse_qsl(urlsplit(to_sharekhan).query))
    with requests.Session() as browser:
        assert "customer_id" in browser.get(to_sharekhan).text
        back = browser.post(
            sharekhan_server.url + "/skapi/auth/login.html",
            allow_redirects=False,
            data={**query, "customer_id": creds["customer_id"], "password": creds["password"]},
        )
    callback = urlsplit(back.headers["Location"])
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302
    run_jobs(app)
    assert saved_client(app, desk_client.id).session_state() == "connected"


def test_viewers_cannot_connect_and_paper_needs_no_login(app, client, factory, auth):
    paper = factory.client("Paper", broker="paper")
    kite = factory.client("Kite", broker="kite", credentials={"api_key": "k", "api_secret": "s"})
    factory.user("vic", role="viewer", clients=[paper, kite])
    factory.user("tara", role="trader", clients=[paper])
    auth.login("vic")
    assert client.get(f"/clients/{kite.id}/connect").status_code == 403
    assert "Connect" not in client.get(f"/clients/{kite.id}").data.decode()
    auth.logout()
    auth.login("tara")
    assert client.get(f"/clients/{kite.id}/connect").status_code == 404  # not granted to tara
    response = client.get(f"/clients/{paper.id}/connect", follow_redirects=True)
    assert "Paper (simulated) accounts need no login." in response.data.decode()


def test_expired_sessions_are_cleared_by_the_cron_job(app, factory):
    from datetime import timedelta

    from webapp.brokers.base import BrokerSession
    from webapp.timeutil import utcnow

    kite = factory.client("Kite", broker="kite")
    with app.app_context():
        stored = db.session.get(Client, kite.id)
        sessions.store_session(stored, BrokerSession("tok", utcnow() - timedelta(minutes=1)), current_vault())
        db.session.commit()
        assert stored.session_state() == "expired"
        assert sessions.expire_sessions() == [kite.id]
        assert db.session.get(Client, kite.id).session_enc is None
        assert sessions.expire_sessions() == []
