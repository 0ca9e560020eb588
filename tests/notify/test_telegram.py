"""Telegram against the Bot API emulator over real HTTP: linking by a one-time code, sending, 429 with
retry_after, 5xx retried then given up, a dropped answer not repeated, a bad token."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from tests.emulators.common import EmulatorServer
from tests.emulators.telegram import TelegramEmulator
from tests.notify.conftest import fill, order_in, run_collect
from webapp.extensions import db
from webapp.models import NotificationCursor, NotificationDelivery, NotificationPrefs
from webapp.notify import delivery as D
from webapp.notify.telegram import Bot, TelegramError, new_link_code, poll_links
from webapp.timeutil import utcnow

TOKEN = "123456:TEST-token"


@pytest.fixture
def telegram():
    emulator = TelegramEmulator(TOKEN)
    with EmulatorServer(emulator) as server:  # type: ignore[arg-type]
        yield emulator, Bot(TOKEN, server.url)


def _code_for(app, user_id: int, **when) -> str:
    with app.app_context():
        prefs = db.session.get(NotificationPrefs, user_id) or NotificationPrefs(user_id=user_id)
        code = new_link_code(prefs, **when)
        db.session.add(prefs)
        db.session.commit()
        return code


def _prefs(app, user_id: int) -> NotificationPrefs:
    with app.app_context():
        prefs = db.session.get(NotificationPrefs, user_id)
        db.session.expunge(prefs)
        return prefs


def test_envelopes_and_a_bad_token(telegram):
    emulator, bot = telegram
    assert bot.get_me()["username"] == "fanout_test_bot"
    reply = requests.post(f"{bot.api_url}/botWRONG/getMe", timeout=5)
    assert reply.status_code == 401 and reply.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    with pytest.raises(TelegramError) as refused:
        Bot("WRONG", bot.api_url).get_me()
    assert not refused.value.retryable and "401" in str(refused.value)


def test_link_by_code_then_send(app, factory, desk, telegram):
    emulator, bot = telegram
    code = _code_for(app, desk.trader.id)
    with app.app_context():
        stored = db.session.get(NotificationPrefs, desk.trader.id)
        assert stored.link_code_hash and code not in stored.link_code_hash  # only its hash is kept
    emulator.user_says(555, "/start WRONGCODE1")
    last = emulator.user_says(777, f"/start {code}", username="tina_tg")
    with app.app_context():
        assert poll_links(bot) == [desk.trader.id]
        assert poll_links(bot) == []  # the offset moved: the same updates are not read again
        offset = db.session.get(NotificationCursor, "telegram_updates").position
    assert offset == last + 1 and emulator.updates == []  # confirmed at the bot: forgotten there
    prefs = _prefs(app, desk.trader.id)
    assert (prefs.telegram_chat_id, prefs.telegram_name, prefs.link_code_hash) == ("777", "tina_tg", None)
    assert "unknown or expired" in emulator.sent_to(555)[0].text
    assert "Linked to Fanout user tina" in emulator.sent_to(777)[0].text
    emulator.user_says(888, f"/start {code}")  # a spent code links nobody else
    with app.app_context():
        assert poll_links(bot) == []

    with app.app_context():
        pref = db.session.get(NotificationPrefs, desk.trader.id)
        pref.telegram_kinds = "fill,rejection"
        db.session.commit()
    order_id = order_in(factory, desk, desk.mine, "OPEN")
    fill(app, order_id, 10, "COMPLETE")
    run_collect(app, {"telegram"})
    with app.app_context():
        assert D.deliver_due(bot, None)[D.SENT] == 1
        assert D.deliver_due(bot, None)[D.SENT] == 0  # sent once
    sent = emulator.sent_to(777)[-1].text
    assert "Filled BUY 10 INFY" in sent and "Asha Rao" in sent and TOKEN not in sent


def test_an_expired_code_links_nothing(app, desk, telegram):
    emulator, bot = telegram
    code = _code_for(app, desk.trader.id, now=utcnow() - timedelta(minutes=11))
    emulator.user_says(777, f"/start {code}")
    with app.app_context():
        assert poll_links(bot) == []
    assert _prefs(app, desk.trader.id).telegram_chat_id is None


def _linked_delivery(app, factory, desk, emulator) -> int:
    emulator.user_says(777, "hello")  # the chat exists at the bot
    with app.app_context():
        db.session.add(NotificationPrefs(user_id=desk.trader.id, telegram_chat_id="777", telegram_kinds="rejection"))
        db.session.commit()
    order_in(factory, desk, desk.mine, "REJECTED", reason="RMS")
    run_collect(app, {"telegram"})
    with app.app_context():
        return db.session.execute(sa.select(NotificationDelivery.id)).scalar_one()


def _delivery(app, delivery_id):
    with app.app_context():
        row = db.session.get(NotificationDelivery, delivery_id)
        db.session.expunge(row)
        return row


def test_429_waits_retry_after_then_sends(app, factory, desk, telegram):
    emulator, bot = telegram
    delivery_id = _linked_delivery(app, factory, desk, emulator)
    emulator.fail_next("429")
    now = utcnow()
    with app.app_context():
        D.deliver_due(bot, None, now)
    row = _delivery(app, delivery_id)
    assert row.state == D.PENDING and row.attempts == 1 and "429" in row.error
    assert row.next_at == now + timedelta(seconds=emulator.retry_after)
    with app.app_context():
        assert D.deliver_due(bot, None, now)[D.SENT] == 0  # not due yet
        assert D.deliver_due(bot, None, now + timedelta(seconds=3))[D.SENT] == 1
    assert len(emulator.sent_to(777)) == 1 and _delivery(app, delivery_id).attempts == 2


def test_5xx_is_retried_with_backoff_then_given_up(app, factory, desk, telegram):
    emulator, bot = telegram
    delivery_id = _linked_delivery(app, factory, desk, emulator)
    emulator.fail_next(*["500"] * D.MAX_TRIES)
    at = utcnow()
    for _ in range(D.MAX_TRIES):
        with app.app_context():
            D.deliver_due(bot, None, at)
        at = _delivery(app, delivery_id).next_at
    row = _delivery(app, delivery_id)
    assert row.state == D.FAILED and row.attempts == D.MAX_TRIES
    assert row.error.startswith(f"gave up after {D.MAX_TRIES} tries") and "500" in row.error
    assert emulator.sent_to(777) == []


def test_a_dropped_answer_is_not_sent_again(app, factory, desk, telegram):
    emulator, bot = telegram
    delivery_id = _linked_delivery(app, factory, desk, emulator)
    emulator.fail_next("drop")  # the bot API took the message, the answer never came
    with app.app_context():
        D.deliver_due(bot, None)
        D.deliver_due(bot, None, utcnow() + timedelta(hours=1))
    row = _delivery(app, delivery_id)
    assert row.state == D.UNCONFIRMED and "not repeated" in row.error
    assert len(emulator.sent_to(777)) == 1


def test_a_claim_left_by_a_dead_worker_is_not_repeated(app, factory, desk, telegram):
    emulator, bot = telegram
    delivery_id = _linked_delivery(app, factory, desk, emulator)
    with app.app_context():
        assert D.claim(delivery_id, utcnow() - timedelta(minutes=5))  # claimed, then the worker died
        assert not D.claim(delivery_id, utcnow())  # a second worker cannot claim it
        D.deliver_due(bot, None)
    row = _delivery(app, delivery_id)
    assert row.state == D.UNCONFIRMED and "stopped mid-send" in row.error
    assert emulator.sent_to(777) == []


def test_unreachable_telegram_is_retried(app, factory, desk, telegram):
    emulator, bot = telegram
    delivery_id = _linked_delivery(app, factory, desk, emulator)
    with app.app_context():
        D.deliver_due(Bot(TOKEN, "http://127.0.0.1:9"), None)  # nothing listens there
    row = _delivery(app, delivery_id)
    assert row.state == D.PENDING and row.attempts == 1 and "cannot reach" in row.error


def test_the_cron_job_collects_sends_and_links_in_one_tick(app, factory, desk, telegram):
    from jobs import notify
    from jobs.context import use_app

    emulator, bot = telegram
    app.config.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=bot.api_url, SMTP_HOST=None)
    use_app(app)
    code = _code_for(app, desk.trader.id)
    emulator.user_says(777, f"/start {code}")
    assert notify.tick() == {
        "created": 0,
        "sent": {"stale": 0, "SENT": 0, "FAILED": 0, "PENDING": 0, "UNCONFIRMED": 0},
        "linked": 1,
    }
    with app.app_context():
        db.session.get(NotificationPrefs, desk.trader.id).telegram_kinds = "rejection"
        db.session.commit()
    order_in(factory, desk, desk.mine, "REJECTED", reason="RMS: no margin")
    first = notify.tick()  # collected (admin and trader), then the trader's Telegram message sent
    assert first["created"] == 2 and first["sent"]["SENT"] == 1
    assert notify.tick()["created"] == 0 and len(emulator.sent_to(777)) == 2  # the link's answer and the rejection
    assert "Rejected BUY 10 INFY" in emulator.sent_to(777)[-1].text
