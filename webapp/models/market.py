"""Market data the desk keeps: candles (the feed's 1-minute bars, and history of any interval) and users'
watchlists."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import Money, Price, UTCDateTime


class Candle(db.Model):
    __tablename__ = "candles"
    __table_args__ = (
        sa.UniqueConstraint("instrument_id", "interval", "start", name="uq_candles_instrument_interval_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"), index=True)
    # bar length in minutes: the feed's own candles are 1; history may store others (webapp.marketdata.history)
    interval: Mapped[int] = mapped_column(default=1, server_default="1")
    start: Mapped[datetime] = mapped_column(UTCDateTime)  # the bar's first minute, UTC
    open: Mapped[Decimal] = mapped_column(Price)
    high: Mapped[Decimal] = mapped_column(Price)
    low: Mapped[Decimal] = mapped_column(Price)
    close: Mapped[Decimal] = mapped_column(Price)
    volume: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class WatchlistItem(db.Model):
    """One instrument on one of a user's numbered market-watch lists (1..LISTS), at its position there."""

    __tablename__ = "watchlist_items"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "list_no", "instrument_id", name="uq_watchlist_user_list_instrument"),
    )

    LISTS = 5  # numbered tabs 1..5, like Kite's
    PER_LIST = 50  # instruments on one list at most

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    list_no: Mapped[int] = mapped_column(sa.SmallInteger, default=1, server_default="1")
    position: Mapped[int] = mapped_column(default=0, server_default="0")

    instrument = relationship("Instrument")


class DailyPnl(db.Model):
    """A client's P&L for one IST trading day, kept current by repricing (exports by date range)."""

    __tablename__ = "daily_pnl"
    __table_args__ = (sa.UniqueConstraint("client_id", "day", name="uq_daily_pnl_client_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    day: Mapped[date] = mapped_column(sa.Date)
    realized: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    unrealized: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    peak: Mapped[Decimal | None] = mapped_column(Money)  # the day's highest realized + unrealized (drawdown)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
