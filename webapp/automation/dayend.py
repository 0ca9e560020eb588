"""The desk's day ends as the brokers' does (no Flask here; jobs/risk.py runs it from cron).

- The intraday square-off: at the desk's square-off time (DeskState.squareoff_time, IST, default 15:15)
  on a trading day, every real client's MIS positions are exited (the desk acting by itself), once per
  IST day across restarts (DeskState.last_squareoff_day, claimed by one conditional UPDATE). A market
  order is never sent late without a person choosing it: past the close (15:30 IST) a square-off not
  yet done is not sent; a red alert says it was missed.
- The day roll: after the close, once per IST trading day (DeskState.last_rolled_day, claimed by one
  conditional UPDATE): delivery (CNC, MTF) positions bought that day become T1 holdings as the brokers
  show them the next morning (quantity and cost merged; the holding's earlier T1 settles first, as the
  paper exchange does), and every position row starts the next day afresh: flat rows go, the rest
  (an MIS or NRML leftover) keep their quantity and cost with no realized P&L or day quantities. The
  day's P&L row is written first and is final from then on (pnl.record_day). A desk that was down over
  the night rolls the last closed trading day at start (the cron job finds last_rolled_day behind);
  several missed days roll once, into the last of them (the positions do not know which day they were
  bought on; the brokers will show the same holdings either way).

Trading days are Monday to Friday: the desk has no exchange holiday calendar (on a holiday the
square-off finds nothing to exit and the roll finds nothing bought).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from webapp.automation.alerts import announce, raise_alert
from webapp.extensions import db
from webapp.models import Client, DeskState, Holding, Order, Position, RiskAlert
from webapp.tasks import QUEUE_ORDERS, enqueue
from webapp.timeutil import IST, MARKET_CLOSE, utcnow
from webapp.trading import states
from webapp.trading.batch_requests import queue_send
from webapp.trading.exits import create_exit_batch, intraday_holders
from webapp.trading.ledger import PLACES
from webapp.trading.pnl import record_day

DEFAULT_SQUAREOFF = time(15, 15)
PRE_OPEN = time(9, 0)
DELIVERY = ("CNC", "MTF")
ZERO = Decimal(0)


def is_trading_day(day: date) -> bool:
    """Monday to Friday (no holiday calendar exists)."""
    return day.weekday() < 5


def local(now: datetime | None) -> datetime:
    return (now or utcnow()).astimezone(IST)


def last_closed_day(now: datetime | None = None) -> date:
    """The latest trading day whose market has closed by `now` (today after 15:30 IST)."""
    at = local(now)
    day = at.date() if at.time() >= MARKET_CLOSE else at.date() - timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def close_of(day: date) -> datetime:
    """The market's close on `day`, aware (IST)."""
    return datetime.combine(day, MARKET_CLOSE, IST)


def desk_state() -> DeskState:
    """The one desk row, made if the desk never had one (two processes at once: one insert wins)."""
    state = db.session.get(DeskState, 1)
    if state is not None:
        return state
    try:
        with db.session.begin_nested():
            db.session.add(DeskState(id=1))
    except IntegrityError:
        pass
    return db.session.get(DeskState, 1)


def squareoff_at(state: DeskState | None) -> time:
    return (state.squareoff_time if state and state.squareoff_time else None) or DEFAULT_SQUAREOFF


def _claim(column, day: date) -> bool:
    """Move a desk day marker to `day` if it is behind: True for the one caller that did."""
    desk_state()
    table = DeskState.__table__
    moved = db.session.execute(
        table.update().where(table.c.id == 1, sa.or_(column.is_(None), column < day)).values({column.name: day})
    )
    return moved.rowcount == 1


# ---------------------------------------------------------------------------- intraday square-off


def real_clients() -> list[Client]:
    """Every client but the paper twins of deployments (Client.twin_of_id)."""
    return list(db.session.execute(sa.select(Client).where(Client.twin_of_id.is_(None)).order_by(Client.id)).scalars())


def intraday_squareoff(redis, now: datetime | None = None) -> RiskAlert | None:
    """Square off every real client's MIS positions once the day's square-off time has come; the
    alert raised (None: not due, or done already). The caller's session is committed here."""
    now = now or utcnow()
    at = local(now)
    if not is_trading_day(at.date()):
        return None
    state = db.session.get(DeskState, 1)
    due = squareoff_at(state)
    if at.time() < due:
        return None
    table = DeskState.__table__
    if not _claim(table.c.last_squareoff_day, at.date()):
        db.session.rollback()
        return None
    batch = None
    if at.time() >= MARKET_CLOSE:
        if not intraday_holders(real_clients()):  # nothing was left open: nothing was missed
            db.session.commit()
            return None
        alert = raise_alert(
            "squareoff.missed",
            f"The {due:%H:%M} IST intraday square-off did not run before the close (the desk was down): "
            "not sent now. Intraday positions left open are the brokers' to square off; check each client.",
            level="red",
            detail={"day": at.date().isoformat()},
        )
    else:
        clients = real_clients()
        ids = [c.id for c in clients]
        cancelled = _cancel_open_mis(ids)
        legs = [(h, abs(h.quantity)) for h in intraday_holders(clients)]
        batch = create_exit_batch(
            None, "square_off", legs, instrument_id=None, note=f"intraday square-off {due:%H:%M} IST"
        )
        alert = raise_alert(
            "squareoff.done",
            f"Intraday square-off at {due:%H:%M} IST: {len(legs)} MIS position(s) exited, "
            f"{len(cancelled)} open MIS order(s) cancelled.",
            level="info" if not legs else "amber",
            batch_id=batch.id if batch else None,
            detail={"day": at.date().isoformat(), "positions": len(legs), "cancelled": len(cancelled)},
        )
    alert.created_at = now
    db.session.commit()
    if batch is not None:
        queue_send(batch.id)
    announce(redis, alert)
    return alert


