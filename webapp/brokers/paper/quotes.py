"""Where the paper exchange gets its prices: the feed's quote store in Redis, else the master.

Before the feed has written a tick for an instrument (or with no Redis at all) the exchange quotes
it from the instrument master: the previous close with a one-tick spread and fixed depth, so a
fresh demo can trade at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from webapp.brokers.base import Quote, Unavailable
from webapp.marketdata.simulator import price_band, static_quote
from webapp.marketdata.store import read_quote, read_quotes


class QuoteBook:
    def __init__(self, redis=None):
        self.redis = redis

    def quote(self, instrument: Any) -> Quote | None:
        """The latest quote for an Instrument row; None only when it has neither a tick nor a close."""
        found = None
        if self.redis is not None:
            try:
                found = read_quote(self.redis, instrument)
            except RedisError as exc:
                raise Unavailable("Paper exchange cannot read quotes (Redis is down)") from exc
        return found or static_quote(instrument)

    def quotes(self, instruments: Iterable[Any]) -> dict[int, Quote]:
        """Quotes keyed by Instrument.id, one Redis round trip for all of them."""
        instruments = list(instruments)
        ticks: dict[int, Quote] = {}
        if self.redis is not None and instruments:
            try:
                ticks = read_quotes(self.redis, [i.instrument_token for i in instruments])
            except RedisError as exc:
                raise Unavailable("Paper exchange cannot read quotes (Redis is down)") from exc
        found = {i.id: ticks.get(int(i.instrument_token)) or static_quote(i) for i in instruments}
        return {pk: quote for pk, quote in found.items() if quote is not None}


def band_of(quote: Quote, instrument: Any) -> tuple[Decimal, Decimal]:
    """The circuit band the exchange enforces: the quote's, else the master's (or NSE's 10% operating range)."""
    if quote.lower_circuit is not None and quote.upper_circuit is not None:
        return quote.lower_circuit, quote.upper_circuit
    reference = instrument.last_price if instrument.last_price else quote.last_price
    return price_band(reference, instrument.tick_size, instrument.band_pct)
