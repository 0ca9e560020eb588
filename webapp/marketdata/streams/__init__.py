"""Broker market-data streams for the feed process: Kite's binary ticker, ShareKhan's JSON stream,
and the supervisor that keeps one of them connected and subscribed."""
from webapp.marketdata.streams.base import StreamClosed, SymbolMap, Tick, TickStream
from webapp.marketdata.streams.kite_ticker import KITE_WS_URL, KiteTicker
from webapp.marketdata.streams.sharekhan_stream import SHAREKHAN_WS_URL, ShareKhanStream
from webapp.marketdata.streams.supervisor import StreamState, StreamSupervisor, SupervisorStats

__all__ = ["KITE_WS_URL", "KiteTicker", "SHAREKHAN_WS_URL", "ShareKhanStream", "StreamClosed", "StreamState",
           "StreamSupervisor", "SupervisorStats", "SymbolMap", "Tick", "TickStream"]
