"""Column helpers shared by the models: UTC timestamps and exact money."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from webapp.timeutil import as_utc, utcnow


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and always hands back aware UTC (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use webapp.timeutil.utcnow()")
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else as_utc(value)


# prices and money: 18 digits with 4 decimals covers ₹ crores to the hundredth of a paisa
Money = sa.Numeric(18, 4, asdecimal=True)
Price = sa.Numeric(14, 4, asdecimal=True)


def money_column(nullable: bool = False, default: Decimal | None = None) -> Mapped:
    return mapped_column(Money, nullable=nullable, default=default)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


def in_ids(column, ids) -> sa.ColumnElement[bool]:
    """`column IN (ids)`. On PostgreSQL, `column = ANY(:ids)` with one array parameter: an IN list binds
    a parameter per id, which costs client CPU that grows with the ids (docs/BENCHMARKS.md), and the
    ticket, the risk check and the send each run several."""
    from sqlalchemy.dialects.postgresql import ARRAY

    from webapp.extensions import db

    ids = list(ids)
    if db.engine.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, ids, type_=ARRAY(sa.Integer)))
    return column.in_(ids)


def insert_ignoring(session, table: sa.Table, conflict_columns: list[str]):
    """INSERT ... ON CONFLICT (columns) DO NOTHING in the session's dialect (PostgreSQL or SQLite): the
    one way the desk writes a row only if its unique key is new (candles, hook windows, notifications)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
