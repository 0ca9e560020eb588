"""Append-only, hash-chained audit events."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import UTCDateTime
from webapp.timeutil import utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)  # position in the chain, 1-based
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column()
    actor: Mapped[str] = mapped_column(sa.String(64))  # username, or "system"
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target: Mapped[str] = mapped_column(sa.String(160), default="")
    clients: Mapped[str] = mapped_column(sa.Text, default="")  # comma-separated client ids concerned
    result: Mapped[str] = mapped_column(sa.String(32), default="ok")
    detail: Mapped[str] = mapped_column(sa.Text, default="{}")  # canonical JSON
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditHead(db.Model):
    """One row: the chain's tip. Updating it first serializes concurrent writers on every database."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(sa.String(64), default="0" * 64)
