"""The audit trail: append-only events, each carrying the hash of the one before.

`record()` adds to the caller's transaction (the event commits with the change it describes).
It first bumps the single `audit_head` row, which takes a write lock on SQLite and a row lock on
Postgres, so concurrent writers from web and worker processes form one chain, never a fork.

Each link is an HMAC-SHA256 under the first key of FANOUT_AUDIT_KEYS (kept out of the database),
so someone with only database access cannot rewrite events and re-hash the chain consistently.
Verification accepts a link signed by any configured key, so a new key can be put first while old
links still verify; `rekey_chain` then re-signs the whole chain with the first key and the old one
can go. Chains from before the keys (plain SHA-256 links) are named "unkeyed" by verification and
are migrated by `flask audit rekey --accept-unkeyed`. The head row (seq, hash) must match the last
event, so deleting the newest events shows too, unless the head is rewound with them: to catch
that, keep the head `flask audit verify` prints somewhere outside the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app

from webapp.extensions import db
from webapp.jsonutil import text_json
from webapp.models import AuditEvent, AuditHead
from webapp.timeutil import utcnow

GENESIS = "0" * 64


def derived_key(secret_key: str) -> str:
    """The audit key of a demo or test desk that set none: derived from SECRET_KEY, which all its
    processes share, so they sign alike (outside demo mode FANOUT_AUDIT_KEYS is required)."""
    return hmac.new(secret_key.encode(), b"fanout audit chain", hashlib.sha256).hexdigest()


def _keys() -> list[str]:
    return current_app.config["FANOUT_AUDIT_KEYS"]


def _body(prev_hash: str, event: AuditEvent) -> bytes:
    body = json.dumps(
        {
            "seq": event.seq,
            "at": event.created_at.isoformat(),
            "actor_id": event.actor_id,
            "actor": event.actor,
            "action": event.action,
            "target": event.target,
            "clients": event.clients,
            "result": event.result,
            "detail": event.detail,
            "ip": event.ip,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return (prev_hash + body).encode()


def _sign(key: str, prev_hash: str, event: AuditEvent) -> str:
    return hmac.new(key.encode(), _body(prev_hash, event), hashlib.sha256).hexdigest()


def _unkeyed(prev_hash: str, event: AuditEvent) -> str:
    """How links were hashed before FANOUT_AUDIT_KEYS: anyone could recompute them."""
    return hashlib.sha256(_body(prev_hash, event)).hexdigest()


def record(
    action: str,
    *,
    actor_id: int | None = None,
    actor: str = "system",
    target: str = "",
    clients: Iterable[int] = (),
    result: str = "ok",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    session = db.session
    bumped = session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    if bumped.rowcount == 0:  # first event ever: create the head row
        session.add(AuditHead(id=1, seq=1, hash=GENESIS))
        session.flush()
    head = session.execute(sa.select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    session.refresh(head)
    event = AuditEvent(
        seq=head.seq,
        created_at=utcnow(),
        actor_id=actor_id,
        actor=actor,
        action=action,
        target=target,
        clients=",".join(str(c) for c in sorted(set(clients))),
        result=result,
        detail=text_json(_naming_the_key(detail), sort_keys=True),
        ip=ip,
        prev_hash=head.hash,
    )
    event.hash = _sign(_keys()[0], head.hash, event)
    head.hash = event.hash
    session.add(event)
    return event


def _naming_the_key(detail: dict[str, Any] | None) -> dict[str, Any]:
    """An event written while an API request runs names the key that made it (webapp/api/auth.py)."""
    from flask import g, has_request_context

    key = g.get("api_key") if has_request_context() else None
    return {**(detail or {}), "api_key": key.label} if key is not None else (detail or {})


@dataclass(frozen=True)
class ChainReport:
    checked: int  # events that verified, from the first
    broken_at: int | None = None  # seq of the first broken link (or of the first missing event)
    reason: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS
    old_key: int = 0  # links signed by a key other than the first (rekey re-signs them)
    unkeyed: int = 0  # plain SHA-256 links, accepted only when asked to

    @property
    def ok(self) -> bool:
        return self.broken_at is None


UNKEYED = (
    "unkeyed hash: a plain SHA-256 link, which anyone with database access can recompute (a chain written "
    "before FANOUT_AUDIT_KEYS, or rewritten); if the chain predates the keys, run `flask audit rekey "
    "--accept-unkeyed` once"
)
FORGED = "the hash matches no key of FANOUT_AUDIT_KEYS: contents changed, or re-hashed without the key"


class _Walk:
    """One pass along the chain: each link's seq, prev_hash and signature, then the head."""

    def __init__(self, keys: list[str], accept_unkeyed: bool):
        self.keys, self.accept_unkeyed = list(keys), accept_unkeyed
        self.prev, self.expected, self.old_key, self.unkeyed = GENESIS, 1, 0, 0

    def report(self, broken_at: int | None = None, reason: str = "", head: AuditHead | None = None) -> ChainReport:
        return ChainReport(
            self.expected - 1,
            broken_at,
            reason,
            head.seq if head else 0,
            head.hash if head else GENESIS,
            self.old_key,
            self.unkeyed,
        )

    def link_problem(self, event: AuditEvent) -> str | None:
        if event.seq != self.expected:
            return f"sequence gap: expected event {self.expected} (events deleted)"
        if event.prev_hash != self.prev:
            return "prev_hash does not match the previous event"
        signer = next((key for key in self.keys if hmac.compare_digest(_sign(key, self.prev, event), event.hash)), None)
        if signer is None:
            if not hmac.compare_digest(_unkeyed(self.prev, event), event.hash):
                return FORGED
            if not self.accept_unkeyed:
                return UNKEYED
            self.unkeyed += 1
        elif signer != self.keys[0]:
            self.old_key += 1
        self.prev, self.expected = event.hash, self.expected + 1
        return None

    def head_problem(self, head: AuditHead | None) -> tuple[int, str] | None:
        last = self.expected - 1
        if head is None:
            return (1, "the audit_head row is missing") if last else None
        if head.seq > last:
            return last + 1, (
                f"the newest events were deleted: the head says the chain ends at event {head.seq}, "
                f"the last event left is {last}"
            )
        if head.seq < last:
            return head.seq + 1, f"events after the head: the head says the chain ends at event {head.seq}"
        if head.hash != self.prev:
            return last, "the newest event is not the one the head recorded (its hash differs)"
        return None


