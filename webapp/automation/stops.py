"""Stop rules that act by themselves: a stop-loss, a target and/or a trailing stop on one client's
position (instrument × product), checked on every tick by the feed process (DESIGN §8).

- A person (a position row, a ticket) or a strategy's signal arms a rule (`arm`, audited); a person
  edits or cancels it (`edit`, `cancel`, audited). One ARMED rule per position: arming another
  replaces it (a ticket against the position arms its own beside it until its entry is done).
- The feed keeps a `StopIndex` of the ARMED rules per instrument token (numpy thresholds, floats only
  to find candidates; every crossing is confirmed in Decimal) and calls `fire_many` with the rules a
  tick crossed. Firing is ONE conditional UPDATE (`WHERE state = 'ARMED'`) in the transaction that
  writes the exit batch and the alerts: whoever changed the rows sends the exit; any other caller
  (a repeated tick, a second evaluator, a restart) changes nothing. After the commit the batch's
  send is queued and the alerts announced.
- A rule armed before its position exists (the entry still open) waits; a rule whose position went
  flat (or turned round) with nothing of it left open is CANCELLED with the reason.
- Trailing: the anchor is the best price since armed, the level anchor − distance (long) or
  anchor + distance (short); the index keeps the anchor and writes it when it moves, at most once
  per rule per feed step.

No Flask here: the feed process, jobs and routes call it with ids and plain values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import sqlalchemy as sa

from webapp import audit, events
from webapp.automation.alerts import announce
from webapp.extensions import db
from webapp.models import Batch, Client, Instrument, Order, RiskAlert, StopRule, User
from webapp.models.automation import ARMED, CANCELLED, FIRED
from webapp.money import is_tick_multiple, rupees
from webapp.timeutil import utcnow
from webapp.trading import states
from webapp.trading.exits import Holder, actor_of, create_exit_batch, holders

log = logging.getLogger(__name__)

VERSION_KEY = "fanout:stops:version"  # INCR'd after every change of the ARMED set (notify_changed)
CHANGED_EVENT = "stops.changed"  # published by notify_changed: {"clients": [ids]} (the live chips)
TOUCHED = "fanout.stops.touched"  # session.info key: client ids whose rules changed, until notify_changed
SOURCES = ("ticket", "position", "signal")
LONG, SHORT = 1, -1
FIRE_KINDS = {"stop": "stop.fired", "target": "target.fired", "trail": "trail.fired"}


class StopError(ValueError):
    """Levels that may not be armed: field → message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# ---------------------------------------------------------------- validation


def validate_levels(
    direction: int,
    price: Decimal | None,
    stop: Decimal | None,
    target: Decimal | None,
    trail: Decimal | None,
    tick_size: Decimal,
) -> dict[str, str]:
    """Field → message for levels that may not be armed on a position of this direction at this
    price (None: not known, only the grid and the signs are checked). Empty: they may."""
    errors: dict[str, str] = {}
    if direction not in (LONG, SHORT):
        return {"direction": "Direction must be long (+1) or short (−1)."}
    if stop is None and target is None and trail is None:
        return {"stop": "Set a stop, a target or a trailing distance."}
    tick = f"₹{tick_size.normalize():f}"
    named = (("stop", "Stop", stop), ("target", "Target", target), ("trail", "Trailing distance", trail))
    for name, label, value in named:
        if value is None:
            continue
        if not value.is_finite() or value <= 0:
            errors[name] = f"{label} must be above zero."
        elif not is_tick_multiple(value, tick_size):
            errors[name] = f"{label} must be a multiple of the tick size {tick}."
    if price is None:
        return errors
    side = "long" if direction == LONG else "short"
    if stop is not None and "stop" not in errors and (stop - price) * direction >= 0:
        where = "below" if direction == LONG else "above"
        errors["stop"] = f"A {side} position's stop must be {where} the price ₹{rupees(price)}."
    if target is not None and "target" not in errors and (target - price) * direction <= 0:
        where = "above" if direction == LONG else "below"
        errors["target"] = f"A {side} position's target must be {where} the price ₹{rupees(price)}."
    if trail is not None and "trail" not in errors and direction == LONG and trail >= price:
        errors["trail"] = f"The trailing distance must be below the price ₹{rupees(price)}."
    return errors


