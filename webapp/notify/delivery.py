"""Sending the deliveries: each claimed before its send, so no two workers send it; retried with backoff
when the channel said it did not take it (429, 5xx, 4xx SMTP, no connection); given up after MAX_TRIES
with the reason kept.

A send whose outcome is unknown — the worker died between the claim and the answer (a SENDING row older
than CLAIM_TIMEOUT), or the request went out and no answer came back — is not repeated: it becomes
UNCONFIRMED, shown as such on the notifications page. Neither Telegram nor SMTP can be asked afterwards
whether a message arrived, so repeating it blindly could send it twice; a missed message is still on
the page and the bell. (At most once per channel; the page itself is exactly once.)"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Notification, NotificationDelivery, NotificationPrefs
from webapp.notify.mail import Mailer, MailError
from webapp.notify.telegram import Bot, TelegramError
from webapp.timeutil import format_ist, utcnow

log = logging.getLogger(__name__)
PENDING, SENDING, SENT, FAILED, UNCONFIRMED = "PENDING", "SENDING", "SENT", "FAILED", "UNCONFIRMED"
MAX_TRIES = 5
CLAIM_TIMEOUT = timedelta(minutes=2)
BATCH = 50


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(15 * 2 ** (attempts - 1), 600))  # 15 s, 30 s, 1 min, 2 min, 4 min


def deliver_due(bot: Bot | None, mailer: Mailer | None, now: datetime | None = None) -> dict[str, int]:
    """One pass: stale claims → UNCONFIRMED, then every due delivery claimed and sent."""
    now = now or utcnow()
    stale = db.session.execute(
        sa.update(NotificationDelivery)
        .where(NotificationDelivery.state == SENDING, NotificationDelivery.claimed_at < now - CLAIM_TIMEOUT)
        .values(state=UNCONFIRMED, error="the sender stopped mid-send; not repeated (it may have arrived)")
    ).rowcount
    db.session.commit()
    due = list(
        db.session.execute(
            sa.select(NotificationDelivery.id)
            .where(NotificationDelivery.state == PENDING, NotificationDelivery.next_at <= now)
            .order_by(NotificationDelivery.next_at)
            .limit(BATCH)
        ).scalars()
    )
    counts = {"stale": stale, SENT: 0, FAILED: 0, PENDING: 0, UNCONFIRMED: 0}
    for delivery_id in due:
        if not claim(delivery_id, now):
            continue  # another worker has it
        state = send_one(delivery_id, bot, mailer, now)
        counts[state] = counts.get(state, 0) + 1
    return counts


def claim(delivery_id: int, now: datetime) -> bool:
    """PENDING → SENDING in one conditional UPDATE, committed before the send."""
    done = db.session.execute(
        sa.update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id, NotificationDelivery.state == PENDING)
        .values(state=SENDING, claimed_at=now, attempts=NotificationDelivery.attempts + 1)
    ).rowcount
    db.session.commit()
    return done == 1


def send_one(delivery_id: int, bot: Bot | None, mailer: Mailer | None, now: datetime) -> str:
    delivery = db.session.get(NotificationDelivery, delivery_id)
    notification = db.session.get(Notification, delivery.notification_id)
    prefs = db.session.get(NotificationPrefs, notification.user_id)
    text = f"{notification.title}\n{notification.body}\n{format_ist(notification.created_at)} IST"
    try:
        if delivery.channel == "telegram":
            if bot is None or prefs is None or not prefs.telegram_chat_id:
                return _finish(delivery, FAILED, "Telegram is not set up or not linked", now)
            bot.send_message(prefs.telegram_chat_id, f"Fanout · {text}")
        else:
            if mailer is None or prefs is None or not prefs.email:
                return _finish(delivery, FAILED, "email is not set up or has no address", now)
            mailer.send(prefs.email, f"[Fanout] {notification.title}", text + "\n\nSent by your Fanout desk.")
    except (TelegramError, MailError) as exc:
        if exc.ambiguous:
            return _finish(delivery, UNCONFIRMED, f"{exc}; not repeated (it may have arrived)", now)
        if exc.retryable and delivery.attempts < MAX_TRIES:
            wait = timedelta(seconds=exc.retry_after) if getattr(exc, "retry_after", 0) else backoff(delivery.attempts)
            delivery.next_at = now + wait
            return _finish(delivery, PENDING, str(exc), now)
        reason = f"gave up after {delivery.attempts} tries: {exc}" if exc.retryable else str(exc)
        return _finish(delivery, FAILED, reason, now)
    return _finish(delivery, SENT, "", now)


def _finish(delivery: NotificationDelivery, state: str, error: str, now: datetime) -> str:
    delivery.state, delivery.error = state, error[:300]
    if state == SENT:
        delivery.sent_at = now
    db.session.commit()
    log.info(
        "op=notify_send delivery=%s channel=%s attempt=%s result=%s",
        delivery.id,
        delivery.channel,
        delivery.attempts,
        state,
    )
    return state
