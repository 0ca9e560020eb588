"""Upstox's market data feed v3 as a TickStream (reference/brokers-upstox-dhan.md §1.8).

Skeleton: the contract the REST adapter imports (STREAM_SETTINGS, stream_token, open_stream).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.brokers.base import Account, AuthExpired, InstrumentRef
from webapp.marketdata.streams.base import TickStream

UPSTOX_FEED_AUTHORIZE_URL = "https://api.upstox.com/v3/feed/market-data-feed/authorize"
STREAM_SETTINGS = {"UPSTOX_STREAM_URL": UPSTOX_FEED_AUTHORIZE_URL}
SEGMENTS = {"NSE": "NSE_EQ", "BSE": "BSE_EQ"}
INDEX_KEYS = {
    ("NSE", "NIFTY 50"): "NSE_INDEX|Nifty 50",
    ("NSE", "NIFTY BANK"): "NSE_INDEX|Nifty Bank",
}


def stream_token(instrument: InstrumentRef) -> str | None:
    """Upstox's instrument key for `instrument`: "NSE_EQ|<ISIN>" / "BSE_EQ|<ISIN>" for equities, the
    index key for the desk's index rows, None for what the feed cannot carry."""
    exchange = (instrument.exchange or "").upper()
    index_key = INDEX_KEYS.get((exchange, (instrument.tradingsymbol or "").upper()))
    if index_key is not None:
        return index_key
    segment = SEGMENTS.get(exchange)
    if segment is None or not instrument.isin:
        return None
    return f"{segment}|{instrument.isin.strip().upper()}"


def open_stream(account: Account, config: Mapping[str, Any]) -> TickStream:
    """A feed over `account`'s session (Bearer access token)."""
    if account.session is None or not account.session.access_token:
        raise AuthExpired("Log in to Upstox first: there is no session for the market data feed.")
    raise NotImplementedError("the Upstox stream is being built")
