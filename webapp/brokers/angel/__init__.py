"""Angel One SmartAPI: the adapter over plain HTTP (adapter.py, wire.py, mapping.py) and its
SmartWebSocket v2 stream (stream.py, packets.py), registered as "angel"."""

from webapp.brokers import register
from webapp.brokers.angel.adapter import AngelBroker

register(AngelBroker)

__all__ = ["AngelBroker"]
