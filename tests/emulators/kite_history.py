"""The Kite emulator's historical candles (kite.trade/docs/connect/v3/historical):

    GET /instruments/historical/:instrument_token/:interval?from=yyyy-mm-dd hh:mm:ss&to=...&continuous=0&oi=0

answers {"status": "success", "data": {"candles": [["2017-12-15T09:15:00+0530", o, h, l, c, volume(, oi)]]}}.

- Intervals minute, 3minute, 5minute, 10minute, 15minute, 30minute, 60minute and day; `from` and `to` are
  IST wall-clock times, both included; one request spans at most 60 days of minutes, 100 of 3/5/10
  minutes, 200 of 15/30, 400 of 60 and 2000 of days, else InputException "interval exceeds max limit: N
  days" (the limits and the wording as Kite's forum staff and the SDK users report them).
- Paced as Kite paces it: 3 requests a second per API key (the "historical" limit), else HTTP 429.
- The bars are made up but fixed: each weekday's 375 one-minute bars walk on the tick grid from a
  price drawn from (token, day), seeded so the same request always answers the same; longer intervals are
  those minutes bucketed from 09:15 IST (the last 60-minute bar is 15:15–15:30), days from 00:00 IST.
  `set_history(token, bars)` replaces an instrument's 1-minute bars with a test's own.
- `history_requests` records (token, interval word, from, to) of every answered request.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.emulators.kite_book import IST

HISTORY_LIMIT = [(3, 1.0)]  # requests per second per API key
INTERVAL_MINUTES = {"minute": 1, "3minute": 3, "5minute": 5, "10minute": 10, "15minute": 15, "30minute": 30}
INTERVAL_MINUTES.update({"60minute": 60, "day": 375})
MAX_DAYS = {"minute": 60, "3minute": 100, "5minute": 100, "10minute": 100, "15minute": 200, "30minute": 200}
MAX_DAYS.update({"60minute": 400, "day": 2000})
SESSION_MINUTES = 375  # 09:15–15:30


class Refused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _parse_bound(text: str | None, name: str) -> datetime:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text or "", fmt).replace(tzinfo=IST)
        except ValueError:
            continue
    raise Refused(f"Invalid `{name}` date.")


class KiteHistoryMixin:
    """Mixed into KiteEmulator: the historical route's view and its bar generator."""

    def _history_state(self) -> dict[str, Any]:
        state = self.__dict__.get("_history")
        if state is None:
            state = self.__dict__.setdefault("_history", {"days": {}, "custom": {}, "requests": []})
        return state

    @property
    def history_requests(self) -> list[tuple[int, str, str, str]]:
        return list(self._history_state()["requests"])

    def set_history(self, instrument_token: int, bars: list[tuple[datetime, Any, Any, Any, Any, int]]) -> None:
        """A test's own 1-minute bars (start aware, open, high, low, close, volume) for an instrument:
        they replace the generated ones for every interval."""
        with self.lock:
            self._history_state()["custom"][int(instrument_token)] = sorted(
                (start.astimezone(IST), *(Decimal(str(v)) for v in ohlc), int(volume)) for start, *ohlc, volume in bars
            )

    # ------------------------------------------------------------------ the view

    def historical(self, request: Request, instrument_token: str, interval: str) -> Response:
        def candles(account: Any) -> Any:
            if interval not in INTERVAL_MINUTES:
                raise Refused("Invalid interval.")
            if request.args.get("continuous", "0") not in ("0", "1") or request.args.get("oi", "0") not in ("0", "1"):
                raise Refused("Invalid `continuous` or `oi`: use 0 or 1.")
            start = _parse_bound(request.args.get("from"), "from")
            end = _parse_bound(request.args.get("to"), "to")
            if start > end:
                raise Refused("Invalid date range: `from` is after `to`.")
            if end - start > timedelta(days=MAX_DAYS[interval]):
                raise Refused(f"interval exceeds max limit: {MAX_DAYS[interval]} days")
            instrument = self.book.by_key(instrument_token) if instrument_token.isdigit() else None
            if instrument is None:
                raise Refused("Invalid token.")
            token = int(instrument_token)
            with_oi = request.args.get("oi") == "1"
            rows = [
                [f"{bar[0]:%Y-%m-%dT%H:%M:%S%z}", *bar[1:5], bar[5], *([0] if with_oi else [])]
                for bar in self._bars(token, instrument, interval, start, end)
            ]
            self._history_state()["requests"].append(
                (token, interval, request.args.get("from"), request.args.get("to"))
            )
            return {"candles": rows}

        def guarded(account: Any) -> Any:
            try:
                return candles(account)
            except Refused as refused:
                return self._error(400, "InputException", refused.message)

        return self._read(request, guarded, limit="historical")

    # ------------------------------------------------------------------ the bars

    def _bars(self, token: int, instrument: Any, interval: str, start: datetime, end: datetime) -> list[tuple]:
        minutes = INTERVAL_MINUTES[interval]
        out: list[tuple] = []
        day = start.date()
        while day <= end.date():
            ones = self._day_minutes(token, instrument, day)
            if ones:
                if interval == "day":
                    midnight = datetime.combine(day, time(0), IST)
                    out.append(_bucket(midnight, ones))
                else:
                    for first in range(0, len(ones), minutes):
                        out.append(_bucket(ones[first][0], ones[first : first + minutes]))
            day += timedelta(days=1)
        return [bar for bar in out if start <= bar[0] <= end]

    def _day_minutes(self, token: int, instrument: Any, day: date) -> list[tuple]:
        custom = self._history_state()["custom"].get(token)
        if custom is not None:
            return [bar for bar in custom if bar[0].date() == day]
        cache = self._history_state()["days"]
        key = (token, day)
        if key not in cache:
            cache[key] = _generated_day(token, instrument.close, instrument.tick_size, day)
        return cache[key]


def _bucket(start: datetime, minutes: list[tuple]) -> tuple:
    return (
        start,
        minutes[0][1],
        max(m[2] for m in minutes),
        min(m[3] for m in minutes),
        minutes[-1][4],
        sum(m[5] for m in minutes),
    )


def _generated_day(token: int, close: Decimal, tick: Decimal, day: date) -> list[tuple]:
    """375 one-minute bars for a weekday (none for Saturday and Sunday), fixed by (token, day)."""
    if day.weekday() >= 5:
        return []
    rng = random.Random(f"kite-history:{token}:{day.isoformat()}")
    level = max(int(close / tick * Decimal(str(1 + rng.uniform(-0.05, 0.05)))), 10)
    opening = datetime.combine(day, time(9, 15), IST)
    bars = []
    for minute in range(SESSION_MINUTES):
        open_ = level
        path = [open_]
        for _ in range(3):
            level = max(level + rng.randint(-3, 3), 1)
            path.append(level)
        high, low = max(path), min(path)
        bars.append(
            (
                opening + timedelta(minutes=minute),
                open_ * tick,
                high * tick,
                low * tick,
                level * tick,
                rng.randint(100, 5000),
            )
        )
    return bars
