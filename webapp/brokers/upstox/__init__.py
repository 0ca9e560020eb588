"""Upstox API v2/v3: the adapter (adapter.py), its wire transport (wire.py), the translations
between Upstox's words and the port's types (mapping.py) and the market-data feed v3 (stream.py)."""

from webapp.brokers import register
from webapp.brokers.upstox.adapter import UpstoxBroker

__all__ = ["UpstoxBroker"]

register(UpstoxBroker)
