"""Email against a real local SMTP server (aiosmtpd): sent once with the notification's text; a 4xx is
retried, a 5xx refusal given up with its reason, an unreachable server retried."""

from __future__ import annotations

import socket
from datetime import timedelta
from email import message_from_bytes

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from tests.notify.conftest import fill, order_in, run_collect
from webapp.extensions import db
from webapp.models import NotificationDelivery, NotificationPrefs
from webapp.notify import delivery as D
from webapp.notify.mail import Mailer
from webapp.timeutil import utcnow


class Inbox:
    def __init__(self):
        self.messages = []
        self.refuse: list[str] = []  # the next RCPT answers

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield inbox, Mailer(host="127.0.0.1", port=controller.port, starttls=False, sender="desk@fanout.test")
    finally:
        controller.stop()


def _email_delivery(app, factory, desk, kinds="fill,rejection") -> int:
    with app.app_context():
        db.session.add(NotificationPrefs(user_id=desk.trader.id, email="tina@example.com", email_kinds=kinds))
        db.session.commit()
    order_id = order_in(factory, desk, desk.mine, "OPEN")
    fill(app, order_id, 3)
    run_collect(app, {"email"})
    with app.app_context():
        return db.session.execute(sa.select(NotificationDelivery.id)).scalar_one()


def _row(app, delivery_id):
    with app.app_context():
        row = db.session.get(NotificationDelivery, delivery_id)
        db.session.expunge(row)
        return row


def test_a_fill_is_mailed_once(app, factory, desk, smtp):
    inbox, mailer = smtp
    delivery_id = _email_delivery(app, factory, desk)
    with app.app_context():
        assert D.deliver_due(None, mailer)[D.SENT] == 1
        assert D.deliver_due(None, mailer)[D.SENT] == 0
    assert _row(app, delivery_id).state == D.SENT
    [(to, message)] = inbox.messages
    assert to == ["tina@example.com"] and message["From"] == "desk@fanout.test"
    assert message["Subject"] == "[Fanout] Part filled BUY 3/10 INFY"
    assert "Asha Rao at avg ₹1,548.20" in message.get_payload(decode=True).decode()


def test_kinds_not_chosen_are_not_mailed(app, factory, desk, smtp):
    with app.app_context():
        db.session.add(NotificationPrefs(user_id=desk.trader.id, email="tina@example.com", email_kinds="rejection"))
        db.session.commit()
    order_id = order_in(factory, desk, desk.mine, "OPEN")
    fill(app, order_id, 3)
    assert len(run_collect(app, {"email"})) == 2
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(NotificationDelivery)).scalar_one() == 0


def test_a_4xx_is_retried_and_a_5xx_given_up(app, factory, desk, smtp):
    inbox, mailer = smtp
    delivery_id = _email_delivery(app, factory, desk)
    inbox.refuse = ["451 4.3.0 Try again later", "550 5.1.1 No such user"]
    with app.app_context():
        D.deliver_due(None, mailer)
    row = _row(app, delivery_id)
    assert row.state == D.PENDING and row.attempts == 1 and "451" in row.error
    with app.app_context():
        D.deliver_due(None, mailer, row.next_at)
    row = _row(app, delivery_id)
    assert row.state == D.FAILED and "550" in row.error and inbox.messages == []


def test_an_unreachable_server_is_retried_later(app, factory, desk):
    delivery_id = _email_delivery(app, factory, desk)
    now = utcnow()
    with app.app_context():
        D.deliver_due(None, Mailer(host="127.0.0.1", port=_free_port(), starttls=False), now)
    row = _row(app, delivery_id)
    assert row.state == D.PENDING and "cannot reach" in row.error and row.next_at == now + timedelta(seconds=15)
