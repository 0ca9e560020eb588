"""/api/v1 strategies, deployments and backtests through keys: the registry; deployments created from a
JSON spec (the pages' validation, per field), seen only by those who may act for all their clients,
started, paused and stopped; backtests queued on the backtests queue, run by a real worker over
simulated history and read back with their metrics as decimal strings, cancelled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq import Queue

from tests.backtest.test_runs import DAYS, LAST_DAY, run_worker
from tests.conftest import count
from tests.deployments.conftest import make_deployment
from tests.orders.conftest import Desk
from webapp.extensions import db, get_rq_redis
from webapp.marketdata import history
from webapp.models import AuditEvent, BacktestRun, Deployment, Instrument


@pytest.fixture
def desk(app, factory):
    return Desk(app, factory)


@pytest.fixture
def clients(desk):
    return [desk.paper_client(f"Client {n}") for n in "AB"]


@pytest.fixture
def tara(factory, clients):
    return factory.user("tara", role="trader", clients=clients)


def spec(desk, clients, **overrides) -> dict:
    body = {
        "name": "EMA crossover 5m",
        "strategy": "ema_crossover",
        "params": {"fast": 3, "slow": 8},
        "instrument_ids": [desk.instrument.id],
        "interval": 5,
        "product": "MIS",
        "mode": "paper",
        "sizing": "fixed",
        "sizing_value": "10",
        "window_start": "09:15",
        "last_entry": "15:00",
        "squareoff_at": "15:10",
        "days": [0, 1, 2, 3, 4],
        "client_ids": [c.id for c in clients],
    }
    body.update(overrides)
    return body


def test_the_strategy_registry_lists_each_parameter_with_type_bounds_and_default(factory, api_as):
    reply = api_as(factory.user("vic", role="viewer")).get("/api/v1/strategies?per_page=200")
    assert reply.status_code == 200
    strategies = {s["name"]: s for s in reply.get_json()["items"]}
    ema = strategies["ema_crossover"]
    assert ema["title"] and ema["description"]
    fast = next(p for p in ema["params"] if p["name"] == "fast")
    assert (fast["type"], fast["minimum"]) == ("int", 1) and isinstance(fast["default"], int)
    stop = next(p for p in ema["params"] if p["name"] == "stop_pct")
    assert (stop["type"], stop["default"], stop["maximum"]) == ("float", 0.0, 50.0)


def test_a_deployment_created_by_the_api_is_paused_audited_and_on_the_page(
    app, client, auth, desk, clients, tara, api_as
):
    api = api_as(tara)
    reply = api.post("/api/v1/deployments", json=spec(desk, clients, client_sizing={str(clients[0].id): "4"}))
    assert reply.status_code == 201, reply.get_json()
    made = reply.get_json()
    assert (made["state"], made["mode"], made["sizing_value"]) == ("PAUSED", "paper", "10.0000")
    assert made["params"]["fast"] == 3 and made["params"]["stop_pct"] == 0.0  # validated by the class
    assert made["window_start"] == "09:15:00" and made["days"] == [0, 1, 2, 3, 4]
    sizes = {c["client_id"]: c["sizing_value"] for c in made["clients"]}
    assert sizes == {clients[0].id: "4.0000", clients[1].id: None}
    assert api.get(f"/api/v1/deployments/{made['id']}").get_json() == made
    assert [d["id"] for d in api.get("/api/v1/deployments").get_json()["items"]] == [made["id"]]
    with app.app_context():
        event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "deployment.created")).scalar_one()
        assert event.actor == "tara" and "test key" in event.detail
    auth.login("tara")
    page = client.get("/deployments").data.decode()
    assert "EMA crossover 5m" in page and f"/deployments/{made['id']}" in page


@pytest.mark.parametrize(
    "overrides, field, words",
    [
        ({"params": {"fast": 0}}, "params.fast", "must be at least 1"),
        ({"params": {"fast": 8, "slow": 8}}, "params.fast", "must be below the slow period"),
        ({"params": {"fast": "x"}}, "params.fast", "must be a whole number"),
        ({"params": {"stop_pct": -1}}, "params.stop_pct", "must be at least 0"),
        ({"params": {"nonsense": 1}}, "params.nonsense", "is not a parameter"),
        ({"strategy": "nope"}, "strategy", "Choose a strategy"),
        ({"window_start": "08:30"}, "window_start", "Must be inside market hours"),
        ({"window_start": "09:30+05:30"}, "window_start", "without a zone"),
        ({"instrument_ids": [999999]}, "instrument_ids", "Unknown instrument"),
        ({"instrument_ids": []}, "instrument_ids", "Choose at least one instrument"),
        ({"sizing_value": "0"}, "sizing_value", "above zero"),
        ({"sizing": "capital_pct", "sizing_value": "150"}, "sizing_value", "at most 100"),
        ({"client_ids": []}, "client_ids", "Choose at least one client"),
        ({"interval": 7}, "interval", "Choose a candle interval"),
        ({"days": [9]}, "days.0", "less than or equal to 6"),
        ({"name": ""}, "name", "Name the deployment"),
        ({"client_sizing": {"999": "5"}}, "client_sizing", "not among client_ids"),
        ({"unknown": 1}, "unknown", "Extra inputs"),
    ],
)
def test_a_bad_spec_is_422_per_field_and_nothing_is_saved(app, desk, clients, tara, api_as, overrides, field, words):
    reply = api_as(tara).post("/api/v1/deployments", json=spec(desk, clients, **overrides))
    assert reply.status_code == 422
    fields = reply.get_json()["error"]["fields"]
    assert words in fields.get(field, ""), fields
    with app.app_context():
        assert count(Deployment) == 0


def test_start_pause_stop_and_a_repeat_is_a_conflict(app, desk, clients, tara, api_as):
    api = api_as(tara)
    deployment_id = make_deployment(app, clients, [desk.instrument])
    base = f"/api/v1/deployments/{deployment_id}"
    started = api.post(f"{base}/start", json={}, headers={"Idempotency-Key": "start-1"})
    assert started.status_code == 200 and started.get_json()["state"] == "ACTIVE"
    replay = api.post(f"{base}/start", json={}, headers={"Idempotency-Key": "start-1"})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    again = api.post(f"{base}/start", json={})
    assert again.status_code == 409 and "already running" in again.get_json()["error"]["message"]
    assert api.post(f"{base}/pause", json={}).get_json()["state"] == "PAUSED"
    assert api.post(f"{base}/stop", json={}).get_json()["state"] == "STOPPED"
    final = api.post(f"{base}/start", json={})
    assert final.status_code == 409 and "stopping is final" in final.get_json()["error"]["message"]
    with app.app_context():
        actions = db.session.execute(
            sa.select(AuditEvent.action).where(AuditEvent.target == f"deployment:{deployment_id}")
        ).scalars()
        assert list(actions) == ["deployment.started", "deployment.paused", "deployment.stopped"]


def test_a_trader_sees_only_deployments_whose_clients_are_all_theirs(app, desk, clients, tara, api_as):
    stranger = desk.paper_client("Stranger")
    mine = make_deployment(app, clients, [desk.instrument], name="Mine")
    theirs = make_deployment(app, [clients[0], stranger], [desk.instrument], name="Shared with a stranger")
    api = api_as(tara)
    assert [d["id"] for d in api.get("/api/v1/deployments").get_json()["items"]] == [mine]
    for reply in (
        api.get(f"/api/v1/deployments/{theirs}"),
        api.get(f"/api/v1/deployments/{theirs}/signals"),
        api.post(f"/api/v1/deployments/{theirs}/start", json={}),
        api.post(f"/api/v1/deployments/{theirs}/stop", json={}),
    ):
        assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found"
    with app.app_context():
        assert db.session.get(Deployment, theirs).state == "PAUSED"
    refused = api.post("/api/v1/deployments", json=spec(desk, [clients[0], stranger]))
    assert refused.status_code == 422 and "client_ids" in refused.get_json()["error"]["fields"]


def test_signals_are_listed_newest_first(app, desk, clients, tara, api_as):
    from datetime import datetime

    from webapp.models import StrategySignal
    from webapp.timeutil import UTC

    deployment_id = make_deployment(app, clients, [desk.instrument])
    with app.app_context():
        for minute, action in ((0, "enter_long"), (5, "exit")):
            db.session.add(
                StrategySignal(
                    deployment_id=deployment_id,
                    instrument_id=desk.instrument.id,
                    bar_time=datetime(2026, 11, 27, 4, minute, tzinfo=UTC),
                    action=action,
                    price=Decimal("1548.20"),
                    outcome="no batch: test",
                )
            )
        db.session.commit()
    page = api_as(tara).get(f"/api/v1/deployments/{deployment_id}/signals").get_json()
    assert [s["action"] for s in page["items"]] == ["exit", "enter_long"]
    assert page["items"][0]["price"] == "1548.2000" and page["total"] == 2


def test_viewers_and_read_only_keys_may_not_change_deployments(app, factory, desk, clients, tara, api_as):
    deployment_id = make_deployment(app, clients, [desk.instrument])
    viewer = api_as(factory.user("vic", role="viewer", clients=clients))
    read_only = api_as(tara, scopes=["read"])
    for api in (viewer, read_only):
        assert api.get(f"/api/v1/deployments/{deployment_id}").status_code == 200
        assert api.post(f"/api/v1/deployments/{deployment_id}/start", json={}).status_code == 403
        assert api.post("/api/v1/deployments", json=spec(desk, clients)).status_code == 403
    with app.app_context():
        assert count(Deployment) == 1 and db.session.get(Deployment, deployment_id).state == "PAUSED"


# --- backtests -------------------------------------------------------------------------------------


@pytest.fixture
def history_of(app, factory):
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.05", band="10")
    with app.app_context():
        history.simulate(db.session, [db.session.get(Instrument, instrument.id)], 7, LAST_DAY, DAYS)
        db.session.commit()
    return instrument


def backtest(instrument_id: int, /, **overrides) -> dict:
    body = {
        "strategy": "ema_crossover",
        "params": {"fast": 5, "slow": 20},
        "instrument_id": instrument_id,
        "interval": 5,
        "start": (LAST_DAY - timedelta(days=DAYS - 1)).isoformat(),
        "end": LAST_DAY.isoformat(),
        "capital": "100000",
        "sizing": "capital_pct",
        "sizing_value": "100",
        "charges": "zerodha",
    }
    body.update(overrides)
    return body


def test_a_backtest_is_queued_run_and_its_metrics_read_as_decimal_strings(app, factory, history_of, api_as):
    api = api_as(factory.user("tina", role="trader"))
    reply = api.post("/api/v1/backtests", json=backtest(history_of.id))
    assert reply.status_code == 202, reply.get_json()
    queued = reply.get_json()
    assert queued["state"] == "QUEUED" and queued["metrics"] is None
    assert queued["settings"]["capital"] == "100000" and queued["settings"]["squareoff"] == "15:15"
    with app.app_context():
        queue = Queue("backtests", connection=get_rq_redis())
        assert queue.count == 1
        run = db.session.get(BacktestRun, queued["id"])
        assert queue.job_ids == [run.job_id] and queue.fetch_job(run.job_id).args == ([run.id],)
    run_worker(app)
    done = api.get(f"/api/v1/backtests/{queued['id']}").get_json()
    assert (done["state"], done["progress"]) == ("DONE", 1.0) and done["bars"] > 0
    metrics = done["metrics"]
    assert isinstance(metrics["net_pnl"], str) and Decimal(metrics["net_pnl"]) == Decimal(metrics["net_pnl"])
    assert all(value is None or isinstance(value, str) for value in metrics.values())
    with app.app_context():
        stored = db.session.get(BacktestRun, queued["id"]).metrics
        assert Decimal(metrics["net_pnl"]) == Decimal(str(stored["net_pnl"]))
        assert int(metrics["trades"]) == stored["trades"]
    assert [r["id"] for r in api.get("/api/v1/backtests").get_json()["items"]] == [queued["id"]]


@pytest.mark.parametrize(
    "overrides, field, words",
    [
        ({"params": {"fast": 30, "slow": 20}}, "params.fast", "must be below the slow period"),
        ({"params": {"slow": "many"}}, "params.slow", "must be a whole number"),
        ({"strategy": "nope"}, "strategy", "Choose a strategy"),
        ({"instrument_id": 999999}, "instrument_id", "Choose an instrument"),
        ({"interval": 7}, "interval", "Choose a candle interval"),
        ({"start": "2020-01-01", "end": "2020-03-31"}, "start", "No 5-minute candles of INFY in this range"),
        ({"end": "2026-10-01", "start": "2026-11-01"}, "end", "must not be before the first"),
        ({"sizing_value": "150"}, "sizing_value", "at most 100"),
        ({"sizing": "risk_pct", "sizing_value": "1", "params": {"stop_pct": "x"}}, "params.stop_pct", "a number"),
        ({"charges": "cheapest"}, "charges", "Choose a plan"),
        ({"capital": "0"}, "capital", "at least 1"),
        ({"start": "0001-01-01"}, "start", "greater than or equal"),
    ],
)
def test_a_bad_backtest_is_422_per_field_and_nothing_is_queued(
    app, factory, history_of, api_as, overrides, field, words
):
    reply = api_as(factory.user("tina", role="trader")).post(
        "/api/v1/backtests", json=backtest(history_of.id, **overrides)
    )
    assert reply.status_code == 422
    fields = reply.get_json()["error"]["fields"]
    assert words in fields.get(field, ""), fields
    with app.app_context():
        assert count(BacktestRun) == 0 and Queue("backtests", connection=get_rq_redis()).count == 0


def test_cancel_a_queued_backtest_then_a_repeat_is_a_conflict(app, factory, history_of, api_as):
    api = api_as(factory.user("tina", role="trader"))
    run_id = api.post("/api/v1/backtests", json=backtest(history_of.id)).get_json()["id"]
    cancelled = api.post(f"/api/v1/backtests/{run_id}/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "CANCELLED"
    assert api.post(f"/api/v1/backtests/{run_id}/cancel", json={}).status_code == 409
    run_worker(app)  # the job finds nothing to run
    assert api.get(f"/api/v1/backtests/{run_id}").get_json()["state"] == "CANCELLED"
    assert api.get("/api/v1/backtests/999999").status_code == 404


def test_a_viewer_reads_backtests_but_may_not_run_or_cancel(app, factory, history_of, api_as):
    run_id = api_as(factory.user("tina", role="trader")).post("/api/v1/backtests", json=backtest(history_of.id))
    run_id = run_id.get_json()["id"]
    viewer = api_as(factory.user("vic", role="viewer"))
    assert viewer.get(f"/api/v1/backtests/{run_id}").status_code == 200
    assert viewer.post("/api/v1/backtests", json=backtest(history_of.id)).status_code == 403
    assert viewer.post(f"/api/v1/backtests/{run_id}/cancel", json={}).status_code == 403
    with app.app_context():
        assert count(BacktestRun) == 1 and db.session.get(BacktestRun, run_id).state == "QUEUED"
