"""Contract tests of Kite's historical candles (GET /instruments/historical/:instrument_token/:interval):
the emulator against the official kiteconnect SDK (so it speaks Kite's wire format), and the adapter's
`historical_candles` against the emulator over real HTTP — split into requests Kite allows, paced at
Kite's three a second, a 429 waited out."""

from __future__ import annotations

import time as clock
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from kiteconnect.exceptions import InputException, NetworkException

from tests.brokers.kite_fixtures import KiteEnv, kite, kite_server  # noqa: F401
from tests.emulators.common import EmulatorServer
from tests.emulators.kite import KITE_LIMITS, KiteEmulator
from tests.emulators.kite_book import IST
from webapp.brokers import broker_class, history_brokers
from webapp.brokers.base import AuthExpired, InstrumentRef, InvalidInput
from webapp.brokers.kite import adapter as kite_adapter

INFY = 408065  # instrument_token = exchange_token * 256 + 1 (NSE)
INFY_REF = InstrumentRef("NSE", "INFY", 1594, INFY)
MONDAY = date(2026, 11, 2)


def ist(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), IST)


class Paced:
    """The SDK as a well-behaved client calls it: a 429 (Kite's 3 historical requests a second, which
    these tests' back-to-back calls reach) is waited out and asked again, within a deadline."""

    def __init__(self, sdk):
        self.sdk = sdk

    def historical_data(self, *args, **kwargs):
        deadline = clock.monotonic() + 10
        while True:
            try:
                return self.sdk.historical_data(*args, **kwargs)
            except NetworkException as exc:
                if "Too many requests" not in str(exc) or clock.monotonic() > deadline:
                    raise
                clock.sleep(0.35)


def test_kite_declares_historical_candles_and_the_registry_lists_it():
    assert "kite" in history_brokers()
    assert broker_class("kite").capabilities.historical_candles
    assert all(not broker_class(name).capabilities.historical_candles for name in ("paper", "motilal"))
    assert KITE_LIMITS["historical"] == [(3, 1.0)]  # Kite: 3 historical requests a second


def test_the_sdk_reads_a_session_of_minute_candles(kite: KiteEnv):
    sdk = Paced(kite.sdk())
    rows = sdk.historical_data(INFY, ist(MONDAY), ist(MONDAY, 23, 59), "minute")
    assert len(rows) == 375
    assert rows[0]["date"] == ist(MONDAY, 9, 15) and rows[-1]["date"] == ist(MONDAY, 15, 29)
    assert str(rows[0]["date"].utcoffset()) == "5:30:00"
    for row in rows:
        assert set(row) == {"date", "open", "high", "low", "close", "volume"}
        assert row["low"] <= min(row["open"], row["close"]) <= max(row["open"], row["close"]) <= row["high"]
        assert Decimal(str(row["close"])) % Decimal("0.10") == 0  # INFY's tick
    saturday = MONDAY - timedelta(days=2)
    assert sdk.historical_data(INFY, ist(saturday), ist(saturday, 23, 59), "day") == []
    days = sdk.historical_data(INFY, ist(saturday), ist(MONDAY), "day")
    assert [d["date"] for d in days] == [ist(MONDAY)]  # a day candle is stamped 00:00 IST


def test_longer_intervals_are_the_minutes_bucketed_from_0915_and_oi_adds_a_column(kite: KiteEnv):
    sdk = Paced(kite.sdk())
    minutes = sdk.historical_data(INFY, ist(MONDAY), ist(MONDAY, 23, 59), "minute")
    hours = sdk.historical_data(INFY, ist(MONDAY), ist(MONDAY, 23, 59), "60minute", oi=True)
    assert [h["date"].strftime("%H:%M") for h in hours] == [f"{h:02d}:15" for h in range(9, 16)]
    last = hours[-1]  # 15:15–15:30: the session's short last hour
    tail = minutes[-15:]
    assert last["open"] == tail[0]["open"] and last["close"] == tail[-1]["close"]
    assert last["high"] == max(m["high"] for m in tail) and last["low"] == min(m["low"] for m in tail)
    assert last["volume"] == sum(m["volume"] for m in tail) and last["oi"] == 0
    again = sdk.historical_data(INFY, "2026-11-02 10:15:00", "2026-11-02 11:15:00", "60minute")
    assert [r["date"] for r in again] == [ist(MONDAY, 10, 15), ist(MONDAY, 11, 15)]  # both bounds included
    assert again[0] == {k: v for k, v in hours[1].items() if k != "oi"}  # the same request, the same bars


def test_a_range_longer_than_kite_allows_is_refused(kite: KiteEnv):
    sdk = Paced(kite.sdk())
    with pytest.raises(InputException, match="interval exceeds max limit: 60 days"):
        sdk.historical_data(INFY, ist(MONDAY), ist(MONDAY + timedelta(days=61)), "minute")
    with pytest.raises(InputException, match="Invalid interval"):
        sdk.historical_data(INFY, ist(MONDAY), ist(MONDAY), "7minute")
    with pytest.raises(InputException, match="Invalid token"):
        sdk.historical_data(999, ist(MONDAY), ist(MONDAY), "minute")
    assert len(sdk.historical_data(INFY, ist(MONDAY), ist(MONDAY + timedelta(days=200)), "15minute")) > 0


