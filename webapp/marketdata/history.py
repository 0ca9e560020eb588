"""History for backtests: stored candles of the desk's intervals, loaded idempotently from three sources —
a broker's historical API (an adapter whose capabilities say `historical_candles`), a CSV file, and the
paper simulator's deterministic year — beside the feed's own 1-minute candles.

One row per (instrument, interval, start) in `candles` (the feed's rows have interval 1). Loading the same
bars again changes nothing: a bar already stored is kept and counted as skipped. Bars of a longer interval
are read from rows stored at that interval when there are any, otherwise built from the 1-minute rows on
IST session boundaries (09:15 anchor, `webapp.marketdata.intervals.aggregate`).

Every function here works in the caller's transaction and never commits. Times are aware UTC; a bar's
time is its first minute. docs/history.md describes the sources and the CSV format.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import sqlalchemy as sa

from webapp.brokers.base import Broker, HistoricalBar, InstrumentRef
from webapp.marketdata.intervals import (
    INTERVALS,
    IST_OFFSET,
    SESSION_CLOSE,
    SESSION_OPEN,
    aggregate,
    bucket_ends,
    bucket_start,
)
from webapp.models import Candle, Instrument
from webapp.models.base import insert_ignoring
from webapp.strategies.base import Candles
from webapp.timeutil import IST, MARKET_OPEN, UTC, as_utc

INSERT_CHUNK = 5000  # rows per INSERT statement (well under PostgreSQL's bind-parameter ceiling)
MAX_CSV_ERRORS = 200  # errors kept in a report; the count of bad lines is always exact
CSV_TIME_COLUMNS = ("timestamp", "datetime", "date", "time")
CSV_PRICE_COLUMNS = ("open", "high", "low", "close")
# the demo's instruments with a simulated year of 1-minute history (`flask history simulate`)
DEMO_SYMBOLS = ("RELIANCE", "TCS", "INFY", "HDFCBANK", "SBIN")
SIM_DAILY_VOLATILITY = 0.014  # one session's standard deviation of return, as a fraction
SIM_OVERNIGHT_VOLATILITY = 0.004
SIM_TREND_PERSISTENCE = 0.85  # each day's drift keeps this much of yesterday's: trends last days
SIM_TREND_VOLATILITY = 0.003  # fresh drift per day, as a fraction of the price over the session


class NoCandles(Exception):
    """The range (or interval) has no candles; `message` says what there is instead."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Bar:
    """One candle to store: start aware UTC, prices exact."""

    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


@dataclass
class ImportReport:
    """What a load did: bars `loaded` (new rows), `skipped` (already stored: loading again changes
    nothing), `errors` as (line, message) for the lines left out, `gaps` as (line, message) for missing
    bars inside a session before that line (the line itself is loaded). `bad_lines` counts every line in
    error, also past the first MAX_CSV_ERRORS kept in `errors`."""

    loaded: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    gaps: list[tuple[int, str]] = field(default_factory=list)
    bad_lines: int = 0

    def error(self, line: int, message: str) -> None:
        self.bad_lines += 1
        if len(self.errors) < MAX_CSV_ERRORS:
            self.errors.append((line, message))

    @property
    def summary(self) -> str:
        text = f"{self.loaded} candles loaded, {self.skipped} already stored"
        if self.bad_lines:
            text += f", {self.bad_lines} lines rejected"
        if self.gaps:
            text += f", {len(self.gaps)} gaps"
        return text


# --------------------------------------------------------------------------- intervals and times


def check_interval(interval: int) -> int:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(map(str, INTERVALS))} minutes, got {interval!r}")
    return interval


