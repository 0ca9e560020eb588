"""`notify.created` → each recipient's page-chrome sockets: a toast per notification and the bell's
new count (rendered once per user; only to that user's own sockets)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import render_template

from webapp.extensions import db
from webapp.models import Notification, User
from webapp.notify import inbox
from webapp.notify.kinds import TONES


def for_event(event: dict, subscribers: Iterable) -> list[tuple]:
    by_user: dict[int, list[int]] = {}
    for item in event.get("notifications") or []:
        by_user.setdefault(item.get("user"), []).append(item.get("id"))
    chrome = [s for s in subscribers if s.page == "chrome" and s.user_id in by_user]
    if not chrome:
        return []
    rendered: dict[int, str] = {}
    for user_id in {s.user_id for s in chrome}:
        user = db.session.get(User, user_id)
        if user is None or not user.active:
            continue
        rows = db.session.execute(
            inbox.visible(user).where(Notification.id.in_(by_user[user_id])).order_by(Notification.id)
        ).scalars()
        toasts = "".join(render_template("notify/_toast.html", n=n, tones=TONES) for n in rows)
        if toasts:
            bell = render_template("notify/_bell.html", count=inbox.unread_count(user))
            rendered[user_id] = toasts + bell
    return [(s, rendered[s.user_id]) for s in chrome if s.user_id in rendered]
