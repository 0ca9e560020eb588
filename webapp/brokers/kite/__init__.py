"""Zerodha Kite Connect v3: adapter over plain HTTP (see adapter.py), registered as "kite"."""

from webapp.brokers import register
from webapp.brokers.kite.adapter import KiteBroker

register(KiteBroker)

__all__ = ["KiteBroker"]
