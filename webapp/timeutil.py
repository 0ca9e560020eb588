"""The one clock: times are stored in UTC and shown in IST (Asia/Kolkata)."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import time as clock
from zoneinfo import ZoneInfo

UTC = UTC
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


MARKET_OPEN = clock(9, 15)  # NSE's normal market, IST: the one place the desk's code states its hours
MARKET_CLOSE = clock(15, 30)


def market_hours(now: datetime | None = None) -> bool:
    """NSE's normal market, Mon–Fri 09:15–15:30 IST: when silence means a dead socket or a stale price."""
    local = (now or utcnow()).astimezone(IST)
    return local.weekday() < 5 and MARKET_OPEN <= local.time() <= MARKET_CLOSE


def age_text(seconds: float) -> str:
    """A price's age, short: 45s, 3m, 2h 5m, 3d."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{seconds // 86400}d"
