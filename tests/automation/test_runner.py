"""The runner (issue 12 item 3): a candle close → each ACTIVE deployment evaluated once → its signal
→ one batch through ticket → risk → engine. Repeated announcements and two evaluators at once make
one signal and one batch; refusals are per client with reasons; a deployment's own limits and a
strategy that raises pause that deployment alone; automation off, the window and a stale bar make
no batch; a paper deployment trades funded twins kept out of the real books."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

import tests.automation.scripted  # noqa: F401  (registers the test strategy, as a desk's module would)
from jobs.context import use_app
from tests.orders.conftest import Desk
from webapp.access import accessible_client_ids, accessible_clients
from webapp.automation import runner, twins
from webapp.desk.summary import desk_totals
from webapp.extensions import db, get_redis, get_rq_redis
from webapp.marketdata.intervals import aggregate, bucket_end, bucket_start, closes_bucket
from webapp.models import (
    Batch,
    Candle,
    Client,
    Deployment,
    DeploymentClient,
    DeploymentInstrument,
    DeskState,
    Order,
    Position,
    RiskAlert,
    StopRule,
    StrategySignal,
)
from webapp.models.automation import ACTIVE, PAUSED
from webapp.models.paper import PaperAccount, PaperOrder
from webapp.strategies import Candles, create_strategy
from webapp.trading import sync

D = Decimal
DAY = datetime(2026, 11, 30, 3, 45, tzinfo=UTC)  # a Monday, 09:15 IST


def minute(n: int) -> datetime:
    return DAY + timedelta(minutes=n)


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


@pytest.fixture
def admin(factory):
    return factory.user(role="admin")


def candles(app, instrument_id: int, closes: list[str], start: int = 0) -> None:
    with app.app_context():
        for n, close in enumerate(closes, start):
            price = D(close)
            db.session.add(
                Candle(
                    instrument_id=instrument_id,
                    start=minute(n),
                    open=price,
                    high=price,
                    low=price,
                    close=price,
                    volume=100,
                )
            )
        db.session.commit()


def deploy(app, creator, clients, instrument, *, params=None, mode="live", interval=1, **fields) -> int:
    with app.app_context():
        deployment = Deployment(
            name=fields.pop("name", "Trend"),
            strategy=fields.pop("strategy", "test_scripted"),
            params=params or {},
            interval=interval,
            product="MIS",
            mode=mode,
            sizing=fields.pop("sizing", "fixed"),
            sizing_value=fields.pop("sizing_value", D("10")),
            window_start=time(9, 15),
            last_entry=fields.pop("last_entry", time(15, 0)),
            days="0,1,2,3,4",
            state=fields.pop("state", ACTIVE),
            created_by_id=creator.id if creator else None,
            **fields,
        )
        deployment.instruments = [DeploymentInstrument(instrument_id=instrument.id)]
        deployment.clients = [DeploymentClient(client_id=c.id) for c in clients]
        db.session.add(deployment)
        db.session.commit()
        return deployment.id


def evaluate(app, instrument, n: int, interval: int = 1, late: timedelta = timedelta(seconds=1)):
    """The bar starting at minute n, evaluated `late` after it closed."""
    bar = minute(n)
    with app.app_context():
        return runner.evaluate_bar(
            instrument.id, interval, bar, config=app.config, redis=get_redis(), now=bucket_end(bar, interval) + late
        )


def signals(app) -> list[StrategySignal]:
    with app.app_context():
        rows = db.session.execute(sa.select(StrategySignal).order_by(StrategySignal.id)).scalars().all()
        db.session.expunge_all()
        return rows


def batches(app) -> list[tuple[Batch, list[tuple[int, str, int, str, str]]]]:
    with app.app_context():
        found = []
        for batch in db.session.execute(sa.select(Batch).order_by(Batch.id)).scalars():
            found.append((batch, [(o.client_id, o.side, o.quantity, o.status, o.reason) for o in batch.orders]))
        db.session.expunge_all()
        return found


def state_of(app, deployment_id: int) -> tuple[str, str]:
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id)
        return deployment.state, deployment.state_reason


def run_strategies(app) -> None:
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        SimpleWorker([Queue("strategies", connection=connection)], connection=connection).work(burst=True)


# ----------------------------------------------------------------------------- exactly once


def test_repeated_announcements_make_one_evaluation_one_signal_one_batch(app, desk, admin):
    from jobs import automation

    a, b = desk.paper_client("A"), desk.paper_client("B")
    deployment_id = deploy(app, admin, [a, b], desk.instrument, params={"long_above": 1549})
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    closed = [(desk.instrument.id, minute(1))]
    with app.app_context():
        assert runner.announce_closed(get_redis(), closed) == 1
        assert runner.announce_closed(get_redis(), closed) == 0  # the same bar again: nothing queued
        assert runner.announce_closed(get_redis(), closed) == 0
        assert Queue("strategies", connection=get_rq_redis()).count == 1
    app.config["SEND_DEADLINE_SECONDS"] = 10**9  # the bar is on a past day; the job reads the clock
    run_strategies(app)
    assert automation.evaluate(desk.instrument.id, 1, minute(1).isoformat()) == {
        "evaluated": 0,
        "signals": 0,
        "batches": 0,
    }  # the job run once more: the cursor has passed that bar
    assert evaluate(app, desk.instrument, 1) == []
    [signal] = signals(app)
    [(batch, children)] = batches(app)
    assert (signal.deployment_id, signal.action, signal.price, signal.batch_id) == (
        deployment_id,
        "enter_long",
        D("1550.00"),
        batch.id,
    )
    assert signal.values == {"close": 1550.0}
    assert (batch.kind, batch.deployment_id, batch.order_type, batch.product) == (
        "signal",
        deployment_id,
        "MARKET",
        "MIS",
    )
    assert sorted(children) == [(a.id, "BUY", 10, "NEW", ""), (b.id, "BUY", 10, "NEW", "")]
    assert signal.outcome == f"batch #{batch.id}: 2 BUY sent"
    with app.app_context():
        cursor = db.session.execute(sa.select(DeploymentInstrument.last_bar)).scalar_one()
    assert cursor == minute(1)


def test_two_evaluators_at_once_make_one_signal_and_one_batch(app, desk, admin):
    a = desk.paper_client("A")
    deploy(app, admin, [a], desk.instrument, params={"long_above": 1549})
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    start = threading.Barrier(2)
    results, errors = [], []

    def one():
        try:
            start.wait()
            results.extend(evaluate(app, desk.instrument, 1))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(signals(app)) == 1 and len(batches(app)) == 1
    assert len([r for r in results if r.signal_id]) == 1


def test_the_live_path_one_bar_at_a_time_emits_the_strategys_signals_over_the_whole_series(app, desk):
    """EMA crossover on 3-minute bars: candles stored one minute at a time, each closed bucket
    evaluated by the runner as it closes, gives exactly the strategy's signals over the whole series."""
    params = {"fast": 3, "slow": 8}
    deployment_id = deploy(app, None, [], desk.instrument, strategy="ema_crossover", params=params, interval=3)
    rng = np.random.default_rng(12)
    closes = 1500 + np.cumsum(rng.normal(0, 2.0, 150))
    for n, close in enumerate(closes):
        candles(app, desk.instrument.id, [f"{close:.2f}"], start=n)
        if closes_bucket(minute(n), 3):
            evaluate(app, desk.instrument, n - 2, interval=3)
            with app.app_context():
                assert bucket_start(minute(n), 3) == minute(n - 2)
    with app.app_context():
        rows = db.session.execute(
            sa.select(Candle.start, Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume).order_by(
                Candle.start
            )
        ).all()
    series = aggregate(Candles.from_rows(rows), 3)
    expected = [
        (int(series.time[s.index]), s.action.value) for s in create_strategy("ema_crossover", params).signals(series)
    ]
    live = [(int(s.bar_time.timestamp()), s.action) for s in signals(app) if s.deployment_id == deployment_id]
    assert expected, "the series should cross at least once"
    assert live == expected


def test_a_worker_killed_mid_evaluation_is_redone_by_the_sweep_once_counted_at_the_paper_exchange(
    app, desk, admin, tmp_path
):
    """A real worker (the Procfile's `worker` role) dies mid-evaluation (SIGKILL): nothing was
    stored; the sweep queues the bar again and it makes one signal and one batch — each twin's
    paper account books one order."""
    import os
    import subprocess

    from tests.automation.scripted import HOLD_ENV
    from tests.automation.test_stops_restart import kill, wait_for
    from tests.chaos.test_chaos import ROOT, worker_env
    from webapp.entrypoint import worker_command

    a, b = desk.paper_client("A"), desk.paper_client("B")
    deployment_id = deploy(app, admin, [a, b], desk.instrument, params={"long_above": 1549}, mode="paper")
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    app.config["SEND_DEADLINE_SECONDS"] = 10**9
    hold = tmp_path / "hold"
    hold.write_text("hold")
    env = worker_env(app, "http://127.0.0.1:9", tmp_path)
    env.update(
        {
            HOLD_ENV: str(hold),
            "FANOUT_STRATEGY_MODULES": "tests.automation.scripted",
            "SEND_DEADLINE_SECONDS": "1000000000",
        }
    )
    with open(tmp_path / "worker.log", "ab") as log:
        worker = subprocess.Popen(
            worker_command("strategies", f"strategies-{os.getpid()}"),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with app.app_context():
            assert runner.announce_closed(get_redis(), [(desk.instrument.id, minute(1))]) == 1
        wait_for((tmp_path / "hold.started").exists, "the evaluation to start in the worker", tmp_path)
    finally:
        kill(worker)  # mid-evaluation
    assert signals(app) == [] and batches(app) == []
    hold.unlink()
    with app.app_context():
        assert runner.sweep(get_redis()) == 1
        assert runner.sweep(get_redis()) == 0  # queued already: not again within a few seconds
    run_strategies(app)
    with app.app_context():
        assert runner.behind() == []
    [signal] = signals(app)
    [(batch, children)] = batches(app)
    assert signal.batch_id == batch.id and batch.deployment_id == deployment_id
    desk.run_worker()  # the orders worker sends the batch to the paper exchange
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id)
        codes = sorted(twin.client_code for _, twin in twins.twins_of(deployment))
        booked = db.session.execute(
            sa.select(PaperAccount.client_code, sa.func.count())
            .join(PaperOrder, PaperOrder.account_id == PaperAccount.id)
            .group_by(PaperAccount.client_code)
        ).all()
    assert sorted(booked) == [(code, 1) for code in codes]
    assert len(codes) == 2


# ----------------------------------------------------------------------------- refusals


def test_refusals_are_per_client_with_their_reasons(app, desk, admin):
    ok = desk.paper_client("Asha")
    killed = desk.paper_client("Bina", kill_switch=True)
    small = desk.paper_client("Chitra", max_order_value=D("1000"))
    deploy(app, admin, [ok, killed, small], desk.instrument, params={"long_above": 1549})
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    evaluate(app, desk.instrument, 1)
    [signal] = signals(app)
    [(batch, children)] = batches(app)
    assert sorted(children) == sorted(
        [(ok.id, "BUY", 10, "NEW", ""), (killed.id, "BUY", 10, "FAILED", "This client's kill switch is on.")]
    )
    assert signal.outcome.startswith(
        f"batch #{batch.id}: 1 BUY sent, 1 refused (Bina: This client's kill switch is on.)"
    )
    assert "Chitra: sizing gives 0 shares at ₹1,550.00 for this client" in signal.outcome


def test_automation_off_a_stale_bar_and_the_window_make_no_batch(app, desk, admin):
    a = desk.paper_client("A")
    deploy(app, admin, [a], desk.instrument, params={"long_above": 1549}, last_entry=time(9, 20))
    candles(app, desk.instrument.id, ["1548.00", "1550.00", "1551.00", "1552.00", "1553.00", "1554.00", "1555.00"])
    evaluate(app, desk.instrument, 1, late=timedelta(seconds=31))  # past the 30 s send deadline
    with app.app_context():
        db.session.add(DeskState(id=1, automation_off=True))
        db.session.commit()
    evaluate(app, desk.instrument, 2)
    with app.app_context():
        db.session.get(DeskState, 1).automation_off = False
        db.session.commit()
    evaluate(app, desk.instrument, 6)  # closes 09:22 IST: after the last entry at 09:20
    assert [s.outcome for s in signals(app)] == [
        runner.EXPIRED,
        "refused: automation is off for the desk",
        "refused: no entries after 09:20 IST",
    ]
    assert batches(app) == []


def test_an_exit_goes_after_the_last_entry_and_sells_what_the_deployment_bought(app, desk, admin):
    a = desk.paper_client("A")
    deployment_id = deploy(
        app, admin, [a], desk.instrument, params={"long_above": 1549, "exit_below": 1540}, last_entry=time(9, 17)
    )
    candles(app, desk.instrument.id, ["1548.00", "1550.00", "1545.00", "1539.00"])
    evaluate(app, desk.instrument, 1)
    desk.run_worker()
    with app.app_context():
        sync.sync_client(a.id, desk.context())
        assert runner.holdings(deployment_id, desk.instrument.id, "MIS", [a.id]) == {a.id: 10}
    evaluate(app, desk.instrument, 2)  # 1,545.00: neither enters nor exits
    evaluate(app, desk.instrument, 3)  # 09:19 IST: entries are over, the exit still goes
    entry, exit_ = batches(app)
    assert entry[1] == [(a.id, "BUY", 10, "COMPLETE", "")]
    assert exit_[1] == [(a.id, "SELL", 10, "NEW", "")] and exit_[0].deployment_id == deployment_id
    assert signals(app)[-1].outcome == f"batch #{exit_[0].id}: 1 SELL sent"
    with app.app_context():
        assert runner.holdings(deployment_id, desk.instrument.id, "MIS", [a.id]) == {}  # the exit is in flight


def test_a_signals_stop_arms_a_stop_rule_for_each_client_that_enters(app, desk, admin):
    a = desk.paper_client("A")
    deployment_id = deploy(app, admin, [a], desk.instrument, params={"long_above": 1549, "stop_pct": 1})
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    evaluate(app, desk.instrument, 1)
    [signal] = signals(app)
    assert signal.stop == D("1534.50")
    with app.app_context():
        [rule] = db.session.execute(sa.select(StopRule)).scalars().all()
        assert (rule.client_id, rule.direction, rule.stop_price, rule.quantity, rule.source, rule.deployment_id) == (
            a.id,
            1,
            D("1534.50"),
            10,
            "signal",
            deployment_id,
        )


# ----------------------------------------------------------------------------- pausing one deployment


def test_limits_and_a_raising_strategy_pause_their_deployment_while_another_goes_on(app, desk, admin, factory):
    a = desk.paper_client("A")
    busy = deploy(app, admin, [a], desk.instrument, params={"long_above": 1549}, name="Busy", max_orders_per_day=1)
    losing = deploy(app, admin, [a], desk.instrument, params={"long_above": 1549}, name="Losing", max_loss=D("500"))
    broken = deploy(app, admin, [a], desk.instrument, params={"long_above": 1549, "raise_above": 1549}, name="Broken")
    fine = deploy(app, admin, [a], desk.instrument, params={"long_above": 1549}, name="Fine")
    with app.app_context():
        now = datetime.now(UTC)
        db.session.add(
            Batch(ticket_id="earlier-today", kind="signal", action="BUY", deployment_id=busy, created_at=now)
        )
        losing_batch = Batch(ticket_id="earlier-loss", kind="signal", action="BUY", deployment_id=losing)
        db.session.add(losing_batch)
        db.session.flush()
        db.session.add(  # bought 10 at 1,600.00: marked at 1,548.20 that is ₹518 down
            Order(
                batch_id=losing_batch.id,
                client_id=a.id,
                instrument_id=desk.instrument.id,
                side="BUY",
                quantity=10,
                product="MIS",
                order_type="MARKET",
                tag="LOSS000001",
                status="COMPLETE",
                filled_quantity=10,
                average_price=D("1600.00"),
            )
        )
        db.session.commit()
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    evaluate(app, desk.instrument, 1)
    assert state_of(app, busy) == (PAUSED, "it has placed its 1 orders for today")
    assert state_of(app, losing) == (PAUSED, "its loss ₹518.00 has reached its limit of ₹500.00")
    state, reason = state_of(app, broken)
    assert state == PAUSED and "ValueError: cannot handle a close of 1550.00" in reason
    assert state_of(app, fine) == (ACTIVE, "")
    made = [b for b, _ in batches(app) if b.ticket_id.startswith("signal-")]
    assert [b.deployment_id for b in made] == [fine]
    with app.app_context():
        alerts = db.session.execute(sa.select(RiskAlert.deployment_id, RiskAlert.kind).order_by(RiskAlert.id)).all()
    assert sorted(alerts) == sorted(
        [(busy, "deployment.paused"), (losing, "deployment.paused"), (broken, "deployment.paused")]
    )
    # a paused deployment is not evaluated again
    candles(app, desk.instrument.id, ["1551.00"], start=2)
    evaluate(app, desk.instrument, 2)
    assert {s.deployment_id for s in signals(app) if s.bar_time == minute(2)} == {fine}


# ----------------------------------------------------------------------------- paper twins


def test_a_paper_deployment_trades_funded_twins_kept_out_of_the_real_books(app, desk, admin, factory):
    a = desk.paper_client("Asha")
    b = desk.paper_client("Bina")
    trader = factory.user(role="trader", clients=[a, b])
    deployment_id = deploy(app, trader, [a, b], desk.instrument, params={"long_above": 1549}, mode="paper")
    with app.app_context():
        link = db.session.execute(sa.select(DeploymentClient).where(DeploymentClient.client_id == a.id)).scalar_one()
        link.capital = D("250000")
        db.session.commit()
        deployment = db.session.get(Deployment, deployment_id)
        twins.ensure_twins(deployment)
        twins.ensure_twins(deployment)  # idempotent
        db.session.commit()
        pairs = twins.twins_of(deployment)
        assert [(c.id, t.name, t.twin_of_id) for c, t in pairs] == [
            (a.id, f"Asha · paper #{deployment_id}", a.id),
            (b.id, f"Bina · paper #{deployment_id}", b.id),
        ]
        twin_ids = {t.id for _, t in pairs}
        cash = dict(
            db.session.execute(
                sa.select(PaperAccount.client_code, PaperAccount.cash).where(
                    PaperAccount.client_code.in_([t.client_code for _, t in pairs])
                )
            ).all()
        )
        assert cash[pairs[0][1].client_code] == D("250000")
        assert db.session.execute(sa.select(sa.func.count()).select_from(Client)).scalar() == 4
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    evaluate(app, desk.instrument, 1)
    [(batch, children)] = batches(app)
    assert {c[0] for c in children} == twin_ids  # the twins trade, not the clients
    desk.run_worker()
    with app.app_context():
        for twin_id in twin_ids:
            sync.sync_client(twin_id, desk.context())
        held = dict(
            db.session.execute(sa.select(Position.client_id, Position.quantity).where(Position.quantity != 0)).all()
        )
        assert held == {twin_id: 10 for twin_id in twin_ids}
        statuses = {o.status for o in db.session.execute(sa.select(Order)).scalars()}
        assert statuses == {"COMPLETE"}
        pnl = runner.deployment_pnl(db.session.get(Deployment, deployment_id))
        assert set(pnl) == twin_ids
        # the real books: an admin's client list and ids, and the desk totals, leave the twins out
        admin_user = db.session.get(type(trader), admin.id)
        assert {c.id for c in accessible_clients(admin_user)} == {a.id, b.id}
        assert accessible_client_ids(admin_user) == {a.id, b.id}
        totals = desk_totals(None)
        assert totals.clients == 2 and totals.unrealized == D("0")
        trader_user = db.session.get(type(trader), trader.id)
        assert accessible_client_ids(trader_user) == {a.id, b.id}


# ----------------------------------------------------------------------------- the feed, the sweep, the square-off


def test_the_feed_subscribes_to_deployed_instruments_and_announces_each_closed_bucket_once(app, desk, admin):
    """The feed process's own step: an ACTIVE deployment's instrument is wanted; a minute that
    closes a 3-minute bucket queues one evaluation job, and the next minute (closing none) nothing."""
    from webapp.brokers.base import Quote
    from webapp.marketfeed.feed import Feed, wanted_tokens

    deploy(app, admin, [], desk.instrument, interval=3)
    token = desk.instrument.instrument_token
    with app.app_context():
        assert token in wanted_tokens(get_redis())

    def source(now, wanted):
        return {token: Quote(exchange="NSE", tradingsymbol="INFY", last_price=D("1550.00"), timestamp=now)}

    feed = Feed(app, source)
    feed.step(minute(2) + timedelta(seconds=5))  # the 09:17 IST minute forms
    feed.step(minute(3) + timedelta(seconds=5))  # it closes: 09:15–09:18 is complete
    feed.step(minute(3) + timedelta(seconds=6))
    feed.step(minute(4) + timedelta(seconds=5))  # 09:18 closes: no 3-minute bucket ends there
    with app.app_context():
        queue = Queue("strategies", connection=get_rq_redis())
        jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
        assert [(j.id, j.args) for j in jobs] == [
            (
                f"eval-{desk.instrument.id}-3-{int(minute(0).timestamp())}-0",
                ([desk.instrument.id], 3, minute(0).isoformat()),
            )
        ]


