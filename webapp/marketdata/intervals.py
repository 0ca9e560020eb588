"""Candle intervals on NSE session boundaries: 1, 3, 5, 15 and 60-minute bars built from the feed's
stored 1-minute candles.

The session is 09:15–15:30 IST (India keeps no daylight saving: IST is UTC+05:30 all year, so the
bucketing below is plain arithmetic on epoch seconds). Buckets are anchored at 09:15 IST each day:
3-minute bars start 09:15, 09:18, …; 60-minute bars 09:15, 10:15, …, 15:15, and that last one is short
(15:15–15:30, its last minute the bar starting 15:29). 375 session minutes divide evenly by 1, 3, 5 and 15.

Minutes outside the session — the 09:00–09:15 pre-open, anything after 15:30, and whatever a simulator
feed stores at night — belong to no bucket: `aggregate` drops them, `closes_bucket` is False for them
and `bucket_start` refuses them. No weekday or holiday calendar is applied: a day with session-time
candles is a trading day. A bucket never spans two sessions; a bucket with missing minutes is still one bar
(of the minutes it has). A bar's time is its bucket's START, as for the 1-minute candles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import sqlalchemy as sa

from webapp.models import Candle
from webapp.strategies.base import Candles
from webapp.timeutil import IST, UTC, as_utc

INTERVALS = (1, 3, 5, 15, 60)

IST_OFFSET = 19800  # seconds: IST = UTC + 05:30, no daylight saving
SESSION_OPEN = 9 * 60 + 15  # minutes after IST midnight
SESSION_CLOSE = 15 * 60 + 30


@dataclass(frozen=True)
class Session:
    """The minutes strategies' bars are built from: `minutes` long from `open` (minutes after IST
    midnight). NSE's is 09:15–15:30. The demo's paper market never closes (PAPER_ALWAYS_OPEN), so
    `make run` uses ALL_DAY — 24 hours from 09:15, the same 09:15 anchor — and a trader trying the
    desk at night or on a Saturday still sees 5-minute bars close (config STRATEGY_SESSION)."""

    name: str
    open: int
    minutes: int

    @property
    def close(self) -> int:
        return self.open + self.minutes


NSE = Session("nse", SESSION_OPEN, SESSION_CLOSE - SESSION_OPEN)  # 375 minutes
ALL_DAY = Session("all_day", SESSION_OPEN, 1440)  # 1440 divides by every interval: no short bucket
SESSIONS = {s.name: s for s in (NSE, ALL_DAY)}
_session = NSE


def use_session(name: str) -> None:
    """Set once at start-up from the desk's config (create_app), before any bar is built."""
    global _session
    _session = SESSIONS[name]


def current_session() -> Session:
    return _session


def _check(interval: int) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(map(str, INTERVALS))} minutes, got {interval!r}")


def _session_minute(minute_start_utc: datetime) -> tuple[datetime, int | None]:
    """(the minute in IST, minutes since the session opened or None outside the session)."""
    local = as_utc(minute_start_utc).astimezone(IST)
    minute = (local.hour * 60 + local.minute - _session.open) % 1440
    return local, minute if minute < _session.minutes else None


