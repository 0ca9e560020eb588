"""The desk's day ends as the brokers' does: the intraday square-off once a day and never late, and
the day-end roll across a simulated midnight (delivery buys → holdings, day P&L and counters fresh),
caught up after a missed night, consistent with the paper exchange's own roll."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa

from jobs.risk import run_day
from tests.automation.test_breakers import buy, mis_sells, paper_orders, pass_at
from tests.live.test_reprice import price
from tests.orders.conftest import desk  # noqa: F401  (the shared fixture)
from webapp.brokers.paper import PaperExchange
from webapp.extensions import db, get_redis
from webapp.models import Batch, DailyPnl, DeskState, Holding, Order, Position, RiskAlert
from webapp.timeutil import IST, utcnow
from webapp.trading import sync
from webapp.trading.risk import day_pnl, orders_today

D = Decimal
MONDAY = datetime(2025, 1, 6, tzinfo=IST).date()
TUESDAY = MONDAY + timedelta(days=1)
FRIDAY = MONDAY + timedelta(days=4)


def at(day, hour, minute=0) -> datetime:
    return datetime.combine(day, time(hour, minute), IST)


def day_tick(app, now) -> dict:
    with app.app_context():
        result = run_day(get_redis(), app.config, now)
        db.session.remove()
        return result


def rows(app, query):
    with app.app_context():
        found = db.session.execute(query).scalars().all()
        db.session.expunge_all()
        return found


def kinds(app) -> list[str]:
    return [a.kind for a in rows(app, sa.select(RiskAlert).order_by(RiskAlert.id))]


def squareoff_batches(app) -> list[Batch]:
    return rows(app, sa.select(Batch).where(Batch.kind == "square_off"))


def state(app) -> DeskState:
    with app.app_context():
        found = db.session.get(DeskState, 1)
        db.session.expunge(found)
        return found


# ---------------------------------------------------------------------------- intraday square-off


def test_the_square_off_exits_every_real_clients_mis_once_a_day(app, desk, factory, services, encryption_key):
    alpha, beta = desk.paper_client("Alpha"), desk.paper_client("Beta")
    twin = desk.paper_client("Twin", twin_of_id=alpha.id)  # a deployment's twin: its own square-off
    buy(app, desk, factory, alpha, qty=7)
    buy(app, desk, factory, alpha, qty=3, product="CNC")  # delivery stays
    buy(app, desk, factory, beta, qty=4)
    buy(app, desk, factory, twin, qty=2)
    assert day_tick(app, at(MONDAY, 15, 14)) == {"squareoff": None, "rolled": None}
    assert squareoff_batches(app) == []

    assert day_tick(app, at(MONDAY, 15, 15))["squareoff"] == "squareoff.done"
    (batch,) = squareoff_batches(app)
    legs = rows(app, sa.select(Order).where(Order.batch_id == batch.id).order_by(Order.client_id))
    assert [(o.client_id, o.side, o.product, o.quantity) for o in legs] == [
        (alpha.id, "SELL", "MIS", 7),
        (beta.id, "SELL", "MIS", 4),
    ]
    assert batch.user_id is None and state(app).last_squareoff_day == MONDAY

    # again later the same day, and after a restart (the marker is in the database): nothing more
    day_tick(app, at(MONDAY, 15, 16))
    from tests.conftest import make_app

    restarted = make_app(services, encryption_key)
    day_tick(restarted, at(MONDAY, 15, 20))
    with restarted.app_context():
        db.engine.dispose()
    assert len(squareoff_batches(app)) == 1 and kinds(app) == ["squareoff.done"]

    desk.run_worker()
    assert [o.quantity for o in mis_sells(app, alpha)] == [7]
    assert [o.quantity for o in mis_sells(app, beta)] == [4]
    assert mis_sells(app, twin) == []
    assert not [o for o in paper_orders(app, alpha) if o.product.value == "CNC" and o.side.value == "SELL"]

    # the next trading day has its own square-off
    buy(app, desk, factory, beta, qty=1)
    day_tick(app, at(TUESDAY, 15, 15))
    assert len(squareoff_batches(app)) == 2 and state(app).last_squareoff_day == TUESDAY


def test_the_square_off_time_is_the_desks(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha)
    with app.app_context():
        db.session.add(DeskState(id=1, squareoff_time=time(14, 50)))
        db.session.commit()
    day_tick(app, at(MONDAY, 14, 49))
    assert squareoff_batches(app) == []
    day_tick(app, at(MONDAY, 14, 50))
    assert len(squareoff_batches(app)) == 1


def test_no_square_off_on_a_weekend(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha)
    day_tick(app, at(MONDAY - timedelta(days=2), 15, 15))  # Saturday
    assert squareoff_batches(app) == []


def test_a_square_off_missed_while_the_desk_was_down_is_not_sent_late(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha)
    day_tick(app, at(MONDAY, 15, 31))  # the desk comes back after the close
    assert squareoff_batches(app) == []
    (alert,) = rows(app, sa.select(RiskAlert).where(RiskAlert.kind == "squareoff.missed"))
    assert alert.level == "red" and "not sent" in alert.message
    desk.run_worker()
    assert rows(app, sa.select(Order).where(Order.side == "SELL")) == []  # the desk sent nothing
    # what is left open is the broker's to square off (the paper exchange does at its day roll)
    assert [o.status_message for o in mis_sells(app, alpha)] == ["Squared off at the day roll"]
    day_tick(app, at(MONDAY, 15, 40))
    assert kinds(app).count("squareoff.missed") == 1


# ---------------------------------------------------------------------------- the day roll


def test_the_roll_across_midnight(app, desk, factory):
    alpha = desk.paper_client("Alpha", max_orders_per_day=5)
    buy(app, desk, factory, alpha, qty=10, product="CNC")
    buy(app, desk, factory, alpha, qty=5)  # MIS
    price(app, desk, "1538.30")
    pass_at(app, at(MONDAY, 14))
    day_tick(app, at(MONDAY, 15, 15))  # the MIS is squared off at the bid
    desk.run_worker()
    with app.app_context():
        db.session.execute(sa.update(Order).values(created_at=at(MONDAY, 11)))  # placed on the simulated Monday
        db.session.commit()
        sync.sync_client(alpha.id, desk.context())
        assert day_pnl([alpha.id])[alpha.id] == D("-150.5000")  # MIS sold at the bid: −₹50.50; CNC open: −₹100
        assert orders_today([alpha.id], now=at(MONDAY, 15, 20)) == {alpha.id: 3}

    assert day_tick(app, at(MONDAY, 15, 29))["rolled"] is None  # not before the close
    assert day_tick(app, at(MONDAY, 15, 45))["rolled"] == "dayend.rolled"
    assert state(app).last_rolled_day == MONDAY
    (holding,) = rows(app, sa.select(Holding).where(Holding.client_id == alpha.id))
    assert (holding.quantity, holding.t1_quantity, holding.average_price, holding.rolled_day) == (
        0,
        10,
        D("1548.3000"),
        MONDAY,
    )
    assert rows(app, sa.select(Position).where(Position.client_id == alpha.id)) == []  # both rows closed out
    (monday,) = rows(app, sa.select(DailyPnl).where(DailyPnl.client_id == alpha.id))
    assert (monday.day, monday.realized, monday.unrealized) == (MONDAY, D("-50.5000"), D("-100.0000"))

    # the paper exchange rolled the same day: its holdings are what the desk shows, so a sync agrees
    with app.app_context():
        (paper,) = PaperExchange(db.engine, redis=get_redis()).holdings(alpha.client_code)
        assert (paper.quantity, paper.t1_quantity, paper.average_price) == (0, 10, D("1548.3000"))
        sync.sync_client(alpha.id, desk.context())
    (holding,) = rows(app, sa.select(Holding).where(Holding.client_id == alpha.id))
    assert (holding.quantity, holding.t1_quantity, holding.average_price) == (0, 10, D("1548.3000"))

    # later the same evening a repricing pass does not rewrite Monday's final row
    pass_at(app, at(MONDAY, 20))
    (again,) = rows(app, sa.select(DailyPnl).where(DailyPnl.client_id == alpha.id))
    assert again.realized == monday.realized and again.unrealized == monday.unrealized

    # past midnight: day P&L, the breaker's limits and the counters start afresh
    with app.app_context():
        assert day_pnl([alpha.id]) == {}
        assert orders_today([alpha.id], now=at(TUESDAY, 9, 30)) == {}
    assert day_tick(app, at(TUESDAY, 9, 30)) == {"squareoff": None, "rolled": None}  # rolled once
    assert kinds(app).count("dayend.rolled") == 1

    # Tuesday's delivery buy rolls on Tuesday evening; Monday's T1 settles first
    buy(app, desk, factory, alpha, qty=4, product="CNC")
    assert day_tick(app, at(TUESDAY, 16))["rolled"] == "dayend.rolled"
    (holding,) = rows(app, sa.select(Holding).where(Holding.client_id == alpha.id))
    assert (holding.quantity, holding.t1_quantity, holding.rolled_day) == (10, 4, TUESDAY)
    assert holding.average_price == D("1545.4714")  # (10 × 1548.30 + 4 × 1538.40, the ask now) ÷ 14
    with app.app_context():
        (paper,) = PaperExchange(db.engine, redis=get_redis()).holdings(alpha.client_code)
        assert (paper.quantity, paper.t1_quantity, paper.average_price) == (10, 4, D("1545.4714"))


def test_a_missed_roll_catches_up_at_start(app, desk, factory):
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, qty=6, product="CNC")
    with app.app_context():
        db.session.add(DeskState(id=1, last_rolled_day=FRIDAY - timedelta(days=7)))
        db.session.commit()
    # the desk was down from Friday afternoon until Monday morning: Friday rolls at start
    assert day_tick(app, at(FRIDAY + timedelta(days=3), 8))["rolled"] == "dayend.rolled"
    assert state(app).last_rolled_day == FRIDAY
    (holding,) = rows(app, sa.select(Holding).where(Holding.client_id == alpha.id))
    assert (holding.t1_quantity, holding.rolled_day) == (6, FRIDAY)
    with app.app_context():  # the paper exchange rolled as of Friday's close too
        (paper,) = PaperExchange(db.engine, redis=get_redis()).holdings(alpha.client_code)
        assert paper.t1_quantity == 6
    assert day_tick(app, at(FRIDAY + timedelta(days=3), 8, 1))["rolled"] is None


def test_the_sync_does_not_fight_the_roll_until_the_broker_has_rolled(app, desk, factory):
    """A broker that has not rolled yet still lists the buy as a position and no holding: the
    desk's rolled row stays until 09:00 IST the next day; after that the broker's books are mirrored."""
    alpha = desk.paper_client("Alpha")
    buy(app, desk, factory, alpha, qty=8, product="CNC")
    today = utcnow().astimezone(IST).date()
    with app.app_context():
        from webapp.automation.dayend import _roll_positions

        _roll_positions(today)  # the desk's roll alone (the broker's comes overnight)
        db.session.commit()
        sync.sync_client(alpha.id, desk.context())
    (holding,) = rows(app, sa.select(Holding).where(Holding.client_id == alpha.id))
    assert (holding.t1_quantity, holding.rolled_day) == (8, today)
    with app.app_context():
        db.session.execute(sa.update(Holding).values(rolled_day=today - timedelta(days=2)))
        db.session.commit()
        sync.sync_client(alpha.id, desk.context())  # the broker's word again: it shows no holding
    assert rows(app, sa.select(Holding).where(Holding.client_id == alpha.id)) == []
