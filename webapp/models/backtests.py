"""Backtests: one run of a strategy over stored history (BacktestRun), and a parameter sweep that groups
the runs of a grid (Sweep).

A run's settings, parameters and metrics are JSON with every Decimal written as a string (exact); its
trades and its equity / drawdown curves are stored compactly (zlib-compressed JSON and float arrays,
webapp/backtest/runs.py reads and writes them)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import UTCDateTime
from webapp.timeutil import utcnow

# run states: QUEUED → RUNNING → DONE | FAILED | CANCELLED (a QUEUED run may go straight to CANCELLED)
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"
RUN_STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED = (DONE, FAILED, CANCELLED)


class Sweep(db.Model):
    """A grid over a strategy's parameters on one instrument, interval and range: one BacktestRun per
    combination, run in chunks across the backtest workers."""

    __tablename__ = "backtest_sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    strategy: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # the values held fixed
    grid: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # parameter → list of values swept
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    interval: Mapped[int] = mapped_column()
    start_day: Mapped[date] = mapped_column(sa.Date)
    end_day: Mapped[date] = mapped_column(sa.Date)
    settings: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    combinations: Mapped[int] = mapped_column(default=0)
    # a deployment's backtest: one run per client (its own capital and sizing) × instrument, no grid
    deployment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deployments.id", ondelete="SET NULL"))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    instrument = relationship("Instrument")
    created_by = relationship("User")
    deployment = relationship("Deployment")
    runs = relationship("BacktestRun", back_populates="sweep", order_by="BacktestRun.id")


class BacktestRun(db.Model):
    __tablename__ = "backtest_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    sweep_id: Mapped[int | None] = mapped_column(sa.ForeignKey("backtest_sweeps.id", ondelete="CASCADE"), index=True)
    strategy: Mapped[str] = mapped_column(sa.String(40))  # webapp.strategies registry name
    params: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # validated by the strategy class
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    interval: Mapped[int] = mapped_column()  # candle minutes
    start_day: Mapped[date] = mapped_column(sa.Date)  # IST trading days, both included
    end_day: Mapped[date] = mapped_column(sa.Date)
    settings: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # the engine's Settings, decimals as strings
    state: Mapped[str] = mapped_column(sa.String(10), default=QUEUED, index=True)
    progress: Mapped[float] = mapped_column(sa.Float, default=0.0)  # 0..1, written when the run ends
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str] = mapped_column(sa.String(500), default="")
    job_id: Mapped[str] = mapped_column(sa.String(64), default="")
    bars: Mapped[int | None] = mapped_column()
    metrics: Mapped[dict | None] = mapped_column(sa.JSON)  # name → value (Decimals as strings)
    trades_blob: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)  # zlib(JSON)
    curve_blob: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary, deferred=True
    )  # zlib(int64 times, float64 equity, drawdown)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    instrument = relationship("Instrument")
    created_by = relationship("User")
    sweep = relationship("Sweep", back_populates="runs")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED
