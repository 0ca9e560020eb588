"""Mark to market: every open position at the latest price, unrealized and day P&L per position,
client and desk. One pass reads one price per instrument and lets the database mark every position
in one set-based UPDATE, which writes and returns only the rows that changed.

Where a price comes from, per instrument with an open position:
  1. the feed's cached tick (Redis), when fresh: in market hours (NSE, 09:15–15:30 IST, Mon–Fri) a
     tick older than STALE_AFTER is not; outside them the last tick is the close and stays good, and
     a tick without a time is taken as fresh;
  2. else the `fallback` (the repricing job passes a broker's quote API, trading/quote_fallback.py);
  3. else the last known price: the older tick, or the position's last mark, whichever was observed
     later; else the master's close (observed when the master row was last loaded).
Each mark stores when its price was observed (price_at, UTC) and whether it is stale (anything but a
fresh tick): the pages show "stale 3m" next to such a price, its age counted from price_at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa

from webapp.brokers.base import Quote
from webapp.extensions import db
from webapp.marketdata.store import read_quotes
from webapp.models import Instrument, Position
from webapp.models.base import Money, Price, UTCDateTime, in_ids

log = logging.getLogger(__name__)

ZERO = Decimal(0)
STALE_AFTER = timedelta(seconds=60)  # a tick older than this, in market hours, is not a live price

# This pass's price per instrument, private to the connection. In SQL the unrealized P&L is
# ledger.unrealized(): (price × |quantity| − cost) × direction, rounded to the hundredth of a paisa
# the columns keep. PostgreSQL computes it exactly. SQLite stores Numeric as REAL: the arithmetic's
# error (~2e-16 of the notional) is far below that hundredth for any notional the REAL column itself
# can hold to 4 decimals (under ~₹10^11), so ROUND lands on the exact Decimal's value — without it
# 1234.05 × 3 − 3702.15 would be −4.5e-13, not 0 (tests/live/test_reprice.py checks both).
MARK_PRICES = sa.Table(
    "mark_prices",
    sa.MetaData(),
    sa.Column("instrument_id", sa.Integer, primary_key=True),
    sa.Column("price", Price, nullable=False),
    sa.Column("observed_at", UTCDateTime),
    sa.Column("stale", sa.Boolean, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)

# the instruments without a fresh tick → the quotes found for them, by instrument id; must not raise
Fallback = Callable[[Sequence[sa.Row]], Mapping[int, Quote]]


class Mark(NamedTuple):  # a tuple: up to one per open position each pass
    position_id: int
    client_id: int
    last_price: Decimal
    unrealized_pnl: Decimal


class PriceMark(NamedTuple):
    price: Decimal
    observed_at: datetime | None
    stale: bool


def quote_time(quote: Quote) -> datetime | None:
    from webapp.timeutil import as_utc

    return as_utc(quote.timestamp) if quote.timestamp else None


def is_fresh(quote: Quote, now: datetime, market_open: bool) -> bool:
    stamp = quote_time(quote)
    return stamp is None or not market_open or now - stamp <= STALE_AFTER


def mark_prices(
    rows: Sequence[sa.Row],
    quotes: Mapping[int, Quote],
    now: datetime,
    market_open: bool,
    fallback: Fallback | None = None,
) -> dict[int, PriceMark]:
    """rows: instruments (id, instrument_token, last_price, updated_at, exchange, tradingsymbol,
    exchange_token) → instrument id: the price to mark at, per the order in the module's docstring;
    an instrument with no price at all is left out."""
    prices, missing = {}, []
    for row in rows:
        quote = quotes.get(row.instrument_token)
        if quote is not None and is_fresh(quote, now, market_open):
            prices[row.id] = PriceMark(quote.last_price, quote_time(quote) or now, False)
        else:
            missing.append(row)
    if missing and fallback is not None:
        try:
            answered = fallback(missing)
        except Exception:  # a fallback must not raise; if it does, the pass still marks the rest
            log.exception("repricing: the quote fallback failed")
            answered = {}
        for row in missing:
            quote = answered.get(row.id)
            if quote is not None and quote.last_price > 0:
                prices[row.id] = PriceMark(quote.last_price, quote_time(quote) or now, True)
    left = [row for row in missing if row.id not in prices]
    if left:
        known = last_marks([row.id for row in left])
        for row in left:
            quote = quotes.get(row.instrument_token)
            candidates = [c for c in (known.get(row.id), quote and (quote.last_price, quote_time(quote))) if c]
            if candidates:
                price, at = max(candidates, key=lambda c: (c[1] is not None, c[1] or now))
            else:
                price, at = row.last_price, row.updated_at
            if price is not None:
                prices[row.id] = PriceMark(price, at, True)
    return prices


def last_marks(instrument_ids: list[int]) -> dict[int, tuple[Decimal, datetime | None]]:
    """The latest price each instrument's positions were marked at, with when it was observed."""
    found: dict[int, tuple[Decimal, datetime | None]] = {}
    for instrument_id, price, observed in db.session.execute(
        sa.select(Position.instrument_id, Position.last_price, Position.price_at)
        .distinct()
        .where(Position.instrument_id.in_(instrument_ids), Position.last_price.is_not(None))
    ):
        prior = found.get(instrument_id)
        if prior is None or (observed is not None and (prior[1] is None or observed > prior[1])):
            found[instrument_id] = (price, observed)
    return found


