"""Intervals on NSE session boundaries: buckets anchored at 09:15 IST, the short last hour, minutes
outside the session in no bucket, and series loaded from stored 1-minute candles (on both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.extensions import db
from webapp.marketdata.intervals import (
    INTERVALS,
    aggregate,
    bucket_end,
    bucket_start,
    closes_bucket,
    load_series,
)
from webapp.models import Candle
from webapp.strategies import Candles
from webapp.timeutil import IST

DAY = date(2026, 3, 2)  # a Monday
NEXT_DAY = date(2026, 3, 3)


def ist(hh_mm: str, day: date = DAY) -> datetime:
    """An IST wall-clock minute as aware UTC."""
    hour, minute = map(int, hh_mm.split(":"))
    return datetime.combine(day, time(hour, minute), IST).astimezone(UTC)


def test_ist_has_no_daylight_saving():
    for month in range(1, 13):
        assert datetime(2026, month, 15, 12, tzinfo=IST).utcoffset() == timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    ("minute", "interval", "start"),
    [
        ("09:15", 1, "09:15"),
        ("09:17", 3, "09:15"),
        ("09:18", 3, "09:18"),
        ("09:19", 5, "09:15"),
        ("09:20", 5, "09:20"),
        ("09:29", 15, "09:15"),
        ("09:30", 15, "09:30"),
        ("10:14", 60, "09:15"),
        ("10:15", 60, "10:15"),
        ("15:14", 60, "14:15"),
        ("15:15", 60, "15:15"),
        ("15:29", 60, "15:15"),
        ("15:29", 15, "15:15"),
        ("15:29", 5, "15:25"),
        ("15:29", 3, "15:27"),
    ],
)
def test_bucket_start_is_anchored_at_09_15_ist(minute, interval, start):
    found = bucket_start(ist(minute), interval)
    assert found == ist(start) and found.tzinfo is not None


@pytest.mark.parametrize("minute", ["09:14", "09:00", "15:30", "15:45", "23:59", "00:00", "03:44"])
def test_a_minute_outside_the_session_belongs_to_no_bucket(minute):
    with pytest.raises(ValueError, match="outside the 09:15–15:30 session"):
        bucket_start(ist(minute), 5)
    assert not any(closes_bucket(ist(minute), interval) for interval in INTERVALS)


@pytest.mark.parametrize(
    ("minute", "interval", "closes"),
    [
        ("09:15", 1, True),
        ("09:15", 3, False),
        ("09:17", 3, True),
        ("09:19", 5, True),
        ("09:20", 5, False),
        ("09:29", 15, True),
        ("10:14", 60, True),
        ("10:15", 60, False),
        ("15:14", 60, True),
        ("15:28", 60, False),
        ("15:29", 60, True),  # the short last hour, 15:15-15:30
        ("15:29", 15, True),
        ("15:29", 5, True),
        ("15:29", 3, True),
    ],
)
def test_closes_bucket(minute, interval, closes):
    assert closes_bucket(ist(minute), interval) is closes


@pytest.mark.parametrize(("interval", "buckets"), [(1, 375), (3, 125), (5, 75), (15, 25), (60, 7)])
def test_every_bucket_of_the_session_closes_once_at_its_last_minute(interval, buckets):
    minutes = [ist("09:15") + timedelta(minutes=k) for k in range(375)]
    closing = [m for m in minutes if closes_bucket(m, interval)]
    assert len(closing) == buckets
    for m in closing:
        assert bucket_end(bucket_start(m, interval), interval) == m + timedelta(minutes=1)
    assert {bucket_start(m, interval) for m in minutes} == {bucket_start(m, interval) for m in closing}


def test_bucket_end_never_passes_the_close():
    assert bucket_end(ist("15:15"), 60) == ist("15:30")
    assert bucket_end(ist("14:15"), 60) == ist("15:15")
    assert bucket_end(ist("09:15"), 5) == ist("09:20")


def test_an_unknown_interval_is_refused():
    with pytest.raises(ValueError, match="interval must be one of 1, 3, 5, 15, 60"):
        bucket_start(ist("09:15"), 2)


def minutes_of(day: date, start: str, end: str) -> list[datetime]:
    """Every minute from start to end (inclusive), IST."""
    first, last = ist(start, day), ist(end, day)
    return [first + timedelta(minutes=k) for k in range(int((last - first).total_seconds() // 60) + 1)]


def one_minute_rows(minutes: list[datetime], seed: int = 1) -> list[tuple]:
    rng = np.random.default_rng(seed)
    rows, price = [], 1000.0
    for minute in minutes:
        open_ = price
        price = round(price * (1 + rng.normal(0, 0.001)), 2)
        high = round(max(open_, price) + float(rng.uniform(0, 1)), 2)
        low = round(min(open_, price) - float(rng.uniform(0, 1)), 2)
        rows.append((minute, open_, high, low, price, int(rng.integers(0, 1000))))
    return rows


def oracle(rows: list[tuple], interval: int) -> list[tuple]:
    """Aggregation the slow, obvious way: group by bucket_start."""
    groups: dict[datetime, list[tuple]] = {}
    for row in rows:
        try:
            groups.setdefault(bucket_start(row[0], interval), []).append(row)
        except ValueError:
            continue
    return [
        (
            int(start.timestamp()),
            g[0][1],
            max(r[2] for r in g),
            min(r[3] for r in g),
            g[-1][4],
            float(sum(r[5] for r in g)),
        )
        for start, g in sorted(groups.items())
    ]


def as_rows(candles: Candles) -> list[tuple]:
    return list(
        zip(
            candles.time.tolist(),
            candles.open.tolist(),
            candles.high.tolist(),
            candles.low.tolist(),
            candles.close.tolist(),
            candles.volume.tolist(),
            strict=True,
        )
    )


TWO_DAYS = one_minute_rows(
    minutes_of(DAY, "08:50", "16:10") + minutes_of(NEXT_DAY, "09:00", "15:29")  # pre-open and after the close too
)


@pytest.mark.parametrize("interval", INTERVALS)
def test_aggregate_makes_the_obvious_bars(interval):
    bars = aggregate(Candles.from_rows(TWO_DAYS), interval)
    assert as_rows(bars) == oracle(TWO_DAYS, interval)
    per_day = {1: 375, 3: 125, 5: 75, 15: 25, 60: 7}[interval]
    assert len(bars) == 2 * per_day  # pre-open and post-close minutes dropped, no bucket spans two days


def test_the_last_hour_is_short_and_ends_at_15_29():
    bars = aggregate(Candles.from_rows(TWO_DAYS), 60)
    last_of_day = [row for row in TWO_DAYS if ist("15:15") <= row[0] <= ist("15:29")]
    assert int(bars.time[6]) == int(ist("15:15").timestamp())
    assert bars.volume[6] == sum(row[5] for row in last_of_day)
    assert bars.close[6] == last_of_day[-1][4]
    assert int(bars.time[7]) == int(ist("09:15", NEXT_DAY).timestamp())  # the next bar is the next session's


def test_a_bucket_with_missing_minutes_is_still_one_bar_at_its_start():
    rows = [r for r in TWO_DAYS if r[0] in (ist("09:21"), ist("09:23"))]
    bars = aggregate(Candles.from_rows(rows), 5)
    assert len(bars) == 1 and int(bars.time[0]) == int(ist("09:20").timestamp())
    assert bars.open[0] == rows[0][1] and bars.close[0] == rows[1][4]


def test_aggregate_wants_time_order():
    with pytest.raises(ValueError, match="time order"):
        aggregate(Candles.from_rows(list(reversed(TWO_DAYS[:10]))), 5)
    assert len(aggregate(Candles.from_rows([]), 5)) == 0
    assert len(aggregate(Candles.from_rows(one_minute_rows(minutes_of(DAY, "16:00", "23:00"))), 5)) == 0


@settings(max_examples=60, deadline=None)
@given(
    interval=st.sampled_from(INTERVALS),
    keep=st.lists(st.booleans(), min_size=len(TWO_DAYS), max_size=len(TWO_DAYS)),
)
def test_aggregate_agrees_with_the_obvious_way_whatever_minutes_are_missing(interval, keep):
    rows = [row for row, kept in zip(TWO_DAYS, keep, strict=True) if kept]
    assert as_rows(aggregate(Candles.from_rows(rows), interval)) == oracle(rows, interval)


# ---------------------------------------------------------------- load_series, on the test database


@pytest.fixture
def stored(app, factory):
    """Two days of 1-minute candles with the pre-open, the evening and a night of a 24-hour simulator
    between them (minutes that belong to no bucket), stored for one instrument."""
    instrument = factory.instrument()
    night = minutes_of(DAY, "15:30", "23:59") + minutes_of(NEXT_DAY, "00:00", "09:14")
    rows = one_minute_rows(minutes_of(DAY, "09:00", "15:29") + night + minutes_of(NEXT_DAY, "09:15", "12:00"))
    with app.app_context():
        db.session.execute(
            sa.insert(Candle),
            [
                {
                    "instrument_id": instrument.id,
                    "start": minute,
                    "open": Decimal(str(o)),
                    "high": Decimal(str(h)),
                    "low": Decimal(str(low)),
                    "close": Decimal(str(c)),
                    "volume": v,
                }
                for minute, o, h, low, c, v in rows
            ],
        )
        db.session.commit()
    return instrument.id, rows


def load(app, instrument_id, interval, bars, until):
    with app.app_context():
        return load_series(db.session, instrument_id, interval, bars, until)


def test_load_series_gives_the_last_complete_bars(app, stored):
    instrument_id, rows = stored
    series = load(app, instrument_id, 5, 10, until=ist("11:02", NEXT_DAY))
    expected = oracle([r for r in rows if r[0] < ist("11:00", NEXT_DAY)], 5)[-10:]
    assert as_rows(series) == expected  # the 11:00 bucket is still forming: not in it
    assert int(series.time[-1]) == int(ist("10:55", NEXT_DAY).timestamp())


def test_a_bucket_is_in_from_the_moment_it_closes(app, stored):
    instrument_id, _ = stored
    closed_by = ist("10:59", NEXT_DAY) + timedelta(minutes=1)
    assert int(load(app, instrument_id, 5, 1, closed_by).time[-1]) == int(ist("10:55", NEXT_DAY).timestamp())
    early = closed_by - timedelta(seconds=1)
    assert int(load(app, instrument_id, 5, 1, early).time[-1]) == int(ist("10:50", NEXT_DAY).timestamp())


def test_load_series_reaches_over_the_night_into_the_previous_session(app, stored):
    instrument_id, rows = stored
    # 40 bars of 5 minutes: 24 this morning (09:15-11:15), 16 from yesterday; the 1,065 night and
    # pre-open minutes in between take room in the first fetch and are skipped
    until = ist("11:15", NEXT_DAY)
    series = load(app, instrument_id, 5, 40, until)
    assert len(series) == 40
    assert as_rows(series) == oracle([r for r in rows if r[0] < until], 5)[-40:]
    assert int(series.time[0]) == int(ist("14:10").timestamp())


def test_load_series_with_the_short_last_hour(app, stored):
    instrument_id, rows = stored
    series = load(app, instrument_id, 60, 3, ist("11:15", NEXT_DAY))
    starts = [datetime.fromtimestamp(t, UTC) for t in series.time.tolist()]
    assert starts == [ist("15:15"), ist("09:15", NEXT_DAY), ist("10:15", NEXT_DAY)]
    assert as_rows(series) == oracle([r for r in rows if r[0] < ist("11:15", NEXT_DAY)], 60)[-3:]


def test_load_series_with_short_history_gives_what_there_is(app, stored):
    instrument_id, rows = stored
    series = load(app, instrument_id, 15, 500, ist("12:01", NEXT_DAY))
    assert as_rows(series) == oracle(rows, 15)[:-1]  # the 12:00 bucket has only its first minute
    assert len(series) == 25 + 11  # yesterday's 25, this morning's 09:15-11:45
    assert len(load(app, instrument_id, 15, 5, ist("09:00"))) == 0
    assert len(load(app, instrument_id + 1, 15, 5, ist("12:00", NEXT_DAY))) == 0
    assert len(load(app, instrument_id, 15, 0, ist("12:00", NEXT_DAY))) == 0


@pytest.fixture
def all_day():
    from webapp.marketdata import intervals

    intervals.use_session("all_day")
    yield
    intervals.use_session("nse")


def test_the_demo_all_day_session_closes_bars_at_night_on_the_same_0915_anchor(all_day):
    from webapp.marketdata.intervals import bucket_end

    assert bucket_start(ist("22:03"), 5) == ist("22:00").astimezone(UTC)
    assert closes_bucket(ist("22:04"), 5) and not closes_bucket(ist("22:03"), 5)
    assert bucket_start(ist("09:14", DAY + timedelta(days=1)), 60) == ist("08:15", DAY + timedelta(days=1))
    assert closes_bucket(ist("09:14", DAY + timedelta(days=1)), 60)  # the session's last minute
    assert bucket_end(ist("15:15"), 60) == ist("16:15")  # no short last hour: 1440 divides by 60
    minutes = [ist("23:58") + timedelta(minutes=k) for k in range(4)]  # across midnight
    candles = Candles.from_rows(
        [(int(m.timestamp()), 10 + k, 11 + k, 9 + k, 10.5 + k, 100) for k, m in enumerate(minutes)]
    )
    bars = aggregate(candles, 3)
    assert [datetime.fromtimestamp(t, UTC) for t in bars.time] == [ist("23:57"), ist("00:00", DAY + timedelta(days=1))]
    assert list(bars.volume) == [200, 200]


def test_the_nse_session_is_the_default_and_drops_night_minutes():
    assert not closes_bucket(ist("22:04"), 5)
    with pytest.raises(ValueError):
        bucket_start(ist("22:03"), 5)
