"""A user's notifications: what they may see (their own rows, about clients they may still see), the
unread count, marking read, and their preferences row."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from webapp.access import client_scope
from webapp.extensions import db
from webapp.models import Notification, NotificationDelivery, NotificationPrefs, User
from webapp.timeutil import utcnow

PAGE_SIZE = 50


def visible(user: User) -> sa.Select:
    """The user's own notifications about clients they may still see (a revoked grant hides them)."""
    query = sa.select(Notification).where(Notification.user_id == user.id)
    scope = client_scope(user)
    if scope is not None:
        query = query.where(sa.or_(Notification.client_id.is_(None), Notification.client_id.in_(scope)))
    return query


def unread_count(user: User) -> int:
    query = visible(user).where(Notification.read_at.is_(None)).with_only_columns(sa.func.count())
    return db.session.execute(query).scalar_one()


@dataclass
class Page:
    rows: list[Notification]
    deliveries: dict[int, list[NotificationDelivery]]
    number: int
    has_next: bool
    total: int


def page_of(user: User, kind: str = "", number: int = 1, unread: bool = False) -> Page:
    query = visible(user)
    if kind:
        query = query.where(Notification.kind == kind)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    total = db.session.execute(query.with_only_columns(sa.func.count())).scalar_one()
    rows = list(
        db.session.execute(
            query.order_by(Notification.id.desc()).offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
        ).scalars()
    )
    deliveries: dict[int, list[NotificationDelivery]] = {}
    if rows:
        for d in db.session.execute(
            sa.select(NotificationDelivery)
            .where(NotificationDelivery.notification_id.in_([n.id for n in rows[:PAGE_SIZE]]))
            .order_by(NotificationDelivery.channel)
        ).scalars():
            deliveries.setdefault(d.notification_id, []).append(d)
    return Page(rows[:PAGE_SIZE], deliveries, number, len(rows) > PAGE_SIZE, total)


def mark_read(user: User, notification_id: int | None = None) -> int:
    """One notification (or all of the user's) read; how many changed."""
    query = sa.update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    return db.session.execute(query.values(read_at=utcnow())).rowcount


def prefs_of(user: User) -> NotificationPrefs:
    """The user's preferences (a new, unsaved row with the defaults when they never saved any)."""
    return db.session.get(NotificationPrefs, user.id) or NotificationPrefs(
        user_id=user.id, sound=False, browser=False, telegram_kinds="", email_kinds="", email=user.email
    )
