"""Automation: strategy deployments (a strategy × instruments × clients), the signals they emit, stop
rules that act on a position by themselves, and the alerts each automatic act raises.

A strategy itself is code (webapp/strategies/), not a row: a deployment names it and stores the
parameters it was validated with."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import Money, Price, TimestampMixin, UTCDateTime
from webapp.timeutil import utcnow

# deployment states: a new deployment is PAUSED until a person starts it; STOPPED is final
ACTIVE, PAUSED, STOPPED = "ACTIVE", "PAUSED", "STOPPED"
# stop rule states: ARMED → FIRED (once, by one conditional UPDATE) or CANCELLED (by a person or a flat position)
ARMED, FIRED, CANCELLED = "ARMED", "FIRED", "CANCELLED"


class Deployment(TimestampMixin, db.Model):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    strategy: Mapped[str] = mapped_column(sa.String(40))  # webapp.strategies registry name
    params: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # validated by the strategy class
    interval: Mapped[int] = mapped_column()  # candle minutes: 1, 3, 5, 15, 60
    product: Mapped[str] = mapped_column(sa.String(8))
    mode: Mapped[str] = mapped_column(sa.String(8))  # paper | live
    allow_short: Mapped[bool] = mapped_column(default=False)
    # sizing: fixed (quantity) | multiplier (× the lot) | capital_pct (% of capital) | risk_pct (% of
    # capital at risk to the signal's stop); sizing_value is that number, a client may override it
    sizing: Mapped[str] = mapped_column(sa.String(16))
    sizing_value: Mapped[Decimal] = mapped_column(Money)
    # the IST window: entries from window_start to last_entry on `days` (0 = Monday, comma-separated);
    # an optional intraday square-off time for the deployment's positions
    window_start: Mapped[time] = mapped_column(sa.Time)
    last_entry: Mapped[time] = mapped_column(sa.Time)
    days: Mapped[str] = mapped_column(sa.String(16), default="0,1,2,3,4")
    squareoff_at: Mapped[time | None] = mapped_column(sa.Time)
    state: Mapped[str] = mapped_column(sa.String(8), default=PAUSED, index=True)
    state_reason: Mapped[str] = mapped_column(sa.String(300), default="")
    # the deployment's own limits (None: none): breached → PAUSED with the reason
    max_loss: Mapped[Decimal | None] = mapped_column(Money)
    max_orders_per_day: Mapped[int | None] = mapped_column()
    max_open_positions: Mapped[int | None] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    instruments = relationship("DeploymentInstrument", back_populates="deployment", cascade="all, delete-orphan")
    clients = relationship("DeploymentClient", back_populates="deployment", cascade="all, delete-orphan")
    created_by = relationship("User")

    @property
    def day_list(self) -> list[int]:
        return [int(d) for d in self.days.split(",") if d]


class DeploymentInstrument(db.Model):
    """One instrument a deployment trades. `last_bar` is the evaluation cursor: the start (UTC) of the
    last bar evaluated. Moving it forward is one conditional UPDATE in the transaction that stores the
    bar's signal and batch, so one (deployment, instrument, bar) is evaluated once however often its
    close is announced, and a worker killed before the commit leaves it to be evaluated again."""

    __tablename__ = "deployment_instruments"
    __table_args__ = (sa.UniqueConstraint("deployment_id", "instrument_id", name="uq_deployment_instrument"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(sa.ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"), index=True)
    last_bar: Mapped[datetime | None] = mapped_column(UTCDateTime)

    deployment = relationship("Deployment", back_populates="instruments")
    instrument = relationship("Instrument")


class DeploymentClient(db.Model):
    """A client a deployment trades for. In paper mode `twin_id` is the paper-exchange twin the
    deployment trades instead (a Client row whose twin_of_id is this client)."""

    __tablename__ = "deployment_clients"
    __table_args__ = (sa.UniqueConstraint("deployment_id", "client_id", name="uq_deployment_client"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(sa.ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    twin_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clients.id"))
    sizing_value: Mapped[Decimal | None] = mapped_column(Money)  # None: the deployment's
    capital: Mapped[Decimal | None] = mapped_column(Money)  # for % sizing and the twin's funding; None: funds

    deployment = relationship("Deployment", back_populates="clients")
    client = relationship("Client", foreign_keys=[client_id])
    twin = relationship("Client", foreign_keys=[twin_id])


class StrategySignal(db.Model):
    """What a deployment's strategy said at one bar's close, the indicator values behind it, and
    what became of it (`outcome`: the batch it made, or why it made none)."""

    __tablename__ = "signals"
    __table_args__ = (
        sa.UniqueConstraint("deployment_id", "instrument_id", "bar_time", name="uq_signals_deployment_bar"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(sa.ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    bar_time: Mapped[datetime] = mapped_column(UTCDateTime)  # the bar's start, UTC
    action: Mapped[str] = mapped_column(sa.String(12))  # enter_long | enter_short | exit
    price: Mapped[Decimal] = mapped_column(Price)  # the bar's close
    stop: Mapped[Decimal | None] = mapped_column(Price)
    target: Mapped[Decimal | None] = mapped_column(Price)
    trail: Mapped[Decimal | None] = mapped_column(Price)
    values: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batches.id"))
    outcome: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    deployment = relationship("Deployment")
    instrument = relationship("Instrument")
    batch = relationship("Batch")


class StopRule(TimestampMixin, db.Model):
    """A stop-loss, target and/or trailing stop on one client's position (instrument × product).
    The feed process checks ARMED rules on every tick and fires one with a conditional UPDATE
    (WHERE state = 'ARMED'), in the transaction that writes its exit batch: it fires once."""

    __tablename__ = "stop_rules"
    __table_args__ = (sa.Index("ix_stop_rules_state_instrument", "state", "instrument_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    product: Mapped[str] = mapped_column(sa.String(8))
    direction: Mapped[int] = mapped_column()  # +1: protects a long (fires below the stop), −1: a short
    quantity: Mapped[int | None] = mapped_column()  # None: the whole position when it fires
    stop_price: Mapped[Decimal | None] = mapped_column(Price)
    target_price: Mapped[Decimal | None] = mapped_column(Price)
    trail_distance: Mapped[Decimal | None] = mapped_column(Price)
    trail_anchor: Mapped[Decimal | None] = mapped_column(Price)  # best price seen since armed (trailing)
    state: Mapped[str] = mapped_column(sa.String(10), default=ARMED)
    source: Mapped[str] = mapped_column(sa.String(16), default="position")  # ticket | position | signal
    deployment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deployments.id"))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fired_price: Mapped[Decimal | None] = mapped_column(Price)
    fired_reason: Mapped[str] = mapped_column(sa.String(200), default="")
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batches.id"))

    client = relationship("Client")
    instrument = relationship("Instrument")
    batch = relationship("Batch")


class RiskAlert(db.Model):
    """A line the trader sees for every automatic act: a stop fired, a breaker tripped, a deployment
    paused, the intraday square-off, the day roll. Each is also an audit event."""

    __tablename__ = "risk_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40), index=True)
    level: Mapped[str] = mapped_column(sa.String(8), default="amber")  # red | amber | info
    message: Mapped[str] = mapped_column(sa.String(400))
    client_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    deployment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deployments.id"))
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batches.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    client = relationship("Client")
