"""Backtest runs and sweeps as RQ jobs, through the pages: the form, the job (run in-process by a real RQ
worker on the `backtests` queue, with the real engine over simulated history in the database), progress,
cancel, results (metrics, charts' series, trades and their CSV), sweeps (table, heatmap, the limit) and
"deploy to paper". Bad input: a message next to the field and nothing saved or queued."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from jobs.context import use_app
from tests.conftest import count
from webapp.backtest import engine
from webapp.backtest import runs as service
from webapp.extensions import db, get_rq_redis
from webapp.marketdata import history
from webapp.models import BacktestRun, Deployment, Instrument, Sweep
from webapp.strategies import create_strategy

LAST_DAY = date(2026, 11, 27)  # a Friday
DAYS = 28  # four weeks of 1-minute bars: 20 sessions × 375


@pytest.fixture
def bt(app, factory):
    """An instrument with four weeks of simulated 1-minute history, a trader and a viewer."""
    instrument = factory.instrument("INFY", 1594, price="1548.20", tick="0.05", band="10")
    bare = factory.instrument("TCS", 2953, price="3500.00", tick="0.05", band="10")
    client = factory.client("Alpha", broker="paper")
    factory.user("tina", role="trader", clients=[client])
    factory.user("vic", role="viewer", clients=[client])
    with app.app_context():
        history.simulate(db.session, [db.session.get(Instrument, instrument.id)], 7, LAST_DAY, DAYS)
        db.session.commit()
    return {"instrument": instrument, "bare": bare, "client": client}


def form(instrument_id: int, **overrides) -> dict[str, str]:
    data = {
        "strategy": "ema_crossover",
        "param_fast": "5",
        "param_slow": "20",
        "instrument_id": str(instrument_id),
        "interval": "5",
        "start": (LAST_DAY - timedelta(days=DAYS - 1)).isoformat(),
        "end": LAST_DAY.isoformat(),
        "capital": "100000",
        "product": "MIS",
        "sizing": "capital_pct",
        "sizing_value": "100",
        "fill": "next_open",
        "slippage_ticks": "0",
        "squareoff": "15:15",
        "charges": "zerodha",
        "commission": "0",
        "mode": "run",
    }
    data.update(overrides)
    return data


def run_worker(app) -> None:
    """Every queued backtest job, in this process, like `rq worker --burst backtests`."""
    use_app(app)
    with app.app_context():
        connection = get_rq_redis()
        SimpleWorker([Queue("backtests", connection=connection)], connection=connection).work(burst=True)


def queued(app) -> int:
    with app.app_context():
        return Queue("backtests", connection=get_rq_redis()).count


def test_a_run_is_queued_run_by_a_worker_and_shows_its_results(app, client, auth, bt):
    auth.login("tina")
    response = client.post("/backtests/new", data=form(bt["instrument"].id))
    assert response.status_code == 302, response.data[:2000]
    with app.app_context():
        run = db.session.execute(sa.select(BacktestRun)).scalar_one()
        run_id = run.id
        assert run.state == "QUEUED" and run.job_id
        assert run.params["fast"] == 5 and run.params["slow"] == 20  # stored as the strategy validated them
        assert run.settings["capital"] == "100000" and run.settings["squareoff"] == "15:15"
    assert response.headers["Location"].endswith(f"/backtests/{run_id}")
    assert queued(app) == 1
    page = client.get(f"/backtests/{run_id}").data.decode()
    assert 'id="run-bar"' in page and "QUEUED" in page

    run_worker(app)

    with app.app_context():
        run = db.session.get(BacktestRun, run_id)
        assert run.state == "DONE", run.error
        assert run.progress == 1.0 and run.bars > 0
        stored = service.decode_trades(run.trades_blob)
        # the same engine over the same candles directly: the stored run is trade for trade the engine's
        instrument = db.session.get(Instrument, bt["instrument"].id)
        candles = history.load(db.session, instrument.id, 5, run.start_day, run.end_day)
        expected = engine.run(
            create_strategy("ema_crossover", {"fast": 5, "slow": 20}),
            candles,
            service.engine_settings(run.settings, instrument),
        )
        metrics = dict(run.metrics)
    assert len(stored) == len(expected.trades) > 0
    for got, want in zip(stored, expected.trades, strict=True):
        assert (got["entry_time"], got["exit_time"], got["direction"], got["quantity"]) == (
            want.entry_time,
            want.exit_time,
            want.direction,
            want.quantity,
        )
        assert (got["entry_price"], got["exit_price"], got["net"], got["charges"]) == (
            want.entry_price,
            want.exit_price,
            want.net,
            want.charges,
        )
    assert Decimal(metrics["net_pnl"]) == expected.metrics["net_pnl"]
    assert Decimal(metrics["charges"]) == expected.metrics["charges"] > 0
    assert metrics["trades"] == len(expected.trades)

    page = client.get(f"/backtests/{run_id}").data.decode()
    assert "DONE" in page and 'id="equity-chart"' in page and 'id="metric-net_pnl"' in page
    assert 'hx-trigger="every 1s"' not in page  # finished: no more polling
    assert f"Trades ({len(stored)})" in page and "IST" in page

    series = client.get(f"/backtests/{run_id}/series.json").get_json()
    assert 0 < len(series["equity"]) <= service.CURVE_POINTS and len(series["drawdown"]) == len(series["equity"])
    first_bar = int(candles.time[0])
    assert series["equity"][0]["time"] >= first_bar + service.IST_SECONDS  # IST wall clock on the chart
    assert all(point["value"] <= 0 for point in series["drawdown"])

    exported = client.get(f"/backtests/{run_id}/trades.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.data.decode())))
    assert len(rows) == len(stored)
    assert Decimal(rows[0]["net"]) == stored[0]["net"] and Decimal(rows[-1]["charges"]) == stored[-1]["charges"]
    assert sum(Decimal(r["net"]) for r in rows) == Decimal(metrics["net_pnl"])


def test_the_progress_partial_polls_until_the_run_ends(app, client, auth, bt):
    auth.login("tina")
    client.post("/backtests/new", data=form(bt["instrument"].id))
    with app.app_context():
        run_id = db.session.execute(sa.select(BacktestRun.id)).scalar_one()
    partial = client.get(f"/backtests/{run_id}/progress", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and b'hx-trigger="every 1s"' in partial.data
    run_worker(app)
    ended = client.get(f"/backtests/{run_id}/progress", headers={"HX-Request": "true"})
    assert ended.status_code == 200 and ended.headers.get("HX-Refresh") == "true"


def test_cancel_a_queued_run_and_a_running_one(app, client, auth, bt, redis_client):
    auth.login("tina")
    client.post("/backtests/new", data=form(bt["instrument"].id))
    with app.app_context():
        first = db.session.execute(sa.select(BacktestRun.id)).scalar_one()
    assert client.post(f"/backtests/{first}/cancel").status_code == 302
    run_worker(app)  # the job finds it cancelled and runs nothing
    with app.app_context():
        run = db.session.get(BacktestRun, first)
        assert run.state == "CANCELLED" and run.metrics is None and run.started_at is None

    # running: the engine asks `cancelled()` and the job's answer comes from the Redis flag
    with app.app_context():
        spec = service.Spec(
            "ema_crossover",
            {"fast": 5, "slow": 20},
            bt["instrument"].id,
            1,
            LAST_DAY - timedelta(days=6),
            LAST_DAY,
            service.settings_json(
                {
                    "capital": Decimal(100000),
                    "product": "MIS",
                    "allow_short": False,
                    "sizing": "fixed",
                    "sizing_value": Decimal(1),
                }
            ),
        )
        second = service.create_run(db.session, spec, user_id=None)
        db.session.commit()
        redis_client.set(service.CANCEL_KEY.format(id=second.id), "1")
        states = service.execute_runs(db.session, [second.id], redis_client)
        assert states == {second.id: "CANCELLED"}
        assert db.session.get(BacktestRun, second.id).started_at is not None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"start": "2020-01-01", "end": "2020-03-31"}, "start", "No 5-minute candles of INFY in this range"),
        ({"end": "2020-01-01"}, "end", "not be before"),
        ({"param_fast": "30", "param_slow": "20"}, "param_fast", "below the slow"),
        ({"param_fast": "NaN"}, "param_fast", "whole number"),
        ({"capital": "-5"}, "capital", ""),
        ({"sizing": "risk_pct", "sizing_value": "1"}, "sizing", "needs a stop"),
        ({"product": "CNC", "allow_short": "y"}, "allow_short", "needs MIS"),
        ({"start": "2026-02-30"}, "start", ""),
    ],
)
def test_bad_input_is_refused_next_to_its_field_and_nothing_is_saved(app, client, auth, bt, changes, field, words):
    auth.login("tina")
    response = client.post("/backtests/new", data=form(bt["instrument"].id, **changes))
    body = response.data.decode()
    assert response.status_code == 200
    assert f'id="{field}-error"' in body, body[:3000]
    assert words in body
    with app.app_context():
        assert count(BacktestRun) == 0 and count(Sweep) == 0
    assert queued(app) == 0


def test_an_instrument_without_candles_of_the_interval_is_refused(app, client, auth, bt):
    auth.login("tina")
    response = client.post("/backtests/new", data=form(bt["bare"].id))
    body = response.data.decode()
    assert 'id="interval-error"' in body and "No 5-minute candles are stored for TCS" in body
    with app.app_context():
        assert count(BacktestRun) == 0


def test_a_sweep_runs_in_chunks_and_shows_a_sortable_table_and_a_heatmap(app, client, auth, bt):
    auth.login("tina")
    data = form(bt["instrument"].id, mode="sweep", sweep_fast="3, 5, 8", sweep_slow="10:30:10")
    response = client.post("/backtests/new", data=data)
    assert response.status_code == 302, response.data[:3000]
    with app.app_context():
        sweep = db.session.execute(sa.select(Sweep)).scalar_one()
        sweep_id = sweep.id
        assert sweep.combinations == 9 and sweep.grid == {"fast": [3, 5, 8], "slow": [10, 20, 30]}
        runs = db.session.execute(sa.select(BacktestRun).where(BacktestRun.sweep_id == sweep_id)).scalars().all()
        assert sorted((r.params["fast"], r.params["slow"]) for r in runs) == [
            (f, s) for f in (3, 5, 8) for s in (10, 20, 30)
        ]
        jobs = {r.job_id for r in runs}
    assert len(jobs) == queued(app) == len(service.chunks(list(range(9)))) > 1  # split across the workers
    page = client.get(f"/backtests/sweeps/{sweep_id}").data.decode()
    assert 'hx-trigger="every 2s"' in page and "0 of 9 ended" in page

    run_worker(app)

    page = client.get(f"/backtests/sweeps/{sweep_id}?sort=net_pnl&dir=desc").data.decode()
    assert "9 of 9 ended" in page and 'hx-trigger="every 2s"' not in page
    with app.app_context():
        runs = db.session.execute(sa.select(BacktestRun).where(BacktestRun.sweep_id == sweep_id)).scalars().all()
        assert {r.state for r in runs} == {"DONE"}
        by_net = sorted(runs, key=lambda r: Decimal(r.metrics["net_pnl"]), reverse=True)
        best, worst = by_net[0], by_net[-1]
    # the table in the order asked, both ways
    assert page.index(f'id="sweep-run-{best.id}"') < page.index(f'id="sweep-run-{worst.id}"')
    ascending = client.get(f"/backtests/sweeps/{sweep_id}?sort=net_pnl&dir=asc").data.decode()
    assert ascending.index(f'id="sweep-run-{worst.id}"') < ascending.index(f'id="sweep-run-{best.id}"')
    # the heatmap: one cell per pair, the best greenest, and the "best" link to deploy it
    assert 'id="heatmap"' in page and page.count('class="num heat-') == 9
    assert f'id="cell-{best.params["fast"]}-{best.params["slow"]}"' in page
    assert f'class="num heat-9" id="cell-{best.params["fast"]}-{best.params["slow"]}"' in page
    assert f'href="/backtests/{best.id}#deploy"' in page


def test_a_sweep_skips_combinations_the_strategy_refuses(app, client, auth, bt):
    auth.login("tina")
    response = client.post(
        "/backtests/new", data=form(bt["instrument"].id, mode="sweep", sweep_fast="5, 25", sweep_slow="20, 30")
    )
    assert response.status_code == 302
    with app.app_context():
        sweep = db.session.execute(sa.select(Sweep)).scalar_one()
        assert sweep.combinations == 3  # fast 25 / slow 20 has no meaning
        assert count(BacktestRun) == 3


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"sweep_fast": "1:100:1", "sweep_slow": "101:110:1"}, "sweep", f"at most {service.MAX_COMBINATIONS}"),
        ({"sweep_fast": "5:1:1"}, "sweep_fast", "not be below its start"),
        ({"sweep_fast": "a, b"}, "sweep_fast", "whole number"),
        ({"sweep_fast": "5:10:0"}, "sweep_fast", "above zero"),
        ({"sweep_fast": "1:9999999:1"}, "sweep_fast", "at most 500"),
        ({}, "sweep", "at least one parameter"),
        ({"sweep_fast": "30, 40", "sweep_slow": "20"}, "sweep", "No combination"),
    ],
)
def test_a_bad_sweep_is_refused_and_nothing_is_saved(app, client, auth, bt, changes, field, words):
    auth.login("tina")
    response = client.post("/backtests/new", data=form(bt["instrument"].id, mode="sweep", **changes))
    body = response.data.decode()
    assert response.status_code == 200 and f'id="{field}-error"' in body and words in body, body[:3000]
    with app.app_context():
        assert count(BacktestRun) == 0 and count(Sweep) == 0
    assert queued(app) == 0


def test_deploy_to_paper_makes_a_paused_paper_deployment(app, client, auth, bt):
    auth.login("tina")
    client.post("/backtests/new", data=form(bt["instrument"].id, param_stop_pct="1"))
    run_worker(app)
    with app.app_context():
        run_id = db.session.execute(sa.select(BacktestRun.id)).scalar_one()
    page = client.get(f"/backtests/{run_id}").data.decode()
    assert 'id="deploy-to-paper"' in page
    response = client.post(f"/backtests/{run_id}/deploy", data={"clients": [str(bt["client"].id)]})
    assert response.status_code == 302, response.data[:3000]
    with app.app_context():
        deployment = db.session.execute(sa.select(Deployment)).scalar_one()
        assert deployment.state == "PAUSED" and deployment.mode == "paper"
        assert deployment.strategy == "ema_crossover" and deployment.interval == 5
        assert deployment.params["fast"] == 5 and deployment.params["slow"] == 20 and deployment.params["stop_pct"] == 1
        assert [di.instrument_id for di in deployment.instruments] == [bt["instrument"].id]
        assert [dc.client_id for dc in deployment.clients] == [bt["client"].id]
        assert deployment.sizing == "capital_pct" and deployment.sizing_value == Decimal(100)
        assert deployment.clients[0].capital == Decimal(100000)
    assert response.headers["Location"].endswith(f"/deployments/{deployment.id}")


def test_deploy_without_a_client_is_refused_and_nothing_is_saved(app, client, auth, bt, factory):
    auth.login("tina")
    client.post("/backtests/new", data=form(bt["instrument"].id))
    run_worker(app)
    with app.app_context():
        run_id = db.session.execute(sa.select(BacktestRun.id)).scalar_one()
    stranger = factory.client("Stranger", broker="paper")
    for data in ({}, {"clients": [str(stranger.id)]}, {"clients": ["x"]}):
        response = client.post(f"/backtests/{run_id}/deploy", data=data)
        assert response.status_code == 200 and b'id="deploy-clients-error"' in response.data
    with app.app_context():
        assert count(Deployment) == 0


def test_a_viewer_reads_results_but_may_not_run_or_cancel(app, client, auth, bt):
    auth.login("tina")
    client.post("/backtests/new", data=form(bt["instrument"].id))
    with app.app_context():
        run_id = db.session.execute(sa.select(BacktestRun.id)).scalar_one()
    auth.logout()
    auth.login("vic")
    assert client.get("/backtests/").status_code == 200
    assert client.get(f"/backtests/{run_id}").status_code == 200
    assert client.get("/backtests/new").status_code == 403
    assert client.post("/backtests/new", data=form(bt["instrument"].id)).status_code == 403
    assert client.post(f"/backtests/{run_id}/cancel").status_code == 403
    with app.app_context():
        assert count(BacktestRun) == 1 and db.session.get(BacktestRun, run_id).state == "QUEUED"


def test_a_run_whose_job_cannot_find_candles_fails_with_the_reason(app, bt, redis_client):
    with app.app_context():
        spec = service.Spec(
            "ema_crossover",
            {"fast": 5, "slow": 20},
            bt["bare"].id,
            1,
            LAST_DAY,
            LAST_DAY,
            service.settings_json(
                {
                    "capital": Decimal(100000),
                    "product": "MIS",
                    "allow_short": False,
                    "sizing": "fixed",
                    "sizing_value": Decimal(1),
                }
            ),
        )
        run = service.create_run(db.session, spec, user_id=None)
        db.session.commit()
        assert service.execute_runs(db.session, [run.id], redis_client) == {run.id: "FAILED"}
        failed = db.session.get(BacktestRun, run.id)
        assert "no stored candles" in failed.error
        # run twice (a retried job): nothing happens the second time
        assert service.execute_runs(db.session, [run.id], redis_client) == {run.id: "FAILED"}


def test_curves_are_kept_compact_and_exact_in_shape():
    import numpy as np

    times = np.arange(10_000, dtype=np.int64) * 60
    equity = np.linspace(100_000, 110_000, 10_000)
    drawdown = -np.abs(np.sin(np.arange(10_000) / 50)) * 5
    drawdown[4321] = -42.0
    t, e, d = service.decode_curve(service.encode_curve(times, equity, drawdown))
    assert len(t) == len(e) == len(d) == service.CURVE_POINTS
    assert t[-1] == times[-1] and e[-1] == equity[-1]
    assert d.min() == -42.0  # the deepest drawdown survives the downsampling


def _deployment_with_capital(app, bt, factory, capitals: dict[str, Decimal | None]) -> tuple[int, dict[str, int]]:
    from tests.deployments.conftest import make_deployment
    from webapp.models import DeploymentClient

    clients = {name: factory.client(name, broker="paper") for name in capitals}
    deployment_id = make_deployment(
        app,
        list(clients.values()),
        [bt["instrument"]],
        sizing="capital_pct",
        sizing_value=Decimal(50),
        params={"fast": 5, "slow": 20},
    )
    with app.app_context():
        for row in db.session.execute(
            sa.select(DeploymentClient).where(DeploymentClient.deployment_id == deployment_id)
        ).scalars():
            name = next(n for n, c in clients.items() if c.id == row.client_id)
            row.capital = capitals[name]
            if name == "Beta":
                row.sizing_value = Decimal(20)  # Beta's own sizing value
        db.session.commit()
    return deployment_id, {name: client.id for name, client in clients.items()}


def test_a_deployment_is_backtested_per_client_with_its_own_capital_and_sizing(app, client, auth, bt, factory):
    deployment_id, ids = _deployment_with_capital(
        app, bt, factory, {"Alpha2": Decimal(100000), "Beta": Decimal(300000)}
    )
    factory.user("ada", role="admin")
    auth.login("ada")
    page = client.get("/backtests/").data.decode()
    assert 'id="backtest-deployment"' in page
    response = client.post("/backtests/deployments", data={"deployment_id": str(deployment_id)})
    assert response.status_code == 302, response.data[:2000]
    with app.app_context():
        group = db.session.execute(sa.select(Sweep)).scalar_one()
        group_id = group.id
        assert group.deployment_id == deployment_id and group.grid == {} and group.combinations == 2
    run_worker(app)
    with app.app_context():
        runs = {r.settings["client"]: r for r in db.session.execute(sa.select(BacktestRun)).scalars()}
        assert {r.state for r in runs.values()} == {"DONE"}
        alpha, beta = runs["Alpha2"], runs["Beta"]
        settings = {
            name: (Decimal(r.settings["capital"]), Decimal(r.settings["sizing_value"])) for name, r in runs.items()
        }
        assert settings == {"Alpha2": (100000, 50), "Beta": (300000, 20)}
        first_alpha = service.decode_trades(alpha.trades_blob)[0]
        first_beta = service.decode_trades(beta.trades_blob)[0]
        price = first_alpha["entry_price"]
        # same signals, each client sized by its own rule: 50% of ₹1,00,000 and 20% of ₹3,00,000 at the signal close
        assert first_alpha["entry_time"] == first_beta["entry_time"]
        assert first_alpha["quantity"] != first_beta["quantity"]
        assert abs(first_alpha["quantity"] * price - Decimal(50000)) < price * 2
        assert abs(first_beta["quantity"] * price - Decimal(60000)) < price * 2
    page = client.get(f"/backtests/sweeps/{group_id}").data.decode()
    assert 'id="per-client"' in page and "Alpha2" in page and "Beta" in page and 'id="heatmap"' not in page


def test_a_deployment_backtest_without_a_clients_capital_is_refused_and_others_may_not_see_one(
    app, client, auth, bt, factory
):
    deployment_id, ids = _deployment_with_capital(app, bt, factory, {"Alpha2": Decimal(100000), "Broke": None})
    factory.user("ada", role="admin")
    auth.login("ada")
    response = client.post("/backtests/deployments", data={"deployment_id": str(deployment_id)}, follow_redirects=True)
    assert b"Broke: no capital known" in response.data
    with app.app_context():
        assert count(Sweep) == 0 and count(BacktestRun) == 0
    assert queued(app) == 0
    # tina (a trader granted only Alpha) may neither run nor read a backtest of a deployment with others' clients
    with app.app_context():
        from webapp.models import DeploymentClient

        db.session.execute(sa.update(DeploymentClient).values(capital=Decimal(100000)))
        db.session.commit()
    client.post("/backtests/deployments", data={"deployment_id": str(deployment_id)})
    with app.app_context():
        group_id = db.session.execute(sa.select(Sweep.id)).scalar_one()
        run_id = db.session.execute(sa.select(BacktestRun.id)).scalars().first()
    auth.logout()
    auth.login("tina")
    assert client.get(f"/backtests/sweeps/{group_id}").status_code == 404
    assert client.get(f"/backtests/{run_id}").status_code == 404
    assert client.get(f"/backtests/{run_id}/trades.csv").status_code == 404
    assert f"/backtests/sweeps/{group_id}" not in client.get("/backtests/").data.decode()
    client.post("/backtests/deployments", data={"deployment_id": str(deployment_id)})
    with app.app_context():
        assert count(Sweep) == 1


def test_a_job_that_dies_fails_its_runs_instead_of_leaving_them_running(app, bt):
    """RQ's failure callback (a job that raised, timed out or lost its worker) ends the job's runs."""
    from rq import Callback

    with app.app_context():
        spec = service.Spec(
            "ema_crossover",
            {"fast": 5, "slow": 20},
            bt["instrument"].id,
            5,
            LAST_DAY,
            LAST_DAY,
            service.settings_json(
                {
                    "capital": Decimal(100000),
                    "product": "MIS",
                    "allow_short": False,
                    "sizing": "fixed",
                    "sizing_value": Decimal(1),
                }
            ),
        )
        run = service.create_run(db.session, spec, user_id=None)
        db.session.commit()
        # a job that raises before it reaches the run (here: called with an argument too many)
        Queue("backtests", connection=get_rq_redis()).enqueue(
            "jobs.backtests.run_backtests", [run.id], "extra", on_failure=Callback("jobs.backtests.lost")
        )
    run_worker(app)
    with app.app_context():
        failed = db.session.get(BacktestRun, run.id)
        assert failed.state == "FAILED" and "The backtest job stopped (TypeError" in failed.error
