"""History for backtests (webapp/marketdata/history.py): CSV import with per-line errors, idempotent loads,
longer intervals built from 1-minute candles on the 09:15 IST grid, coverage, NoCandles, the simulator's
deterministic year, a broker's history fetched over real HTTP from the Kite emulator, and the CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.marketdata import history
from webapp.marketdata.intervals import aggregate
from webapp.models import Candle
from webapp.timeutil import IST

DAY = date(2026, 11, 2)  # a Monday
HEADER = "timestamp,open,high,low,close,volume\n"


def ist(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), IST)


def minute_lines(day: date, count: int, first: tuple[int, int] = (9, 15), price: int = 100) -> list[str]:
    start = ist(day, *first)
    lines = []
    for i in range(count):
        at = start + timedelta(minutes=i)
        o = Decimal(price + i)
        lines.append(f"{at:%Y-%m-%d %H:%M:%S},{o},{o + Decimal('1.5')},{o - Decimal('0.5')},{o + 1},{10 * (i + 1)}")
    return lines


def stored(instrument_id: int, interval: int = 1) -> list[tuple]:
    return [
        tuple(row)
        for row in db.session.execute(
            sa.select(Candle.start, Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume)
            .where(Candle.instrument_id == instrument_id, Candle.interval == interval)
            .order_by(Candle.start)
        )
    ]


@pytest.fixture
def infy(app, factory):
    with app.app_context():
        yield factory.instrument("INFY", 1594, price="1548.20")


# ----------------------------------------------------------------------------- CSV import


def test_a_csv_loads_exactly_and_loading_it_again_changes_nothing(app, infy):
    text = HEADER + "\n".join(minute_lines(DAY, 30)) + "\n"
    report = history.import_csv(db.session, infy.id, 1, text)
    db.session.commit()
    assert (report.loaded, report.skipped, report.errors, report.gaps) == (30, 0, [], [])
    rows = stored(infy.id)
    assert len(rows) == 30
    assert rows[0] == (ist(DAY, 9, 15), Decimal("100"), Decimal("101.5"), Decimal("99.5"), Decimal("101"), 10)
    again = history.import_csv(db.session, infy.id, 1, text)
    db.session.commit()
    assert (again.loaded, again.skipped) == (0, 30)
    assert stored(infy.id) == rows
    assert history.coverage(db.session, infy.id, 1) == (ist(DAY, 9, 15), ist(DAY, 9, 44), 30)


def test_bad_lines_are_reported_by_number_and_the_rest_is_loaded(app, infy):
    good = minute_lines(DAY, 6)
    lines = [
        good[0],  # line 2
        good[1],  # 3
        good[1],  # 4: the same minute again
        good[3],  # 5 (09:17 missing: a gap)
        good[2],  # 6: before line 5's time
        f"{ist(DAY, 9, 19):%Y-%m-%d %H:%M},-5,1,1,1,10",  # 7: negative price
        f"{ist(DAY, 9, 19):%Y-%m-%d %H:%M},100,99,101,100,10",  # 8: high below low
        "yesterday,1,2,1,2,10",  # 9: not a time
        f"{ist(DAY, 9, 19):%Y-%m-%d %H:%M},100,abc,99,100,10",  # 10: not a number
        f"{ist(DAY, 8, 30):%Y-%m-%d %H:%M},100,101,99,100,10",  # 11: before the session
        f"{ist(DAY, 9, 20):%Y-%m-%d} 09:20:30,100,101,99,100,10",  # 12: not a whole minute
        f"{ist(DAY, 9, 21):%Y-%m-%d %H:%M},100,101,99",  # 13: too few fields
        f"{ist(DAY, 9, 22):%Y-%m-%d %H:%M},100,101,99,100,-3",  # 14: negative volume
        good[4],  # 15
    ]
    report = history.import_csv(db.session, infy.id, 1, HEADER + "\n".join(lines) + "\n")
    db.session.commit()
    assert report.loaded == 4 and report.skipped == 0
    assert [line for line, _ in report.errors] == [4, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    messages = dict(report.errors)
    assert "duplicate" in messages[4] and "line 3" in messages[4]
    assert "out of order" in messages[6] and "line 5" in messages[6]
    assert messages[7] == "open -5 must be above zero"
    assert messages[8] == "high 99 is below low 101"
    assert "'yesterday' is not a time" in messages[9]
    assert messages[10] == "high 'abc' is not a number"
    assert "outside the 09:15–15:30 session" in messages[11]
    assert "not a whole minute" in messages[12]
    assert "fields" in messages[13]
    assert "volume" in messages[14]
    assert report.gaps == [(5, "1 1-minute bar missing between 09:16 and 09:18 IST on 02 Nov 2026")]
    assert [row[0] for row in stored(infy.id)] == [ist(DAY, 9, m) for m in (15, 16, 18, 19)]
    assert report.bad_lines == 10 and "4 candles loaded" in report.summary


def test_a_file_without_the_columns_loads_nothing(app, infy):
    report = history.import_csv(db.session, infy.id, 1, "when,price\n2026-11-02 09:15,100\n")
    assert report.loaded == 0 and report.errors[0][0] == 1
    assert "a time column" in report.errors[0][1] and "open" in report.errors[0][1]
    assert history.import_csv(db.session, infy.id, 1, "").errors == [
        (1, "the file is empty: it needs a header line (timestamp,open,high,low,close,volume)")
    ]
    assert stored(infy.id) == []


def test_csv_times_in_other_shapes(app, infy):
    at = ist(DAY, 9, 15)
    text = (
        "Date,Open,High,Low,Close\n"  # Kite's column name, any case, no volume
        f"{at.isoformat()},1,2,1,2\n"
        "2026-11-02T03:46:00Z,1,2,1,2\n"  # UTC, 09:16 IST
        "02-11-2026 09:17,1,2,1,2\n"  # dd-mm-yyyy, IST
        f"{int((at + timedelta(minutes=3)).timestamp())},1,2,1,2\n"  # epoch seconds
        "2026-11-02,1,2,1,2\n"  # a date alone
    )
    report = history.import_csv(db.session, infy.id, 1, text)
    assert report.loaded == 4
    assert report.errors == [(6, "'2026-11-02' is a date without a time of day")]
    assert [row[0] for row in stored(infy.id)] == [at + timedelta(minutes=m) for m in range(4)]
    assert {row[5] for row in stored(infy.id)} == {0}


def test_a_csv_of_a_longer_interval_is_stored_at_it_and_checked_on_its_grid(app, infy):
    text = HEADER + (
        f"{ist(DAY, 9, 15):%Y-%m-%d %H:%M},100,102,99,101,500\n"
        f"{ist(DAY, 9, 20):%Y-%m-%d %H:%M},101,103,100,102,600\n"
        f"{ist(DAY, 9, 27):%Y-%m-%d %H:%M},101,103,100,102,600\n"
    )
    report = history.import_csv(db.session, infy.id, 5, text)
    db.session.commit()
    assert report.loaded == 2
    assert report.errors == [(4, "09:27 IST does not start a 5-minute bar (they start 09:15, then every 5)")]
    assert stored(infy.id, 1) == [] and len(stored(infy.id, 5)) == 2
    series = history.load(db.session, infy.id, 5, DAY, DAY)
    assert series.close.tolist() == [101.0, 102.0]
    assert history.coverage(db.session, infy.id, 5) == (ist(DAY, 9, 15), ist(DAY, 9, 20), 2)
    with pytest.raises(history.NoCandles, match=r"no 1-minute candles \(stored: 5-minute\)"):
        history.load(db.session, infy.id, 1, DAY, DAY)
    with pytest.raises(ValueError, match="interval must be one of"):
        history.import_csv(db.session, infy.id, 7, text)


# ----------------------------------------------------------------------------- reading back


def test_longer_intervals_are_built_from_minutes_on_the_0915_grid(app, infy):
    lines = minute_lines(DAY, 375) + minute_lines(DAY + timedelta(days=1), 375, price=300)
    history.import_csv(db.session, infy.id, 1, HEADER + "\n".join(lines))
    db.session.add(  # a night minute the feed stored: in no session bar
        Candle(
            instrument_id=infy.id,
            start=ist(DAY, 21, 0),
            open=Decimal(1),
            high=Decimal(1),
            low=Decimal(1),
            close=Decimal(1),
            volume=1,
        )
    )
    db.session.commit()
    minutes = history.load(db.session, infy.id, 1, DAY, DAY + timedelta(days=1))
    assert len(minutes) == 750  # the night minute is left out at 1 minute too
    assert history.coverage(db.session, infy.id, 1) == (ist(DAY, 9, 15), ist(DAY + timedelta(days=1), 15, 29), 750)
    hours = history.load(db.session, infy.id, 60, DAY, DAY + timedelta(days=1))
    assert len(hours) == 14
    assert [datetime.fromtimestamp(t, UTC).astimezone(IST).strftime("%H:%M") for t in hours.time[:7]] == [
        f"{h:02d}:15" for h in range(9, 16)
    ]
    expected = aggregate(minutes, 60)
    for name in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(hours, name), getattr(expected, name))
    first = hours[0:1]
    assert (first.open[0], first.high[0], first.low[0], first.close[0]) == (100.0, 160.5, 99.5, 160.0)
    assert first.volume[0] == sum(10 * (i + 1) for i in range(60))
    assert history.coverage(db.session, infy.id, 60) == (ist(DAY, 9, 15), ist(DAY + timedelta(days=1), 15, 15), 14)
    assert history.coverage(db.session, infy.id, 15) == (
        ist(DAY, 9, 15),
        ist(DAY + timedelta(days=1), 15, 15),
        50,
    )
    # datetimes are exact bounds, end excluded; a bucket cut by a bound is left out
    cut = history.load(db.session, infy.id, 15, ist(DAY, 9, 20), ist(DAY, 10, 40))
    assert [datetime.fromtimestamp(t, UTC).astimezone(IST).strftime("%H:%M") for t in cut.time] == [
        "09:30",
        "09:45",
        "10:00",
        "10:15",
    ]


def test_no_candles_says_what_there_is(app, infy, factory):
    with pytest.raises(history.NoCandles, match="INFY has no stored candles"):
        history.load(db.session, infy.id, 1, DAY, DAY)
    assert history.coverage(db.session, infy.id, 1) is None and history.coverage(db.session, infy.id, 5) is None
    history.import_csv(db.session, infy.id, 1, HEADER + "\n".join(minute_lines(DAY, 10)))
    with pytest.raises(history.NoCandles) as caught:
        history.load(db.session, infy.id, 5, DAY + timedelta(days=7), DAY + timedelta(days=8))
    assert caught.value.message == (
        "INFY has no 5-minute candles between 09 Nov 2026 – 10 Nov 2026; its history runs "
        "02 Nov 2026 – 02 Nov 2026 (2 bars)."
    )
    with pytest.raises(history.NoCandles, match="range is empty"):
        history.load(db.session, infy.id, 1, DAY, DAY - timedelta(days=1))
    with pytest.raises(ValueError, match="interval must be one of"):
        history.load(db.session, infy.id, 2, DAY, DAY)


# ----------------------------------------------------------------------------- the simulator's year


def test_the_simulated_year_is_deterministic_and_ends_at_the_last_price(app, infy):
    bars = history.simulate_year(infy, seed=7, last_day=DAY, days=14)
    assert bars == history.simulate_year(infy, seed=7, last_day=DAY, days=14)
    assert bars != history.simulate_year(infy, seed=8, last_day=DAY, days=14)
    assert len(bars) == 10 * 375  # two weeks: ten weekdays
    assert {b.start.astimezone(IST).weekday() for b in bars} <= {0, 1, 2, 3, 4}
    assert bars[0].start == ist(DAY - timedelta(days=13), 9, 15) and bars[-1].start == ist(DAY, 15, 29)
    assert bars[-1].close == Decimal("1548.20")
    tick = Decimal("0.10")
    for bar in bars:
        assert history.on_grid(bar.start, 1) is None
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert all(p % tick == 0 and p > 0 for p in (bar.open, bar.high, bar.low, bar.close)) and bar.volume > 0
    closes = np.array([float(b.close) for b in bars])
    assert closes.min() < closes.max()  # it moves


def test_simulating_stores_once_and_only_where_history_is_missing(app, infy, factory):
    sbin = factory.instrument("SBIN", 3045, price="951.15", tick="0.05")
    loaded = history.simulate(db.session, [infy], seed=0, last_day=DAY, days=3)
    db.session.commit()
    assert loaded == {"INFY": 375 * 1}  # 31 Oct and 1 Nov are a weekend
    assert history.simulate(db.session, [infy], seed=0, last_day=DAY, days=3) == {"INFY": 0}
    today = DAY + timedelta(days=1)
    assert history.simulate_missing(db.session, ["INFY", "SBIN", "NOPE"], 0, today, days=3) == {"SBIN": 375}
    assert history.coverage(db.session, sbin.id, 1)[1] == ist(DAY, 15, 29)
    assert history.last_full_session(date(2026, 11, 9)) == date(2026, 11, 6)  # Monday → Friday


# ----------------------------------------------------------------------------- the CLI and the demo's job


def test_the_history_cli(app, runner, infy, tmp_path):
    path = tmp_path / "infy.csv"
    path.write_text(HEADER + "\n".join(minute_lines(DAY, 5) + ["bad,1,1,1,1,1"]) + "\n")
    result = runner.invoke(args=["history", "import-csv", "infy", str(path)])
    assert result.exit_code == 0, result.output
    assert "line 7: 'bad' is not a time" in result.output
    assert "5 candles loaded, 0 already stored, 1 lines rejected" in result.output
    result = runner.invoke(args=["history", "import-csv", "INFY", str(path)])
    assert "0 candles loaded, 5 already stored" in result.output
    result = runner.invoke(args=["history", "coverage", "INFY"])
    assert "  1-minute: 5 bars, 02 Nov 2026 09:15:00 IST – 02 Nov 2026 09:19:00 IST" in result.output
    assert "  5-minute: 1 bars" in result.output and " 15-minute: 1 bars" in result.output
    result = runner.invoke(
        args=["history", "simulate", "--symbol", "INFY", "--last-day", "2026-11-09", "--days", "3", "--seed", "3"]
    )
    assert result.exit_code == 0 and "INFY: 375 candles stored (seed 3, year to 09 Nov 2026)" in result.output
    assert runner.invoke(args=["history", "simulate", "--symbol", "NOPE"]).exit_code != 0
    assert runner.invoke(args=["history", "import-csv", "INFY", str(path), "--interval", "7"]).exit_code != 0
    path.write_text("nothing,here\n")
    result = runner.invoke(args=["history", "import-csv", "INFY", str(path)])
    assert result.exit_code == 1 and "line 1: the header lacks" in result.output


def test_seeding_the_demo_queues_its_simulated_year(app, runner, redis_client):
    from rq import Queue

    from webapp.extensions import get_rq_redis
    from webapp.tasks import QUEUE_BACKTESTS

    assert runner.invoke(args=["demo", "seed"]).output.strip() == "demo world created"
    with app.app_context():
        jobs = Queue(QUEUE_BACKTESTS, connection=get_rq_redis()).jobs
        assert [(j.id, j.func_name) for j in jobs] == [("history-simulate-demo", "jobs.history.simulate_demo")]
        runner.invoke(args=["demo", "seed"])  # skipped: nothing queued again
        assert len(Queue(QUEUE_BACKTESTS, connection=get_rq_redis()).jobs) == 1


def test_the_demo_job_makes_the_year_once(app, runner, monkeypatch):
    from rq import Queue, SimpleWorker

    from jobs.context import use_app
    from webapp.extensions import get_rq_redis
    from webapp.models import Instrument
    from webapp.tasks import QUEUE_BACKTESTS
    from webapp.timeutil import utcnow

    monkeypatch.setattr(history, "DEMO_SYMBOLS", ("INFY",))  # one instrument's year is enough here
    runner.invoke(args=["demo", "seed"])
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        queue = Queue(QUEUE_BACKTESTS, connection=connection)
        SimpleWorker([queue], connection=connection).work(burst=True)
        job = queue.fetch_job("history-simulate-demo")
        assert job.is_finished and list(job.return_value()) == ["INFY"] and job.return_value()["INFY"] > 250 * 375
        infy = db.session.execute(sa.select(Instrument).where(Instrument.tradingsymbol == "INFY")).scalar_one()
        first, last, count = history.coverage(db.session, infy.id, 1)
        assert count == job.return_value()["INFY"]
        assert last.astimezone(IST).date() == history.last_full_session(utcnow().astimezone(IST).date())
        assert last.astimezone(IST).time() == time(15, 29)
        again = queue.enqueue("jobs.history.simulate_demo", 0)
        SimpleWorker([queue], connection=connection).work(burst=True)
        again.refresh()
        assert again.return_value() == {}  # history there: nothing made twice
