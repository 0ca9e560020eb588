"""Strategies catalogue, deployments (list, new, edit, page, start / pause / stop) and the desk-wide
automation switch. Thin: parse → webapp.automation.deployments → commit → announce → render."""

from __future__ import annotations

from datetime import time

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.automation import deployments as domain
from webapp.deployments import bp
from webapp.deployments.forms import DeploymentForm, spec_from
from webapp.deployments.summary import detail, pnl, today_counts
from webapp.extensions import db, get_redis, page_redis
from webapp.htmx import hx_redirect, is_htmx, render_page_or_partial
from webapp.inputs import InputError, choice, shown_decimal
from webapp.models import Instrument
from webapp.models.base import in_ids
from webapp.permissions import requires
from webapp.security import same_site_referrer
from webapp.strategies import all_strategies, strategy_class


@bp.app_context_processor
def automation_context():
    """The desk page's automation switch reads the state through this (lazily: one query when shown)."""
    return {"automation_is_off": domain.automation_off}


@bp.route("/strategies")
@requires("desk.view")
def strategies():
    return render_template("deployments/strategies.html", strategies=all_strategies())


@bp.route("/deployments")
@requires("desk.view")
def index():
    found = domain.visible(current_user)
    ids = [d.id for d in found]
    return render_page_or_partial(
        "deployments/index.html",
        "deployments/_list.html",
        deployments=found,
        today=today_counts(ids),
        pnl=pnl(ids, page_redis()),
        automation_off=domain.automation_off(),
    )


def _deployment(deployment_id: int):
    return domain.visible_one(current_user, deployment_id) or abort(404)


def _render_form(form, clients, errors=None, instruments=(), deployment=None, status=200):
    strategy = _strategy_or_none(form.strategy.data)
    return render_template(
        "deployments/form.html",
        form=form,
        clients=clients,
        errors=errors or {},
        instruments=instruments,
        strategy=strategy,
        values=_param_values(strategy, deployment),
        deployment=deployment,
        typed=_client_fields(clients, deployment),
    ), status


def _client_fields(clients, deployment) -> dict[str, str]:
    """What each client's sizing and capital inputs show: as posted, else as stored on the deployment."""
    if request.method == "POST":
        return {
            f"{prefix}_{c.id}": request.form.get(f"{prefix}_{c.id}", "")[:40]
            for c in clients
            for prefix in ("size", "capital")
        }
    stored = {dc.client_id: dc for dc in deployment.clients} if deployment is not None else {}
    return {
        f"{prefix}_{client_id}": shown_decimal(getattr(dc, column))
        for client_id, dc in stored.items()
        for prefix, column in (("size", "sizing_value"), ("capital", "capital"))
    }


def _strategy_or_none(name):
    try:
        return strategy_class(name) if name else None
    except KeyError:
        return None


def _param_values(strategy, deployment) -> dict:
    """What each parameter field shows: the posted value, else the deployment's, else the default."""
    if strategy is None:
        return {}
    stored = deployment.params if deployment is not None and deployment.strategy == strategy.name else {}
    values = {}
    for param in strategy.params:
        posted = request.form.get(f"param_{param.name}") if request.method == "POST" else None
        values[param.name] = posted[:64] if posted is not None else stored.get(param.name, param.default)
    return values


def _posted_instruments(spec) -> list[Instrument]:
    ids = spec.instrument_ids[: domain.MAX_INSTRUMENTS]
    if not ids:
        return []
    found = {i.id: i for i in db.session.execute(sa.select(Instrument).where(in_ids(Instrument.id, ids))).scalars()}
    return [found[i] for i in ids if i in found]


def _submit(form, clients, deployment=None):
    """Validate and save (create, or edit a paused one); the form again with every message otherwise."""
    spec, errors = spec_from(form, request)
    form_ok = form.validate_on_submit()
    checked = domain.validate(current_user, spec, page_redis())
    errors = {**checked.errors, **errors}
    if not form_ok or errors:
        db.session.rollback()
        return _render_form(form, clients, errors, _posted_instruments(spec), deployment)
    if deployment is None:
        deployment = domain.create(current_user, spec, checked, ip=request.remote_addr)
        message = f"Deployment {deployment.name} created, paused: start it when ready."
    else:
        try:
            domain.edit(current_user, deployment, spec, checked, ip=request.remote_addr)
        except domain.DeploymentError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return redirect(url_for("deployments.show", deployment_id=deployment.id))
        message = f"Deployment {deployment.name} changed."
    db.session.commit()
    domain.announce(get_redis(), deployment)
    flash(message, "success")
    return redirect(url_for("deployments.show", deployment_id=deployment.id))


