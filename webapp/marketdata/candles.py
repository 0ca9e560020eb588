"""1-minute candles from ticks. The feed keeps the forming minute in memory (and in Redis for the
chart's last bar); a minute is written to the database once, when the next one starts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from webapp.brokers.base import Quote
from webapp.models import Candle

FORMING_KEY = "fanout:candle:{token}"


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


@dataclass
class Bar:
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume_at_open: int
    volume_now: int

    def add(self, price: Decimal, volume: int) -> None:
        self.high, self.low, self.close = max(self.high, price), min(self.low, price), price
        self.volume_now = max(self.volume_now, volume)

    @property
    def volume(self) -> int:
        return max(self.volume_now - self.volume_at_open, 0)

    def as_dict(self) -> dict:
        return {
            "time": int(self.start.timestamp()),
            "open": str(self.open),
            "high": str(self.high),
            "low": str(self.low),
            "close": str(self.close),
            "volume": self.volume,
        }


class CandleBuilder:
    """Feed it (token → quote) batches; it returns the bars that closed, to be saved."""

    def __init__(self) -> None:
        self._bars: dict[int, Bar] = {}

    def update(self, quotes: Mapping[int, Quote], now: datetime) -> list[tuple[int, Bar]]:
        closed = []
        minute = minute_of(now)
        for token, quote in quotes.items():
            bar = self._bars.get(token)
            if bar is not None and bar.start < minute:
                closed.append((token, bar))
                bar = None
            if bar is None:
                self._bars[token] = Bar(
                    minute,
                    quote.last_price,
                    quote.last_price,
                    quote.last_price,
                    quote.last_price,
                    quote.volume,
                    quote.volume,
                )
            else:
                bar.add(quote.last_price, quote.volume)
        return closed

    def forming(self, tokens: Iterable[int]) -> dict[int, Bar]:
        return {t: self._bars[t] for t in tokens if t in self._bars}


def save_bars(session, closed: list[tuple[int, Bar]], instrument_ids: Mapping[int, int]) -> int:
    """Insert closed bars (idempotent per instrument and minute)."""
    saved = 0
    for token, bar in closed:
        instrument_id = instrument_ids.get(token)
        if instrument_id is None:
            continue
        exists = session.execute(
            sa.select(Candle.id).where(
                Candle.instrument_id == instrument_id, Candle.interval == 1, Candle.start == bar.start
            )
        ).first()
        if exists:
            continue
        session.add(
            Candle(
                instrument_id=instrument_id,
                start=bar.start,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            )
        )
        saved += 1
    return saved


def publish_forming(redis, bars: Mapping[int, Bar]) -> None:
    if bars:
        pipe = redis.pipeline()
        for token, bar in bars.items():
            pipe.set(FORMING_KEY.format(token=token), json.dumps(bar.as_dict()), ex=120)
        pipe.execute()


def chart_series(session, instrument_id: int, token: int, redis, minutes: int = 375) -> list[dict]:
    """The last `minutes` closed bars plus the forming one, as lightweight-charts wants them."""
    rows = (
        session.execute(
            sa.select(Candle)
            .where(Candle.instrument_id == instrument_id, Candle.interval == 1)
            .order_by(Candle.start.desc())
            .limit(minutes)
        )
        .scalars()
        .all()
    )
    series = [
        {
            "time": int(c.start.timestamp()),
            "open": str(c.open),
            "high": str(c.high),
            "low": str(c.low),
            "close": str(c.close),
            "volume": c.volume,
        }
        for c in reversed(rows)
    ]
    forming = redis.get(FORMING_KEY.format(token=token)) if redis is not None else None  # None: Redis away
    if forming:
        bar = json.loads(forming)
        if not series or bar["time"] > series[-1]["time"]:
            series.append(bar)
    return series