def on_grid(start: datetime, interval: int) -> str | None:
    """None when a bar of `interval` minutes may start at `start`; else why not (a whole minute inside the
    09:15–15:30 IST session, on the interval's 09:15-anchored grid)."""
    local = as_utc(start).astimezone(IST)
    if local.second or local.microsecond:
        return f"{local:%H:%M:%S} IST is not a whole minute"
    minute = local.hour * 60 + local.minute - SESSION_OPEN
    if not 0 <= minute < SESSION_CLOSE - SESSION_OPEN:
        return f"{local:%H:%M} IST is outside the 09:15–15:30 session"
    if minute % interval:
        return f"{local:%H:%M} IST does not start a {interval}-minute bar (they start 09:15, then every {interval})"
    return None


def _bound(value: date | datetime, end: bool) -> datetime:
    """A range bound as aware UTC: a datetime as given; a date is its whole IST day (the end date's too)."""
    if isinstance(value, datetime):
        return as_utc(value)
    day = value + timedelta(days=1) if end else value
    return datetime.combine(day, time(0), IST).astimezone(UTC)


def _ist_day(value: datetime) -> str:
    return f"{as_utc(value).astimezone(IST):%d %b %Y}"


def _label(session, instrument_id: int) -> str:
    symbol = session.execute(sa.select(Instrument.tradingsymbol).where(Instrument.id == instrument_id)).scalar()
    return symbol or f"instrument {instrument_id}"


# --------------------------------------------------------------------------- storing


def store(session, instrument_id: int, interval: int, bars: Sequence[Bar]) -> tuple[int, int]:
    """Insert the bars not stored yet; returns (loaded, skipped). Idempotent, and safe beside another
    load of the same bars (a row that appears meanwhile is left alone by ON CONFLICT DO NOTHING)."""
    check_interval(interval)
    if not bars:
        return 0, 0
    first, last = min(b.start for b in bars), max(b.start for b in bars)
    stored = session.execute(
        sa.select(Candle.start).where(
            Candle.instrument_id == instrument_id,
            Candle.interval == interval,
            Candle.start >= first,
            Candle.start <= last,
        )
    ).scalars()
    have = {int(as_utc(s).timestamp()) for s in stored}
    fresh: dict[int, Bar] = {}
    for bar in bars:
        key = int(as_utc(bar.start).timestamp())
        if key not in have:
            fresh.setdefault(key, bar)
    rows = [
        {
            "instrument_id": instrument_id,
            "interval": interval,
            "start": as_utc(bar.start),
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
        }
        for _, bar in sorted(fresh.items())
    ]
    insert = _insert_ignoring_duplicates(session)
    connection = session.connection()  # Core, not the ORM's bulk path: a year of bars in a second, not ten
    for offset in range(0, len(rows), INSERT_CHUNK):
        connection.execute(insert, rows[offset : offset + INSERT_CHUNK])
    return len(rows), len(bars) - len(rows)


def _insert_ignoring_duplicates(session):
    return insert_ignoring(session, Candle.__table__, ["instrument_id", "interval", "start"])


# --------------------------------------------------------------------------- reading


