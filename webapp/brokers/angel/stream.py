"""Angel One's SmartWebSocket v2 market-data stream as a TickStream (skeleton; filled in next)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.brokers.base import Account, InstrumentRef
from webapp.marketdata.streams.base import TickStream

ANGEL_WS_URL = "wss://smartapisocket.angelone.in/smart-stream"
STREAM_SETTINGS = {"ANGEL_STREAM_URL": ANGEL_WS_URL}
EXCHANGE_TYPES = {"NSE": 1, "BSE": 3}


def stream_token(instrument: InstrumentRef) -> int | str | None:
    """ "NSE|2885": the exchange and its scrip code; None for what the stream cannot carry."""
    if instrument.exchange not in EXCHANGE_TYPES or not instrument.exchange_token:
        return None
    return f"{instrument.exchange}|{int(instrument.exchange_token)}"


def open_stream(account: Account, config: Mapping[str, Any]) -> TickStream:
    raise NotImplementedError("the Angel stream is being built")