def _cancel_open_mis(client_ids: list[int]) -> list[int]:
    if not client_ids:
        return []
    ids = list(
        db.session.execute(
            sa.select(Order.id).where(
                Order.client_id.in_(client_ids), Order.product == "MIS", Order.status.in_(states.AT_BROKER)
            )
        ).scalars()
    )
    if ids:
        enqueue("jobs.orders.cancel_children", ids, "the day-end square-off", queue_name=QUEUE_ORDERS)
    return ids


# ---------------------------------------------------------------------------- day roll


def in_session(now: datetime | None = None) -> bool:
    """From the pre-open (09:00 IST) to the close of a trading day: today's trades are being booked."""
    at = local(now)
    return is_trading_day(at.date()) and PRE_OPEN <= at.time() < MARKET_CLOSE


def roll_due(now: datetime | None = None) -> date | None:
    """The day a roll is due for (None: rolled already, or a catch-up must wait). A roll missed while
    the desk was down catches up at start before 09:00 IST or after the close, never during a
    session: mid-session the positions hold today's trades too, and a broker the desk runs itself
    would expire today's open orders; a desk started mid-session rolls at today's close instead
    (its breakers wait meanwhile: books_current)."""
    day = last_closed_day(now)
    state = db.session.get(DeskState, 1)
    rolled = state.last_rolled_day if state else None
    if rolled is not None and rolled >= day:
        return None
    return None if in_session(now) else day


def previous_trading_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def books_current(now: datetime | None = None) -> bool:
    """Do the positions hold today's P&L alone? Today is a trading day, not rolled yet, and the last
    trading day before it was (a desk that never rolled has no older day to hold)."""
    today = local(now).date()
    state = db.session.get(DeskState, 1)
    rolled = state.last_rolled_day if state else None
    if not is_trading_day(today):
        return False
    return rolled is None or previous_trading_day(today) <= rolled < today


def roll_day(redis, now: datetime | None = None) -> RiskAlert | None:
    """Roll the last closed trading day if it has not been: the alert raised (None: nothing due)."""
    now = now or utcnow()
    day = roll_due(now)
    if day is None:
        db.session.rollback()
        return None
    all_ids = list(db.session.execute(sa.select(Client.id)).scalars())
    if all_ids:  # the day's P&L rows, final from the roll on (written as of the day's close)
        record_day(all_ids, redis, now=min(now, close_of(day) + timedelta(hours=8)))
    if not _claim(DeskState.__table__.c.last_rolled_day, day):
        db.session.rollback()
        return None
    rolled, carried, closed = _roll_positions(day)
    alert = raise_alert(
        "dayend.rolled",
        f"Day end for {day:%d %b %Y}: {rolled} delivery position(s) rolled into holdings, "
        f"{carried} position(s) carried, {closed} closed row(s) cleared; day P&L and limits start afresh.",
        level="info",
        detail={"day": day.isoformat(), "rolled": rolled, "carried": carried, "closed": closed},
    )
    alert.created_at = now
    db.session.commit()
    announce(redis, alert)
    return alert


def _roll_positions(day: date) -> tuple[int, int, int]:
    positions = list(db.session.execute(sa.select(Position).order_by(Position.id)).scalars())
    bought = [p for p in positions if p.product in DELIVERY and p.quantity > 0]
    owners = sorted({p.client_id for p in bought})
    holdings = {
        (h.client_id, h.instrument_id): h
        for h in db.session.execute(sa.select(Holding).where(Holding.client_id.in_(owners))).scalars()
    }
    for p in bought:
        holding = holdings.get((p.client_id, p.instrument_id))
        if holding is None:
            holding = holdings[(p.client_id, p.instrument_id)] = Holding(
                client_id=p.client_id, instrument_id=p.instrument_id, quantity=0, t1_quantity=0, average_price=ZERO
            )
            db.session.add(holding)
        if holding.rolled_day != day:  # the earlier T1 settles first (not twice for two products)
            holding.quantity, holding.t1_quantity = holding.quantity + holding.t1_quantity, 0
        held = holding.quantity + holding.t1_quantity
        cost = holding.average_price * held + p.cost
        holding.t1_quantity += p.quantity
        holding.average_price = (cost / (held + p.quantity)).quantize(PLACES)
        holding.last_price = p.last_price or holding.last_price
        holding.rolled_day = day
        p.quantity, p.cost, p.average_price, p.unrealized_pnl = 0, ZERO, ZERO, ZERO
    carried = closed = 0
    for p in positions:
        if p.product in DELIVERY and p.quantity < 0:
            # sold from holdings: the brokers take it off the holding themselves (the sync mirrors it)
            p.quantity, p.cost, p.average_price, p.unrealized_pnl = 0, ZERO, ZERO, ZERO
        if p.quantity == 0:
            db.session.delete(p)
            closed += 1
        else:
            p.realized_pnl, p.buy_quantity, p.sell_quantity = ZERO, 0, 0
            carried += 1
    return len(bought), carried, closed - len(bought)
