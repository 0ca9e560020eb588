"""Mark to market: every open position at the latest price, unrealized and day P&L per position,
client and desk. One pass reads one price per instrument and lets the database mark every position
in one set-based UPDATE, which writes and returns only the rows that changed."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping, NamedTuple

import sqlalchemy as sa

from webapp.brokers.base import Quote
from webapp.extensions import db
from webapp.marketdata.store import read_quotes
from webapp.models import Instrument, Position
from webapp.models.base import Money, Price

ZERO = Decimal(0)

# This pass's price per instrument, private to the connection. In SQL the unrealized P&L is
# ledger.unrealized(): (price × |quantity| − cost) × direction, rounded to the hundredth of a paisa
# the columns keep. PostgreSQL computes it exactly. SQLite stores Numeric as REAL: the arithmetic's
# error (~2e-16 of the notional) is far below that hundredth for any notional the REAL column itself
# can hold to 4 decimals (under ~₹10^11), so ROUND lands on the exact Decimal's value — without it
# 1234.05 × 3 − 3702.15 would be −4.5e-13, not 0 (tests/live/test_reprice.py checks both).
MARK_PRICES = sa.Table("mark_prices", sa.MetaData(),
                       sa.Column("instrument_id", sa.Integer, primary_key=True),
                       sa.Column("price", Price, nullable=False),
                       prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS")


class Mark(NamedTuple):  # a tuple: up to one per open position each pass
    position_id: int
    client_id: int
    last_price: Decimal
    unrealized_pnl: Decimal


def mark_prices(rows: Iterable[tuple], quotes: Mapping[int, Quote]) -> dict[int, Decimal]:
    """rows: (instrument id, token, the master's price) → instrument id: the price to mark at, the
    feed's last price, else the master's close (stale); an instrument with neither is left out."""
    prices = {}
    for instrument_id, token, master in rows:
        quote = quotes.get(token)
        price = quote.last_price if quote else master
        if price is not None:
            prices[instrument_id] = price
    return prices


def mark_to_market(redis) -> list[Mark]:
    """One pass over every open position; the changed rows are written and returned."""
    from webapp.timeutil import utcnow

    held = sa.select(Position.instrument_id).where(Position.quantity != 0)
    instruments = db.session.execute(sa.select(Instrument.id, Instrument.instrument_token, Instrument.last_price)
                                     .where(Instrument.id.in_(held))).all()
    prices = mark_prices(instruments, read_quotes(redis, [row[1] for row in instruments]))
    if not prices:
        return []
    MARK_PRICES.create(db.session.connection(), checkfirst=True)
    db.session.execute(MARK_PRICES.delete())  # SQLite keeps the rows of the last pass (PostgreSQL: at commit)
    db.session.execute(MARK_PRICES.insert(), [{"instrument_id": i, "price": p} for i, p in prices.items()])
    positions, price = Position.__table__, MARK_PRICES.c.price
    direction = sa.case((positions.c.quantity > 0, 1), else_=-1)
    pnl = sa.func.round((price * sa.func.abs(positions.c.quantity) - positions.c.cost) * direction, 4, type_=Money)
    marked = db.session.execute(
        positions.update()
        .where(positions.c.instrument_id == MARK_PRICES.c.instrument_id, positions.c.quantity != 0,
               sa.or_(positions.c.last_price.is_distinct_from(price), positions.c.unrealized_pnl != pnl))
        .values(last_price=price, unrealized_pnl=pnl, updated_at=utcnow())
        .returning(positions.c.id, positions.c.client_id, positions.c.last_price, positions.c.unrealized_pnl))
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


def client_totals(client_ids: list[int]) -> dict[int, Totals]:
    rows = db.session.execute(
        sa.select(Position.client_id, sa.func.sum(Position.realized_pnl), sa.func.sum(Position.unrealized_pnl))
        .where(Position.client_id.in_(client_ids)).group_by(Position.client_id)).all()
    return {cid: Totals(Decimal(r or 0), Decimal(u or 0)) for cid, r, u in rows}


def desk_totals(client_ids: list[int]) -> Totals:
    totals = client_totals(client_ids).values()
    return Totals(sum((t.realized for t in totals), ZERO), sum((t.unrealized for t in totals), ZERO))




PNL_SAMPLES_KEY = "fanout:pnl:{client_id}:{day}"
SAMPLE_EVERY_SECONDS = 10


def record_day(client_ids: list[int], redis, now=None) -> None:
    """Keep today's row per client current (exports), and a sample for the client's P&L chart."""
    from webapp.models import DailyPnl
    from webapp.timeutil import IST, utcnow

    now = now or utcnow()
    day = now.astimezone(IST).date()
    totals = client_totals(client_ids)
    rows = {r.client_id: r for r in db.session.execute(sa.select(DailyPnl).where(
        DailyPnl.client_id.in_(client_ids), DailyPnl.day == day)).scalars()}
    pipe = redis.pipeline()
    for client_id, t in totals.items():
        row = rows.get(client_id) or DailyPnl(client_id=client_id, day=day)
        row.realized, row.unrealized, row.updated_at = t.realized, t.unrealized, now
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
    samples = []
    for member, score in redis.zrange(PNL_SAMPLES_KEY.format(client_id=client_id, day=day), 0, -1, withscores=True):
        member = member.decode() if isinstance(member, bytes) else member
        samples.append({"time": int(score), "value": member.split(":", 1)[1]})
    return samples
