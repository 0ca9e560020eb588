"""Mark to market: every open position at the latest price, unrealized and day P&L per position,
client and desk. One pass reads positions and quotes in bulk and writes only what changed."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping

import sqlalchemy as sa

from webapp.brokers.base import Quote
from webapp.extensions import db
from webapp.marketdata.store import read_quotes
from webapp.models import Instrument, Position
from webapp.trading.ledger import Book, unrealized

ZERO = Decimal(0)


@dataclass(frozen=True)
class Mark:
    position_id: int
    client_id: int
    last_price: Decimal
    unrealized_pnl: Decimal


def marks(rows: Iterable[tuple], quotes: Mapping[int, Quote], fallback: Mapping[int, Decimal]) -> list[Mark]:
    """rows: (position id, client id, token, quantity, cost, last_price, unrealized) — the changed marks."""
    changed = []
    for position_id, client_id, token, quantity, cost, last_price, current in rows:
        quote = quotes.get(token)
        price = quote.last_price if quote else fallback.get(token)
        if price is None:
            continue
        pnl = unrealized(Book(quantity, cost), price)
        if price != last_price or pnl != current:
            changed.append(Mark(position_id, client_id, price, pnl))
    return changed


def mark_to_market(redis) -> list[Mark]:
    """One pass over every open position; the changed rows are written and returned."""
    from webapp.timeutil import utcnow

    now = utcnow()
    rows = db.session.execute(
        sa.select(Position.id, Position.client_id, Instrument.instrument_token, Position.quantity, Position.cost,
                  Position.last_price, Position.unrealized_pnl, Instrument.last_price)
        .join(Instrument, Position.instrument_id == Instrument.id).where(Position.quantity != 0)).all()
    tokens = {row[2] for row in rows}
    quotes = read_quotes(redis, tokens)
    fallback = {row[2]: row[7] for row in rows if row[2] not in quotes}  # no tick yet: the master's close, stale
    changed = marks((row[:7] for row in rows), quotes, fallback)
    if changed:  # Core executemany: no ORM bookkeeping per row (50,000 rows on a busy market)
        table = Position.__table__
        db.session.execute(
            table.update().where(table.c.id == sa.bindparam("pid"))
            .values(last_price=sa.bindparam("price"), unrealized_pnl=sa.bindparam("pnl"), updated_at=sa.bindparam("at")),
            [{"pid": m.position_id, "price": m.last_price, "pnl": m.unrealized_pnl, "at": now} for m in changed])
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
