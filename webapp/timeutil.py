"""The one clock: times are stored in UTC and shown in IST (Asia/Kolkata)."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
IST = ZoneInfo("Asia/Kolkata")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC from a stored value (SQLite hands naive datetimes back; they are UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_ist(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value).astimezone(IST)


def format_ist(value: datetime | None, fmt: str = "%d %b %Y %H:%M:%S") -> str:
    return "" if value is None else to_ist(value).strftime(fmt) + " IST"
