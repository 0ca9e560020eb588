"""Client pages: the list, one client, and its daily broker login (Connect)."""

from __future__ import annotations

import secrets

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from webapp import audit
from webapp.access import accessible_clients, client_for
from webapp.brokers import broker_class
from webapp.clients import bp
from webapp.clients.book import client_book
from webapp.clients.forms import login_form
from webapp.extensions import db, get_redis, page_redis
from webapp.inputs import InputError, bounded_params
from webapp.permissions import requires, user_can
from webapp.tasks import QUEUE_ORDERS, enqueue
from webapp.trading.accounts import adapter_for
from webapp.trading.sessions import login_status, set_login_status
from webapp.vault import current_vault

PENDING_LOGINS = "broker_logins"  # session key: state → client id, for redirect logins


@bp.route("/")
@requires("desk.view")
def index():
    return render_template("clients/index.html", clients=accessible_clients(current_user))


@bp.route("/<int:client_id>")
@requires("desk.view")
def detail(client_id: int):
    client = client_for(current_user, client_id)
    return render_template(
        "clients/detail.html",
        client=client,
        broker=broker_class(client.broker),
        login=login_status(page_redis(), client.id),
        can_place=user_can("orders.place"),
        **client_book(client.id),
    )


@bp.route("/<int:client_id>/session")
@requires("desk.view")
def session_panel(client_id: int):
    """The session badge and the outcome of a login in progress (self-polling partial)."""
    client = client_for(current_user, client_id)
    return render_template(
        "clients/_session_panel.html",
        client=client,
        broker=broker_class(client.broker),
        login=login_status(page_redis(), client.id),
    )


def _start_connect(client_id: int, params: dict[str, str]) -> None:
    vault = current_vault()
    set_login_status(get_redis(), client_id, "pending")
    enqueue(
        "jobs.brokers.connect",
        client_id,
        vault.encrypt(params),
        current_user.id,
        current_user.username,
        queue_name=QUEUE_ORDERS,
        result_ttl=60,
        failure_ttl=3600,
    )


@bp.route("/<int:client_id>/connect", methods=["GET", "POST"])
@requires("broker.connect")
def connect(client_id: int):
    client = client_for(current_user, client_id)
    broker = broker_class(client.broker)
    if broker.login_kind == "none":
        flash(f"{broker.label} accounts need no login.", "info")
        return redirect(url_for("clients.detail", client_id=client.id))
    if not client.enabled:
        flash("This client is disabled; an admin must enable it before it can connect.", "error")
        return redirect(url_for("clients.detail", client_id=client.id))
    if broker.login_kind == "redirect":
        state = secrets.token_urlsafe(16)
        pending = dict(session.get(PENDING_LOGINS, {}))
        pending[state] = client.id
        session[PENDING_LOGINS] = dict(list(pending.items())[-5:])  # a few logins in flight at most
        adapter = adapter_for(client, current_app.config, current_vault())
        url = adapter.login_url(url_for("clients.connect_callback", _external=True), state)
        adapter.close()
        return redirect(url)
    form = login_form(broker.login_fields)
    if form.validate_on_submit():
        _start_connect(client.id, {f.name: getattr(form, f.name).data or "" for f in broker.login_fields})
        return redirect(url_for("clients.detail", client_id=client.id))
    return render_template("clients/connect.html", client=client, broker=broker, form=form)


@bp.route("/connect/callback")
@requires("broker.connect")
def connect_callback():
    """Where a redirect-login broker sends the browser back with its one-time token and our state."""
    state = request.args.get("state", "")
    pending = dict(session.get(PENDING_LOGINS, {}))
    client_id = pending.pop(state, None)
    if client_id is None:
        audit.record(
            "broker.login",
            actor_id=current_user.id,
            actor=current_user.username,
            result="refused",
            detail={"reason": "unknown or reused login state"},
            ip=request.remote_addr,
        )
        db.session.commit()
        abort(400)
    session[PENDING_LOGINS] = pending
    client = client_for(current_user, client_id)
    token_param = broker_class(client.broker).login_callback_token
    if request.args.get("status", "success") != "success" or not request.args.get(token_param):
        flash("The broker login was cancelled or failed; nothing was saved. Try Connect again.", "error")
        return redirect(url_for("clients.detail", client_id=client.id))
    try:  # a broker may want its state back: every parameter is passed on, so each is bounded
        params = bounded_params(request.args.items())
    except InputError:
        abort(400)
    # the callback URL the login was started with (an OAuth code exchange repeats it); the desk's own
    # word, never the browser's
    params["redirect_uri"] = url_for("clients.connect_callback", _external=True)
    _start_connect(client.id, params)
    return redirect(url_for("clients.detail", client_id=client.id))


@bp.route("/<int:client_id>/live")
@requires("desk.view")
def live(client_id: int):
    """The fragments the WebSocket pushes for this client, for the polling fallback."""
    client = client_for(current_user, client_id)
    return render_template("clients/_live.html", oob=True, can_place=user_can("orders.place"), **client_book(client.id))


@bp.route("/<int:client_id>/pnl.json")
@requires("desk.view")
def pnl_series(client_id: int):
    """Today's (IST) P&L samples, ending now at the day P&L the page shows. The samples are taken
    when a reprice moves a price (pnl.record_day), so alone they miss what moved since: a fill's
    realized P&L, a position closed (no longer repriced), the last seconds of a bucket. Times are
    UTC epoch seconds; the chart shifts them to IST (static/js/charts.js)."""
    from webapp.clients.book import totals
    from webapp.timeutil import IST, utcnow
    from webapp.trading.pnl import pnl_samples

    client = client_for(current_user, client_id)
    now = utcnow()
    samples = pnl_samples(page_redis(), client.id, now.astimezone(IST).date().isoformat())
    at = int(now.timestamp())
    day = totals([client.id])[client.id].day
    return {"series": [s for s in samples if s["time"] < at] + [{"time": at, "value": str(day)}]}


@bp.route("/<int:client_id>/exports", methods=["GET", "POST"])
@requires("desk.view")
def exports(client_id: int):
    from webapp.clients.exports import ExportForm, daily_pnl_csv, positions_csv

    client = client_for(current_user, client_id)
    form = ExportForm()
    if form.validate_on_submit():
        if form.kind.data == "positions":
            return positions_csv(client)
        return daily_pnl_csv(client, form.start.data, form.end.data)
    return render_template("clients/exports.html", client=client, form=form)
