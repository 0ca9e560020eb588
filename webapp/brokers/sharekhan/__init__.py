"""ShareKhan API ("ShareConnect"): the adapter, its wire vocabulary and the AES-GCM login swap."""

from webapp.brokers import register
from webapp.brokers.sharekhan.adapter import ShareKhan

register(ShareKhan)

__all__ = ["ShareKhan"]
