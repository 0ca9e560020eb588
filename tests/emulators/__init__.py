"""Loopback HTTP servers that speak each broker's documented protocol, with seeded faults."""
