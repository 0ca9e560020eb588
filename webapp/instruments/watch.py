"""The market watch: each user's numbered lists of instruments (1..LISTS, up to PER_LIST each), and
the price move a row shows (last price against the previous close). No Flask here: the routes and
the page chrome call it, and so could a job."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from webapp.brokers.base import Quote
from webapp.extensions import db
from webapp.inputs import InputError, whole_number
from webapp.marketdata.depth import Move
from webapp.models import Instrument, WatchlistItem

LISTS = WatchlistItem.LISTS
PER_LIST = WatchlistItem.PER_LIST
HEADER_INDICES = (("NSE", "NIFTY 50"), ("NSE", "NIFTY BANK"))  # the header's tickers, by (exchange, symbol)


class WatchError(ValueError):
    """Refused: the message is for the person who asked."""


def list_number(raw: object, default: int = 1) -> int:
    """A list number 1..LISTS from a query or form value; `default` when absent or malformed."""
    try:
        return whole_number(raw, minimum=1, maximum=LISTS)
    except InputError:
        return default


def items(user_id: int, list_no: int) -> list[WatchlistItem]:
    """One list's rows in their order, each with its instrument."""
    return list(
        db.session.execute(
            sa.select(WatchlistItem)
            .where(WatchlistItem.user_id == user_id, WatchlistItem.list_no == list_no)
            .order_by(WatchlistItem.position, WatchlistItem.id)
            .options(joinedload(WatchlistItem.instrument))
        ).scalars()
    )


def counts(user_id: int) -> dict[int, int]:
    """How many instruments each list holds (every list named, empty ones 0)."""
    found = dict(
        db.session.execute(
            sa.select(WatchlistItem.list_no, sa.func.count())
            .where(WatchlistItem.user_id == user_id)
            .group_by(WatchlistItem.list_no)
        ).all()
    )
    return {n: found.get(n, 0) for n in range(1, LISTS + 1)}


def find(user_id: int, list_no: int, instrument_id: int) -> WatchlistItem | None:
    return db.session.execute(
        sa.select(WatchlistItem).where(
            WatchlistItem.user_id == user_id,
            WatchlistItem.list_no == list_no,
            WatchlistItem.instrument_id == instrument_id,
        )
    ).scalar_one_or_none()


def add(user_id: int, list_no: int, instrument: Instrument) -> WatchlistItem:
    """Put the instrument at the end of the list; WatchError when it is there already or the list is
    full. Commits (the unique constraint settles two adds of the same instrument at once)."""
    if not 1 <= list_no <= LISTS:
        raise WatchError(f"There are lists 1 to {LISTS} only.")
    if find(user_id, list_no, instrument.id) is not None:
        raise WatchError(f"{instrument.tradingsymbol} is already on list {list_no}.")
    held, last = db.session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(WatchlistItem.position), 0)).where(
            WatchlistItem.user_id == user_id, WatchlistItem.list_no == list_no
        )
    ).one()
    if held >= PER_LIST:
        raise WatchError(f"List {list_no} is full ({PER_LIST} instruments): remove one first, or use another list.")
    item = WatchlistItem(user_id=user_id, list_no=list_no, instrument_id=instrument.id, position=last + 1)
    db.session.add(item)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise WatchError(f"{instrument.tradingsymbol} is already on list {list_no}.") from None
    return item


def remove(user_id: int, list_no: int, instrument_id: int) -> bool:
    """Take the instrument off the list; False when it was not on it. Commits."""
    deleted = db.session.execute(
        sa.delete(WatchlistItem).where(
            WatchlistItem.user_id == user_id,
            WatchlistItem.list_no == list_no,
            WatchlistItem.instrument_id == instrument_id,
        )
    ).rowcount
    db.session.commit()
    return bool(deleted)


def header_indices() -> list[Instrument]:
    """The header's index tickers that the instrument master has, in HEADER_INDICES order."""
    conditions = [
        sa.and_(Instrument.exchange == exchange, Instrument.tradingsymbol == symbol)
        for exchange, symbol in HEADER_INDICES
    ]
    found = {
        (i.exchange, i.tradingsymbol): i
        for i in db.session.execute(sa.select(Instrument).where(sa.or_(*conditions))).scalars()
    }
    return [found[key] for key in HEADER_INDICES if key in found]


def move_of(instrument: Instrument, quote: Quote | None) -> Move:
    """The move of the instrument's latest quote, against the quote's previous close (or the master's
    reference price when the quote has none); the reference price itself when no tick came yet."""
    if quote is None:
        return Move(instrument.last_price, instrument.last_price, live=False)
    return Move(quote.last_price, quote.close or instrument.last_price, live=True)


def is_index(instrument: Instrument) -> bool:
    return instrument.is_index
