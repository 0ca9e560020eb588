"""The live price and market depth as a page shows them: the feed's stored quote (webapp.marketdata.store)
read into five levels a side with totals, the change against the previous close, and whether the quote
is live, stale or missing. No Flask and no broker call in here: whatever the feed wrote is all there is.

Where depth comes from: the paper simulator writes five levels; Kite's ticker runs in full mode, whose
184-byte packets carry five levels a side (webapp/brokers/kite/packets.py); ShareKhan's stream carries
only the best bid and offer (webapp/brokers/sharekhan/stream.py), so its quotes show one level a side,
and ShareKhan has no REST quote API to ask for more. Nothing here fetches from a broker: a quote with no
levels is shown as "no depth from this source".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from redis import RedisError

from webapp.brokers.base import DepthLevel, Quote
from webapp.marketdata.store import read_quote
from webapp.timeutil import UTC, utcnow

DEPTH_LEVELS = 5
# a quote older than this is shown as stale: the feed writes every ~1 s while it runs
STALE_AFTER = timedelta(seconds=10)
LIVE, STALE, ABSENT, UNAVAILABLE = "live", "stale", "absent", "unavailable"


@dataclass(frozen=True)
class Move:
    """A price against the previous close: what a market-watch row and a ticker show."""

    last: Decimal | None
    close: Decimal | None
    live: bool  # from a tick (else the reference price from the master)

    @property
    def change(self) -> Decimal | None:
        if self.last is None or self.close is None:
            return None
        return self.last - self.close

    @property
    def percent(self) -> Decimal | None:
        if self.change is None or not self.close:
            return None
        return (self.change * 100 / self.close).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    @property
    def direction(self) -> str:
        """'up', 'down' or '' (unchanged or unknown): the row's colour."""
        change = self.change
        return "" if not change else ("up" if change > 0 else "down")


@dataclass(frozen=True)
class QuoteView:
    """What the ticket's price strip and the depth panels show for one instrument."""

    state: str  # LIVE | STALE | ABSENT (no quote stored yet) | UNAVAILABLE (Redis did not answer)
    last_price: Decimal | None = None
    previous_close: Decimal | None = None
    as_of: datetime | None = None
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()

    @property
    def move(self) -> Move:
        return Move(self.last_price, self.previous_close or None, live=self.state == LIVE)

    @property
    def change(self) -> Decimal | None:
        return self.move.change

    @property
    def change_pct(self) -> Decimal | None:
        return self.move.percent

    @property
    def has_depth(self) -> bool:
        return bool(self.bids or self.asks)

    @property
    def bid_quantity(self) -> int:
        return sum(level.quantity for level in self.bids)

    @property
    def ask_quantity(self) -> int:
        return sum(level.quantity for level in self.asks)

    @property
    def bid_orders(self) -> int:
        return sum(level.orders for level in self.bids)

    @property
    def ask_orders(self) -> int:
        return sum(level.orders for level in self.asks)

    @staticmethod
    def plain(price: Decimal) -> str:
        """A price as a form field takes it: at least two places, never a float ("1548.8000" → "1548.80")."""
        places = max(2, -price.normalize().as_tuple().exponent)
        return f"{price:.{places}f}"

    def rows(self) -> list[tuple[DepthLevel | None, DepthLevel | None]]:
        """Bid and ask side by side, best first, as many rows as the deeper side (at most five)."""
        count = max(len(self.bids), len(self.asks))
        return [
            (self.bids[i] if i < len(self.bids) else None, self.asks[i] if i < len(self.asks) else None)
            for i in range(count)
        ]


def view_of(quote: Quote | None, fallback_close: Decimal | None, now: datetime | None = None) -> QuoteView:
    """A stored quote (or None) as the view; `fallback_close` is the master's reference close, used as the
    previous close when the quote carries none."""
    if quote is None:
        return QuoteView(ABSENT, previous_close=fallback_close)
    now, stamp = now or utcnow(), quote.timestamp
    if stamp is not None and stamp.tzinfo is None:  # the store keeps UTC; a naive stamp is read as UTC
        stamp = stamp.replace(tzinfo=UTC)
    stale = stamp is None or now - stamp > STALE_AFTER
    return QuoteView(
        STALE if stale else LIVE,
        last_price=quote.last_price,
        previous_close=quote.close or fallback_close,
        as_of=stamp,
        bids=tuple(quote.bids[:DEPTH_LEVELS]),
        asks=tuple(quote.asks[:DEPTH_LEVELS]),
    )


def quote_view(instrument, redis, now: datetime | None = None) -> QuoteView:
    """The view of an instrument's stored quote; `redis` None (or not answering) is UNAVAILABLE."""
    if redis is None:
        return QuoteView(UNAVAILABLE, previous_close=instrument.last_price)
    try:
        quote = read_quote(redis, instrument)
    except (RedisError, ValueError, KeyError, TypeError, ArithmeticError):
        # Redis away, or a stored value this code cannot read: the page says so, it does not fail
        return QuoteView(UNAVAILABLE, previous_close=instrument.last_price)
    return view_of(quote, instrument.last_price, now)
