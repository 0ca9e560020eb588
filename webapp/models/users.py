"""Desk users, their roles and their client grants."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import Money, TimestampMixin, UTCDateTime

user_clients = sa.Table(
    "user_clients",
    db.metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("client_id", sa.ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
)


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(255))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    active: Mapped[bool] = mapped_column(default=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # carried in each login session; bumping it ends every session issued before (webapp/auth/sessions.py)
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # per-user risk limits (None: no limit) — what this user may do across all their clients
    max_position_value: Mapped[Decimal | None] = mapped_column(Money)
    max_daily_loss: Mapped[Decimal | None] = mapped_column(Money)
    max_orders_per_day: Mapped[int | None] = mapped_column()

    clients = relationship("Client", secondary=user_clients, back_populates="users", order_by="Client.name")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        """What a login session (and a remember-me cookie) stores: the id and the session version,
        so a bump ends every session issued before it (webapp/auth/sessions.py)."""
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"
