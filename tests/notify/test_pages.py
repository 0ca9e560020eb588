"""The notifications pages per role, the bell, the settings form (bad input changes nothing), the
Telegram code and unlink, and the toasts reaching only their own user's page-chrome sockets."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.factories import DEFAULT_PASSWORD
from tests.notify.conftest import order_in, run_collect
from webapp.extensions import db
from webapp.feed.hub import Subscriber
from webapp.models import Notification, NotificationPrefs
from webapp.notify import live
from webapp.notify.collect import EVENT
from webapp.notify.telegram import hash_code
from webapp.timeutil import utcnow


def _login(client, user):
    reply = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD})
    assert reply.status_code == 302


def _add(app, user_id, n, kind="fill", client_id=None, read=False):
    with app.app_context():
        for i in range(n):
            db.session.add(
                Notification(
                    user_id=user_id,
                    key=f"{kind}:test:{i}",
                    kind=kind,
                    title=f"{kind} number {i}",
                    body="",
                    client_id=client_id,
                    read_at=utcnow() if read else None,
                )
            )
        db.session.commit()


@pytest.mark.parametrize("who", ["admin", "trader", "viewer"])
def test_every_role_has_its_pages(app, client, desk, who):
    user = getattr(desk, who)
    _add(app, user.id, 2, client_id=None if who == "admin" else (desk.mine if who == "trader" else desk.other).id)
    _login(client, user)
    page = client.get("/notifications").get_data(as_text=True)
    assert "fill number 1" in page and "2 unread" in page
    assert 'class="bell-count">2<' in client.get("/clients/").get_data(as_text=True)  # the header of any page
    assert 'class="bell-count">2<' in client.get("/notifications/bell").get_data(as_text=True)
    assert client.get("/notifications/settings").status_code == 200


def test_anonymous_is_sent_to_login(client):
    for url in ("/notifications", "/notifications/bell", "/notifications/settings"):
        assert client.get(url).status_code == 302


def test_only_own_and_still_visible_notifications(app, client, factory, desk):
    _add(app, desk.viewer.id, 1, kind="risk", client_id=desk.other.id)
    order_in(factory, desk, desk.mine, "REJECTED", reason="RMS")
    run_collect(app)
    _login(client, desk.viewer)
    page = client.get("/notifications").get_data(as_text=True)
    assert "risk number 0" in page and "Rejected" not in page  # the trader's client: not the viewer's
    with app.app_context():  # the grant goes: its notifications go from the page
        db.session.execute(sa.text("DELETE FROM user_clients WHERE user_id = :u"), {"u": desk.viewer.id})
        db.session.commit()
    assert "risk number 0" not in client.get("/notifications").get_data(as_text=True)


def test_filter_page_and_mark_read(app, client, desk):
    _add(app, desk.admin.id, 55)
    _add(app, desk.admin.id, 1, kind="kill")
    _login(client, desk.admin)
    first = client.get("/notifications").get_data(as_text=True)
    assert "Page 1 · 56 in all" in first and "Older →" in first and "fill number 0<" not in first
    assert "fill number 0<" in client.get("/notifications?page=2").get_data(as_text=True)
    kills = client.get("/notifications?kind=kill").get_data(as_text=True)
    assert "kill number 0" in kills and "fill number" not in kills
    with app.app_context():
        nid = db.session.execute(sa.select(Notification.id).where(Notification.kind == "kill")).scalar_one()
    assert client.post("/notifications/read", data={"id": nid}).status_code == 302
    assert "55 unread" in client.get("/notifications").get_data(as_text=True)
    assert "kill number" not in client.get("/notifications?unread=1&kind=kill").get_data(as_text=True)
    client.post("/notifications/read-all")
    assert "0 unread" in client.get("/notifications").get_data(as_text=True)


def test_hostile_input_is_no_500_and_others_rows_are_untouched(app, client, desk):
    _add(app, desk.trader.id, 1, client_id=desk.mine.id)
    _login(client, desk.viewer)
    for url in ("/notifications?page=abc&kind=<script>", "/notifications?page=99999999999", "/notifications?page=-1"):
        assert client.get(url).status_code == 200
    assert client.post("/notifications/read", data={"id": "abc"}).status_code == 404
    with app.app_context():
        nid = db.session.execute(sa.select(Notification.id)).scalar_one()
    client.post("/notifications/read", data={"id": nid})  # the trader's: the viewer cannot mark it
    with app.app_context():
        assert db.session.get(Notification, nid).read_at is None


def _prefs(app, user_id):
    with app.app_context():
        prefs = db.session.get(NotificationPrefs, user_id)
        if prefs is None:
            return None
        return (prefs.sound, prefs.browser, prefs.email, prefs.email_kinds, prefs.telegram_kinds)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "not-an-address", "email_kinds": ["fill"]}, "Enter an email address."),
        ({"email": "", "email_kinds": ["fill"]}, "Enter the email address these go to."),
        ({"email": "a@example.com", "email_kinds": ["sms"]}, "valid choice"),
        ({"telegram_kinds": ["fill"]}, "Link Telegram first"),
    ],
)
def test_bad_settings_change_nothing(app, client, desk, form, message):
    app.config.update(TELEGRAM_BOT_TOKEN="123:abc", SMTP_HOST="127.0.0.1")
    _login(client, desk.trader)
    client.post("/notifications/settings", data={"sound": "y", "email": "t@example.com", "email_kinds": ["kill"]})
    before = _prefs(app, desk.trader.id)
    assert before == (True, False, "t@example.com", "kill", "")
    reply = client.post("/notifications/settings", data=form)
    assert reply.status_code == 400 and message in reply.get_data(as_text=True)
    assert _prefs(app, desk.trader.id) == before


def test_settings_save_and_telegram_code_and_unlink(app, client, desk):
    app.config.update(TELEGRAM_BOT_TOKEN="123:abc", SMTP_HOST=None)
    _login(client, desk.trader)
    page = client.get("/notifications/settings").get_data(as_text=True)
    assert "Link Telegram" in page and "Send by email" not in page  # email not set up on this desk
    reply = client.post("/notifications/settings/telegram/code").get_data(as_text=True)
    code = reply.split('id="telegram-code">/start ')[1].split("<")[0]
    with app.app_context():
        prefs = db.session.get(NotificationPrefs, desk.trader.id)
        assert prefs.link_code_hash == hash_code(code)
        prefs.telegram_chat_id, prefs.link_code_hash = "777", None  # as the poller links it
        db.session.commit()
    client.post("/notifications/settings", data={"browser": "y", "telegram_kinds": ["fill", "kill"]})
    assert _prefs(app, desk.trader.id)[1:] == (True, None, "", "fill,kill")
    client.post("/notifications/settings/telegram/unlink")
    with app.app_context():
        prefs = db.session.get(NotificationPrefs, desk.trader.id)
        assert (prefs.telegram_chat_id, prefs.telegram_kinds) == (None, "")


def test_the_code_route_is_not_there_without_a_bot(app, client, desk):
    app.config.update(TELEGRAM_BOT_TOKEN=None)
    _login(client, desk.trader)
    assert client.post("/notifications/settings/telegram/code").status_code == 404


def test_toasts_go_only_to_their_users_chrome_sockets(app, factory, desk):
    order_in(factory, desk, desk.mine, "REJECTED", reason="RMS: margin")
    run_collect(app)
    with app.app_context():
        rows = db.session.execute(sa.select(Notification.id, Notification.user_id)).all()
        event = {"event": EVENT, "notifications": [{"id": i, "user": u} for i, u in rows]}

        def sub(user, page="chrome"):
            ids = frozenset() if user.role == "admin" else frozenset([desk.mine.id])
            return Subscriber(id=user.id * 10, user_id=user.id, role=user.role, client_ids=ids, page=page, target=None)

        subs = [sub(desk.trader), sub(desk.trader, "desk"), sub(desk.viewer), sub(desk.admin)]
        with app.test_request_context():
            out = live.for_event(event, subs)
    assert [(s.user_id, s.page) for s, _ in out] == [(desk.trader.id, "chrome"), (desk.admin.id, "chrome")]
    html = out[0][1]
    assert 'data-toast="rejection"' in html and "toast-red" in html and "RMS: margin" in html
    assert 'id="notify-bell"' in html and 'class="bell-count">1<' in html and "/orders/batches/" in html


def test_the_page_shows_each_channels_outcome(app, client, desk):
    from webapp.models import NotificationDelivery

    _add(app, desk.trader.id, 1, client_id=desk.mine.id)
    with app.app_context():
        nid = db.session.execute(sa.select(Notification.id)).scalar_one()
        db.session.add_all(
            [
                NotificationDelivery(
                    notification_id=nid,
                    channel="telegram",
                    state="FAILED",
                    attempts=5,
                    error="gave up after 5 tries: Telegram 500: Internal Server Error",
                ),
                NotificationDelivery(
                    notification_id=nid,
                    channel="email",
                    state="UNCONFIRMED",
                    attempts=1,
                    error="the SMTP connection dropped while sending; not repeated",
                ),
            ]
        )
        db.session.commit()
    _login(client, desk.trader)
    page = client.get("/notifications").get_data(as_text=True)
    assert "Telegram:\n          failed: gave up after 5 tries: Telegram 500" in page
    assert "unconfirmed: the SMTP connection dropped while sending" in page
