"""Backtest pages: the form (one run, or a sweep of the parameters), a run's progress and results (metrics,
equity and drawdown charts, trades and their CSV), a sweep's sortable table and heatmap, cancel, and
"deploy to paper" (a PAUSED paper deployment through webapp.automation.deployments)."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.backtest import runs as service
from webapp.backtests import bp
from webapp.backtests import results as present
from webapp.backtests.deploy import client_choice, client_specs, deployment_spec
from webapp.backtests.forms import DEFAULT_SQUAREOFF, OFF, BacktestForm, param_fields, params_from, sweep_from
from webapp.csvexport import csv_response
from webapp.extensions import db, page_redis
from webapp.htmx import is_htmx
from webapp.inputs import record_id
from webapp.marketdata.intervals import INTERVALS
from webapp.models import BacktestRun, Candle, Instrument, Sweep
from webapp.models.backtests import FINISHED
from webapp.permissions import requires, user_can
from webapp.strategies import strategy_names
from webapp.tasks import queue_available

RECENT = 50
TRADES_SHOWN = 500


def _instruments() -> list[Instrument]:
    """Instruments with stored candles (the form's list)."""
    with_candles = sa.select(Candle.instrument_id).distinct()
    return list(
        db.session.execute(
            sa.select(Instrument).where(Instrument.id.in_(with_candles)).order_by(Instrument.tradingsymbol)
        ).scalars()
    )


def _most_history() -> int | None:
    """The instrument with the most stored candles (the form's first choice)."""
    return db.session.execute(
        sa.select(Candle.instrument_id).group_by(Candle.instrument_id).order_by(sa.func.count().desc()).limit(1)
    ).scalar()


def _may_see_group(sweep: Sweep | None) -> bool:
    """A deployment's backtest names its clients: only those who may see the deployment see it."""
    if sweep is None or sweep.deployment_id is None:
        return True
    from webapp.automation import deployments

    return deployments.visible_one(current_user, sweep.deployment_id) is not None


def _run(run_id: int) -> BacktestRun:
    return service.visible_run(db.session, current_user, run_id) or abort(404)


def _sweep(sweep_id: int) -> Sweep:
    sweep = db.session.get(Sweep, sweep_id)
    if sweep is None or not _may_see_group(sweep):
        abort(404)
    return sweep


@bp.route("/")
@requires("desk.view")
def index():
    runs = db.session.execute(
        sa.select(BacktestRun).where(BacktestRun.sweep_id.is_(None)).order_by(BacktestRun.id.desc()).limit(RECENT)
    ).scalars()
    sweeps = db.session.execute(sa.select(Sweep).order_by(Sweep.id.desc()).limit(RECENT)).scalars()
    from webapp.automation import deployments

    visible = deployments.visible(current_user)
    seen = {d.id for d in visible}
    return render_template(
        "backtests/index.html",
        runs=list(runs),
        sweeps=[s for s in sweeps if s.deployment_id is None or s.deployment_id in seen],
        deployments=visible,
        present=present,
    )


@bp.route("/deployments", methods=["POST"])
@requires("backtests.run")
def deployment():
    """A deployment backtested per client (each with its own capital and sizing) over the last year of
    each of its instruments' history: one run per client × instrument, grouped."""
    from webapp.automation import deployments

    chosen = record_id(request.form.get("deployment_id"))
    found = deployments.visible_one(current_user, chosen) if chosen is not None else None
    if found is None:
        flash("Choose a deployment from the list.", "error")
        return redirect(url_for("backtests.index"))
    specs, problems = client_specs(found)
    if not problems and not specs:
        problems = ["The deployment has no client or no instrument to backtest."]
    if problems:
        for problem in problems:
            flash(f"Not run: {problem}", "error")
        return redirect(url_for("backtests.index"))
    if not queue_available():
        flash("Backtests cannot be queued right now (Redis is unavailable); nothing was saved.", "error")
        return redirect(url_for("backtests.index"))
    try:
        group, runs = service.create_group(db.session, specs, user_id=current_user.id, deployment_id=found.id)
    except ValueError as exc:
        db.session.rollback()
        flash(f"Not run: {exc}", "error")
        return redirect(url_for("backtests.index"))
    db.session.commit()
    service.queue_runs(db.session, [run.id for run in runs])
    flash(f"{found.name}: {len(runs)} runs queued, one per client and instrument.", "success")
    return redirect(url_for("backtests.sweep", sweep_id=group.id))


# --- the form -----------------------------------------------------------------------------------------


def _strategy_name(raw) -> str:
    names = strategy_names()
    return raw if raw in names else ("ema_crossover" if "ema_crossover" in names else (names[0] if names else ""))


def _render_form(form, instruments, *, strategy, values, sweep_values, errors=None, mode="run", status=200):
    errors = errors or {}
    coverage = None
    interval = str(form.interval.data or "")
    known = form.instrument_id.data and db.session.get(Instrument, form.instrument_id.data) is not None
    if known and interval.isdigit() and int(interval) in INTERVALS:
        coverage = service.coverage_text(db.session, form.instrument_id.data, int(interval))
    return (
        render_template(
            "backtests/form.html",
            form=form,
            instruments=instruments,
            params=param_fields(strategy),
            strategy=strategy,
            values=values,
            sweep_values=sweep_values,
            errors=errors,
            mode=mode,
            coverage=coverage,
            max_combinations=service.MAX_COMBINATIONS,
        ),
        status,
    )


def _prefill(form, run: BacktestRun | Sweep) -> None:
    settings = run.settings
    form.strategy.data = run.strategy
    form.instrument_id.data = run.instrument_id
    form.interval.data = str(run.interval)
    form.start.data, form.end.data = run.start_day, run.end_day
    for name in ("product", "sizing", "fill"):
        if settings.get(name) is not None:
            getattr(form, name).data = settings[name]
    form.allow_short.data = bool(settings.get("allow_short"))
    for name in ("capital", "sizing_value", "commission"):
        if settings.get(name) is not None:
            getattr(form, name).data = Decimal(str(settings[name]))
    form.slippage_ticks.data = settings.get("slippage_ticks", 0)
    squareoff = settings.get("squareoff")
    form.squareoff.data = time.fromisoformat(squareoff) if squareoff else None
    form.charges.data = settings.get("charges") or OFF


@bp.route("/new", methods=["GET", "POST"])
@requires("backtests.run")
def new():
    instruments = _instruments()
    form = BacktestForm(instruments)
    if request.method == "POST":
        return _submit(form, instruments)
    mode = "sweep" if request.args.get("mode") == "sweep" else "run"
    values, sweep_values = {}, {}
    source = None
    from_run = record_id(request.args.get("from_run"))
    if from_run is not None:
        source = db.session.get(BacktestRun, from_run)
    if source is not None and _may_see_group(source.sweep):
        _prefill(form, source)
        values = dict(source.params)
    else:
        form.strategy.data = _strategy_name(request.args.get("strategy"))
        chosen = record_id(request.args.get("instrument_id"))
        if chosen is None and instruments:
            chosen = _most_history()
        form.instrument_id.data = chosen
        form.squareoff.data = DEFAULT_SQUAREOFF
        if chosen is not None:
            span = service.default_range(db.session, chosen, int(form.interval.data))
            if span is not None:
                form.start.data, form.end.data = span
    if mode == "sweep" and form.strategy.data == "ema_crossover":
        sweep_values = {"fast": "5:20:5", "slow": "20:60:10"}
    return _render_form(
        form, instruments, strategy=form.strategy.data, values=values, sweep_values=sweep_values, mode=mode
    )


@bp.route("/range")
@requires("backtests.run")
def range_fields():
    """The stored history of the chosen instrument and interval, and the range set to its last year (the
    form swaps them in when either changes)."""
    form = BacktestForm(_instruments(), formdata=None)
    form.instrument_id.data = record_id(request.args.get("instrument_id"))
    interval = request.args.get("interval", "")
    form.interval.data = interval if interval in {str(i) for i in INTERVALS} else "1"
    coverage = None
    if form.instrument_id.data is not None and db.session.get(Instrument, form.instrument_id.data) is not None:
        span = service.default_range(db.session, form.instrument_id.data, int(form.interval.data))
        if span is not None:
            form.start.data, form.end.data = span
        coverage = service.coverage_text(db.session, form.instrument_id.data, int(form.interval.data))
    return render_template("backtests/_range.html", form=form, coverage=coverage, errors={})


@bp.route("/params")
@requires("backtests.run")
def params():
    """The chosen strategy's parameter fields (the form swaps them in when the strategy changes)."""
    strategy = _strategy_name(request.args.get("strategy"))
    return render_template(
        "backtests/_params.html",
        params=param_fields(strategy),
        values={},
        sweep_values={},
        errors={},
        mode="sweep" if request.args.get("mode") == "sweep" else "run",
        max_combinations=service.MAX_COMBINATIONS,
    )


def _spec(form, strategy: str, params: dict) -> service.Spec:
    return service.Spec(
        strategy=strategy,
        params=params,
        instrument_id=form.instrument_id.data,
        interval=int(form.interval.data),
        start_day=form.start.data,
        end_day=form.end.data,
        settings=service.settings_from(
            capital=form.capital.data,
            product=form.product.data,
            allow_short=form.allow_short.data,
            sizing=form.sizing.data,
            sizing_value=form.sizing_value.data,
            fill=form.fill.data,
            slippage_ticks=form.slippage_ticks.data,
            squareoff=form.squareoff.data,
            charges=form.charges.data,
            commission=form.commission.data,
        ),
    )


def _submit(form, instruments):
    mode = "sweep" if request.form.get("mode") == "sweep" else "run"
    strategy = _strategy_name(form.strategy.data)
    raw_params = params_from(request, strategy)
    grid, errors = sweep_from(request, strategy) if mode == "sweep" else ({}, {})
    form_ok = form.validate_on_submit()
    sweep_text = {p.name: request.form.get(f"sweep_{p.name}", "")[:200] for p in param_fields(strategy)}
    if form_ok:
        spec = _spec(form, strategy, raw_params)
        errors.update(service.check_spec(db.session, spec, grid if mode == "sweep" else None))
    if not form_ok or errors:
        db.session.rollback()
        return _render_form(
            form, instruments, strategy=strategy, values=raw_params, sweep_values=sweep_text, errors=errors, mode=mode
        )
    if not queue_available():
        flash("Backtests cannot be queued right now (Redis is unavailable); nothing was saved.", "error")
        return _render_form(
            form, instruments, strategy=strategy, values=raw_params, sweep_values=sweep_text, mode=mode, status=503
        )
    if mode == "sweep":
        try:
            sweep, runs = service.create_sweep(db.session, spec, grid, user_id=current_user.id)
        except ValueError as exc:  # SweepTooLarge, or no valid combination
            db.session.rollback()
            errors = {"sweep": str(exc)}
            return _render_form(
                form,
                instruments,
                strategy=strategy,
                values=raw_params,
                sweep_values=sweep_text,
                errors=errors,
                mode=mode,
            )
        db.session.commit()
        service.queue_runs(db.session, [run.id for run in runs])
        flash(f"Sweep of {len(runs)} combinations queued.", "success")
        return redirect(url_for("backtests.sweep", sweep_id=sweep.id))
    run = service.start_run(db.session, spec, user_id=current_user.id)
    return redirect(url_for("backtests.show", run_id=run.id))


# --- one run ------------------------------------------------------------------------------------------


def _run_context(run: BacktestRun) -> dict:
    return {
        "run": run,
        "progress": service.progress_of(page_redis(), run),
        "present": present,
        "finished": run.state in FINISHED,
    }


@bp.route("/<int:run_id>")
@requires("desk.view")
def show(run_id: int):
    run = _run(run_id)
    context = _run_context(run)
    trades = service.decode_trades(run.trades_blob) if run.state == "DONE" else []
    deploy = None
    if run.state == "DONE" and user_can("deployments.manage"):
        from webapp.automation import deployments

        deploy = {"clients": deployments.selectable_clients(current_user), "errors": {}}
    return render_template(
        "backtests/show.html",
        trades=trades[:TRADES_SHOWN],
        trade_count=len(trades),
        deploy=deploy,
        coverage=service.coverage_text(db.session, run.instrument_id, run.interval),
        **context,
    )


@bp.route("/<int:run_id>/progress")
@requires("desk.view")
def progress(run_id: int):
    """The progress partial; when the run has ended, the page reloads to show the results."""
    run = _run(run_id)
    if run.state in FINISHED and is_htmx():
        response = redirect(url_for("backtests.show", run_id=run.id))
        response.headers["HX-Refresh"] = "true"
        response.status_code = 200
        response.set_data("")
        return response
    return render_template("backtests/_progress.html", **_run_context(run))


@bp.route("/<int:run_id>/cancel", methods=["POST"])
@requires("backtests.run")
def cancel(run_id: int):
    run = _run(run_id)
    if service.cancel_run(db.session, run, page_redis()):
        db.session.commit()
        flash(f"Backtest #{run.id}: cancel asked.", "info")
    else:
        flash(f"Backtest #{run.id} had already ended.", "info")
    return redirect(url_for("backtests.show", run_id=run.id))


@bp.route("/<int:run_id>/series.json")
@requires("desk.view")
def series(run_id: int):
    run = _run(run_id)
    return service.chart_series(run) if run.state == "DONE" else {"equity": [], "drawdown": []}


@bp.route("/<int:run_id>/trades.csv")
@requires("desk.view")
def trades_csv(run_id: int):
    run = _run(run_id)
    header, rows = service.trade_rows(run)
    return csv_response(f"backtest-{run.id}-trades", header, rows)


@bp.route("/<int:run_id>/deploy", methods=["POST"])
@requires("deployments.manage")
def deploy(run_id: int):
    """A PAUSED paper deployment of this run's strategy, parameters, instrument, interval and sizing."""
    from webapp.automation import deployments

    run = _run(run_id)
    if run.state != "DONE":
        flash("Only a finished backtest can be deployed.", "error")
        return redirect(url_for("backtests.show", run_id=run.id))
    clients = deployments.selectable_clients(current_user)
    chosen, problem = client_choice(request.form.getlist("clients"), [c.id for c in clients])
    spec = deployment_spec(run, chosen)
    checked = deployments.validate(current_user, spec, page_redis())
    errors = dict(checked.errors)
    if problem:
        errors["clients"] = problem
    if errors:
        db.session.rollback()
        context = _run_context(run)
        trades = service.decode_trades(run.trades_blob)
        return render_template(
            "backtests/show.html",
            trades=trades[:TRADES_SHOWN],
            trade_count=len(trades),
            deploy={"clients": clients, "errors": errors, "chosen": chosen},
            coverage=service.coverage_text(db.session, run.instrument_id, run.interval),
            **context,
        )
    deployment = deployments.create(current_user, spec, checked, ip=request.remote_addr)
    db.session.commit()
    deployments.announce(page_redis(), deployment)
    flash(f"Paper deployment {deployment.name} created, paused: start it when ready.", "success")
    return redirect(url_for("deployments.show", deployment_id=deployment.id))


# --- sweeps -------------------------------------------------------------------------------------------


@bp.route("/sweeps/<int:sweep_id>")
@requires("desk.view")
def sweep(sweep_id: int):
    found = _sweep(sweep_id)
    runs = list(found.runs)
    names = list(found.grid)
    columns = present.metric_columns(runs)
    sort = request.args.get("sort", present.DEFAULT_METRIC)
    if sort not in names and sort not in columns:
        sort = present.DEFAULT_METRIC
    descending = request.args.get("dir", "desc") != "asc"
    metric = request.args.get("metric", present.DEFAULT_METRIC)
    if metric not in columns:
        metric = columns[0] if columns else present.DEFAULT_METRIC
    x = request.args.get("x") if request.args.get("x") in names else (names[0] if names else None)
    y = request.args.get("y") if request.args.get("y") in names else (names[1] if len(names) > 1 else None)
    if x == y:
        y = next((n for n in names if n != x), None)
    counts = service.sweep_counts(db.session, found.id)
    context = {
        "sweep": found,
        "runs": present.sort_runs(runs, sort, descending, names),
        "names": names,
        "columns": columns,
        "sort": sort,
        "descending": descending,
        "metric": metric,
        "heat": present.heatmap(runs, found.grid, x, y, metric) if x and y else None,
        "best": present.best_run(runs, metric),
        "counts": counts,
        "pending": counts["QUEUED"] + counts["RUNNING"],
        "present": present,
    }
    if is_htmx() and request.args.get("part") == "progress":
        if not context["pending"]:
            response = redirect(url_for("backtests.sweep", sweep_id=found.id))
            response.headers["HX-Refresh"] = "true"
            response.status_code = 200
            response.set_data("")
            return response
        return render_template("backtests/_sweep_progress.html", **context)
    return render_template("backtests/sweep.html", **context)


@bp.route("/sweeps/<int:sweep_id>/cancel", methods=["POST"])
@requires("backtests.run")
def sweep_cancel(sweep_id: int):
    found = _sweep(sweep_id)
    asked = service.cancel_sweep(db.session, found, page_redis())
    db.session.commit()
    flash(f"Sweep #{found.id}: cancel asked for {asked} runs." if asked else "The sweep had already ended.", "info")
    return redirect(url_for("backtests.sweep", sweep_id=found.id))
