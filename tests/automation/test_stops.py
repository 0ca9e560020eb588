"""Stop rules that act by themselves (issue 12 item 5): validation, firing exactly once under
repeated ticks, two evaluators and a restart, trailing, target, partial quantity, cancelled when
flat, and a paper-exchange end to end. Exits are counted at the broker's own books."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.orders.conftest import Desk
from webapp.automation import stops
from webapp.extensions import db, get_redis
from webapp.models import Batch, Order, RiskAlert, StopRule
from webapp.models.automation import ARMED, CANCELLED, FIRED
from webapp.models.paper import PaperOrder
from webapp.trading import engine, sync

D = Decimal


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


def buy(app, desk, factory, client, qty: int, side: str = "BUY") -> None:
    """The client holds `qty` INFY intraday (filled at the paper exchange and synced into the ledger)."""
    batch = factory.batch(factory.user(role="admin"), [client], desk.instrument, quantity=qty, side=side)
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(client.id, desk.context())


def arm(app, desk, client, price="1548.20", **levels) -> int:
    with app.app_context():
        rule = stops.arm(
            client_id=client.id,
            instrument_id=desk.instrument.id,
            product="MIS",
            direction=levels.pop("direction", 1),
            source="position",
            price=D(price),
            **levels,
        )
        db.session.commit()
        return rule.id


def rule(app, rule_id) -> StopRule:
    with app.app_context():
        found = db.session.get(StopRule, rule_id)
        db.session.expunge(found)
        return found


def stop_batches(app) -> list[Batch]:
    with app.app_context():
        return db.session.execute(sa.select(Batch).where(Batch.kind == "stop").order_by(Batch.id)).scalars().all()


def exit_children(app) -> list[Order]:
    with app.app_context():
        return (
            db.session.execute(
                sa.select(Order).join(Batch, Order.batch_id == Batch.id).where(Batch.kind == "stop").order_by(Order.id)
            )
            .scalars()
            .all()
        )


def paper_sells(app) -> Counter:
    with app.app_context():
        return Counter(db.session.execute(sa.select(PaperOrder.tag).where(PaperOrder.side == "SELL")).scalars())


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("direction", "stop", "target", "trail", "field", "words"),
    [
        (1, "1550.00", None, None, "stop", "below the price"),
        (-1, "1540.00", None, None, "stop", "above the price"),
        (1, None, "1540.00", None, "target", "above the price"),
        (-1, None, "1560.00", None, "target", "below the price"),
        (1, None, None, "0", "trail", "above zero"),
        (1, None, None, "-5", "trail", "above zero"),
        (1, "1540.05", None, None, "stop", "tick size ₹0.1"),
        (1, None, "1560.01", None, "target", "tick size"),
        (1, None, None, "2000.00", "trail", "below the price"),
        (1, None, None, None, "stop", "Set a stop"),
        (0, "1540.00", None, None, "direction", "long"),
    ],
)
def test_levels_on_the_wrong_side_or_off_the_grid_are_refused_by_field(direction, stop, target, trail, field, words):
    errors = stops.validate_levels(
        direction, D("1548.20"), *(D(v) if v is not None else None for v in (stop, target, trail)), D("0.10")
    )
    assert field in errors and words in errors[field], errors


def test_good_levels_pass():
    assert stops.validate_levels(1, D("1548.20"), D("1540.00"), D("1560.00"), D("5.00"), D("0.10")) == {}
    assert stops.validate_levels(-1, D("1548.20"), D("1560.00"), D("1530.00"), D("5.00"), D("0.10")) == {}
    assert stops.validate_levels(1, None, D("1540.00"), None, None, D("0.10")) == {}


def test_arm_refuses_bad_levels_and_saves_nothing(app, desk, factory):
    client = desk.paper_client("Alpha")
    with app.app_context():
        with pytest.raises(stops.StopError) as refused:
            stops.arm(
                client_id=client.id,
                instrument_id=desk.instrument.id,
                product="MIS",
                direction=1,
                stop=D("1550.00"),
                quantity=0,
                source="position",
                price=D("1548.20"),
            )
        db.session.rollback()
        assert set(refused.value.errors) == {"stop", "quantity"}
        assert db.session.execute(sa.select(sa.func.count()).select_from(StopRule)).scalar_one() == 0


def test_arming_again_replaces_the_positions_rule(app, desk, factory):
    client = desk.paper_client("Alpha")
    first = arm(app, desk, client, stop=D("1540.00"))
    second = arm(app, desk, client, stop=D("1530.00"))
    assert rule(app, first).state == CANCELLED and rule(app, second).state == ARMED


# ---------------------------------------------------------------- firing once


def test_a_stop_fires_once_under_repeated_ticks(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 10)
    rule_id = arm(app, desk, alpha, stop=D("1540.00"))
    index = stops.StopIndex()
    with app.app_context():
        redis = get_redis()
        index.refresh(redis, force=True)
        assert index.check({desk.instrument.instrument_token: D("1545.00")}, redis) == []  # not crossed
        for _ in range(5):  # the tick repeats, and the price keeps falling
            index.check({desk.instrument.instrument_token: D("1539.90")}, redis)
            index.check({desk.instrument.instrument_token: D("1530.00")}, redis)
            stops.fire(rule_id, D("1530.00"))  # a direct caller too
        index.refresh(redis, force=True)  # a reload (a restarted feed) finds nothing armed
        assert index.count == 0
    fired = rule(app, rule_id)
    assert fired.state == FIRED and fired.fired_price == D("1539.90") and fired.fired_reason == "stop"
    [batch] = stop_batches(app)
    assert fired.batch_id == batch.id and batch.user_id is None
    assert [(o.side, o.quantity, o.status) for o in exit_children(app)] == [("SELL", 10, "NEW")]
    with app.app_context():
        alerts = db.session.execute(sa.select(RiskAlert.kind, RiskAlert.client_id)).all()
    assert alerts == [("stop.fired", alpha.id)]
    desk.run_worker()  # the queued send: the exit reaches the paper exchange once
    assert paper_sells(app) == Counter({exit_children(app)[0].tag: 1})


def test_two_evaluators_at_once_fire_it_once(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 10)
    rule_id = arm(app, desk, alpha, stop=D("1540.00"))
    results, start = [], threading.Barrier(4)

    def evaluator():
        with app.app_context():
            start.wait()
            try:
                results.append(stops.fire(rule_id, D("1535.00")))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=evaluator) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4
    assert sum(1 for r in results if r is not None) == 1
    assert len(stop_batches(app)) == 1 and len(exit_children(app)) == 1


def test_partial_quantity_exits_only_that_many(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 10)
    arm(app, desk, alpha, stop=D("1540.00"), quantity=4)
    with app.app_context():
        index = stops.StopIndex()
        index.refresh(get_redis(), force=True)
        index.check({desk.instrument.instrument_token: D("1540.00")}, get_redis())  # at the stop: fires
    assert [(o.side, o.quantity) for o in exit_children(app)] == [("SELL", 4)]


def test_quantity_beyond_the_position_exits_what_is_held(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 3)
    rule_id = arm(app, desk, alpha, stop=D("1540.00"), quantity=50)
    with app.app_context():
        stops.fire(rule_id, D("1500.00"))
    assert [(o.side, o.quantity) for o in exit_children(app)] == [("SELL", 3)]


def test_target_on_a_short_fires_below(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 5, side="SELL")  # short 5
    rule_id = arm(app, desk, alpha, direction=-1, stop=D("1560.00"), target=D("1530.00"))
    with app.app_context():
        index = stops.StopIndex()
        index.refresh(get_redis(), force=True)
        index.check({desk.instrument.instrument_token: D("1535.00")}, get_redis())
        assert stop_batches(app) == []
        index.check({desk.instrument.instrument_token: D("1530.00")}, get_redis())
        kinds = db.session.execute(sa.select(RiskAlert.kind)).scalars().all()
    assert rule(app, rule_id).fired_reason == "target" and kinds == ["target.fired"]
    assert [(o.side, o.quantity) for o in exit_children(app)] == [("BUY", 5)]


def test_trailing_stop_follows_the_best_price_then_fires(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 10)
    rule_id = arm(app, desk, alpha, trail=D("5.00"))
    token = desk.instrument.instrument_token
    with app.app_context():
        redis = get_redis()
        index = stops.StopIndex()
        index.refresh(redis, force=True)
        for price in ("1550.00", "1556.40", "1553.00", "1560.00"):  # the anchor rises to 1560, never falls
            index.check({token: D(price)}, redis)
        assert rule(app, rule_id).trail_anchor == D("1560.00")  # persisted when it moved
        index.refresh(redis, force=True)  # a restart keeps the anchor
        index.check({token: D("1555.10")}, redis)  # above 1555.00: nothing
        assert stop_batches(app) == []
        index.check({token: D("1555.00")}, redis)
    fired = rule(app, rule_id)
    assert fired.state == FIRED and fired.fired_reason == "trail" and fired.fired_price == D("1555.00")
    with app.app_context():
        assert db.session.execute(sa.select(RiskAlert.kind)).scalars().all() == ["trail.fired"]


def test_a_rule_waits_for_its_entry_then_is_cancelled_when_flat(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    entry = factory.batch(factory.user(role="admin"), [alpha], desk.instrument, quantity=5)  # NEW: not sent yet
    rule_id = arm(app, desk, alpha, stop=D("1540.00"))
    with app.app_context():
        index = stops.StopIndex()
        index.refresh(get_redis(), force=True)
        index.check({desk.instrument.instrument_token: D("1530.00")}, get_redis())
    assert rule(app, rule_id).state == ARMED and stop_batches(app) == []  # the entry is still on its way
    with app.app_context():
        engine.send_batch(entry.id, desk.context())
        sync.sync_client(alpha.id, desk.context())
    buy(app, desk, factory, alpha, 5, side="SELL")  # exited elsewhere: flat
    with app.app_context():
        assert stops.cancel_flat(get_redis()) == [rule_id]
    flat = rule(app, rule_id)
    assert flat.state == CANCELLED and "flat" in flat.fired_reason and stop_batches(app) == []


def test_a_person_cancels_and_edits_audited(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    tara = factory.user("tara", role="trader", clients=[alpha])
    rule_id = arm(app, desk, alpha, stop=D("1540.00"))
    with app.app_context():
        found = db.session.get(StopRule, rule_id)
        with pytest.raises(stops.StopError):
            stops.edit(found, tara, stop=D("1549.00"), target=None, trail=None, quantity=None, price=D("1548.20"))
        db.session.rollback()
        found = db.session.get(StopRule, rule_id)
        stops.edit(found, tara, stop=D("1545.00"), target=None, trail=None, quantity=None, price=D("1548.20"))
        db.session.commit()
        assert stops.cancel(db.session.get(StopRule, rule_id), tara)
        db.session.commit()
        assert not stops.cancel(db.session.get(StopRule, rule_id), tara)  # once
        from webapp.models import AuditEvent

        actions = db.session.execute(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).scalars().all()
    assert actions[-3:] == ["stop.armed", "stop.edited", "stop.cancelled"]
    assert rule(app, rule_id).stop_price == D("1545.00")


def test_paper_end_to_end_the_feed_tick_crosses_and_the_exit_fills(app, desk, factory):
    """The feed process's own step: a paper tick below the stop → the exit batch → filled at the
    paper exchange → the position is flat."""
    from datetime import timedelta

    from webapp.brokers.base import DepthLevel, Quote
    from webapp.marketfeed.feed import Feed
    from webapp.models import Position
    from webapp.timeutil import utcnow

    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, 10)
    rule_id = arm(app, desk, alpha, stop=D("1540.00"))
    token = desk.instrument.instrument_token

    def source(now, wanted):
        price = prices.pop(0)
        depth = {"bids": (DepthLevel(price - D("0.10"), 500, 3),), "asks": (DepthLevel(price + D("0.10"), 500, 3),)}
        return {token: Quote(exchange="NSE", tradingsymbol="INFY", last_price=price, timestamp=now, **depth)}

    prices = [D("1546.00"), D("1539.00"), D("1538.00")]
    feed = Feed(app, source)
    now = utcnow()
    for step in range(3):
        feed.step(now + timedelta(seconds=step))
    assert rule(app, rule_id).state == FIRED and len(stop_batches(app)) == 1
    desk.run_worker()
    with app.app_context():
        sync.sync_client(alpha.id, desk.context())
        held = db.session.execute(sa.select(Position.quantity).where(Position.client_id == alpha.id)).scalar_one()
    assert [(o.status, o.reason) for o in exit_children(app)] == [("COMPLETE", "")]
    assert held == 0
