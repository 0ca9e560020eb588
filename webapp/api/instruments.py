"""/api/v1/instruments: search the instrument master, read one instrument and its latest price.

The price is the feed's latest tick (Redis) when there is one, else the master's reference close;
the reply says which ("source") and when it was observed ("as_of"). With Redis away the reply comes
from the database alone, as the instrument page does (webapp.extensions.page_redis)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Literal

import redis as redis_lib
from pydantic import BaseModel, Field

from webapp.api import bp
from webapp.api.core import ApiError, Money, Strict, operation, replies
from webapp.extensions import db, page_redis
from webapp.instruments.master import search
from webapp.marketdata.store import read_quote
from webapp.marketfeed.feed import note_interest
from webapp.models import Instrument
from webapp.timeutil import as_utc

log = logging.getLogger(__name__)

TAG = "instruments"
MAX_RESULTS = 50


class CircuitOut(BaseModel):
    band_pct: Decimal = Field(description="The band in % of the reference close.")
    lower: Money
    upper: Money


class InstrumentOut(BaseModel):
    id: int
    exchange: str
    symbol: str = Field(description="The exchange's trading symbol (`NSE:SBIN` is exchange:symbol).")
    name: str
    isin: str | None
    instrument_type: str
    segment: str
    lot_size: int
    tick_size: Money
    reference_price: Money | None = Field(description="The master's reference close.")
    circuit: CircuitOut | None = Field(description="Price band from the reference close; null: no fixed band.")


class InstrumentList(BaseModel):
    items: list[InstrumentOut]


class QuoteOut(BaseModel):
    instrument_id: int
    exchange: str
    symbol: str
    last_price: Money | None = Field(description="Null only when neither the feed nor the master has a price.")
    source: Literal["feed", "reference"] = Field(
        description="feed: the market-data feed's latest tick; reference: the master's reference close."
    )
    as_of: datetime | None = Field(description="When that price was observed (UTC); null when unknown.")


class SearchQuery(Strict):
    q: str = Field(min_length=1, max_length=64, description="A symbol prefix or part of the name.")
    limit: int = Field(20, ge=1, le=MAX_RESULTS)


def instrument_out(instrument: Instrument) -> InstrumentOut:
    limits = instrument.circuit_limits()
    return InstrumentOut(
        id=instrument.id,
        exchange=instrument.exchange,
        symbol=instrument.tradingsymbol,
        name=instrument.name or "",
        isin=instrument.isin,
        instrument_type=instrument.instrument_type,
        segment=instrument.segment,
        lot_size=instrument.lot_size,
        tick_size=instrument.tick_size,
        reference_price=instrument.last_price,
        circuit=None if limits is None else CircuitOut(band_pct=instrument.band_pct, lower=limits[0], upper=limits[1]),
    )


def _instrument(instrument_id: int) -> Instrument:
    instrument = db.session.get(Instrument, instrument_id)
    if instrument is None:
        raise ApiError(404, "not_found", "No instrument with this id.")
    return instrument


@bp.get("/instruments")
@operation("desk.view", scope="read", replies=replies(InstrumentList), tag=TAG)
def search_instruments(query: SearchQuery):
    """Search the instrument master by symbol prefix or name."""
    return InstrumentList(items=[instrument_out(i) for i in search(query.q, limit=query.limit)])


@bp.get("/instruments/<int:instrument_id>")
@operation("desk.view", scope="read", replies=replies(InstrumentOut), tag=TAG)
def get_instrument(instrument_id: int):
    """One instrument: exchange, symbol, lot and tick size, circuit band."""
    return instrument_out(_instrument(instrument_id))


@bp.get("/instruments/<int:instrument_id>/quote")
@operation("desk.view", scope="read", replies=replies(QuoteOut), tag=TAG)
def instrument_quote(instrument_id: int):
    """An instrument's latest price: the feed's tick, else the master's reference close."""
    instrument = _instrument(instrument_id)
    quote = None
    redis = page_redis()
    if redis is not None:
        try:
            note_interest(redis, instrument.instrument_token)  # asked for: the feed keeps it subscribed a while
            quote = read_quote(redis, instrument)
        except redis_lib.RedisError:  # went away since the request's ping: answer from the database
            log.warning("quote for instrument %s: Redis did not answer; the reference price is shown", instrument.id)
    reply = {"instrument_id": instrument.id, "exchange": instrument.exchange, "symbol": instrument.tradingsymbol}
    if quote is not None:
        return QuoteOut(
            **reply,
            last_price=quote.last_price,
            source="feed",
            as_of=as_utc(quote.timestamp) if quote.timestamp else None,
        )
    return QuoteOut(
        **reply,
        last_price=instrument.last_price,
        source="reference",
        as_of=as_utc(instrument.updated_at) if instrument.last_price is not None else None,
    )
