"""Dhan's live market feed v2 as a TickStream (reference/brokers-upstox-dhan.md §2.8). Skeleton."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.brokers.base import Account, InstrumentRef
from webapp.marketdata.streams.base import TickStream

DHAN_WS_URL = "wss://api-feed.dhan.co"
STREAM_SETTINGS = {"DHAN_STREAM_URL": DHAN_WS_URL}

SEGMENTS = {
    "NSE": "NSE_EQ",
    "BSE": "BSE_EQ",
    "NFO": "NSE_FNO",
    "BFO": "BSE_FNO",
    "CDS": "NSE_CURRENCY",
    "MCX": "MCX_COMM",
}


def stream_token(instrument: InstrumentRef) -> int | str | None:
    """ "<ExchangeSegment>|<SecurityId>" as Dhan's feed keys an instrument; None when it cannot carry it."""
    segment = SEGMENTS.get(instrument.exchange)
    if segment is None or not instrument.exchange_token:
        return None
    return f"{segment}|{int(instrument.exchange_token)}"


def open_stream(account: Account, config: Mapping[str, Any]) -> TickStream:
    raise NotImplementedError("Dhan stream: being built")
