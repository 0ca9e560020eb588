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
SESSION_MINUTES = SESSION_CLOSE - SESSION_OPEN  # 375


def _check(interval: int) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(map(str, INTERVALS))} minutes, got {interval!r}")


def _session_minute(minute_start_utc: datetime) -> tuple[datetime, int | None]:
    """(the minute in IST, minutes since 09:15 or None outside the session)."""
    local = as_utc(minute_start_utc).astimezone(IST)
    minute = local.hour * 60 + local.minute - SESSION_OPEN
    return local, minute if 0 <= minute < SESSION_MINUTES else None


def bucket_start(minute_start_utc: datetime, interval: int) -> datetime:
    """The start (aware UTC) of the `interval` bucket holding the 1-minute bar that starts at
    `minute_start_utc`. ValueError for a minute outside the session (it belongs to no bucket)."""
    _check(interval)
    local, minute = _session_minute(minute_start_utc)
    if minute is None:
        raise ValueError(f"{local:%H:%M} IST is outside the 09:15–15:30 session: it belongs to no bucket")
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(minutes=SESSION_OPEN + minute // interval * interval)).astimezone(UTC)


def bucket_end(start_utc: datetime, interval: int) -> datetime:
    """When the bucket starting at `start_utc` closes: start + interval, but never past 15:30 IST."""
    _check(interval)
    local = as_utc(start_utc).astimezone(IST)
    close = local.replace(hour=15, minute=30, second=0, microsecond=0)
    return min(local + timedelta(minutes=interval), close).astimezone(UTC)


def closes_bucket(minute_start_utc: datetime, interval: int) -> bool:
    """Is the 1-minute bar starting at `minute_start_utc` the last of its `interval` bucket? The bar
    starting 15:29 IST closes every bucket; a bar outside the session closes none."""
    _check(interval)
    _, minute = _session_minute(minute_start_utc)
    if minute is None:
        return False
    return minute == SESSION_MINUTES - 1 or (minute + 1) % interval == 0


def _bucket_starts(times: np.ndarray, interval: int) -> tuple[np.ndarray, np.ndarray]:
    """(in-session mask, bucket start epoch seconds of each in-session time)."""
    local = times + IST_OFFSET
    day = local // 86400
    minute = (local % 86400) // 60 - SESSION_OPEN
    inside = (minute >= 0) & (minute < SESSION_MINUTES)
    day, minute = day[inside], minute[inside]
    starts = (day * 1440 + SESSION_OPEN + minute // interval * interval) * 60 - IST_OFFSET
    return inside, starts


def bucket_ends(starts: np.ndarray, interval: int) -> np.ndarray:
    """Epoch seconds each bucket (given by its start) closes: start + interval, capped at 15:30 IST."""
    day = (starts + IST_OFFSET) // 86400
    close = day * 86400 + SESSION_CLOSE * 60 - IST_OFFSET
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