def validate_quantity(quantity: int | None, lot_size: int) -> dict[str, str]:
    if quantity is None:
        return {}
    if quantity <= 0:
        return {"quantity": "Quantity must be above zero (leave it empty for the whole position)."}
    if quantity % lot_size:
        return {"quantity": f"Quantity must be a multiple of the lot size {lot_size}."}
    return {}


# ---------------------------------------------------------------- a person's (or a signal's) acts


def armed_rule(client_id: int, instrument_id: int, product: str) -> StopRule | None:
    return (
        db.session.execute(
            sa.select(StopRule)
            .where(
                StopRule.client_id == client_id,
                StopRule.instrument_id == instrument_id,
                StopRule.product == product,
                StopRule.state == ARMED,
            )
            .order_by(StopRule.id.desc())
        )
        .scalars()
        .first()
    )


def arm(
    *,
    client_id: int,
    instrument_id: int,
    product: str,
    direction: int,
    stop: Decimal | None = None,
    target: Decimal | None = None,
    trail: Decimal | None = None,
    quantity: int | None = None,
    source: str,
    deployment_id: int | None = None,
    user: User | None = None,
    price: Decimal | None = None,
    ip: str | None = None,
) -> StopRule:
    """Arm a rule on this position in the caller's transaction (audited), replacing the position's
    ARMED rule if it has one. `price`: the price the levels were chosen against (checked to be on the
    right side of it; the trailing anchor starts there). Raises StopError on levels that may not be
    armed. The caller commits, then calls notify_changed."""
    instrument = db.session.get(Instrument, instrument_id)
    if instrument is None:
        raise StopError({"instrument": "Unknown instrument."})
    if source not in SOURCES:
        raise StopError({"source": f"Unknown source {source!r}."})
    errors = validate_levels(direction, price, stop, target, trail, instrument.tick_size)
    errors.update(validate_quantity(quantity, instrument.lot_size))
    if errors:
        raise StopError(errors)
    replaced = armed_rule(client_id, instrument_id, product)
    if replaced is not None:
        _set_cancelled(replaced, "replaced by a new rule")
    rule = StopRule(
        client_id=client_id,
        instrument_id=instrument_id,
        product=product,
        direction=direction,
        quantity=quantity,
        stop_price=stop,
        target_price=target,
        trail_distance=trail,
        trail_anchor=price if trail is not None else None,
        state=ARMED,
        source=source,
        deployment_id=deployment_id,
        created_by_id=user.id if user else None,
    )
    db.session.add(rule)
    db.session.flush()
    _touched([client_id])
    audit.record(
        "stop.armed",
        **actor_of(user),
        target=f"client:{client_id}",
        clients=[client_id],
        ip=ip,
        detail={**_levels(rule), "rule": rule.id, "source": source, "replaced": replaced.id if replaced else None},
    )
    return rule


