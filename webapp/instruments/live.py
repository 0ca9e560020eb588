"""The page chrome's live prices (a `page=chrome` socket on every signed-in page): each tick of a token
it follows becomes the market watch's span (`mw-<token>`) and, for a header index, the ticker's
(`ix-<token>`), each with its move against the previous close. Their own ids: the page under the
chrome may show the same instrument's `ltp-<token>`.

A tick carries the last price only; the previous close comes from the quote store (or the master's
reference price) and is kept here for a minute — it changes once a day."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import current_app

from webapp.extensions import db, get_redis
from webapp.instruments.watch import HEADER_INDICES, Move
from webapp.marketdata.store import read_quotes
from webapp.models import Instrument

if TYPE_CHECKING:
    from webapp.feed.hub import Subscriber

PAGE = "chrome"
CLOSE_SECONDS = 60.0

_closes: dict[int, tuple[Decimal | None, bool, float]] = {}  # token → (previous close, header index?, read at)
_lock = threading.Lock()


def _quote_macro():
    return current_app.jinja_env.get_template("watch/_quote.html").module.quote


def closes(tokens: Iterable[int]) -> dict[int, tuple[Decimal | None, bool]]:
    """token → (previous close, is a header index), read again after CLOSE_SECONDS."""
    now = time.monotonic()
    tokens = set(tokens)
    with _lock:
        stale = {t for t in tokens if t not in _closes or now - _closes[t][2] > CLOSE_SECONDS}
    if stale:
        try:
            quotes = read_quotes(get_redis(), stale)
        except Exception:  # noqa: BLE001  (Redis away: the master's reference price below)
            quotes = {}
        rows = db.session.execute(
            sa.select(
                Instrument.instrument_token, Instrument.last_price, Instrument.exchange, Instrument.tradingsymbol
            ).where(Instrument.instrument_token.in_(stale))
        ).all()
        fresh = {
            token: ((q.close if (q := quotes.get(token)) and q.close else last), (exchange, symbol) in HEADER_INDICES)
            for token, last, exchange, symbol in rows
        }
        with _lock:
            for token in stale:
                close, index = fresh.get(token, (None, False))
                _closes[token] = (close, index, now)
    with _lock:
        return {t: _closes[t][:2] for t in tokens}


def fragments(prices: Mapping[int, Decimal], subscribers: Iterable[Subscriber]) -> list[tuple[Subscriber, str]]:
    """For each chrome socket, the spans of the ticked tokens it follows, each rendered once."""
    subscribers = [s for s in subscribers if s.page == PAGE]
    wanted = set().union(*(s.tokens for s in subscribers)) & prices.keys() if subscribers else set()
    if not wanted:
        return []
    quote, known = _quote_macro(), closes(wanted)
    rendered = {}
    for token in wanted:
        close, index = known[token]
        move = Move(prices[token], close, live=True)
        rendered[token] = str(quote("mw", token, move, True)) + (str(quote("ix", token, move, True)) if index else "")
    return [(sub, "".join(rendered[t] for t in sub.tokens & wanted)) for sub in subscribers if sub.tokens & wanted]


def snapshot(tokens: Iterable[int]) -> str:
    """The chrome's spans as they are now (a socket's first message, and after every reconnect)."""
    tokens = set(tokens)
    if not tokens:
        return ""
    quotes = read_quotes(get_redis(), tokens)
    if not quotes:
        return ""
    return fragments({t: q.last_price for t, q in quotes.items()}, [_Following(tokens)])[0][1]


class _Following:
    """A stand-in subscriber for snapshot(): a chrome page following these tokens."""

    page = PAGE

    def __init__(self, tokens: set[int]):
        self.tokens = tokens


def forget() -> None:
    """Drop the kept closes (tests: another database's instruments may reuse a token)."""
    with _lock:
        _closes.clear()
