"""Loss and drawdown breakers, run at the end of each repricing pass (jobs.market.reprice), which has
just marked every position to market (no Flask here).

- A client's `max_daily_loss` (the day's MTM, realized + unrealized, at or below −limit) or
  `max_drawdown` (the day's peak MTM less the MTM now at or above the limit; the peak is kept by
  pnl.record_day, and the day starts flat at 0) → its intraday positions squared off and its kill
  switch engaged with the reason.
- The desk's `max_daily_loss` over every real client's day MTM (paper twins are not the desk's money)
  → the desk kill switch with the reason, flattening every client's intraday positions.

Each trip is one conditional UPDATE (`kill_switch = false → true WHERE kill_switch = false`), so two
repricing passes at once trip it once; the square-off batch, the audit and a red RiskAlert are written
in that transaction, and the batch is queued after the commit. The switch stays on until a person
re-arms it (the kill-switch pages). A breaker trips a client (or the desk) at most once per IST day:
a person who re-arms after a trip has chosen to, and the pre-trade daily loss check still refuses new
orders past the limit. Breakers act only within the desk's trading day: a trading day whose day-end
has not yet rolled (after the roll the positions belong to the next day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from webapp import audit
from webapp.automation.alerts import announce, raise_alert
from webapp.automation.dayend import books_current, desk_state, local
from webapp.extensions import db
from webapp.models import Client, DailyPnl, DeskState, RiskAlert
from webapp.money import rupees
from webapp.timeutil import utcnow
from webapp.trading.batch_requests import queue_send
from webapp.trading.exits import engage_client_kill, engage_desk_kill
from webapp.trading.pnl import client_totals
from webapp.trading.risk import start_of_day

ZERO = Decimal(0)
CLIENT_KINDS = ("breaker.daily_loss", "breaker.drawdown")
DESK_KIND = "breaker.desk_loss"


@dataclass(frozen=True)
class Trip:
    client_id: int | None  # None: the desk
    kind: str
    reason: str


def check(redis, now: datetime | None = None) -> list[RiskAlert]:
    """Trip what has crossed its limit; the alerts raised (committed and announced)."""
    now = now or utcnow()
    day = local(now).date()
    if not books_current(now):  # a weekend, after the day-end roll, or a roll still to catch up
        return []
    state = db.session.get(DeskState, 1)
    alerts = []
    for trip in client_trips(day, now):
        alert = _trip_client(trip, now)
        if alert is not None:
            alerts.append(alert)
    trip = desk_trip(state, now)
    if trip is not None and (alert := _trip_desk(trip, now)) is not None:
        alerts.append(alert)
    for alert in alerts:
        announce(redis, alert)
    return alerts


def _tripped_today(kinds: tuple[str, ...], now: datetime) -> set[int | None]:
    """Clients (None: the desk) a breaker already tripped today."""
    return set(
        db.session.execute(
            sa.select(RiskAlert.client_id).where(
                RiskAlert.kind.in_(kinds),
                RiskAlert.created_at >= start_of_day(now),
                RiskAlert.created_at < start_of_day(now) + timedelta(days=1),
            )
        ).scalars()
    )


def client_trips(day, now: datetime) -> list[Trip]:
    limited = list(
        db.session.execute(
            sa.select(Client.id, Client.max_daily_loss, Client.max_drawdown).where(
                Client.kill_switch.is_(False),
                sa.or_(Client.max_daily_loss.is_not(None), Client.max_drawdown.is_not(None)),
            )
        )
    )
    if not limited:
        return []
    done = _tripped_today(CLIENT_KINDS, now)
    limited = [row for row in limited if row.id not in done]
    ids = [row.id for row in limited]
    totals = client_totals(ids)
    peaks = (
        dict(
            db.session.execute(
                sa.select(DailyPnl.client_id, DailyPnl.peak).where(DailyPnl.client_id.in_(ids), DailyPnl.day == day)
            ).all()
        )
        if ids
        else {}
    )
    trips = []
    for row in limited:
        mtm = totals[row.id].day if row.id in totals else ZERO
        peak = max(peaks.get(row.id) or ZERO, mtm)
        if row.max_daily_loss and mtm <= -row.max_daily_loss:
            trips.append(
                Trip(
                    row.id,
                    "breaker.daily_loss",
                    f"Daily loss breaker: today's MTM −₹{rupees(-mtm)} reached the limit of "
                    f"₹{rupees(row.max_daily_loss)} at {local(now):%H:%M} IST",
                )
            )
        elif row.max_drawdown and peak - mtm >= row.max_drawdown:
            trips.append(
                Trip(
                    row.id,
                    "breaker.drawdown",
                    f"Drawdown breaker: MTM ₹{rupees(mtm)} is ₹{rupees(peak - mtm)} below today's peak of "
                    f"₹{rupees(peak)}, the limit is ₹{rupees(row.max_drawdown)} ({local(now):%H:%M} IST)",
                )
            )
    return trips


def desk_trip(state: DeskState | None, now: datetime) -> Trip | None:
    if state is None or not state.max_daily_loss or state.kill_switch:
        return None
    if None in _tripped_today((DESK_KIND,), now):
        return None
    real = sa.select(Client.id).where(Client.twin_of_id.is_(None))
    total = sum((t.day for t in client_totals(list(db.session.execute(real).scalars())).values()), ZERO)
    if total > -state.max_daily_loss:
        return None
    return Trip(
        None,
        DESK_KIND,
        f"Desk daily loss breaker: the desk's MTM −₹{rupees(-total)} reached the limit of "
        f"₹{rupees(state.max_daily_loss)} at {local(now):%H:%M} IST",
    )


def _trip_client(trip: Trip, now: datetime) -> RiskAlert | None:
    table = Client.__table__
    won = db.session.execute(
        table.update()
        .where(table.c.id == trip.client_id, table.c.kill_switch.is_(False))
        .values(kill_switch=True, kill_reason=trip.reason[:300])
    )
    if won.rowcount != 1:  # re-armed meanwhile? no: engaged by another pass or a person
        db.session.rollback()
        return None
    client = db.session.get(Client, trip.client_id)
    db.session.refresh(client)
    batch = engage_client_kill(None, client, True, ip=None, reason=trip.reason[:300])
    alert = raise_alert(
        trip.kind,
        f"{client.name}: {trip.reason}. Intraday positions squared off; kill switch on until a person re-arms it.",
        level="red",
        client_id=client.id,
        batch_id=batch.id if batch else None,
    )
    alert.created_at = now  # the pass's own clock (a simulated day in tests)
    db.session.commit()
    if batch is not None:
        queue_send(batch.id)
    return alert


def _trip_desk(trip: Trip, now: datetime) -> RiskAlert | None:
    table = DeskState.__table__
    won = db.session.execute(
        table.update()
        .where(table.c.id == 1, table.c.kill_switch.is_(False))
        .values(kill_switch=True, kill_reason=trip.reason[:300])
    )
    if won.rowcount != 1:
        db.session.rollback()
        return None
    db.session.refresh(db.session.get(DeskState, 1))
    clients = list(db.session.execute(sa.select(Client).order_by(Client.id)).scalars())
    batch = engage_desk_kill(None, clients, True, ip=None, reason=trip.reason[:300])
    alert = raise_alert(
        trip.kind,
        f"{trip.reason}. Every client's intraday positions squared off; the desk kill switch is on "
        "until an admin re-arms it.",
        level="red",
        batch_id=batch.id if batch else None,
    )
    alert.created_at = now  # the pass's own clock (a simulated day in tests)
    db.session.commit()
    if batch is not None:
        queue_send(batch.id)
    return alert


# ---------------------------------------------------------------------------- what pages show


def desk_kill_reason() -> str:
    state = db.session.get(DeskState, 1)
    return state.kill_reason if state is not None and state.kill_switch else ""


def recent_alerts(scope, limit: int = 20) -> list[RiskAlert]:
    """Risk alerts, newest first. `scope`: access.client_scope(user): None (every client) also
    shows the desk-level alerts (the desk breaker, the square-off, the day roll); else only the
    alerts of those clients."""
    query = sa.select(RiskAlert).order_by(RiskAlert.created_at.desc(), RiskAlert.id.desc()).limit(limit)
    if scope is not None:  # a SELECT of client ids, or the ids (a socket's grants)
        query = query.where(RiskAlert.client_id.in_(scope if isinstance(scope, sa.Select) else sorted(scope)))
    return list(db.session.execute(query.options(selectinload(RiskAlert.client))).scalars())


def save_desk_settings(user, *, max_daily_loss: Decimal | None, squareoff_time, ip: str | None) -> DeskState:
    """An admin's change to the desk's loss limit and square-off time, audited (the caller commits)."""
    state = desk_state()
    before = {"max_daily_loss": state.max_daily_loss, "squareoff_time": state.squareoff_time}
    state.max_daily_loss, state.squareoff_time = max_daily_loss, squareoff_time
    audit.record(
        "desk.risk_settings",
        actor_id=user.id,
        actor=user.username,
        target="desk",
        ip=ip,
        detail={
            "before": {k: (str(v) if v is not None else None) for k, v in before.items()},
            "after": {
                "max_daily_loss": str(max_daily_loss) if max_daily_loss is not None else None,
                "squareoff_time": f"{squareoff_time:%H:%M}" if squareoff_time else None,
            },
        },
    )
    return state