def arm_ticket(
    batch: Batch,
    user: User,
    *,
    stop: Decimal | None,
    target: Decimal | None,
    trail: Decimal | None,
    price: Decimal | None,
    ip: str | None = None,
) -> int:
    """A ticket's stop / target / trail: one rule per child the batch will send (not those risk
    refused), direction from the side (BUY protects a long, SELL a short), quantity = the child's
    quantity, source "ticket"; armed in the batch's own transaction, each replacing its position's
    ARMED rule of the same direction. A rule waits for its entry (see _fire_many). A ticket against
    the position (a SELL with a stop while long) leaves the long's rule armed: once the entry is
    done, whichever of the two no longer matches the position is cancelled as flat (cancel_flat).
    One statement each for the replaced rules, the new ones and the audit, whatever the number of
    clients. `price`: the ticket's price (the LTP for a market order) the levels were validated
    against; the trailing anchor starts there. Raises StopError. The number of rules armed; the
    caller commits, then notify_changed."""
    direction = LONG if batch.action == "BUY" else SHORT
    instrument = db.session.get(Instrument, batch.instrument_id)
    errors = validate_levels(direction, price, stop, target, trail, instrument.tick_size)
    if errors:
        raise StopError(errors)
    children = db.session.execute(
        sa.select(Order.client_id, Order.quantity).where(Order.batch_id == batch.id, Order.status == states.NEW)
    ).all()
    if not children:
        return 0
    ids = [c.client_id for c in children]
    now = utcnow()
    replaced = list(
        db.session.execute(
            sa.update(StopRule)
            .where(
                StopRule.client_id.in_(ids),
                StopRule.instrument_id == instrument.id,
                StopRule.product == batch.product,
                StopRule.direction == direction,  # a rule protecting the other way stays: see below
                StopRule.state == ARMED,
            )
            .values(state=CANCELLED, fired_reason="replaced by a new rule", updated_at=now)
            .returning(StopRule.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    levels = {"stop_price": stop, "target_price": target, "trail_distance": trail}
    db.session.execute(
        StopRule.__table__.insert(),
        [
            dict(
                client_id=c.client_id,
                instrument_id=instrument.id,
                product=batch.product,
                direction=direction,
                quantity=c.quantity,
                trail_anchor=price if trail is not None else None,
                state=ARMED,
                source="ticket",
                created_by_id=user.id,
                created_at=now,
                updated_at=now,
                fired_reason="",
                **levels,
            )
            for c in children
        ],
    )
    _touched(ids)
    audit.record(
        "stop.armed",
        **actor_of(user),
        target=f"batch:{batch.id}",
        clients=ids,
        ip=ip,
        detail={
            "stop": stop,
            "target": target,
            "trail": trail,
            "direction": direction,
            "source": "ticket",
            "quantities": {str(c.client_id): c.quantity for c in children},
            "replaced": replaced,
        },
    )
    return len(children)


def edit(
    rule: StopRule,
    user: User,
    *,
    stop: Decimal | None,
    target: Decimal | None,
    trail: Decimal | None,
    quantity: int | None,
    price: Decimal | None = None,
    ip: str | None = None,
) -> StopRule:
    """A person changes an ARMED rule's levels (audited; the caller commits, then notify_changed).
    A changed trailing distance restarts its anchor at `price`."""
    if rule.state != ARMED:
        raise StopError({"stop": f"This rule is {rule.state.lower()}; arm a new one."})
    errors = validate_levels(rule.direction, price, stop, target, trail, rule.instrument.tick_size)
    errors.update(validate_quantity(quantity, rule.instrument.lot_size))
    if errors:
        raise StopError(errors)
    before = _levels(rule)
    if trail != rule.trail_distance:
        rule.trail_anchor = price if trail is not None else None
    rule.stop_price, rule.target_price, rule.trail_distance, rule.quantity = stop, target, trail, quantity
    _touched([rule.client_id])
    audit.record(
        "stop.edited",
        **actor_of(user),
        target=f"client:{rule.client_id}",
        clients=[rule.client_id],
        ip=ip,
        detail={"rule": rule.id, "before": before, "after": _levels(rule)},
    )
    return rule


def cancel(rule: StopRule, user: User | None, *, reason: str = "cancelled", ip: str | None = None) -> bool:
    """Cancel an ARMED rule (audited); False when it was no longer armed. Conditional, like firing:
    a rule that fired meanwhile stays FIRED."""
    if not _set_cancelled(rule, reason):
        return False
    audit.record(
        "stop.cancelled",
        **actor_of(user),
        target=f"client:{rule.client_id}",
        clients=[rule.client_id],
        ip=ip,
        detail={"rule": rule.id, "reason": reason},
    )
    return True


def _set_cancelled(rule: StopRule, reason: str) -> bool:
    changed = db.session.execute(
        sa.update(StopRule)
        .where(StopRule.id == rule.id, StopRule.state == ARMED)
        .values(state=CANCELLED, fired_reason=reason[:200], updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        db.session.refresh(rule)
        _touched([rule.client_id])
    return bool(changed)


def _levels(rule: StopRule) -> dict:
    return {
        "stop": rule.stop_price,
        "target": rule.target_price,
        "trail": rule.trail_distance,
        "quantity": rule.quantity,
        "direction": rule.direction,
    }


def notify_changed(redis) -> None:
    """After the commit: the feed's index reloads on its next step (it also reloads every few steps,
    so a lost increment only delays it), and `stops.changed` names the clients whose rules this
    session armed, edited, cancelled or fired since the last call (their position rows' chips are
    re-rendered on the pages showing them; a page refreshed shows them anyway)."""
    clients = sorted(db.session.info.pop(TOUCHED, ()))
    try:
        redis.incr(VERSION_KEY)
    except Exception as exc:  # noqa: BLE001  (Redis away: the periodic reload picks the change up)
        log.warning("op=stops.notify result=failed error=%s", exc)
        return
    if clients:
        events.publish(redis, CHANGED_EVENT, clients=clients)


def _touched(client_ids: Iterable[int]) -> None:
    """Remember, on the session, the clients whose rules changed: notify_changed names them."""
    db.session.info.setdefault(TOUCHED, set()).update(client_ids)


def rules_for_clients(client_ids: Iterable[int]) -> dict[tuple[int, int, str], StopRule]:
    """The ARMED rule of each position of these clients, by (client, instrument, product): the chips."""
    ids = list(client_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        sa.select(StopRule).where(StopRule.client_id.in_(ids), StopRule.state == ARMED).order_by(StopRule.id)
    ).scalars()
    return {(r.client_id, r.instrument_id, r.product): r for r in rows}


# ---------------------------------------------------------------- crossing (exact)


def stop_level(rule: StopRule | RuleView, anchor: Decimal | None = None) -> Decimal | None:
    """The price at which the rule's stop side fires: the fixed stop, the trailing level, or the
    tighter of the two."""
    anchor = anchor if anchor is not None else rule.trail_anchor
    levels = [rule.stop_price] if rule.stop_price is not None else []
    if rule.trail_distance is not None and anchor is not None:
        levels.append(anchor - rule.trail_distance * rule.direction)
    if not levels:
        return None
    return max(levels) if rule.direction == LONG else min(levels)


def crossing(rule: StopRule | RuleView, price: Decimal, anchor: Decimal | None = None) -> str | None:
    """'target', 'trail' or 'stop' when this price fires the rule (exact, in Decimal), else None."""
    d = rule.direction
    if rule.target_price is not None and (price - rule.target_price) * d >= 0:
        return "target"
    level = stop_level(rule, anchor)
    if level is None or (price - level) * d > 0:
        return None
    trailing = rule.trail_distance is not None and (anchor if anchor is not None else rule.trail_anchor) is not None
    if trailing and (rule.stop_price is None or (level - rule.stop_price) * d > 0):
        return "trail"
    return "stop"


# ---------------------------------------------------------------- firing


@dataclass
class Fired:
    """What one fire_many committed: the exit batch (None when nothing was left to exit), the rules
    it fired and the alerts it raised (announced after the commit)."""

    batch: Batch | None
    rule_ids: list[int]
    cancelled: list[int]


def fire(rule_id: int, price: Decimal, now: datetime | None = None, redis=None) -> Batch | None:
    """Fire one rule at this price: its exit batch, or None when this caller did not fire it (it
    was fired or cancelled already, is not crossed, or its position is not held)."""
    return fire_many([rule_id], price, now, redis).batch


def fire_many(
    rule_ids: Iterable[int],
    price: Decimal,
    now: datetime | None = None,
    redis=None,
    anchors: Mapping[int, Decimal] | None = None,
) -> Fired:
    """Fire these rules (see _fire_many). SQLite refuses a second writer whose read snapshot is
    stale (another evaluator committed first) instead of waiting: try again, and see them FIRED."""
    rule_ids = list(rule_ids)
    for attempt in range(3):
        try:
            return _fire_many(rule_ids, price, now, redis, anchors)
        except sa.exc.OperationalError:
            db.session.rollback()
            if attempt == 2 or db.engine.dialect.name != "sqlite":
                raise
    raise AssertionError("unreachable")


def _fire_many(
    rule_ids: list[int],
    price: Decimal,
    now: datetime | None,
    redis,
    anchors: Mapping[int, Decimal] | None,
) -> Fired:
    """Fire these rules of ONE instrument crossed by one tick at `price`, in one transaction: one
    conditional UPDATE (`WHERE state = 'ARMED'`) claims them, one exit batch holds a leg per
    claimed rule whose position is held, each fired rule gets its batch and an alert. Then commit,
    queue the batch's send and announce. Rules not crossed in Decimal are left alone; rules whose
    position is not held yet (an entry still open) stay ARMED; rules whose position is flat (or
    turned round) with nothing open are CANCELLED with the reason."""
    now = now or utcnow()
    anchors = anchors or {}
    rows = (
        db.session.execute(
            sa.select(StopRule).where(StopRule.id.in_(list(rule_ids)), StopRule.state == ARMED).order_by(StopRule.id)
        )
        .scalars()
        .all()
    )
    if not rows or len({r.instrument_id for r in rows}) != 1:
        db.session.rollback()
        if rows:
            raise ValueError("fire_many takes rules of one instrument")
        return Fired(None, [], [])
    kinds = {r.id: crossing(r, price, anchors.get(r.id)) for r in rows}
    rows = [r for r in rows if kinds[r.id]]
    if not rows:
        db.session.rollback()
        return Fired(None, [], [])
    instrument_id = rows[0].instrument_id
    clients = db.session.execute(sa.select(Client).where(Client.id.in_({r.client_id for r in rows}))).scalars().all()
    held = {(h.client.id, h.product): h for h in holders(list(clients), instrument_id)}
    ready, flat = [], []
    for rule in rows:
        holder = held.get((rule.client_id, rule.product))
        if holder is not None and holder.quantity * rule.direction > 0:
            ready.append((rule, holder))
        elif not _entry_open(rule):
            flat.append(rule)
    cancelled = _cancel_flat(flat)
    claimed = _claim([r.id for r, _ in ready], now, price, kinds)
    ready = [(r, h) for r, h in ready if r.id in claimed]
    if not ready:
        db.session.commit()
        if cancelled and redis is not None:
            notify_changed(redis)
        return Fired(None, [], cancelled)
    legs: dict[str, tuple[Holder, int]] = {}
    for rule, holder in ready:  # one leg per position (two rules on one position exit it once)
        want = min(rule.quantity or abs(holder.quantity), abs(holder.quantity))
        legs[holder.key] = (holder, max(want, legs.get(holder.key, (holder, 0))[1]))
    symbol = ready[0][1].instrument.tradingsymbol
    batch = create_exit_batch(
        None, "stop", list(legs.values()), instrument_id=instrument_id, note=f"stop rules fired at {price}"
    )
    alerts = _fired_alerts(ready, legs, kinds, anchors, price, batch, symbol)
    fired_ids = [r.id for r, _ in ready]
    if batch is not None:  # one statement, not one per rule
        db.session.execute(
            sa.update(StopRule)
            .where(StopRule.id.in_(fired_ids))
            .values(batch_id=batch.id)
            .execution_options(synchronize_session=False)
        )
    db.session.flush()
    for alert in alerts:  # kept as written (ids and all) for announce, without a refresh each after the commit
        db.session.expunge(alert)
    db.session.commit()
    if batch is not None:
        from webapp.trading.batch_requests import queue_send

        queue_send(batch.id)
    if redis is not None:
        notify_changed(redis)
        _announce_all(redis, alerts)
    log.info("op=stops.fire rules=%s batch=%s price=%s", fired_ids, batch.id if batch else None, price)
    return Fired(batch, fired_ids, cancelled)


def _announce_all(redis, alerts: list[RiskAlert]) -> None:
    """announce() each alert, in one round trip (a pipeline): a hundred clients' alerts must not
    hold the feed's step for a hundred round trips."""
    try:
        pipe = redis.pipeline(transaction=False)
        for alert in alerts:
            announce(pipe, alert)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001  (an event lost is a page refreshed later)
        log.warning("op=stops.announce result=failed count=%s error=%s", len(alerts), exc)


def _fired_alerts(
    ready: list[tuple[StopRule, Holder]],
    legs: dict[str, tuple[Holder, int]],
    kinds: dict[int, str | None],
    anchors: Mapping[int, Decimal],
    price: Decimal,
    batch: Batch | None,
    symbol: str,
) -> list[RiskAlert]:
    """The firing's alerts, as raise_alert writes them but for many clients at once: a RiskAlert per
    fired rule (the line each client's traders see) and ONE audit event per kind naming every
    client (raise_alert's event per alert costs a chained audit row each: 100 clients' stops would
    hold the exit back by a hundred of them). In the firing's transaction."""
    alerts, audited = [], {}
    batch_id = batch.id if batch else None
    for rule, holder in ready:
        kind = kinds[rule.id]
        level = rule.target_price if kind == "target" else stop_level(rule, anchors.get(rule.id))
        what = {"stop": "Stop-loss", "target": "Target", "trail": "Trailing stop"}[kind]
        message = (
            f"{what} fired for {holder.client.name} {symbol} {rule.product} at ₹{rupees(price)} "
            f"(level ₹{rupees(level)}): exit {legs[holder.key][1]} of {abs(holder.quantity)}"
        )
        alerts.append(
            RiskAlert(
                kind=FIRE_KINDS[kind],
                level="amber" if kind == "target" else "red",
                message=message[:400],
                client_id=rule.client_id,
                deployment_id=rule.deployment_id,
                batch_id=batch_id,
            )
        )
        audited.setdefault(kind, []).append((rule, level, message))
    db.session.add_all(alerts)
    for kind, fired in audited.items():
        ids = [rule.client_id for rule, _, _ in fired]
        audit.record(
            FIRE_KINDS[kind],
            target=f"client:{ids[0]}" if len(ids) == 1 else f"batch:{batch_id}",
            clients=ids,
            detail={
                "price": price,
                "batch": batch_id,
                "rules": [{"rule": r.id, "client": r.client_id, "level": lv, "message": m} for r, lv, m in fired],
            },
        )
    return alerts


def _claim(rule_ids: list[int], now: datetime, price: Decimal, kinds: dict[int, str | None]) -> set[int]:
    """The conditional UPDATE: ARMED → FIRED for those still ARMED; the ids this caller changed."""
    claimed: set[int] = set()
    for kind in {kinds[i] for i in rule_ids}:  # one statement per kind (the reason differs), usually one
        ids = [i for i in rule_ids if kinds[i] == kind]
        result = db.session.execute(
            sa.update(StopRule)
            .where(StopRule.id.in_(ids), StopRule.state == ARMED)
            .values(state=FIRED, fired_at=now, fired_price=price, fired_reason=kind, updated_at=now)
            .returning(StopRule.id)
            .execution_options(synchronize_session=False)
        )
        claimed.update(result.scalars())
    if claimed:  # the claimed rows as now stored, in one SELECT (not a refresh per rule)
        rows = db.session.execute(
            sa.select(StopRule).where(StopRule.id.in_(claimed)).execution_options(populate_existing=True)
        ).scalars()
        _touched(rule.client_id for rule in rows)
    return claimed


def _entry_open(rule: StopRule) -> bool:
    """An order of this client on this instrument and product is still on its way or at the broker:
    the position the rule protects may still come (or grow)."""
    return (
        db.session.execute(
            sa.select(Order.id)
            .where(
                Order.client_id == rule.client_id,
                Order.instrument_id == rule.instrument_id,
                Order.product == rule.product,
                Order.status.in_(states.AT_BROKER | states.IN_FLIGHT),
            )
            .limit(1)
        ).first()
        is not None
    )


def _cancel_flat(rules: list[StopRule]) -> list[int]:
    done = []
    for rule in rules:
        if cancel(rule, None, reason="position flat: nothing left to protect"):
            done.append(rule.id)
    return done


def cancel_flat(redis=None) -> list[int]:
    """Every ARMED rule whose position is flat or turned round, with none of its orders open →
    CANCELLED with the reason (the feed calls this when it reloads its index). The ids cancelled."""
    rules = db.session.execute(sa.select(StopRule).where(StopRule.state == ARMED)).scalars().all()
    if not rules:
        db.session.rollback()
        return []
    clients = db.session.execute(sa.select(Client).where(Client.id.in_({r.client_id for r in rules}))).scalars().all()
    held = {(h.client.id, h.instrument.id, h.product): h.quantity for h in holders(list(clients))}
    flat = [
        r
        for r in rules
        if held.get((r.client_id, r.instrument_id, r.product), 0) * r.direction <= 0 and not _entry_open(r)
    ]
    done = _cancel_flat(flat)
    db.session.commit()
    if done and redis is not None:
        notify_changed(redis)
    return done


# ---------------------------------------------------------------- the feed's index


@dataclass
class RuleView:
    """What the index keeps of an ARMED rule (exact values; floats only in the arrays)."""

    id: int
    direction: int
    stop_price: Decimal | None
    target_price: Decimal | None
    trail_distance: Decimal | None
    trail_anchor: Decimal | None


class _Book:
    """One instrument's ARMED rules as arrays. Directions are folded in: for every rule, with
    d = ±1, it fires when d·price ≤ d·stop_level or d·price ≥ d·target."""

    def __init__(self, views: list[RuleView]):
        self.views = views
        n = len(views)
        self.ids = np.array([v.id for v in views], dtype=np.int64)
        self.d = np.array([v.direction for v in views], dtype=np.float64)
        inf = np.inf
        self.stop = np.array(
            [float(v.stop_price) * v.direction if v.stop_price is not None else -inf for v in views], dtype=np.float64
        )
        self.target = np.array(
            [float(v.target_price) * v.direction if v.target_price is not None else inf for v in views],
            dtype=np.float64,
        )
        self.dist = np.array(
            [float(v.trail_distance) if v.trail_distance is not None else np.nan for v in views], dtype=np.float64
        )
        # the anchor folded: d·anchor (the best price is the highest of d·price); NaN: not known yet
        self.anchor = np.array(
            [float(v.trail_anchor) * v.direction if v.trail_anchor is not None else np.nan for v in views],
            dtype=np.float64,
        )
        self.trailing = ~np.isnan(self.dist)
        self.exact_anchor: dict[int, Decimal | None] = {v.id: v.trail_anchor for v in views}
        self.size = n

    def check(self, price: Decimal) -> tuple[list[RuleView], list[RuleView]]:
        """(rules this price may fire — confirmed in Decimal by the caller, rules whose anchor moved)."""
        p = float(price)
        dp = self.d * p
        moved_views: list[RuleView] = []
        if self.trailing.any():
            moved = self.trailing & (np.isnan(self.anchor) | (dp > self.anchor))
            if moved.any():
                self.anchor[moved] = dp[moved]
                for i in np.flatnonzero(moved):
                    view = self.views[i]
                    view.trail_anchor = price
                    moved_views.append(view)
        level = self.stop
        if self.trailing.any():
            trail_level = np.where(self.trailing, self.anchor - self.dist, -np.inf)
            level = np.fmax(level, trail_level)
        eps = 1e-6 * max(1.0, abs(p))  # floats only pick candidates; Decimal decides
        hit = (dp <= level + eps) | (dp >= self.target - eps)
        return [self.views[i] for i in np.flatnonzero(hit)], moved_views


class StopIndex:
    """The feed process's in-memory index of ARMED rules per instrument token. `refresh` reloads it
    when the Redis counter changed (or every `reload_every` steps: robust to a lost increment);
    `check(quotes)` returns the crossed rules per instrument and persists moved trailing anchors
    (one write per moved rule per step)."""

    def __init__(self, reload_every: int = 30):
        self.reload_every = reload_every
        self.books: dict[int, _Book] = {}
        self.instrument_of: dict[int, int] = {}  # token → instrument id
        self.version: bytes | str | None = None
        self.steps_since_reload = reload_every  # the first refresh loads
        self.count = 0

    def refresh(self, redis, force: bool = False) -> bool:
        """Reload from the database when needed; True when it did."""
        try:
            version = redis.get(VERSION_KEY)
        except Exception:  # noqa: BLE001  (Redis away: keep the index; the periodic reload still runs)
            version = self.version
        self.steps_since_reload += 1
        if not force and version == self.version and self.steps_since_reload < self.reload_every:
            return False
        cancel_flat(redis)
        self.load()
        self.version, self.steps_since_reload = version, 0
        return True

    def load(self) -> None:
        rows = db.session.execute(
            sa.select(
                StopRule.id,
                StopRule.direction,
                StopRule.stop_price,
                StopRule.target_price,
                StopRule.trail_distance,
                StopRule.trail_anchor,
                Instrument.instrument_token,
                Instrument.id,
            )
            .join(Instrument, Instrument.id == StopRule.instrument_id)
            .where(StopRule.state == ARMED)
        ).all()
        db.session.rollback()
        by_token: dict[int, list[RuleView]] = {}
        self.instrument_of = {}
        for row in rows:
            by_token.setdefault(int(row.instrument_token), []).append(RuleView(*row[:6]))
            self.instrument_of[int(row.instrument_token)] = row[7]
        self.books = {token: _Book(views) for token, views in by_token.items()}
        self.count = len(rows)

    def on_quotes(self, redis, quotes: Mapping[int, object], now: datetime | None = None) -> list[Fired]:
        """The feed's per-step hook: reload if the rules changed, then check this step's last prices."""
        self.refresh(redis)
        if not self.books:
            return []
        return self.check({t: q.last_price for t, q in quotes.items() if t in self.books}, redis, now)

    def tokens(self) -> set[int]:
        return set(self.books)

    def candidates(self, prices: Mapping[int, Decimal]) -> tuple[dict[int, list[RuleView]], list[RuleView]]:
        """No database: (token → rules crossed in Decimal at its price, rules whose anchor moved)."""
        crossed: dict[int, list[RuleView]] = {}
        moved: list[RuleView] = []
        for token, price in prices.items():
            book = self.books.get(token)
            if book is None:
                continue
            hits, book_moved = book.check(price)
            moved += book_moved
            exact = [v for v in hits if crossing(v, price) is not None]
            if exact:
                crossed[token] = exact
        return crossed, moved

    def check(self, prices: Mapping[int, Decimal], redis=None, now: datetime | None = None) -> list[Fired]:
        """One feed step: move anchors (persisted), fire what the prices crossed (one fire_many per
        instrument). Returns what was fired."""
        crossed, moved = self.candidates(prices)
        if moved:
            persist_anchors([(v.id, v.trail_anchor) for v in moved])
        fired = []
        for token, views in crossed.items():
            try:
                result = fire_many(
                    [v.id for v in views],
                    prices[token],
                    now,
                    redis,
                    anchors={v.id: v.trail_anchor for v in views if v.trail_anchor is not None},
                )
            except Exception:  # one instrument's trouble must not stop the others' stops
                db.session.rollback()
                log.exception("op=stops.fire token=%s result=error", token)
                continue
            fired.append(result)
            if result.rule_ids or result.cancelled:
                self._drop(token, set(result.rule_ids) | set(result.cancelled))
        return fired

    def _drop(self, token: int, rule_ids: set[int]) -> None:
        book = self.books.get(token)
        if book is None:
            return
        views = [v for v in book.views if v.id not in rule_ids]
        if views:
            self.books[token] = _Book(views)
        else:
            del self.books[token]


def persist_anchors(moved: list[tuple[int, Decimal | None]]) -> None:
    """Write moved trailing anchors (only while still ARMED): one executemany per feed step."""
    if not moved:
        return
    table = StopRule.__table__
    db.session.execute(
        table.update()
        .where(table.c.id == sa.bindparam("rid"), table.c.state == ARMED)
        .values(trail_anchor=sa.bindparam("anchor")),
        [{"rid": rule_id, "anchor": anchor} for rule_id, anchor in moved],
    )
    db.session.commit()