def _head() -> AuditHead | None:
    return db.session.execute(
        sa.select(AuditHead).where(AuditHead.id == 1).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def verify_chain(accept_unkeyed: bool = False, batch: int = 1000) -> ChainReport:
    """Walk the chain from the first event and check the head; report the first broken link."""
    walk = _Walk(_keys(), accept_unkeyed)
    while True:
        rows = (
            db.session.execute(
                sa.select(AuditEvent).where(AuditEvent.seq >= walk.expected).order_by(AuditEvent.seq).limit(batch)
            )
            .scalars()
            .all()
        )
        for event in rows:
            if problem := walk.link_problem(event):
                return walk.report(event.seq, problem, _head())
        if rows:
            continue
        head = _head()
        if (
            head is not None
            and head.seq >= walk.expected
            and db.session.execute(sa.select(AuditEvent.id).where(AuditEvent.seq >= walk.expected).limit(1)).first()
        ):
            continue  # events committed while we walked (the head moved with them): check those too
        if problem := walk.head_problem(head):
            return walk.report(*problem, head=head)
        return walk.report(head=head)


def rekey_chain(accept_unkeyed: bool = False, batch: int = 1000) -> ChainReport:
    """Verify the chain, then re-sign every link with the first key, in the caller's transaction
    (commit on ok, roll back otherwise). Holds the head's lock throughout: events being recorded
    meanwhile wait, so none is linked to a hash that is about to change."""
    db.session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    report = verify_chain(accept_unkeyed=accept_unkeyed, batch=batch)
    if not report.ok or report.checked == 0:
        return report
    key, prev, after = _keys()[0], GENESIS, 0
    while (
        rows := db.session.execute(
            sa.select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch)
        )
        .scalars()
        .all()
    ):
        for event in rows:
            event.prev_hash, event.hash = prev, _sign(key, prev, event)
            prev, after = event.hash, event.seq
        db.session.flush()
    head = _head()
    head.hash = prev
    db.session.flush()
    return report
