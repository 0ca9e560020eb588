"""Kotak Neo Trade API (v2): the adapter (adapter.py), its wire transport (wire.py) and the
translations between Kotak's short keys and the port's types (mapping.py)."""

from webapp.brokers import register
from webapp.brokers.kotak.adapter import KotakBroker

__all__ = ["KotakBroker"]

register(KotakBroker)
