"""Market data for the desk: the paper-mode simulator (simulator.py) and the Redis quote store (store.py)."""

from webapp.marketdata.simulator import MarketSimulator, SimInstrument, price_band, static_quote
from webapp.marketdata.store import TICKS_CHANNEL, decode_ticks, read_quote, read_quotes, write_quotes

__all__ = [
    "MarketSimulator",
    "SimInstrument",
    "TICKS_CHANNEL",
    "decode_ticks",
    "price_band",
    "read_quote",
    "read_quotes",
    "static_quote",
    "write_quotes",
]
