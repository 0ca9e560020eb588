"""Reading the audit trail for people: filter it, name the clients and users its ids stand for, say
its JSON details as `key: value` lines, and export what a filter shows as CSV. Read-only; the
chain itself (writing, verifying) is webapp/audit.py's."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from webapp.backtest.runs import range_utc
from webapp.extensions import db
from webapp.models import AuditEvent, Client, User

EXPORT_LIMIT = 100_000  # the newest events a CSV holds; narrow the dates for older ones
CLIENT_KEYS = {"client", "client_id"}  # detail keys whose integer values are client ids
USER_KEYS = {"user", "user_id", "actor_id"}
CLIENT_LIST_KEYS = {"clients", "client_ids"}
BY_CLIENT_KEYS = {"quantities"}  # detail dicts keyed by client id (a ticket's quantity per client)


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    client_id: int | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Names:
    """Client and user names by id, for the ids a set of events mentions."""

    clients: dict[int, str]
    users: dict[int, str]

    def client(self, client_id: int) -> str:
        return self.clients.get(client_id, f"client #{client_id} (deleted)")

    def user(self, user_id: int) -> str:
        return self.users.get(user_id, f"user #{user_id} (deleted)")

    def target(self, target: str) -> str:
        """`client:3` → the client's name, `user:5` → the username; anything else as written."""
        kind, _, raw = target.partition(":")
        if raw.isdigit() and kind == "client":
            return f"client {self.client(int(raw))}"
        if raw.isdigit() and kind == "user":
            return f"user {self.user(int(raw))}"
        return target


def _mentions(column, client_id: int):
    """`clients` is a comma-separated id list: match the id as a whole item, not a substring."""
    wanted = str(client_id)
    return sa.or_(
        column == wanted,
        column.like(f"{wanted},%"),
        column.like(f"%,{wanted}"),
        column.like(f"%,{wanted},%"),
    )


def events_query(found: AuditFilter):
    query = sa.select(AuditEvent).order_by(AuditEvent.seq.desc())
    if found.actor:
        query = query.where(AuditEvent.actor == found.actor)
    if found.action:
        query = query.where(AuditEvent.action == found.action)
    if found.client_id is not None:
        query = query.where(
            sa.or_(_mentions(AuditEvent.clients, found.client_id), AuditEvent.target == f"client:{found.client_id}")
        )
    if found.start:
        query = query.where(AuditEvent.created_at >= range_utc(found.start, found.start)[0])
    if found.end:
        query = query.where(AuditEvent.created_at < range_utc(found.end, found.end)[1])
    return query


def page_of(found: AuditFilter, before: int | None, size: int) -> list[AuditEvent]:
    query = events_query(found).limit(size)
    if before:
        query = query.where(AuditEvent.seq < before)
    return list(db.session.execute(query).scalars())


def client_ids(event: AuditEvent) -> list[int]:
    return [int(part) for part in event.clients.split(",") if part.isdigit()]


def _detail(event: AuditEvent) -> Any:
    try:
        return json.loads(event.detail or "{}")
    except ValueError:  # written by hand, or before details were JSON: shown as it is
        return event.detail


def _ids_in(value: Any, keys: set[str], list_keys: set[str] = frozenset()) -> Iterator[int]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, int) and not isinstance(item, bool):
                yield item
            elif key in list_keys and isinstance(item, list):
                yield from (i for i in item if isinstance(i, int) and not isinstance(i, bool))
            elif key in BY_CLIENT_KEYS and isinstance(item, dict) and list_keys:
                yield from (int(k) for k in item if k.isdigit())
            else:
                yield from _ids_in(item, keys, list_keys)
    elif isinstance(value, list):
        for item in value:
            yield from _ids_in(item, keys, list_keys)


def names_for(events: Iterable[AuditEvent]) -> Names:
    """One query for the clients and one for the users that these events name by id."""
    client_wanted: set[int] = set()
    user_wanted: set[int] = set()
    for event in events:
        client_wanted.update(client_ids(event))
        detail = _detail(event)
        client_wanted.update(_ids_in(detail, CLIENT_KEYS, CLIENT_LIST_KEYS))
        user_wanted.update(_ids_in(detail, USER_KEYS))
        kind, _, raw = event.target.partition(":")
        if raw.isdigit():
            (client_wanted if kind == "client" else user_wanted if kind == "user" else set()).add(int(raw))
        if event.actor_id:
            user_wanted.add(event.actor_id)
    clients = dict(db.session.execute(sa.select(Client.id, Client.name).where(Client.id.in_(client_wanted))).all())
    users = dict(db.session.execute(sa.select(User.id, User.username).where(User.id.in_(user_wanted))).all())
    return Names(clients, users)


def _say(key: str, value: Any, names: Names) -> str:
    """One detail value as plain words: ids named, lists joined, nested records as `k=v` groups."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in CLIENT_KEYS and isinstance(value, int):
        return names.client(value)
    if key in USER_KEYS and isinstance(value, int):
        return names.user(value)
    if key in CLIENT_LIST_KEYS and isinstance(value, list):
        return ", ".join(names.client(v) if isinstance(v, int) else str(v) for v in value) or "none"
    if key in BY_CLIENT_KEYS and isinstance(value, dict):
        named = (f"{names.client(int(k)) if k.isdigit() else k}={_say('', v, names)}" for k, v in value.items())
        return ", ".join(sorted(named)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_say(k, v, names)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "; ".join(_say(key, v, names) for v in value) or "none"
    if value is None:
        return "—"
    return str(value)


def detail_lines(event: AuditEvent, names: Names) -> list[tuple[str, str]]:
    """The event's details as (key, words) pairs, in the stored (sorted) order."""
    detail = _detail(event)
    if isinstance(detail, dict):
        return [(key.replace("_", " "), _say(key, value, names)) for key, value in detail.items()]
    return [("detail", str(detail))] if detail not in ("", None) else []


def csv_rows(events: list[AuditEvent]) -> tuple[list[str], Iterator[list]]:
    """Header and rows of the export: names where the page shows names, details as `key: value` text."""
    from webapp.timeutil import format_ist

    names = names_for(events)
    header = ["seq", "time_ist", "actor", "action", "target", "clients", "result", "detail", "ip"]
    rows = (
        [
            e.seq,
            format_ist(e.created_at),
            e.actor,
            e.action,
            names.target(e.target),
            ", ".join(names.client(c) for c in client_ids(e)),
            e.result,
            "; ".join(f"{k}: {v}" for k, v in detail_lines(e, names)),
            e.ip or "",
        ]
        for e in events
    )
    return header, rows


def export_events(found: AuditFilter) -> list[AuditEvent]:
    return list(db.session.execute(events_query(found).limit(EXPORT_LIMIT)).scalars())


def actions() -> list[str]:
    return list(db.session.execute(sa.select(AuditEvent.action).distinct().order_by(AuditEvent.action)).scalars())
