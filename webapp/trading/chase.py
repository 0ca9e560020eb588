"""Limit chase: unfilled LIMIT children of a batch follow the market toward the last price, a step
every N seconds, never further than the trader's maximum distance in ticks from the ticket's price;
at that limit they are left, or converted to MARKET, as the trader chose."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from webapp.extensions import db
from webapp.marketdata.store import read_quotes
from webapp.models import Batch, Instrument, Order
from webapp.money import round_to_tick
from webapp.timeutil import utcnow
from webapp.trading import order_actions, states
from webapp.trading.context import Context


def chase_price(side: str, start: Decimal, ltp: Decimal, tick: Decimal, max_ticks: int) -> Decimal:
    """Toward the LTP (rounded so it crosses: up for a buy, down for a sell), capped at the distance."""
    if side == "BUY":
        return min(round_to_tick(ltp, tick, up=True), start + tick * max_ticks)
    return max(round_to_tick(ltp, tick, up=False), start - tick * max_ticks)


def due_batches(now) -> list[Batch]:
    batches = (
        db.session.execute(
            sa.select(Batch)
            .where(Batch.chase_seconds.is_not(None))
            .where(
                Batch.id.in_(
                    sa.select(Order.batch_id).where(Order.status.in_(states.AT_BROKER), Order.order_type == "LIMIT")
                )
            )
        )
        .scalars()
        .all()
    )
    return [b for b in batches if b.chased_at is None or now - b.chased_at >= timedelta(seconds=b.chase_seconds)]


def chase(ctx: Context, now=None) -> int:
    """One round over every due batch; returns how many children were modified."""
    now = now or utcnow()
    moved = 0
    for batch in due_batches(now):
        instrument = db.session.get(Instrument, batch.instrument_id)
        ltp = read_quotes(ctx.redis, [instrument.instrument_token]).get(instrument.instrument_token)
        batch.chased_at = now
        db.session.commit()
        if ltp is None:
            continue
        for order in (
            db.session.execute(
                sa.select(Order).where(
                    Order.batch_id == batch.id, Order.order_type == "LIMIT", Order.status.in_(states.AT_BROKER)
                )
            )
            .scalars()
            .all()
        ):
            target = chase_price(order.side, batch.price, ltp.last_price, instrument.tick_size, batch.chase_max_ticks)
            if target != order.price:
                moved += order_actions.modify_child(order.id, target, ctx) == "ok"
            elif batch.chase_then == "market":
                moved += order_actions.convert_to_market(order.id, ctx) == "ok"
    return moved
