"""DhanHQ v2: the adapter (adapter.py), its wire transport (wire.py), the translations between Dhan's
words and the port's types (mapping.py) and the live market feed (stream.py)."""

from webapp.brokers import register
from webapp.brokers.dhan.adapter import DhanBroker

__all__ = ["DhanBroker"]

register(DhanBroker)
