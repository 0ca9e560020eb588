"""Motilal Oswal OpenAPI: the adapter (adapter.py), its wire transport (wire.py) and the
translations between Motilal's words and the port's types (mapping.py)."""

from webapp.brokers.motilal.adapter import MotilalBroker

__all__ = ["MotilalBroker"]
