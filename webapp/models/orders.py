"""The desk's own book: batches (one trader action over many clients), child orders, fills,
positions built from those fills, holdings and funds mirrored from each broker, and the desk state."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import Money, Price, TimestampMixin, UTCDateTime
from webapp.timeutil import utcnow


class Batch(db.Model):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[str] = mapped_column(sa.String(36), unique=True)  # one per rendered ticket: no double submit
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(16))  # ticket | exit | square_off | kill_switch | retry
    action: Mapped[str] = mapped_column(sa.String(8))  # BUY | SELL | EXIT
    instrument_id: Mapped[int | None] = mapped_column(sa.ForeignKey("instruments.id"))
    product: Mapped[str | None] = mapped_column(sa.String(8))
    order_type: Mapped[str | None] = mapped_column(sa.String(8))
    price: Mapped[Decimal | None] = mapped_column(Price)
    trigger_price: Mapped[Decimal | None] = mapped_column(Price)
    validity: Mapped[str] = mapped_column(sa.String(8), default="DAY")
    note: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # limit chase: re-price unfilled LIMIT children toward the LTP every chase_seconds, at most
    # chase_max_ticks from the ticket's price, then leave them or convert them to MARKET (chase_then)
    chase_seconds: Mapped[int | None] = mapped_column()
    chase_max_ticks: Mapped[int | None] = mapped_column()
    chase_then: Mapped[str | None] = mapped_column(sa.String(8))
    chased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deployment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deployments.id"), index=True)  # a signal's

    orders = relationship("Order", back_populates="batch", order_by="Order.id")
    instrument = relationship("Instrument")
    user = relationship("User")


class Order(TimestampMixin, db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        sa.Index("ix_orders_client_status", "client_id", "status"),
        sa.Index("ix_orders_client_created", "client_id", "created_at"),
    )  # orders today

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batches.id"), index=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"))
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    side: Mapped[str] = mapped_column(sa.String(4))
    quantity: Mapped[int] = mapped_column()
    product: Mapped[str] = mapped_column(sa.String(8))
    order_type: Mapped[str] = mapped_column(sa.String(8))
    price: Mapped[Decimal | None] = mapped_column(Price)
    trigger_price: Mapped[Decimal | None] = mapped_column(Price)
    validity: Mapped[str] = mapped_column(sa.String(8), default="DAY")
    tag: Mapped[str] = mapped_column(sa.String(10), unique=True)  # the idempotency key sent to the broker
    status: Mapped[str] = mapped_column(sa.String(12), default="NEW", index=True)
    broker_order_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    filled_quantity: Mapped[int] = mapped_column(default=0)
    average_price: Mapped[Decimal | None] = mapped_column(Price)
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last SUBMITTING
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # broker order id known

    batch = relationship("Batch", back_populates="orders")
    client = relationship("Client")
    instrument = relationship("Instrument")


class Trade(db.Model):
    __tablename__ = "trades"
    __table_args__ = (sa.UniqueConstraint("client_id", "broker_trade_id", name="uq_trades_client_trade"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"))
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    broker_trade_id: Mapped[str] = mapped_column(sa.String(64))
    broker_order_id: Mapped[str] = mapped_column(sa.String(64))
    side: Mapped[str] = mapped_column(sa.String(4))
    product: Mapped[str] = mapped_column(sa.String(8))
    quantity: Mapped[int] = mapped_column()
    price: Mapped[Decimal] = mapped_column(Price)
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    client = relationship("Client")
    instrument = relationship("Instrument")


class Position(db.Model):
    """A client's net position in one instrument and product, built from its fills (the ledger).
    Repricing rewrites every open row's mark each pass: half of each PostgreSQL page is left free so
    those updates stay on their page (HOT, no index writes; migration 0006)."""

    __tablename__ = "positions"
    __table_args__ = (
        sa.UniqueConstraint("client_id", "instrument_id", "product", name="uq_positions_key"),
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"), index=True)
    product: Mapped[str] = mapped_column(sa.String(8))
    quantity: Mapped[int] = mapped_column(default=0)  # net: + long, − short
    cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))  # of the open shares (ledger.Book)
    average_price: Mapped[Decimal] = mapped_column(Price, default=Decimal("0"))  # cost / |quantity|, for display
    realized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    buy_quantity: Mapped[int] = mapped_column(default=0)
    sell_quantity: Mapped[int] = mapped_column(default=0)
    last_price: Mapped[Decimal | None] = mapped_column(Price)
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    # when last_price was observed (the tick's or quote's own time, UTC), and whether it is stale: not
    # a fresh tick of the feed but a broker quote, the last known price or the master's close (pnl.py)
    price_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    price_stale: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    client = relationship("Client")
    instrument = relationship("Instrument")

    def stale_age(self, now: datetime | None = None, live: bool = True) -> str | None:
        """An open position's mark's age when it is stale ("3m"; "" when its time is unknown), else None.
        `live=False`: the live prices are unavailable (Redis away), so every stored mark is stale."""
        from webapp.timeutil import age_text, as_utc

        if (not self.price_stale and live) or self.last_price is None or not self.quantity:
            return None
        return age_text(((now or utcnow()) - as_utc(self.price_at)).total_seconds()) if self.price_at else ""


class Holding(db.Model):
    """Delivery holdings as the broker reports them (mirrored by the sync job)."""

    __tablename__ = "holdings"
    __table_args__ = (sa.UniqueConstraint("client_id", "instrument_id", name="uq_holdings_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"), index=True)
    quantity: Mapped[int] = mapped_column(default=0)
    t1_quantity: Mapped[int] = mapped_column(default=0)
    average_price: Mapped[Decimal] = mapped_column(Price, default=Decimal("0"))
    last_price: Mapped[Decimal | None] = mapped_column(Price)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the IST day whose delivery buys the desk's day-end rolled in (automation/dayend.py): until the
    # broker's own overnight roll shows them, the sync leaves this row as the desk wrote it
    rolled_day: Mapped[date | None] = mapped_column(sa.Date)

    client = relationship("Client")
    instrument = relationship("Instrument")


class FundsSnapshot(db.Model):
    """The broker's funds for a client at `synced_at`: what the ticket preview compares margin with."""

    __tablename__ = "funds_snapshots"

    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), primary_key=True)
    available_cash: Mapped[Decimal] = mapped_column(Money)
    margin_used: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    collateral: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def available_margin(self) -> Decimal:
        return self.available_cash + self.collateral - self.margin_used


class DeskState(TimestampMixin, db.Model):
    """One row: the desk-wide kill switch, automation switch, loss limit, square-off time and day roll."""

    __tablename__ = "desk_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    kill_switch: Mapped[bool] = mapped_column(default=False)
    changed_by: Mapped[str] = mapped_column(sa.String(64), default="")
    kill_reason: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")
    # desk-wide "automation off": no deployment evaluates or sends while it is on
    automation_off: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    max_daily_loss: Mapped[Decimal | None] = mapped_column(Money)  # the desk's: crossed → desk kill switch
    squareoff_time: Mapped[time | None] = mapped_column(sa.Time)  # IST; None: 15:15
    last_rolled_day: Mapped[date | None] = mapped_column(sa.Date)  # the IST day the day-end roll last ran for
    last_squareoff_day: Mapped[date | None] = mapped_column(sa.Date)  # the IST day the intraday square-off ran
