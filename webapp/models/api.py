"""The desk's API: keys that act as their user, the replies kept for Idempotency-Key, and the webhooks
TradingView and Chartink post alerts to (each alert stored before it is acknowledged)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import Price, TimestampMixin, UTCDateTime
from webapp.timeutil import utcnow

# API key scopes, narrowest first; a key never holds a scope its user's role does not allow
SCOPES = ("read", "trade", "admin")


class ApiKey(TimestampMixin, db.Model):
    """A key is shown once and stored as the SHA-256 of its text (it is 190 random bits, so a fast
    hash is enough: nothing to brute-force, and a request pays microseconds, not argon2's 50 ms)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    prefix: Mapped[str] = mapped_column(sa.String(16))  # the key's first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scopes: Mapped[str] = mapped_column(sa.String(32))  # comma-separated, from SCOPES
    allowed_ips: Mapped[str] = mapped_column(sa.String(1024), default="")  # comma-separated networks; "" = any
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str | None] = mapped_column(sa.String(45))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))

    user = relationship("User", foreign_keys=[user_id])

    @property
    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split(",") if s]

    @property
    def label(self) -> str:
        """How audit events and pages name the key: never its secret part."""
        return f"{self.name} ({self.prefix}…, #{self.id})"


class IdempotentReply(db.Model):
    """The first reply to a write sent with an Idempotency-Key, replayed for the same key again.
    status_code is None while the first request is still running."""

    __tablename__ = "api_idempotent_replies"
    __table_args__ = (sa.UniqueConstraint("user_id", "key", name="uq_api_idempotent_replies_user_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(64))
    request_hash: Mapped[str] = mapped_column(
        sa.String(64)
    )  # method, path and body: a key reused for another request is refused
    status_code: Mapped[int | None] = mapped_column()
    body: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


# what a hook does with an alert
HOOK_TICKET, HOOK_SIGNAL = "ticket", "signal"
# an alert's life: RECEIVED (stored, acknowledged) → PROCESSED (its batch or signal written) |
# DUPLICATE (the same alert within the hook's window) | REJECTED (names no known instrument, ...) |
# EXPIRED (not processed within the freshness window: a market order is never sent late)
RECEIVED, PROCESSED, DUPLICATE, REJECTED, EXPIRED = "RECEIVED", "PROCESSED", "DUPLICATE", "REJECTED", "EXPIRED"


class Hook(TimestampMixin, db.Model):
    """A webhook URL (/hooks/<secret>) that turns an alert into a ticket for the hook's clients, or into
    a signal of a deployment. It acts as its owner: the owner's role, grants and limits apply."""

    __tablename__ = "hooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    secret_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)  # SHA-256 of the URL's secret
    secret_prefix: Mapped[str] = mapped_column(sa.String(16))
    active: Mapped[bool] = mapped_column(default=True)
    kind: Mapped[str] = mapped_column(sa.String(8), default=HOOK_TICKET)  # ticket | signal
    # ticket template: a fixed instrument, or None to take it from the alert; a fixed side, or None
    # to take it from the alert (TradingView's {{strategy.order.action}})
    instrument_id: Mapped[int | None] = mapped_column(sa.ForeignKey("instruments.id"))
    action: Mapped[str | None] = mapped_column(sa.String(4))
    product: Mapped[str] = mapped_column(sa.String(8), default="MIS")
    order_type: Mapped[str] = mapped_column(sa.String(8), default="MARKET")
    limit_offset: Mapped[Decimal | None] = mapped_column(
        Price
    )  # LIMIT: the alert's price ± this (None: the alert's price)
    # clients and sizing: {"<client id>": quantity} (fixed quantities) or a sizing rule of
    # webapp.automation.sizing over client_ids
    quantities: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    sizing: Mapped[str] = mapped_column(sa.String(16), default="fixed")
    sizing_value: Mapped[Decimal | None] = mapped_column(Price)
    client_ids: Mapped[list] = mapped_column(sa.JSON, default=list)
    deployment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deployments.id", ondelete="SET NULL"))
    dedupe_seconds: Mapped[int] = mapped_column(default=60)
    last_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User")
    instrument = relationship("Instrument")


class HookAlert(db.Model):
    """One alert as it arrived, stored before the 200 goes back (nothing is lost on a restart)."""

    __tablename__ = "hook_alerts"
    __table_args__ = (sa.Index("ix_hook_alerts_hook_received", "hook_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hook_id: Mapped[int] = mapped_column(sa.ForeignKey("hooks.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(sa.String(16))  # tradingview | chartink | json
    payload: Mapped[str] = mapped_column(sa.Text)  # the body as received (bounded by the route)
    fingerprint: Mapped[str] = mapped_column(sa.String(64))  # SHA-256 of the normalized alert: duplicates share it
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    status: Mapped[str] = mapped_column(sa.String(10), default=RECEIVED, index=True)
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    duplicate_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("hook_alerts.id", ondelete="SET NULL"))
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batches.id", ondelete="SET NULL"))
    signal_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signals.id", ondelete="SET NULL"))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    hook = relationship("Hook")


class HookWindow(db.Model):
    """The dedupe window of one (hook, fingerprint): the alert that opened it is the one that acts.
    Opened by an INSERT or a conditional UPDATE, so two identical alerts at once cannot both lead."""

    __tablename__ = "hook_windows"

    hook_id: Mapped[int] = mapped_column(sa.ForeignKey("hooks.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    alert_id: Mapped[int | None] = mapped_column(sa.ForeignKey("hook_alerts.id", ondelete="SET NULL"))
