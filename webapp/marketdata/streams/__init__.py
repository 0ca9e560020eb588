"""Market-data streams for the feed process: the stream protocol (base.py), the WebSocket client
(wsclient.py) and the supervisor that keeps one stream connected and subscribed. The brokers' own
streams live in their packages (webapp/brokers/kite/ticker.py, webapp/brokers/sharekhan/stream.py)
and are opened by their adapters' `open_stream`."""

from webapp.marketdata.streams.base import StreamClosed, SymbolMap, Tick, TickStream
from webapp.marketdata.streams.supervisor import StreamState, StreamSupervisor, SupervisorStats

__all__ = ["StreamClosed", "StreamState", "StreamSupervisor", "SupervisorStats", "SymbolMap", "Tick", "TickStream"]
