"""The audit trail: append-only events, each carrying the hash of the one before.

`record()` adds to the caller's transaction (the event commits with the change it describes).
It first bumps the single `audit_head` row, which takes a write lock on SQLite and a row lock on
Postgres, so concurrent writers from web and worker processes form one chain, never a fork.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import AuditEvent, AuditHead
from webapp.timeutil import utcnow

GENESIS = "0" * 64


def _digest(prev_hash: str, event: AuditEvent) -> str:
    body = json.dumps({
        "seq": event.seq, "at": event.created_at.isoformat(), "actor_id": event.actor_id, "actor": event.actor,
        "action": event.action, "target": event.target, "clients": event.clients, "result": event.result,
        "detail": event.detail, "ip": event.ip,
    }, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def record(action: str, *, actor_id: int | None = None, actor: str = "system", target: str = "",
           clients: Iterable[int] = (), result: str = "ok", detail: dict[str, Any] | None = None,
           ip: str | None = None) -> AuditEvent:
    session = db.session
    bumped = session.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    if bumped.rowcount == 0:  # first event ever: create the head row
        session.add(AuditHead(id=1, seq=1, hash=GENESIS))
        session.flush()
    head = session.execute(sa.select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    session.refresh(head)
    event = AuditEvent(
        seq=head.seq, created_at=utcnow(), actor_id=actor_id, actor=actor, action=action, target=target,
        clients=",".join(str(c) for c in sorted(set(clients))), result=result,
        detail=json.dumps(detail or {}, sort_keys=True, default=str), ip=ip, prev_hash=head.hash,
    )
    event.hash = _digest(head.hash, event)
    head.hash = event.hash
    session.add(event)
    return event


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_at: int | None = None  # seq of the first event that does not verify
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(batch: int = 1000) -> ChainReport:
    prev, expected_seq, checked = GENESIS, 1, 0
    while True:
        rows = db.session.execute(
            sa.select(AuditEvent).where(AuditEvent.seq >= expected_seq).order_by(AuditEvent.seq).limit(batch)
        ).scalars().all()
        if not rows:
            return ChainReport(checked)
        for event in rows:
            if event.seq != expected_seq:
                return ChainReport(checked, event.seq, f"sequence gap: expected {expected_seq}")
            if event.prev_hash != prev:
                return ChainReport(checked, event.seq, "prev_hash does not match the previous event")
            if _digest(prev, event) != event.hash:
                return ChainReport(checked, event.seq, "contents changed after they were written")
            prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
