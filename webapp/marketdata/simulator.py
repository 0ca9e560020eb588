"""A seeded market simulator: every instrument walks on its tick grid inside its circuit band.

Pure: no database, no Redis, no clock. The feed process runs it in paper mode and writes its quotes
to the quote store; the paper exchange fills against those quotes. The same seed and instruments
give the same quotes, step for step, whatever order the instruments are passed in.

Prices are held as whole numbers of ticks so they can never leave the grid; the random draw is a
float (it shapes the walk, it is never money) rounded to whole ticks.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from webapp.brokers.base import DepthLevel, Quote
from webapp.money import round_to_tick

DEPTH_LEVELS = 5
# stocks without a fixed band (F&O stocks) still have NSE's dynamic operating range, 10% at first
OPERATING_RANGE_PCT = Decimal(10)
LEVEL_NOTIONAL = Decimal(50000)  # one depth "unit" is about ₹50,000 of stock, so depth scales with price
STEP_VOLATILITY = 0.0003  # one step's standard deviation as a fraction of the price
MEAN_REVERSION = 0.02  # pull back towards the previous close, so prices do not pin to a circuit


@dataclass(frozen=True)
class SimInstrument:
    """What the simulator needs from an instrument-master row."""

    instrument_token: int
    exchange: str
    tradingsymbol: str
    tick_size: Decimal
    reference_price: Decimal  # the previous close, on the tick grid and inside the band
    lower_circuit: Decimal
    upper_circuit: Decimal
    tradable: bool = True  # False for an index: a value with no depth, no volume, nothing to fill

    @classmethod
    def of(cls, instrument: Any) -> SimInstrument | None:
        """From an Instrument (or anything with its attributes); None when it has no reference price."""
        if instrument.last_price is None or instrument.last_price <= 0:
            return None
        tick = instrument.tick_size
        lower, upper = price_band(instrument.last_price, tick, instrument.band_pct)
        reference = min(max(round_to_tick(instrument.last_price, tick), lower), upper)
        return cls(
            int(instrument.instrument_token),
            instrument.exchange,
            instrument.tradingsymbol,
            tick,
            reference,
            lower,
            upper,
            not getattr(instrument, "is_index", False),  # an index (NIFTY 50) moves, nobody trades it
        )

    @property
    def unit(self) -> int:
        """Shares in one depth unit: about ₹50,000 of stock, at least one share."""
        return max(1, int(LEVEL_NOTIONAL / self.reference_price))


def price_band(reference: Decimal, tick: Decimal, band_pct: Decimal | None) -> tuple[Decimal, Decimal]:
    """(lower, upper) circuit around the previous close, rounded inward to the tick, never below one tick."""
    pct = OPERATING_RANGE_PCT if band_pct is None else band_pct
    width = reference * pct / Decimal(100)
    lower = max(round_to_tick(reference - width, tick, up=True), tick)
    upper = max(round_to_tick(reference + width, tick, up=False), lower)
    return lower, upper


def _depth(
    spec: SimInstrument, bid: int, ask: int, lower: int, upper: int, sizes: Iterable[tuple[int, int]]
) -> tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]]:
    """Five levels a side from the best bid/ask (in ticks), dropping levels outside the band."""
    sizes = list(sizes)
    tick = spec.tick_size
    bids = tuple(
        DepthLevel(Decimal(bid - i) * tick, qty, orders)
        for i, (qty, orders) in enumerate(sizes[:DEPTH_LEVELS])
        if lower <= bid - i <= upper
    )
    asks = tuple(
        DepthLevel(Decimal(ask + i) * tick, qty, orders)
        for i, (qty, orders) in enumerate(sizes[DEPTH_LEVELS:])
        if lower <= ask + i <= upper
    )
    return bids, asks


def static_quote(instrument: Any, now: datetime | None = None) -> Quote | None:
    """A quote from the instrument master alone: the previous close, ±1 tick spread, fixed depth.

    The paper exchange falls back to it when the feed has not written a tick for the instrument yet.
    """
    spec = SimInstrument.of(instrument)
    if spec is None:
        return None
    tick = spec.tick_size
    last, lower, upper = (int(p / tick) for p in (spec.reference_price, spec.lower_circuit, spec.upper_circuit))
    sizes = [(spec.unit * (i + 1), i + 1) for i in range(DEPTH_LEVELS)] * 2
    bids, asks = _depth(spec, last - 1, last + 1, lower, upper, sizes) if spec.tradable else ((), ())
    price = spec.reference_price
    return Quote(
        exchange=spec.exchange,
        tradingsymbol=spec.tradingsymbol,
        last_price=price,
        volume=0,
        open=price,
        high=price,
        low=price,
        close=price,
        lower_circuit=spec.lower_circuit,
        upper_circuit=spec.upper_circuit,
        bids=bids,
        asks=asks,
        timestamp=now,
    )


class _Book:
    """One instrument's running state, in ticks."""

    def __init__(self, spec: SimInstrument):
        self.spec = spec
        tick = spec.tick_size
        self.lower = int(spec.lower_circuit / tick)
        self.upper = int(spec.upper_circuit / tick)
        self.reference = int(spec.reference_price / tick)
        self.last = self.reference
        self.open: int | None = None  # the session's first trade sets open, high and low
        self.high = self.low = self.last
        self.volume = 0

    def step(self, rng: random.Random, now: datetime) -> Quote:
        sigma = max(1.0, self.last * STEP_VOLATILITY)  # self.last is in ticks, so sigma is too
        pull = MEAN_REVERSION * (self.reference - self.last)
        self.last = min(max(self.last + round(rng.gauss(0.0, sigma) + pull), self.lower), self.upper)
        if self.open is None:
            self.open = self.high = self.low = self.last
        self.high, self.low = max(self.high, self.last), min(self.low, self.last)
        unit = self.spec.unit
        self.volume += unit * rng.randint(0, 20)
        spread = rng.choice((1, 1, 1, 2))
        # the last trade hit either the bid or the ask; the other side is a spread away
        bid, ask = (self.last, self.last + spread) if rng.random() < 0.5 else (self.last - spread, self.last)
        sizes = [(unit * rng.randint(1, 8), rng.randint(1, 9)) for _ in range(2 * DEPTH_LEVELS)]
        bids, asks = _depth(self.spec, bid, ask, self.lower, self.upper, sizes)
        if not self.spec.tradable:  # an index: the same walk (same draws), but no book and no volume
            bids, asks, self.volume = (), (), 0
        # locked at a circuit: nobody sells at the upper limit, nobody buys at the lower
        if self.last == self.upper:
            asks = ()
        if self.last == self.lower:
            bids = ()
        tick = self.spec.tick_size
        return Quote(
            exchange=self.spec.exchange,
            tradingsymbol=self.spec.tradingsymbol,
            last_price=Decimal(self.last) * tick,
            volume=self.volume,
            open=Decimal(self.open) * tick,
            high=Decimal(self.high) * tick,
            low=Decimal(self.low) * tick,
            close=self.spec.reference_price,
            lower_circuit=self.spec.lower_circuit,
            upper_circuit=self.spec.upper_circuit,
            bids=bids,
            asks=asks,
            timestamp=now,
        )


class MarketSimulator:
    """`MarketSimulator(instruments, seed).step(now)` → one Quote per simulated instrument.

    `instruments` are Instrument rows (or objects with their attributes); rows without a previous
    close are skipped. Quotes come out ordered by instrument token, aligned with `tokens`.
    """

    def __init__(self, instruments: Iterable[Any], seed: int):
        specs = [spec for spec in (SimInstrument.of(i) for i in instruments) if spec is not None]
        self._books = [_Book(spec) for spec in sorted(specs, key=lambda s: s.instrument_token)]
        self._rng = random.Random(seed)

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(book.spec.instrument_token for book in self._books)

    @property
    def instruments(self) -> tuple[SimInstrument, ...]:
        return tuple(book.spec for book in self._books)

    def step(self, now: datetime) -> list[Quote]:
        return [book.step(self._rng, now) for book in self._books]

    def step_by_token(self, now: datetime) -> dict[int, Quote]:
        """One step, keyed by instrument token: what `store.write_quotes` takes."""
        return dict(zip(self.tokens, self.step(now)))
