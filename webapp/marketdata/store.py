"""The latest quote per instrument, in Redis, shared by every process.

The feed writes each instrument's latest quote under `fanout:quote:<instrument_token>` as a small
JSON object and PUBLISHes the batch's last prices as one message on `fanout:ticks` — only what the
pages' live prices show, not the depth: 500 full quotes a second were ~226 KiB to encode, send and
decode in every web process. Whoever needs a whole quote reads it from its key. Prices travel as
strings so a Decimal comes back exactly as it went in ("1548.20" stays "1548.20", never 1548.2000000001).
Works with Redis clients made with or without decode_responses.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from webapp.brokers.base import DepthLevel, Quote

TICKS_CHANNEL = "fanout:ticks"
QUOTE_KEY = "fanout:quote:{token}"

_PRICE_FIELDS = ("last_price", "open", "high", "low", "close", "lower_circuit", "upper_circuit")


def quote_key(instrument_token: int) -> str:
    return QUOTE_KEY.format(token=int(instrument_token))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def quote_to_dict(quote: Quote) -> dict[str, Any]:
    data: dict[str, Any] = {"exchange": quote.exchange, "tradingsymbol": quote.tradingsymbol, "volume": quote.volume}
    data.update({name: _text(getattr(quote, name)) for name in _PRICE_FIELDS})
    data["bids"] = [[str(level.price), level.quantity, level.orders] for level in quote.bids]
    data["asks"] = [[str(level.price), level.quantity, level.orders] for level in quote.asks]
    data["timestamp"] = quote.timestamp.isoformat() if quote.timestamp else None
    return data


def quote_from_dict(data: Mapping[str, Any]) -> Quote:
    def price(name: str) -> Decimal | None:
        value = data.get(name)
        return None if value is None else Decimal(value)

    def levels(name: str) -> tuple[DepthLevel, ...]:
        return tuple(DepthLevel(Decimal(p), int(q), int(o)) for p, q, o in data.get(name) or ())

    stamp = data.get("timestamp")
    return Quote(
        exchange=data["exchange"],
        tradingsymbol=data["tradingsymbol"],
        last_price=Decimal(data["last_price"]),
        volume=int(data.get("volume") or 0),
        open=price("open"),
        high=price("high"),
        low=price("low"),
        close=price("close"),
        lower_circuit=price("lower_circuit"),
        upper_circuit=price("upper_circuit"),
        bids=levels("bids"),
        asks=levels("asks"),
        timestamp=datetime.fromisoformat(stamp) if stamp else None,
    )


def write_quotes(redis, quotes: Mapping[int, Quote]) -> int:
    """Store each quote under its instrument token and publish the batch's last prices on TICKS_CHANNEL
    (`{"ltp": [[token, "1548.20"], …]}`).

    One round trip (a pipeline) however many instruments; returns how many quotes were written.
    """
    if not quotes:
        return 0
    prices = []
    pipe = redis.pipeline(transaction=False)
    for token, quote in quotes.items():
        pipe.set(quote_key(token), json.dumps(quote_to_dict(quote), separators=(",", ":")))
        prices.append([int(token), str(quote.last_price)])
    pipe.publish(TICKS_CHANNEL, json.dumps({"ltp": prices}, separators=(",", ":")))
    pipe.execute()
    return len(prices)


def _decode(raw: bytes | str | None) -> Quote | None:
    if raw is None:
        return None
    return quote_from_dict(json.loads(raw))


def read_quote(redis, instrument: Any) -> Quote | None:
    """The latest quote for an instrument (anything with `instrument_token`), or None before the first tick."""
    return _decode(redis.get(quote_key(instrument.instrument_token)))


def read_quotes(redis, tokens: Iterable[int]) -> dict[int, Quote]:
    """Latest quotes for many instrument tokens in one MGET; tokens without a tick are left out."""
    tokens = [int(token) for token in tokens]
    if not tokens:
        return {}
    raws = redis.mget([quote_key(token) for token in tokens])
    return {token: quote for token, quote in zip(tokens, map(_decode, raws)) if quote is not None}


def decode_ticks(message: bytes | str, tokens: Container[int] | None = None) -> dict[int, Decimal]:
    """A TICKS_CHANNEL message's data back into last prices keyed by instrument token; only `tokens`
    when given (a web process decodes only what its sockets show)."""
    return {token: Decimal(price) for token, price in json.loads(message)["ltp"] if tokens is None or token in tokens}