def bucket_start(minute_start_utc: datetime, interval: int) -> datetime:
    """The start (aware UTC) of the `interval` bucket holding the 1-minute bar that starts at
    `minute_start_utc`. ValueError for a minute outside the session (it belongs to no bucket)."""
    _check(interval)
    local, minute = _session_minute(minute_start_utc)
    if minute is None:
        raise ValueError(f"{local:%H:%M} IST is outside the 09:15–15:30 session: it belongs to no bucket")
    opened = local.replace(second=0, microsecond=0) - timedelta(minutes=minute)
    return (opened + timedelta(minutes=minute // interval * interval)).astimezone(UTC)


def bucket_end(start_utc: datetime, interval: int) -> datetime:
    """When the bucket starting at `start_utc` closes: start + interval, but never past the session's
    close (15:30 IST)."""
    _check(interval)
    start = as_utc(start_utc)
    _, minute = _session_minute(start)
    left = interval if minute is None else min(interval, _session.minutes - minute)
    return start + timedelta(minutes=left)


def closes_bucket(minute_start_utc: datetime, interval: int) -> bool:
    """Is the 1-minute bar starting at `minute_start_utc` the last of its `interval` bucket? The bar
    starting 15:29 IST closes every bucket; a bar outside the session closes none."""
    _check(interval)
    _, minute = _session_minute(minute_start_utc)
    if minute is None:
        return False
    return minute == _session.minutes - 1 or (minute + 1) % interval == 0


def _bucket_starts(times: np.ndarray, interval: int) -> tuple[np.ndarray, np.ndarray]:
    """(in-session mask, bucket start epoch seconds of each in-session time)."""
    shifted = times + IST_OFFSET - _session.open * 60  # seconds since some day's session opened
    day = shifted // 86400
    minute = (shifted % 86400) // 60
    inside = minute < _session.minutes
    day, minute = day[inside], minute[inside]
    starts = (day * 1440 + _session.open + minute // interval * interval) * 60 - IST_OFFSET
    return inside, starts


def bucket_ends(starts: np.ndarray, interval: int) -> np.ndarray:
    """Epoch seconds each bucket (given by its start) closes: start + interval, capped at 15:30 IST."""
    day = (starts + IST_OFFSET - _session.open * 60) // 86400
    close = (day * 1440 + _session.close) * 60 - IST_OFFSET
    return np.minimum(starts + interval * 60, close)


def aggregate(candles_1m: Candles, interval: int) -> Candles:
    """`interval` bars from 1-minute ones (oldest first, distinct minutes): open = first, high = max,
    low = min, close = last, volume = sum. Minutes outside the session are dropped."""
    _check(interval)
    times = candles_1m.time
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("1-minute candles must be in time order with no minute twice")
    inside, starts = _bucket_starts(times, interval)
    if not inside.any():
        return Candles.empty()
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    last = np.r_[first[1:] - 1, len(starts) - 1]
    high, low = candles_1m.high[inside], candles_1m.low[inside]
    return Candles(
        starts[first],
        candles_1m.open[inside][first],
        np.maximum.reduceat(high, first),
        np.minimum.reduceat(low, first),
        candles_1m.close[inside][last],
        np.add.reduceat(candles_1m.volume[inside], first),
    )


def load_series(session, instrument_id: int, interval: int, bars: int, until: datetime) -> Candles:
    """The last `bars` complete `interval` bars of the instrument whose buckets have closed by `until`
    (bucket end <= until), from the stored 1-minute candles. The bar closed by the 1-minute candle
    starting at t is included when until >= t + 1 minute. Fewer bars when history is shorter."""
    _check(interval)
    if bars <= 0:
        return Candles.empty()
    until = as_utc(until)
    until_epoch = int(until.timestamp())
    columns = (Candle.start, Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume)
    newest_first: list = []
    cursor, chunk = until, (bars + 1) * interval
    while True:
        rows = session.execute(
            sa.select(*columns)
            .where(Candle.instrument_id == instrument_id, Candle.interval == 1, Candle.start < cursor)
            .order_by(Candle.start.desc())
            .limit(chunk)
        ).all()
        newest_first.extend(rows)
        exhausted = len(rows) < chunk
        series = aggregate(Candles.from_rows(reversed(newest_first)), interval)
        series = series[: int(np.searchsorted(bucket_ends(series.time, interval), until_epoch, side="right"))]
        if not exhausted and len(series):
            series = series[1:]  # the oldest bucket may have minutes before the rows fetched so far
        if exhausted or len(series) >= bars:
            return series.tail(bars)
        cursor, chunk = rows[-1][0], chunk * 2  # pre-open and night minutes took room: fetch further back
