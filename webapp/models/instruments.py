"""The instrument master, loaded from broker CSVs (Kite's layout)."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import Price, TimestampMixin


class Instrument(TimestampMixin, db.Model):
    __tablename__ = "instruments"
    # the master's segment for indices (NIFTY 50, NIFTY BANK): a value that moves, never an order
    INDICES_SEGMENT = "INDICES"
    __table_args__ = (sa.UniqueConstraint("exchange", "tradingsymbol", name="uq_instruments_exchange_symbol"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_token: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    exchange_token: Mapped[int] = mapped_column(sa.BigInteger)
    exchange: Mapped[str] = mapped_column(sa.String(8))
    tradingsymbol: Mapped[str] = mapped_column(sa.String(64), index=True)
    name: Mapped[str] = mapped_column(sa.String(160), default="")
    isin: Mapped[str | None] = mapped_column(sa.String(12))
    instrument_type: Mapped[str] = mapped_column(sa.String(8), default="EQ")
    segment: Mapped[str] = mapped_column(sa.String(16), default="NSE")
    tick_size: Mapped[Decimal] = mapped_column(Price)
    lot_size: Mapped[int] = mapped_column(default=1)
    last_price: Mapped[Decimal | None] = mapped_column(Price)  # reference close from the master
    band_pct: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 2))  # circuit band, % of close; None = no band

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"

    @property
    def is_index(self) -> bool:
        return (self.segment or "").upper() == self.INDICES_SEGMENT

    def circuit_limits(self) -> tuple[Decimal, Decimal] | None:
        """(lower, upper) from the reference close and band, rounded inward to the tick."""
        if self.last_price is None or self.band_pct is None:
            return None
        from webapp.money import round_to_tick

        width = self.last_price * self.band_pct / Decimal(100)
        lower = round_to_tick(self.last_price - width, self.tick_size, up=True)
        upper = round_to_tick(self.last_price + width, self.tick_size, up=False)
        return lower, upper

    def __repr__(self) -> str:
        return f"<Instrument {self.key}>"