def coverage(session, instrument_id: int, interval: int) -> tuple[datetime, datetime, int] | None:
    """(first bar start, last bar start, number of bars) of `interval` for the instrument: rows stored at
    that interval, else the bars the 1-minute rows build; None when there are none."""
    check_interval(interval)
    if interval != 1:  # rows stored at a longer interval were checked onto its session grid when loaded
        first, last, count = session.execute(
            sa.select(sa.func.min(Candle.start), sa.func.max(Candle.start), sa.func.count()).where(
                Candle.instrument_id == instrument_id, Candle.interval == interval
            )
        ).one()
        if count:
            return as_utc(first), as_utc(last), int(count)
    # the bars the 1-minute rows build (at 1 minute: the session's minutes, as load reads them), counted
    # by the database: each in-session minute's bucket is
    # (IST day, minutes since 09:15 // interval), in integer arithmetic on epoch seconds (IST is UTC+05:30)
    local = _epoch_seconds(session) + IST_OFFSET
    minute = (local % 86400) // 60 - SESSION_OPEN
    bucket = (local // 86400) * 1000 + minute // interval
    first, last, count = session.execute(
        sa.select(sa.func.min(Candle.start), sa.func.max(Candle.start), sa.func.count(sa.distinct(bucket))).where(
            Candle.instrument_id == instrument_id,
            Candle.interval == 1,
            minute >= 0,
            minute < SESSION_CLOSE - SESSION_OPEN,
        )
    ).one()
    if not count:
        return None
    return bucket_start(as_utc(first), interval), bucket_start(as_utc(last), interval), int(count)


def stored_intervals(session, instrument_id: int) -> list[int]:
    """The intervals the instrument has rows of."""
    return sorted(
        session.execute(sa.select(Candle.interval).where(Candle.instrument_id == instrument_id).distinct()).scalars()
    )


def _epoch_seconds(session):
    """The bar start as epoch seconds, computed by the database (reading 100,000 datetimes and Decimals
    through their Python types takes seconds; these columns come back as plain numbers)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", Candle.start), sa.BigInteger)
    return sa.cast(sa.func.strftime("%s", Candle.start), sa.BigInteger)  # SQLite keeps the UTC text


def _candles(session, instrument_id: int, interval: int, start: datetime, end: datetime) -> Candles:
    """The stored bars with start in [start, end), oldest first, as float arrays (Candles)."""
    floats = [sa.type_coerce(c, sa.Float) for c in (Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume)]
    rows = session.execute(
        sa.select(_epoch_seconds(session), *floats)
        .where(
            Candle.instrument_id == instrument_id,
            Candle.interval == interval,
            Candle.start >= start,
            Candle.start < end,
        )
        .order_by(Candle.start)
    ).all()
    if not rows:
        return Candles.empty()
    table = np.array([tuple(row) for row in rows], dtype=np.float64)  # numpy reads plain tuples fast, Rows not
    return Candles(table[:, 0].astype(np.int64), *(table[:, i] for i in range(1, 6)))


def load(session, instrument_id: int, interval: int, start: date | datetime, end: date | datetime) -> Candles:
    """The complete `interval` bars of the instrument whose start lies in [start, end): datetimes are exact
    bounds (end excluded); dates are whole IST days, the end date included. Rows stored at `interval` when
    the range has any, else bars built from the 1-minute rows (a bucket cut by a bound is left out).
    NoCandles (its message fit for a form) when the range has none; ValueError for an unknown interval."""
    check_interval(interval)
    lower, upper = _bound(start, end=False), _bound(end, end=True)
    if lower >= upper:
        raise NoCandles("The range is empty: its start is not before its end.")
    series = Candles.empty()
    if interval != 1:
        series = _candles(session, instrument_id, interval, lower, upper)
    if not len(series):
        series = _candles(session, instrument_id, 1, lower, upper)
        if len(series):
            series = aggregate(series, interval)  # only session minutes, also at 1 (the feed stores night ones)
            whole = (series.time >= int(lower.timestamp())) & (
                bucket_ends(series.time, interval) <= int(upper.timestamp())
            )
            series = Candles(*(getattr(series, name)[whole] for name in Candles._fields()))
    if not len(series):
        raise NoCandles(_no_candles_message(session, instrument_id, interval, lower, upper))
    return series


def _no_candles_message(session, instrument_id: int, interval: int, lower: datetime, upper: datetime) -> str:
    label = _label(session, instrument_id)
    asked = f"{_ist_day(lower)} – {_ist_day(upper - timedelta(seconds=1))}"
    have = coverage(session, instrument_id, interval)
    if have is None:
        others = stored_intervals(session, instrument_id)
        if not others:
            return f"{label} has no stored candles: import a CSV, fetch from a broker or simulate a year first."
        listed = ", ".join(f"{n}-minute" for n in others)
        return f"{label} has no {interval}-minute candles (stored: {listed}), and no 1-minute candles to build them."
    return (
        f"{label} has no {interval}-minute candles between {asked}; its history runs "
        f"{_ist_day(have[0])} – {_ist_day(have[1])} ({have[2]} bars)."
    )


# --------------------------------------------------------------------------- CSV import


def import_csv(session, instrument_id: int, interval: int, text: str) -> ImportReport:
    """Load OHLCV rows from CSV text: a header naming a time column (timestamp, datetime, date or time)
    and open, high, low, close, with volume optional. Bad lines are reported by line number and left out;
    the rest is loaded. A time without a UTC offset is IST. Lines must be in time order, each time once."""
    check_interval(interval)
    report = ImportReport()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    columns = _columns(header, report)
    if columns is None:
        return report
    bars: list[Bar] = []
    seen: dict[int, int] = {}  # epoch -> line
    previous: tuple[int, int] | None = None  # (epoch, line) of the last good line
    for values in reader:
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        bar, problem = _parse_line(values, columns, interval)
        if bar is None:
            report.error(line, problem)
            continue
        key = int(bar.start.timestamp())
        if key in seen:
            report.error(line, f"duplicate time {_ist_text(bar.start)}: line {seen[key]} has it already")
            continue
        if previous is not None and key < previous[0]:
            report.error(
                line,
                f"out of order: {_ist_text(bar.start)} comes before line {previous[1]}'s time "
                "(lines must be in time order)",
            )
            continue
        if previous is not None and (gap := _gap(previous[0], key, interval)):
            report.gaps.append((line, gap))
        seen[key] = line
        previous = (key, line)
        bars.append(bar)
    report.loaded, report.skipped = store(session, instrument_id, interval, bars)
    return report


def _columns(header: list[str] | None, report: ImportReport) -> dict[str, int] | None:
    if not header:
        report.error(1, "the file is empty: it needs a header line (timestamp,open,high,low,close,volume)")
        return None
    names = [h.strip().lower() for h in header]
    columns: dict[str, int] = {}
    for name in CSV_TIME_COLUMNS:
        if name in names:
            columns["time"] = names.index(name)
            break
    missing = [] if "time" in columns else ["a time column (timestamp, datetime, date or time)"]
    for name in (*CSV_PRICE_COLUMNS, "volume"):
        if name in names:
            columns[name] = names.index(name)
        elif name != "volume":
            missing.append(name)
    if missing:
        found = ", ".join(h for h in names if h) or "nothing"
        report.error(1, f"the header lacks {', '.join(missing)}; found: {found}")
        return None
    return columns


_TIME_FORMATS = ("%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M")


def parse_time(text: str) -> datetime:
    """A CSV time: ISO 8601 (with or without a UTC offset; without one it is IST), dd-mm-yyyy hh:mm[:ss]
    (IST), or epoch seconds. ValueError with the reason otherwise."""
    text = text.strip()
    if not text:
        raise ValueError("the time is empty")
    if text.isdigit():
        seconds = int(text)
        if len(text) == 13:  # epoch milliseconds
            seconds //= 1000
        return datetime.fromtimestamp(seconds, UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
        for fmt in _TIME_FORMATS:
            try:
                value = datetime.strptime(text, fmt)  # noqa: DTZ007 - a time without an offset is IST (below)
                break
            except ValueError:
                continue
        if value is None:
            raise ValueError(f"{text!r} is not a time (use 2025-01-02 09:15:00, with +05:30 or not)") from None
    if len(text) <= 10 and ":" not in text:
        raise ValueError(f"{text!r} is a date without a time of day")
    return (value.replace(tzinfo=IST) if value.tzinfo is None else value).astimezone(UTC)


def _ist_text(value: datetime) -> str:
    return f"{value.astimezone(IST):%d %b %Y %H:%M} IST"


def _number(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{name} {text.strip()!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{name} {text.strip()!r} is not a number")
    return value


def _parse_line(values: list[str], columns: dict[str, int], interval: int) -> tuple[Bar | None, str]:
    if len(values) <= max(columns.values()):
        return None, f"{len(values)} fields, the header has more"
    try:
        start = parse_time(values[columns["time"]])
        prices = [_number(values[columns[name]], name) for name in CSV_PRICE_COLUMNS]
        volume_text = values[columns["volume"]].strip() if "volume" in columns else ""
        volume = _number(volume_text, "volume") if volume_text else Decimal(0)
    except ValueError as exc:
        return None, str(exc)
    if problem := on_grid(start, interval):
        return None, problem
    if problem := _ohlc_problem(*prices):
        return None, problem
    if volume < 0 or volume != volume.to_integral_value():
        return None, f"volume {volume} must be a whole number, zero or more"
    return Bar(start, *prices, int(volume)), ""


def _ohlc_problem(open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> str | None:
    for name, value in (("open", open_), ("high", high), ("low", low), ("close", close)):
        if value <= 0:
            return f"{name} {value} must be above zero"
    if high < low:
        return f"high {high} is below low {low}"
    if high < max(open_, close):
        return f"high {high} is below the open or the close"
    if low > min(open_, close):
        return f"low {low} is above the open or the close"
    return None


def _gap(previous: int, current: int, interval: int) -> str | None:
    """A message when bars are missing between two consecutive bars of the same IST session."""
    before = datetime.fromtimestamp(previous, UTC).astimezone(IST)
    after = datetime.fromtimestamp(current, UTC).astimezone(IST)
    if before.date() != after.date():
        return None
    missing = (current - previous) // 60 // interval - 1
    if missing <= 0:
        return None
    bars = f"{missing} {interval}-minute bar{'s' if missing > 1 else ''}"
    return f"{bars} missing between {before:%H:%M} and {after:%H:%M} IST on {after:%d %b %Y}"


# --------------------------------------------------------------------------- a broker's history


def fetch(
    session, instrument: Instrument, interval: int, start: date | datetime, end: date | datetime, adapter: Broker
) -> ImportReport:
    """Fetch [start, end) from the broker's historical API (the adapter splits and paces the requests as its
    broker asks) and store it. BrokerError from the adapter passes through; bars it sent that fail the
    checks are reported by their position (1 = the first bar) and left out."""
    check_interval(interval)
    if not adapter.capabilities.historical_candles:
        raise ValueError(f"{adapter.label} has no historical candles")
    lower, upper = _bound(start, end=False), _bound(end, end=True)
    ref = InstrumentRef(
        instrument.exchange,
        instrument.tradingsymbol,
        int(instrument.exchange_token),
        int(instrument.instrument_token),
        instrument.isin,
    )
    received = adapter.historical_candles(ref, interval, lower, upper - timedelta(minutes=1))
    report = ImportReport()
    bars: list[Bar] = []
    seen: set[datetime] = set()
    for number, got in enumerate(sorted(received, key=lambda b: b.start), start=1):
        problem = _broker_bar_problem(got, interval, lower, upper)
        if problem is None and got.start in seen:
            problem = f"{_ist_text(got.start)} sent twice"
        if problem:
            report.error(number, problem)
            continue
        seen.add(got.start)
        bars.append(Bar(as_utc(got.start), got.open, got.high, got.low, got.close, int(got.volume)))
    report.loaded, report.skipped = store(session, instrument.id, interval, bars)
    return report


def _broker_bar_problem(bar: HistoricalBar, interval: int, lower: datetime, upper: datetime) -> str | None:
    if not lower <= bar.start < upper:
        return f"{_ist_text(bar.start)} is outside the range asked for"
    return (
        on_grid(bar.start, interval)
        or _ohlc_problem(bar.open, bar.high, bar.low, bar.close)
        or (f"volume {bar.volume} is negative" if bar.volume < 0 else None)
    )


# --------------------------------------------------------------------------- the simulator's year


def sessions(first: date, last: date) -> list[date]:
    """Weekdays from first to last, both included (NSE holidays are not modelled)."""
    days, day = [], first
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def simulate_year(instrument: Any, seed: int, last_day: date, days: int = 365) -> list[Bar]:
    """A deterministic year of 1-minute bars for one instrument (anything with instrument_token,
    tick_size and last_price): the sessions (weekdays) of the `days` days ending `last_day`, 375 bars
    each. Same seed, instrument and last day → the same bars. The walk has trends lasting days, overnight
    gaps and a U-shaped volume profile; it is scaled so the last close is the instrument's last price,
    and every price sits on its tick grid."""
    tick = Decimal(instrument.tick_size)
    reference = float(instrument.last_price or 0)
    if reference <= 0 or tick <= 0:
        raise ValueError(f"{getattr(instrument, 'tradingsymbol', instrument)} has no last price to simulate from")
    rng = random.Random(f"fanout-history:{seed}:{int(instrument.instrument_token)}:{last_day.isoformat()}")
    minutes = SESSION_CLOSE - SESSION_OPEN
    step = SIM_DAILY_VOLATILITY / math.sqrt(minutes)
    unit = max(1, int(50000 / reference))  # shares in about ₹50,000, as the live simulator's depth
    level, trend = 0.0, 0.0  # log price (relative to the start) and today's drift per minute
    rows: list[tuple[datetime, float, float, float, float, int]] = []
    for day in sessions(last_day - timedelta(days=days - 1), last_day):
        trend = SIM_TREND_PERSISTENCE * trend + rng.gauss(0.0, SIM_TREND_VOLATILITY) / minutes
        level += rng.gauss(0.0, SIM_OVERNIGHT_VOLATILITY) if rows else 0.0
        opening = datetime.combine(day, MARKET_OPEN, IST).astimezone(UTC)
        for minute in range(minutes):
            open_ = level
            path = [open_]
            for _ in range(3):
                level += trend / 3 + rng.gauss(0.0, step / math.sqrt(3))
                path.append(level)
            wick = abs(rng.gauss(0.0, step / 4))
            shape = 1.0 + 2.0 * ((minute - minutes / 2) / (minutes / 2)) ** 2  # busier at the open and close
            volume = unit * int(rng.randint(5, 60) * shape)
            rows.append((opening + timedelta(minutes=minute), open_, max(path) + wick, min(path) - wick, level, volume))
    scale = reference / math.exp(rows[-1][4])
    ticks = float(tick)

    def price(log_level: float) -> Decimal:
        return max(round(scale * math.exp(log_level) / ticks), 1) * tick

    bars = []
    for start, open_, high, low, close, volume in rows:
        o, c = price(open_), price(close)
        bars.append(Bar(start, o, max(price(high), o, c), min(price(low), o, c), c, volume))
    return bars


def simulate(session, instruments: Iterable[Instrument], seed: int, last_day: date, days: int = 365) -> dict[str, int]:
    """Store each instrument's simulated year (idempotent); returns symbol → bars newly stored."""
    loaded = {}
    for instrument in instruments:
        loaded[instrument.tradingsymbol] = store(
            session, instrument.id, 1, simulate_year(instrument, seed, last_day, days)
        )[0]
    return loaded


def simulate_missing(session, symbols: Iterable[str], seed: int, today: date, days: int = 365) -> dict[str, int]:
    """The demo's year for each of `symbols` in the master that has no 1-minute history before `today`
    yet, ending the last weekday before it; commits after each instrument. Symbol → bars stored."""
    midnight = datetime.combine(today, time(0), IST).astimezone(UTC)
    instruments = session.execute(
        sa.select(Instrument).where(Instrument.tradingsymbol.in_(list(symbols))).order_by(Instrument.tradingsymbol)
    ).scalars()
    loaded = {}
    for instrument in instruments:
        older = session.execute(
            sa.select(Candle.id)
            .where(Candle.instrument_id == instrument.id, Candle.interval == 1, Candle.start < midnight)
            .limit(1)
        ).first()
        if older is None and instrument.last_price:
            loaded.update(simulate(session, [instrument], seed, last_full_session(today), days))
            session.commit()
    return loaded


def last_full_session(today: date) -> date:
    """The last weekday before `today`: the simulated year ends there, so it never meets the live feed."""
    day = today - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day