def test_the_historical_limit_answers_429_past_it():
    emulator = KiteEmulator(rate_limits={**KITE_LIMITS, "historical": [(3, 60.0)]})  # a window no test outruns
    with EmulatorServer(emulator) as server:
        env = KiteEnv(emulator, server.url, emulator.add_account())
        try:
            sdk = env.sdk()
            for _ in range(3):
                sdk.historical_data(INFY, ist(MONDAY, 9, 15), ist(MONDAY, 9, 20), "minute")
            with pytest.raises(NetworkException, match="Too many requests"):
                sdk.historical_data(INFY, ist(MONDAY, 9, 15), ist(MONDAY, 9, 20), "minute")
            sdk.quote(["NSE:INFY"])  # the other limits are their own
        finally:
            env.close()


# ----------------------------------------------------------------------------- the adapter


def test_the_adapter_splits_a_long_range_into_requests_kite_allows(kite: KiteEnv):
    start, end = ist(MONDAY - timedelta(days=130)), ist(MONDAY, 15, 29)
    before = len(kite.emulator.history_requests)
    broker = kite.new_broker(timeout=20.0)  # 60 days of minutes a request: more than the 2 s the fixture allows
    bars = broker.historical_candles(INFY_REF, 1, start, end)
    asked = kite.emulator.history_requests[before:]
    assert len(asked) == 3
    spans = [(datetime.fromisoformat(f), datetime.fromisoformat(t)) for _, word, f, t in asked]
    assert all(word == "minute" for _, word, _, _ in asked)
    assert all(t - f < timedelta(days=60) for f, t in spans)
    assert all(later[0] - earlier[1] == timedelta(minutes=1) for earlier, later in zip(spans, spans[1:]))
    starts = [bar.start for bar in bars]
    assert starts == sorted(set(starts)) and all(bar.start.tzinfo is not None for bar in bars)
    assert len(bars) == 375 * sum(1 for d in range(131) if (MONDAY - timedelta(days=130 - d)).weekday() < 5)
    sdk = Paced(kite.sdk()).historical_data(INFY, ist(MONDAY, 9, 15), ist(MONDAY, 9, 19), "minute")
    tail = [b for b in bars if b.start >= ist(MONDAY, 9, 15)][:5]
    assert [(b.start, b.open, b.high, b.low, b.close, b.volume) for b in tail] == [
        (r["date"], *(Decimal(str(r[k])) for k in ("open", "high", "low", "close")), r["volume"]) for r in sdk
    ]
    assert all(isinstance(b.close, Decimal) for b in bars)


def test_the_adapter_keeps_to_three_requests_a_second(kite: KiteEnv, monkeypatch):
    class Clock:
        now = 100.0
        sent: list[float] = []

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr(kite_adapter, "clock", fake)
    pace = kite_adapter._Pace(3)
    for _ in range(10):
        pace.wait("key")
        fake.sent.append(fake.now)
        fake.now += 0.01  # each request takes 10 ms
    for i in range(3, 10):
        assert fake.sent[i] - fake.sent[i - 3] >= 1.0  # never four within a second
    assert fake.sent[-1] - fake.sent[0] < 3.1  # and no slower than it must be


def test_the_adapter_waits_out_a_429_and_asks_again(kite: KiteEnv):
    kite.emulator.script_response(
        "read",
        429,
        '{"status": "error", "message": "Too many requests", "error_type": "NetworkException"}',
        headers={"Retry-After": "0.05"},
    )
    before = len(kite.emulator.history_requests)
    bars = kite.broker.historical_candles(INFY_REF, 5, ist(MONDAY, 9, 15), ist(MONDAY, 10, 0))
    assert [b.start.astimezone(IST).strftime("%H:%M") for b in bars][:3] == ["09:15", "09:20", "09:25"]
    assert bars[-1].start == ist(MONDAY, 10, 0)
    assert len(kite.emulator.history_requests) == before + 1


def test_the_adapter_refuses_what_kite_cannot_answer(kite: KiteEnv):
    with pytest.raises(InvalidInput, match="no 7-minute candles"):
        kite.broker.historical_candles(INFY_REF, 7, ist(MONDAY), ist(MONDAY, 15))
    with pytest.raises(InvalidInput, match="instrument token"):
        kite.broker.historical_candles(InstrumentRef("NSE", "INFY", 1594), 1, ist(MONDAY), ist(MONDAY, 15))
    kite.emulator.expire_sessions(kite.user_id)
    with pytest.raises(AuthExpired):
        kite.broker.historical_candles(INFY_REF, 1, ist(MONDAY), ist(MONDAY, 15))