def test_the_sweep_finds_a_cursor_behind_the_latest_closed_bar_and_no_more_once_evaluated(app, desk, admin):
    deploy(app, admin, [], desk.instrument, interval=5, params={"long_above": 1549})
    candles(app, desk.instrument.id, ["1548.00"] * 7)  # 09:15–09:21: one 5-minute bar complete, one forming
    with app.app_context():
        assert runner.behind(minute(7)) == [(desk.instrument.id, 5, minute(0))]
    evaluate(app, desk.instrument, 0, interval=5)
    with app.app_context():
        assert runner.behind(minute(7)) == []


def test_the_desk_kill_switch_refuses_entries_and_lets_exits_go(app, desk, admin):
    a = desk.paper_client("A")
    deployment_id = deploy(app, admin, [a], desk.instrument, params={"long_above": 1549, "exit_below": 1540})
    candles(app, desk.instrument.id, ["1548.00", "1550.00", "1539.00", "1551.00"])
    evaluate(app, desk.instrument, 1)
    desk.run_worker()
    with app.app_context():
        sync.sync_client(a.id, desk.context())
        db.session.add(DeskState(id=1, kill_switch=True))
        db.session.commit()
    evaluate(app, desk.instrument, 2)
    evaluate(app, desk.instrument, 3)
    outcomes = [s.outcome for s in signals(app)]
    made = batches(app)
    assert [b.deployment_id for b, _ in made] == [deployment_id, deployment_id]
    assert made[1][1] == [(a.id, "SELL", 10, "NEW", "")]
    assert outcomes[1:] == [f"batch #{made[1][0].id}: 1 SELL sent", "refused: the desk kill switch is on"]


def test_a_deployments_square_off_exits_its_intraday_positions_once_a_day(app, desk, admin):
    a = desk.paper_client("A")
    deployment_id = deploy(app, admin, [a], desk.instrument, params={"long_above": 1549}, squareoff_at=time(15, 0))
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    evaluate(app, desk.instrument, 1)
    desk.run_worker()
    with app.app_context():
        sync.sync_client(a.id, desk.context())
        before, at = DAY.replace(hour=9, minute=29), DAY.replace(hour=9, minute=31)  # 14:59 and 15:01 IST
        assert runner.squareoff_due(before) == []
        assert runner.squareoff_due(at) == [deployment_id]
        batch = runner.square_off(deployment_id, get_redis(), now=at)
        assert batch is not None and batch.deployment_id == deployment_id
        assert [(o.client_id, o.side, o.quantity, o.product) for o in batch.orders] == [(a.id, "SELL", 10, "MIS")]
        assert runner.squareoff_due(at) == []  # once a day
        assert runner.square_off(deployment_id, get_redis(), now=at) is None
        [alert] = db.session.execute(sa.select(RiskAlert).where(RiskAlert.kind == "deployment.squareoff")).scalars()
        assert alert.deployment_id == deployment_id and alert.batch_id == batch.id


def test_a_paper_twin_enters_nothing_while_its_clients_kill_switch_is_on(app, desk, admin):
    a = desk.paper_client("Asha")
    b = desk.paper_client("Bina", kill_switch=True)
    deploy(app, admin, [a, b], desk.instrument, params={"long_above": 1549}, mode="paper")
    candles(app, desk.instrument.id, ["1548.00", "1550.00"])
    evaluate(app, desk.instrument, 1)
    [signal] = signals(app)
    [(batch, children)] = batches(app)
    assert len(children) == 1 and children[0][3] == "NEW"
    assert signal.outcome.endswith("Bina: the client's kill switch is on: no entry on its paper twin")