def mark_to_market(redis, fallback: Fallback | None = None, now: datetime | None = None) -> list[Mark]:
    """One pass over every open position; the changed rows are written and returned."""
    from webapp.timeutil import market_hours, utcnow

    now = now or utcnow()
    held = sa.select(Position.instrument_id).where(Position.quantity != 0)
    instruments = db.session.execute(
        sa.select(
            Instrument.id,
            Instrument.instrument_token,
            Instrument.last_price,
            Instrument.updated_at,
            Instrument.exchange,
            Instrument.tradingsymbol,
            Instrument.exchange_token,
            Instrument.isin,
        ).where(Instrument.id.in_(held))
    ).all()
    prices = mark_prices(
        instruments, read_quotes(redis, [row.instrument_token for row in instruments]), now, market_hours(now), fallback
    )
    if not prices:
        return []
    MARK_PRICES.create(db.session.connection(), checkfirst=True)
    db.session.execute(MARK_PRICES.delete())  # SQLite keeps the rows of the last pass (PostgreSQL: at commit)
    db.session.execute(
        MARK_PRICES.insert(),
        [
            {"instrument_id": i, "price": p.price, "observed_at": p.observed_at, "stale": p.stale}
            for i, p in prices.items()
        ],
    )
    positions, mark = Position.__table__, MARK_PRICES.c
    direction = sa.case((positions.c.quantity > 0, 1), else_=-1)
    pnl = sa.func.round((mark.price * sa.func.abs(positions.c.quantity) - positions.c.cost) * direction, 4, type_=Money)
    # a fresh price's time is written with its price; a stale one's whenever it moves (its age shows)
    marked = db.session.execute(
        positions.update()
        .where(
            positions.c.instrument_id == mark.instrument_id,
            positions.c.quantity != 0,
            sa.or_(
                positions.c.last_price.is_distinct_from(mark.price),
                positions.c.unrealized_pnl != pnl,
                positions.c.price_stale != mark.stale,
                sa.and_(mark.stale, positions.c.price_at.is_distinct_from(mark.observed_at)),
            ),
        )
        .values(
            last_price=mark.price, unrealized_pnl=pnl, price_at=mark.observed_at, price_stale=mark.stale, updated_at=now
        )
        .returning(positions.c.id, positions.c.client_id, positions.c.last_price, positions.c.unrealized_pnl)
    )
    changed = list(map(Mark._make, marked))
    db.session.commit()
    return changed


@dataclass(frozen=True)
class Totals:
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO

    @property
    def day(self) -> Decimal:
        return self.realized + self.unrealized


def money_sum(column) -> sa.ColumnElement:
    """SUM of a Money column, exact to its 4 decimals. SQLite keeps Numeric as REAL: a desk-wide sum
    adds thousands of floats, so there it adds integers (hundredths of a paisa); `money` reads either."""
    if db.engine.dialect.name == "sqlite":
        return sa.func.sum(sa.cast(sa.func.round(column * 10_000), sa.BigInteger))
    return sa.func.sum(column)


def money(value) -> Decimal:
    """A money_sum's result as Decimal (None: nothing to add up)."""
    if value is None:
        return ZERO
    if isinstance(value, int):
        return Decimal(value).scaleb(-4)
    return Decimal(value)


def client_totals(client_ids: list[int]) -> dict[int, Totals]:
    rows = db.session.execute(
        sa.select(Position.client_id, money_sum(Position.realized_pnl), money_sum(Position.unrealized_pnl))
        .where(in_ids(Position.client_id, client_ids))
        .group_by(Position.client_id)
    ).all()
    return {cid: Totals(money(r), money(u)) for cid, r, u in rows}


PNL_SAMPLES_KEY = "fanout:pnl:{client_id}:{day}"
SAMPLE_EVERY_SECONDS = 10


def record_day(client_ids: list[int], redis, now=None) -> None:
    """Keep today's row per client current (exports), with the day's peak of realized + unrealized
    (the drawdown breaker's reference), and a sample for the client's P&L chart. A day the day-end
    has rolled is final: its positions start the next day afresh, so the row is not written again."""
    from webapp.models import DailyPnl, DeskState
    from webapp.timeutil import IST, utcnow

    now = now or utcnow()
    day = now.astimezone(IST).date()
    rolled = db.session.execute(sa.select(DeskState.last_rolled_day).where(DeskState.id == 1)).scalar()
    if rolled is not None and day <= rolled:
        return
    totals = client_totals(client_ids)
    rows = {
        r.client_id: r
        for r in db.session.execute(
            sa.select(DailyPnl).where(DailyPnl.client_id.in_(client_ids), DailyPnl.day == day)
        ).scalars()
    }
    pipe = redis.pipeline()
    for client_id, t in totals.items():
        row = rows.get(client_id) or DailyPnl(client_id=client_id, day=day)
        row.realized, row.unrealized, row.updated_at = t.realized, t.unrealized, now
        row.peak = max(ZERO if row.peak is None else row.peak, t.day)  # the day starts flat: 0
        db.session.add(row)
        key = PNL_SAMPLES_KEY.format(client_id=client_id, day=day.isoformat())
        bucket = int(now.timestamp()) // SAMPLE_EVERY_SECONDS * SAMPLE_EVERY_SECONDS
        pipe.zremrangebyscore(key, bucket, bucket)  # one sample per bucket: the latest
        pipe.zadd(key, {f"{bucket}:{t.day}": bucket})
        pipe.expire(key, 3 * 86400)
    pipe.execute()
    db.session.commit()


def pnl_samples(redis, client_id: int, day: str) -> list[dict]:
    """[{time, value}] for lightweight-charts, one sample per bucket."""
    if redis is None:  # Redis away: no samples to draw
        return []
    samples = []
    for member, score in redis.zrange(PNL_SAMPLES_KEY.format(client_id=client_id, day=day), 0, -1, withscores=True):
        member = member.decode() if isinstance(member, bytes) else member
        samples.append({"time": int(score), "value": member.split(":", 1)[1]})
    return samples
