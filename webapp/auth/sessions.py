"""Ending a user's sessions everywhere: a per-user version that every login session carries.

Flask-Login's alternative-id pattern: the id a session (or a remember-me cookie) stores is
"<user id>:<session_version>", and the user loader refuses one whose version is not the row's. So a
bump of `users.session_version` ends every session issued before it, in every web process, with the
cookie sessions we have (no server-side session store to sweep). Open WebSockets are told through
the event publisher once the bump is committed; each web process's hub closes them.

Two events, both {"user_id", "session_version"}:
- user.sessions_ended: logout, password change or reset, deactivation, reactivation — the hub
  closes every socket of the user.
- user.access_changed: role or client grants changed — the same for open sockets (a socket never
  streams for a session that has ended, nor a revoked client's fragments); the event names what
  happened in the hub's log.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask_login import current_user, login_user

from webapp.access import accessible_client_ids
from webapp.events import publish
from webapp.extensions import db, get_redis
from webapp.models import User

SESSIONS_ENDED = "user.sessions_ended"
ACCESS_CHANGED = "user.access_changed"
USER_EVENTS = (SESSIONS_ENDED, ACCESS_CHANGED)
_PENDING = "fanout_user_events"  # key in the SQLAlchemy session's info: events to publish on commit


def load_user(session_user_id: str) -> User | None:
    """The user loader: the user of a session still current (active, same version), else None.
    A bare id (a session from before versions) is not current either: its user logs in once more."""
    user_id, _, version = session_user_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit() and version.isascii() and version.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


def end_sessions(user: User, event: str = SESSIONS_ENDED) -> None:
    """End every session of `user` issued so far, as part of the caller's transaction. The event
    for open sockets goes out after that transaction commits (never for one rolled back)."""
    user.session_version = User.session_version + 1  # in SQL: two admins at once both count
    db.session.flush()
    db.session.info.setdefault(_PENDING, []).append((event, user.id, user.session_version))


def keep_current_session(user: User) -> None:
    """The user changed their own password (or an admin their own grants): re-issue this browser's
    session with the new version, so only their other sessions end."""
    me = current_user._get_current_object()  # login_user keeps the object itself, not the proxy
    if me.is_authenticated and me.id == user.id:
        login_user(me)


@dataclass(frozen=True)
class Access:
    """What an open socket needs to know of its user, re-read when it may have changed."""

    active: bool
    session_version: int
    role: str
    client_ids: frozenset[int]


def user_access(user_ids: set[int]) -> dict[int, Access]:
    """The current access of these users (a missing id: the user is gone)."""
    users = db.session.execute(sa.select(User).where(User.id.in_(user_ids))).scalars().all()
    return {u.id: Access(u.active, u.session_version, u.role, frozenset(accessible_client_ids(u))) for u in users}


def init_app(app) -> None:
    for name, listener in (("after_commit", _publish_pending), ("after_rollback", _drop_pending)):
        if not sa.event.contains(db.session, name, listener):
            sa.event.listen(db.session, name, listener)


def _publish_pending(session) -> None:
    for event, user_id, version in session.info.pop(_PENDING, ()):
        publish(get_redis(), event, user_id=user_id, session_version=version)


def _drop_pending(session) -> None:
    session.info.pop(_PENDING, None)
