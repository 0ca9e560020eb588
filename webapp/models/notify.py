"""Notifications (issue 15 item 4): one row per (event, user), its deliveries per channel, each user's
preferences, and the collector's cursors."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import UTCDateTime
from webapp.timeutil import utcnow


class Notification(db.Model):
    """A fact told to one user, exactly once: `key` names the fact ("fill:<order>:<filled qty>",
    "rejection:<order>", ...), unique per user, so a second collector run inserts nothing."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "key", name="uq_notifications_user_key"),
        sa.Index("ix_notifications_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(80))
    kind: Mapped[str] = mapped_column(sa.String(16), index=True)  # webapp.notify.kinds.KINDS
    title: Mapped[str] = mapped_column(sa.String(120))
    body: Mapped[str] = mapped_column(sa.String(400), default="")
    client_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clients.id", ondelete="SET NULL"))
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batches.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationDelivery(db.Model):
    """One notification on one channel (telegram | email). PENDING → SENDING (claimed, committed before
    the send) → SENT | PENDING again (a retryable failure, with next_at) | FAILED (given up, the reason
    kept) | UNCONFIRMED (the sender died or timed out mid-send: not repeated, it may have arrived)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("notification_id", "channel", name="uq_notification_deliveries_channel"),
        sa.Index("ix_notification_deliveries_state_next", "state", "next_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(sa.ForeignKey("notifications.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(sa.String(12))
    state: Mapped[str] = mapped_column(sa.String(12), default="PENDING")
    attempts: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str] = mapped_column(sa.String(300), default="")


class NotificationPrefs(db.Model):
    """A user's choices: sound and browser notifications for toasts, and which kinds go to Telegram
    and to email (comma-separated kinds). The Telegram link code is kept hashed, with its expiry."""

    __tablename__ = "notification_prefs"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    sound: Mapped[bool] = mapped_column(default=False)
    browser: Mapped[bool] = mapped_column(default=False)
    telegram_kinds: Mapped[str] = mapped_column(sa.String(200), default="")
    email_kinds: Mapped[str] = mapped_column(sa.String(200), default="")
    email: Mapped[str | None] = mapped_column(sa.String(255))
    telegram_chat_id: Mapped[str | None] = mapped_column(sa.String(32))
    telegram_name: Mapped[str] = mapped_column(sa.String(64), default="")
    link_code_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    link_code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NotificationCursor(db.Model):
    """How far the collector (and the Telegram poller) has read a source: a position (an audit seq,
    a getUpdates offset) or a time (the start of the last complete run over a time-ordered source)."""

    __tablename__ = "notification_cursors"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    position: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)
