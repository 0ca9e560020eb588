"""The paper exchange's book: accounts, orders, trades, positions and holdings.

These tables belong to the simulated broker, not to the desk: the desk never writes them, it asks
the paper adapter (webapp/brokers/paper/) exactly as it would ask a remote broker. They live in the
same database so every web, worker and feed process sees one book.

Accounting (exact, no fees): `PaperAccount.cash` is a ledger that every fill moves by its full value
(BUY debits, SELL credits) whatever the product; leverage shows up as margin computed from the book,
never as a ledger entry. Positions and holdings carry their signed cost basis (`cost`), so
    cash + Σ position.cost + Σ holding.cost − Σ position.realised_pnl == opening_balance
holds to the paisa at every commit (tests/paper/test_properties.py).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import Money, Price, TimestampMixin, UTCDateTime

ZERO = Decimal("0")
_AVERAGE_PLACES = Decimal("0.0001")  # the Price column's scale


def _average(cost: Decimal, quantity: int) -> Decimal:
    return ZERO if quantity == 0 else (cost / quantity).quantize(_AVERAGE_PLACES, rounding=ROUND_HALF_UP)


class PaperAccount(TimestampMixin, db.Model):
    __tablename__ = "paper_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # the cash ledger (see the module docstring); negative while a leveraged position is open
    cash: Mapped[Decimal] = mapped_column(Money)
    # money paid in, ever (the demo seed or auto-creation); opening_balance starts here
    deposited: Mapped[Decimal] = mapped_column(Money)
    # equity at cost when today's session began: deposits plus every realised P&L before today
    opening_balance: Mapped[Decimal] = mapped_column(Money)
    # bumped by every write so the UPDATE takes the row lock first (SQLite ignores FOR UPDATE)
    lock_version: Mapped[int] = mapped_column(default=0)
    session_started_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the order book shows this session
    last_roll_day: Mapped[date | None] = mapped_column(sa.Date)  # IST date of the last day roll

    def __repr__(self) -> str:
        return f"<PaperAccount {self.client_code}>"


class PaperOrder(db.Model):
    __tablename__ = "paper_orders"
    __table_args__ = (
        sa.Index("ix_paper_orders_account_status", "account_id", "status"),
        sa.Index("ix_paper_orders_instrument_status", "instrument_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str | None] = mapped_column(sa.String(24), unique=True)  # set right after the insert
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("paper_accounts.id"))
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    exchange: Mapped[str] = mapped_column(sa.String(8))
    tradingsymbol: Mapped[str] = mapped_column(sa.String(64))
    tag: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    side: Mapped[str] = mapped_column(sa.String(4))
    product: Mapped[str] = mapped_column(sa.String(4))
    order_type: Mapped[str] = mapped_column(sa.String(6))
    validity: Mapped[str] = mapped_column(sa.String(3), default="DAY")
    quantity: Mapped[int] = mapped_column()
    filled_quantity: Mapped[int] = mapped_column(default=0)
    filled_value: Mapped[Decimal] = mapped_column(Money, default=ZERO)  # Σ qty × price of its trades
    price: Mapped[Decimal | None] = mapped_column(Price)
    trigger_price: Mapped[Decimal | None] = mapped_column(Price)
    status: Mapped[str] = mapped_column(sa.String(16))  # a BrokerOrderStatus word
    status_message: Mapped[str | None] = mapped_column(sa.String(200))
    # margin held while open: the quantity that opens exposure, valued at block_price
    opening_quantity: Mapped[int] = mapped_column(default=0)
    block_price: Mapped[Decimal | None] = mapped_column(Price)
    triggered: Mapped[bool] = mapped_column(default=False)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def pending_quantity(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def average_price(self) -> Decimal | None:
        return _average(self.filled_value, self.filled_quantity) if self.filled_quantity else None

    def __repr__(self) -> str:
        return f"<PaperOrder {self.order_id} {self.side} {self.quantity} {self.tradingsymbol} {self.status}>"


class PaperTrade(db.Model):
    __tablename__ = "paper_trades"

    id: Mapped[int] = mapped_column(primary_key=True)
    trade_id: Mapped[str | None] = mapped_column(sa.String(24), unique=True)
    order_pk: Mapped[int] = mapped_column(sa.ForeignKey("paper_orders.id"), index=True)
    order_id: Mapped[str] = mapped_column(sa.String(24))
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("paper_accounts.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    exchange: Mapped[str] = mapped_column(sa.String(8))
    tradingsymbol: Mapped[str] = mapped_column(sa.String(64))
    side: Mapped[str] = mapped_column(sa.String(4))
    product: Mapped[str] = mapped_column(sa.String(4))
    quantity: Mapped[int] = mapped_column()
    price: Mapped[Decimal] = mapped_column(Price)
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PaperPosition(TimestampMixin, db.Model):
    """Today's position of one account in one instrument and product."""

    __tablename__ = "paper_positions"
    __table_args__ = (
        sa.UniqueConstraint(
            "account_id", "instrument_id", "product", name="uq_paper_positions_account_instrument_product"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("paper_accounts.id"))
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    exchange: Mapped[str] = mapped_column(sa.String(8))
    tradingsymbol: Mapped[str] = mapped_column(sa.String(64))
    product: Mapped[str] = mapped_column(sa.String(4))
    net_quantity: Mapped[int] = mapped_column(default=0)  # positive long, negative short
    cost: Mapped[Decimal] = mapped_column(Money, default=ZERO)  # signed cost basis of net_quantity
    # today's realised P&L, including sales out of holdings (which do not move net_quantity)
    realised_pnl: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    buy_quantity: Mapped[int] = mapped_column(default=0)
    sell_quantity: Mapped[int] = mapped_column(default=0)
    buy_value: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    sell_value: Mapped[Decimal] = mapped_column(Money, default=ZERO)

    @property
    def average_price(self) -> Decimal:
        return _average(self.cost, self.net_quantity)


class PaperHolding(TimestampMixin, db.Model):
    """Delivery stock carried overnight: bought with CNC, or with MTF (broker-funded in part)."""

    __tablename__ = "paper_holdings"
    __table_args__ = (
        sa.UniqueConstraint(
            "account_id", "instrument_id", "product", name="uq_paper_holdings_account_instrument_product"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("paper_accounts.id"))
    instrument_id: Mapped[int] = mapped_column(sa.ForeignKey("instruments.id"))
    exchange: Mapped[str] = mapped_column(sa.String(8))
    tradingsymbol: Mapped[str] = mapped_column(sa.String(64))
    isin: Mapped[str | None] = mapped_column(sa.String(12))
    product: Mapped[str] = mapped_column(sa.String(4))  # CNC or MTF
    quantity: Mapped[int] = mapped_column(default=0)  # settled
    t1_quantity: Mapped[int] = mapped_column(default=0)  # bought last session, settles at the next roll
    cost: Mapped[Decimal] = mapped_column(Money, default=ZERO)  # cost basis of quantity + t1_quantity

    @property
    def total_quantity(self) -> int:
        return self.quantity + self.t1_quantity

    @property
    def average_price(self) -> Decimal:
        return _average(self.cost, self.total_quantity)