@bp.route("/deployments/new", methods=["GET", "POST"])
@requires("deployments.manage")
def new():
    clients = domain.selectable_clients(current_user)
    form = DeploymentForm(clients)
    if request.method == "GET":
        form.strategy.data = request.args.get("strategy") if _strategy_or_none(request.args.get("strategy")) else None
        form.strategy.data = form.strategy.data or "ema_crossover"
        form.last_entry.data = time(15, 0)
        form.squareoff_at.data = time(15, 10)
        return _render_form(form, clients)
    return _submit(form, clients)


@bp.route("/deployments/<int:deployment_id>/edit", methods=["GET", "POST"])
@requires("deployments.manage")
def edit(deployment_id: int):
    deployment = _deployment(deployment_id)
    if refusal := domain.edit_refusal(deployment):
        flash(refusal, "error")
        return redirect(url_for("deployments.show", deployment_id=deployment.id))
    clients = domain.selectable_clients(current_user)
    form = DeploymentForm(clients, obj=None if request.method == "POST" else deployment)
    if request.method == "GET":
        form.days.data = deployment.day_list
        form.clients.data = [dc.client_id for dc in deployment.clients]
        instruments = [di.instrument for di in deployment.instruments]
        return _render_form(form, clients, instruments=instruments, deployment=deployment)
    return _submit(form, clients, deployment)


@bp.route("/deployments/params")
@requires("deployments.manage")
def params():
    """The parameter fields of the chosen strategy (the form swaps them in when the strategy changes)."""
    strategy = _strategy_or_none(request.args.get("strategy"))
    return render_template(
        "deployments/_params.html", strategy=strategy, values=_param_values(strategy, None), errors={}
    )


@bp.route("/deployments/<int:deployment_id>")
@requires("desk.view")
def show(deployment_id: int):
    deployment = _deployment(deployment_id)
    return render_page_or_partial(
        "deployments/show.html",
        "deployments/_live.html",
        automation_off=domain.automation_off(),
        **detail(deployment, page_redis()),
    )


def _change(deployment_id: int, act):
    deployment = _deployment(deployment_id)
    try:
        act(deployment)
    except domain.DeploymentError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        domain.announce(get_redis(), deployment)
        flash(f"{deployment.name}: {deployment.state}.", "success")
    target = url_for("deployments.show", deployment_id=deployment.id)
    return hx_redirect(target) if is_htmx() else redirect(target)


@bp.route("/deployments/<int:deployment_id>/start", methods=["POST"])
@requires("deployments.manage")
def start(deployment_id: int):
    return _change(deployment_id, lambda d: domain.start(current_user, d, ip=request.remote_addr))


@bp.route("/deployments/<int:deployment_id>/pause", methods=["POST"])
@requires("deployments.manage")
def pause(deployment_id: int):
    return _change(deployment_id, lambda d: domain.pause(current_user, d, ip=request.remote_addr))


@bp.route("/deployments/<int:deployment_id>/stop", methods=["POST"])
@requires("deployments.manage")
def stop(deployment_id: int):
    return _change(deployment_id, lambda d: domain.stop(current_user, d, ip=request.remote_addr))


@bp.route("/automation", methods=["POST"])
@requires("automation.switch")
def automation():
    try:
        off = choice(request.form.get("off"), ("1", "0")) == "1"
    except InputError:
        abort(400)
    if domain.set_automation(current_user, off, ip=request.remote_addr):
        db.session.commit()
        domain.announce(get_redis())
    flash(
        "Automation OFF: no deployment is evaluated until it is turned on."
        if off
        else "Automation on: running deployments resume at their next candle.",
        "success",
    )
    target = same_site_referrer() or url_for("desk.index")
    return hx_redirect(target) if is_htmx() else redirect(target)
