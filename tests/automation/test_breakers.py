"""Loss and drawdown breakers, run by the repricing pass: a client crossing its limit is flattened
(its MIS exit sent, counted at the paper exchange) and blocked, and stays blocked through more
passes and a restart until a person re-arms it; the desk's limit engages the desk kill switch once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from jobs.context import use_app
from jobs.market import reprice
from tests.conftest import make_app
from tests.live.test_reprice import price
from tests.orders.conftest import desk  # noqa: F401  (the shared fixture)
from webapp.brokers.paper import PaperExchange
from webapp.extensions import db, get_redis
from webapp.models import AuditEvent, Batch, Client, DailyPnl, DeskState, Order, Position, RiskAlert
from webapp.timeutil import IST
from webapp.trading import engine, sync
from webapp.trading.risk import check_children

D = Decimal
MONDAY = datetime(2025, 1, 6, 11, 0, tzinfo=IST)  # a trading day, market open
SATURDAY = datetime(2025, 1, 11, 11, 0, tzinfo=IST)


def buy(app, desk, factory, client, qty=10, product="MIS"):
    batch = factory.batch(factory.user(role="admin"), [client], desk.instrument, quantity=qty, product=product)
    with app.app_context():
        engine.send_batch(batch.id, desk.context())
        sync.sync_client(client.id, desk.context())


def pass_at(app, now=MONDAY) -> int:
    """One repricing pass, as cron runs it (the job), at a simulated time."""
    use_app(app)
    return reprice(now)


def paper_orders(app, client) -> list:
    with app.app_context():
        return PaperExchange(db.engine, redis=get_redis()).order_book(client.client_code)


def stored(app, model, ident):
    with app.app_context():
        row = db.session.get(model, ident)
        db.session.expunge(row)
        return row


def alerts(app, kind=None) -> list[RiskAlert]:
    with app.app_context():
        query = sa.select(RiskAlert).order_by(RiskAlert.id)
        if kind:
            query = query.where(RiskAlert.kind == kind)
        rows = db.session.execute(query).scalars().all()
        db.session.expunge_all()
        return rows


def kill_batches(app) -> list[Batch]:
    with app.app_context():
        rows = db.session.execute(sa.select(Batch).where(Batch.kind == "kill_switch")).scalars().all()
        db.session.expunge_all()
        return rows


def mis_sells(app, client) -> list:
    return [o for o in paper_orders(app, client) if o.side.value == "SELL" and o.product.value == "MIS"]


def test_a_client_crossing_its_daily_loss_is_flattened_and_blocked_until_a_person_rearms(
    app, client, auth, desk, factory, services, encryption_key
):
    loser = desk.paper_client("Loser", max_daily_loss=D("500"))
    calm = desk.paper_client("Calm", max_daily_loss=D("5000"))
    for c in (loser, calm):
        buy(app, desk, factory, c)
    price(app, desk, "1520.00")  # −₹283 each: under both limits
    pass_at(app)
    assert alerts(app) == [] and not stored(app, Client, loser.id).kill_switch

    price(app, desk, "1490.00")  # 10 × (1490.00 − 1548.30) = −₹583: past Loser's ₹500
    pass_at(app)
    tripped = stored(app, Client, loser.id)
    assert tripped.kill_switch and "Daily loss breaker" in tripped.kill_reason and "₹500.00" in tripped.kill_reason
    assert not stored(app, Client, calm.id).kill_switch
    (alert,) = alerts(app)
    assert (alert.kind, alert.level, alert.client_id) == ("breaker.daily_loss", "red", loser.id)
    (batch,) = kill_batches(app)
    assert alert.batch_id == batch.id and batch.user_id is None
    with app.app_context():
        audit = db.session.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "kill_switch.client.on")
        ).scalar_one()
        assert audit.actor == "system" and "Daily loss breaker" in audit.detail

    desk.run_worker()  # the exit batch is sent as any batch is
    (sold,) = mis_sells(app, loser)
    assert (sold.quantity, sold.status.value) == (10, "COMPLETE")
    assert mis_sells(app, calm) == []
    with app.app_context():
        sync.sync_client(loser.id, desk.context())
        assert db.session.execute(sa.select(Position.quantity).where(Position.client_id == loser.id)).scalar_one() == 0

    price(app, desk, "1400.00")  # more passes, deeper: nothing more is sent, no second alert
    for _ in range(3):
        pass_at(app)
    assert len(alerts(app)) == 1 and len(kill_batches(app)) == 1 and len(mis_sells(app, loser)) == 1

    # a restart: a new app (all state is in the database and Redis); still blocked
    restarted = make_app(services, encryption_key)
    pass_at(restarted)
    with restarted.app_context():
        again = db.session.get(Client, loser.id)
        assert again.kill_switch
        (check,) = check_children(
            None, [again], {again.id: 1}, instrument_id=desk.instrument.id, product="MIS", unit_price=D("1400")
        )
        assert check.block == "This client's kill switch is on."
        db.session.remove()
        db.engine.dispose()

    # the confirmation shows why; a person re-arms (the existing kill-switch off action)
    factory.user("tara", role="trader", clients=[loser, calm])
    auth.login("tara")
    confirm = client.get(f"/exits/clients/{loser.id}/kill").data.decode()
    assert "Daily loss breaker" in confirm
    assert client.post(f"/exits/clients/{loser.id}/kill", data={"on": "0"}).status_code == 302
    rearmed = stored(app, Client, loser.id)
    assert not rearmed.kill_switch and rearmed.kill_reason == ""
    pass_at(app)  # tripped once today: the person's choice stands for the rest of the day
    assert not stored(app, Client, loser.id).kill_switch and len(alerts(app)) == 1


def test_drawdown_from_the_days_peak(app, desk, factory):
    client = desk.paper_client("Peaky", max_drawdown=D("400"))
    buy(app, desk, factory, client)
    price(app, desk, "1600.00")  # +₹517: the peak
    pass_at(app)
    price(app, desk, "1570.00")  # +₹217: ₹300 below the peak
    pass_at(app)
    with app.app_context():
        row = db.session.execute(sa.select(DailyPnl).where(DailyPnl.client_id == client.id)).scalar_one()
        assert row.peak == D("517.0000") and row.day == MONDAY.date()
    assert not stored(app, Client, client.id).kill_switch
    price(app, desk, "1555.00")  # +₹67: ₹450 below the peak, still a profit on the day
    pass_at(app)
    tripped = stored(app, Client, client.id)
    assert tripped.kill_switch and "Drawdown breaker" in tripped.kill_reason
    (alert,) = alerts(app)
    assert (alert.kind, alert.client_id) == ("breaker.drawdown", client.id)
    desk.run_worker()
    assert [o.quantity for o in mis_sells(app, client)] == [10]


def test_the_desk_limit_engages_the_desk_kill_switch_once(app, client, auth, desk, factory):
    a, b = desk.paper_client("A"), desk.paper_client("B")
    twin = desk.paper_client("Twin of A", twin_of_id=a.id)  # a paper twin's loss is not the desk's
    for c in (a, b, twin):
        buy(app, desk, factory, c)
    with app.app_context():
        db.session.add(DeskState(id=1, max_daily_loss=D("1000")))
        db.session.commit()
    price(app, desk, "1500.00")  # −₹483 each: −₹966 for the desk's two real clients (−₹1,449 with the twin)
    pass_at(app)
    assert not stored(app, DeskState, 1).kill_switch
    price(app, desk, "1495.00")  # −₹533 each: −₹1,066 for the desk
    pass_at(app)
    pass_at(app)
    state = stored(app, DeskState, 1)
    assert state.kill_switch and state.changed_by == "system" and "Desk daily loss breaker" in state.kill_reason
    (alert,) = alerts(app)
    assert (alert.kind, alert.level, alert.client_id) == ("breaker.desk_loss", "red", None)
    assert len(kill_batches(app)) == 1
    desk.run_worker()
    assert [len(mis_sells(app, c)) for c in (a, b, twin)] == [1, 1, 1]  # the desk kill flattens everyone
    factory.user("root", role="admin")
    auth.login("root")
    assert "Desk daily loss breaker" in client.get("/exits/desk/kill").data.decode()  # the re-arm page says why
    assert "Desk daily loss breaker" in client.get("/").data.decode()  # and the desk's banner


@pytest.mark.parametrize("now", [SATURDAY])
def test_breakers_do_not_act_outside_the_trading_day(app, desk, factory, now):
    client = desk.paper_client("Weekend", max_daily_loss=D("100"))
    buy(app, desk, factory, client)
    price(app, desk, "1400.00")
    pass_at(app, now)
    assert not stored(app, Client, client.id).kill_switch and alerts(app) == []


def test_after_the_day_end_roll_a_breaker_waits_for_the_next_day(app, desk, factory):
    client = desk.paper_client("Rolled", max_daily_loss=D("100"))
    buy(app, desk, factory, client)
    with app.app_context():
        db.session.add(DeskState(id=1, last_rolled_day=MONDAY.date()))
        db.session.commit()
    price(app, desk, "1400.00")
    pass_at(app)
    assert not stored(app, Client, client.id).kill_switch


def test_two_passes_at_once_trip_once(app, desk, factory):
    """The trip is a conditional UPDATE: a second pass that read the same state finds it taken."""
    from webapp.automation import breakers

    client = desk.paper_client("Twice", max_daily_loss=D("100"))
    buy(app, desk, factory, client)
    price(app, desk, "1400.00")
    with app.app_context():
        from webapp.trading.pnl import mark_to_market

        mark_to_market(get_redis(), now=MONDAY)
        (trip,) = breakers.client_trips(MONDAY.date(), MONDAY)  # both passes decided to trip...
        assert breakers._trip_client(trip, MONDAY) is not None
        assert breakers._trip_client(trip, MONDAY) is None  # ...only the first acts
        db.session.remove()
    assert len(alerts(app)) == 1 and len(kill_batches(app)) == 1
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Order)).scalar_one() == 2  # buy + 1 exit
