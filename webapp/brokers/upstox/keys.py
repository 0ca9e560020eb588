"""Upstox instrument keys for instruments the desk knows only by exchange token.

Upstox names an equity "NSE_EQ|<ISIN>" (reference/brokers-upstox-dhan.md §1.5), but the desk's master
usually comes from Kite's dump, which has no ISIN. Upstox publishes the mapping itself: its daily
instrument file (NSE.json.gz / BSE.json.gz on the assets host, §1.6) lists every instrument with
its `exchange_token` and `instrument_key`. This module keeps, per file URL, the cash segment's
exchange token -> instrument key, fetched on first need through the adapter's own HTTP path
(UpstoxWire.download) and fetched again on the first need of each new IST day. A failed or unreadable
fetch raises Unavailable and leaves nothing cached, so the next call tries again.

One process-wide lock guards the table; a fetch runs under it, so concurrent callers wait for the one
download instead of each starting their own.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from datetime import date
from typing import Any

from webapp.brokers.base import Unavailable
from webapp.timeutil import IST, utcnow

log = logging.getLogger(__name__)

SEGMENTS = {"NSE": "NSE_EQ", "BSE": "BSE_EQ"}  # the desk's exchange -> Upstox's cash segment

_lock = threading.Lock()
_files: dict[str, tuple[date, dict[int, str]]] = {}  # file URL -> (IST day fetched, token -> key)


def today() -> date:
    return utcnow().astimezone(IST).date()


def instrument_key(wire: Any, exchange: str, exchange_token: int) -> str | None:
    """Upstox's instrument key for the cash instrument `exchange_token` on `exchange` (NSE/BSE), from
    today's instrument file; None when Upstox does not list it (or for another exchange)."""
    segment = SEGMENTS.get((exchange or "").upper())
    if segment is None:
        return None
    url = wire.file_url(exchange.upper())
    day = today()
    with _lock:
        cached = _files.get(url)
        if cached is None or cached[0] != day:
            cached = (day, _load(wire, url, segment))
            _files[url] = cached
        return cached[1].get(int(exchange_token))


def _load(wire: Any, url: str, segment: str) -> dict[int, str]:
    raw = wire.download(url, wire.timeout)  # the adapter's timeout; Unavailable on a failed download
    try:
        records = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        table = {
            int(r["exchange_token"]): str(r["instrument_key"])
            for r in records
            if isinstance(r, dict) and r.get("segment") == segment and r.get("instrument_key")
        }
    except (OSError, ValueError, TypeError, KeyError):
        raise Unavailable("Upstox's instrument file is unreadable; try again") from None
    log.info("broker=upstox op=instrument_keys segment=%s keys=%d", segment, len(table))
    return table


def forget() -> None:
    """Drop every cached table (tests, or an operator who knows the file changed)."""
    with _lock:
        _files.clear()
