"""Client accounts at brokers, with encrypted credentials and session, risk limits and kill switch."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import Money, TimestampMixin, UTCDateTime
from webapp.models.users import user_clients
from webapp.timeutil import utcnow


class Client(TimestampMixin, db.Model):
    __tablename__ = "clients"
    __table_args__ = (sa.UniqueConstraint("broker", "client_code", name="uq_clients_broker_client_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    broker: Mapped[str] = mapped_column(sa.String(32))
    client_code: Mapped[str] = mapped_column(sa.String(64))
    credentials_enc: Mapped[str | None] = mapped_column(sa.Text)  # Fernet token of a JSON object
    session_enc: Mapped[str | None] = mapped_column(sa.Text)  # Fernet token of the broker session
    session_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    algo_id: Mapped[str | None] = mapped_column(sa.String(64))
    enabled: Mapped[bool] = mapped_column(default=True)
    kill_switch: Mapped[bool] = mapped_column(default=False)
    kill_reason: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")  # who/what engaged it
    # pre-trade risk limits; None means no limit
    max_order_value: Mapped[Decimal | None] = mapped_column(Money)
    max_quantity: Mapped[int | None] = mapped_column()
    max_orders_per_day: Mapped[int | None] = mapped_column()
    max_open_positions: Mapped[int | None] = mapped_column()
    max_daily_loss: Mapped[Decimal | None] = mapped_column(Money)
    max_drawdown: Mapped[Decimal | None] = mapped_column(Money)  # from the day's peak MTM
    # a paper-exchange twin a paper deployment trades instead of this client's broker account: kept
    # out of the real books (access.client_scope), shown on its deployment's pages
    twin_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    allowed_products: Mapped[str] = mapped_column(sa.String(64), default="CNC,MIS,MTF")

    users = relationship("User", secondary=user_clients, back_populates="clients")
    funds = relationship("FundsSnapshot", uselist=False, viewonly=True)  # the broker's, as last synced

    @property
    def allowed_product_list(self) -> list[str]:
        return [p for p in self.allowed_products.split(",") if p]

    def session_state(self, now: datetime | None = None) -> str:
        """connected | expired | none — what the session badge shows."""
        from webapp.brokers import sessionless_brokers  # late: the registry imports the adapters

        if self.broker in sessionless_brokers():  # a broker with no login (paper) is always connected
            return "connected"
        if not self.session_enc or self.session_expires_at is None:
            return "none"
        return "connected" if self.session_expires_at > (now or utcnow()) else "expired"

    def __repr__(self) -> str:
        return f"<Client {self.name} {self.broker}:{self.client_code}>"
