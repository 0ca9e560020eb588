"""POST /hooks/<secret> (public, CSRF-exempt, ≤ 16 KiB, rate limited per hook) and the hook pages.
Thin: the alert is parsed, stored and deduplicated by webapp.hooks.alerts, then queued."""

from __future__ import annotations

import math
import time

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from webapp.access import accessible_clients
from webapp.automation import deployments
from webapp.extensions import csrf, db, limiter
from webapp.hooks import alerts, bp
from webapp.hooks.forms import HookForm, apply, fill
from webapp.models import Deployment, Hook
from webapp.models.api import HOOK_TICKET, REJECTED
from webapp.permissions import allowed, public, requires

# ----------------------------------------------------------------------------- the webhook


def _hook_rate_key() -> str:
    """Counted per presented secret (its hash), before it is looked up."""
    return "hook:" + alerts.secret_hash(request.view_args.get("secret", "") if request.view_args else "")[:32]


def _error(status: int, code: str, message: str, headers: dict | None = None):
    reply = jsonify({"error": {"code": code, "message": message, "fields": {}}})  # the API's error shape
    reply.status_code = status
    for name, value in (headers or {}).items():
        reply.headers[name] = value
    return reply


@bp.route("/hooks/<secret>", methods=["POST"])
@public
@limiter.limit(lambda: current_app.config["HOOK_RATE_LIMIT"], key_func=_hook_rate_key)
def receive(secret: str):
    if (request.content_length or 0) > alerts.MAX_BODY:
        return _too_large()
    raw = request.get_data(cache=False)  # TradingView text is not JSON: the raw body, whatever the Content-Type
    if len(raw) > alerts.MAX_BODY:
        return _too_large()
    body = raw.decode("utf-8", "replace")
    hook = alerts.find_hook(secret)
    if hook is None:
        return _error(404, "not_found", "No active hook has this URL.")
    received = alerts.receive(hook, body, request.remote_addr)
    alert = received.alert
    if alert.status == REJECTED:
        return _rejected(alert)
    if received.leads:
        alerts.queue_alert(alert.id)  # the queue away: the alert is stored, and the sweep queues it
    return jsonify({"alert_id": alert.id, "status": alert.status})


def _too_large():
    return _error(413, "too_large", f"The body is larger than {alerts.MAX_BODY // 1024} KiB.")


def _rejected(alert):
    reply = jsonify(
        {
            "alert_id": alert.id,
            "status": alert.status,
            "error": {"code": "rejected", "message": alert.reason, "fields": {}},
        }
    )
    reply.status_code = 422
    return reply


csrf.exempt(receive)


@bp.errorhandler(RateLimitExceeded)
def rate_limited(error: RateLimitExceeded):
    retry = 60
    current = getattr(limiter, "current_limit", None)
    if current is not None:
        retry = max(1, math.ceil(current.reset_at - time.time()))
    return _error(
        429, "rate_limited", f"Too many alerts for this hook: {error.description}.", {"Retry-After": str(retry)}
    )


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    """The webhook answers JSON; the pages keep the site's error pages."""
    if request.endpoint != "hooks.receive":
        return error
    code = error.code or 500
    if code == 413:
        return _too_large()
    return _error(code, "error", error.description or "Error")


# ----------------------------------------------------------------------------- the pages


def _clients():
    return [c for c in accessible_clients(current_user) if c.enabled]


def _deployments() -> list[Deployment]:
    """The deployments a signal hook of this user may name: those the user may manage."""
    return deployments.visible(current_user) if allowed(current_user.role, "deployments.manage") else []


def _form(clients, choices: list[Deployment]) -> HookForm:
    form = HookForm()
    form.clients.choices = [(c.id, c.name) for c in clients]
    form.deployment.choices = [("", "—"), *((d.id, f"{d.name} ({d.state.lower()})") for d in choices)]
    return form


def _hook(hook_id: int) -> Hook:
    return alerts.visible_one(current_user, hook_id) or abort(404)


def _render_form(form, clients, errors=None, typed=None, hook=None, status=200):
    return render_template(
        "hooks/form.html", form=form, clients=clients, errors=errors or {}, typed=typed or {}, hook=hook
    ), status


def _typed(clients) -> dict[str, str]:
    return {f"qty_{c.id}": request.form.get(f"qty_{c.id}", "")[:20] for c in clients}


def _show_secret(hook: Hook, secret: str, status: int = 200):
    """The URL with its secret: shown once, on this reply only (never stored, logged or flashed)."""
    url = url_for("hooks.receive", secret=secret, _external=True)
    reply = render_template("hooks/secret.html", hook=hook, url=url, message=alerts.tradingview_message(hook))
    return reply, status, {"Cache-Control": "no-store"}


@bp.route("/hooks")
@requires("orders.place")
def index():
    hooks = list(db.session.execute(alerts.visible(current_user)).scalars())
    return render_template("hooks/index.html", hooks=hooks, deployments=alerts.deployments_of(hooks))


@bp.route("/hooks/new", methods=["GET", "POST"])
@requires("orders.place")
def new():
    clients, choices = _clients(), _deployments()
    form = _form(clients, choices)
    if request.method == "GET" or not form.validate_on_submit():
        return _render_form(form, clients, typed=_typed(clients), status=200 if request.method == "GET" else 400)
    hook = Hook(user_id=current_user.id, kind=HOOK_TICKET)
    errors = apply(form, hook, request, [c.id for c in clients], [d.id for d in choices])
    if errors:
        return _render_form(form, clients, errors, _typed(clients), status=400)
    secret = alerts.set_secret(hook)
    db.session.add(hook)
    db.session.flush()
    alerts.audit_hook("create", current_user, hook, request.remote_addr)
    db.session.commit()
    return _show_secret(hook, secret, 201)


@bp.route("/hooks/<int:hook_id>")
@requires("orders.place")
def show(hook_id: int):
    hook = _hook(hook_id)
    return render_template(
        "hooks/show.html",
        hook=hook,
        deployment=alerts.deployment_of(hook),
        alerts=alerts.recent_alerts(hook.id),
        message=alerts.tradingview_message(hook),
    )


@bp.route("/hooks/<int:hook_id>/edit", methods=["GET", "POST"])
@requires("orders.place")
def edit(hook_id: int):
    hook = _hook(hook_id)
    clients, choices = _clients(), _deployments()
    form = _form(clients, choices)
    if request.method == "GET":
        typed = fill(form, hook)
        return _render_form(form, clients, typed=typed, hook=hook)
    if not form.validate_on_submit():
        return _render_form(form, clients, typed=_typed(clients), hook=hook, status=400)
    errors = apply(form, hook, request, [c.id for c in clients], [d.id for d in choices])
    if errors:
        db.session.rollback()
        return _render_form(form, clients, errors, _typed(clients), hook=hook, status=400)
    alerts.audit_hook("update", current_user, hook, request.remote_addr)
    db.session.commit()
    flash("Hook saved.", "info")
    return redirect(url_for("hooks.show", hook_id=hook.id))


@bp.route("/hooks/<int:hook_id>/rotate", methods=["POST"])
@requires("orders.place")
def rotate(hook_id: int):
    hook = _hook(hook_id)
    secret = alerts.set_secret(hook)
    alerts.audit_hook("rotate", current_user, hook, request.remote_addr)
    db.session.commit()
    return _show_secret(hook, secret)


@bp.route("/hooks/<int:hook_id>/active", methods=["POST"])
@requires("orders.place")
def toggle(hook_id: int):
    hook = _hook(hook_id)
    hook.active = not hook.active
    alerts.audit_hook("activate" if hook.active else "deactivate", current_user, hook, request.remote_addr)
    db.session.commit()
    flash(
        "Hook switched on." if hook.active else "Hook switched off: its URL answers 404 until it is on again.", "info"
    )
    return redirect(url_for("hooks.show", hook_id=hook.id))


@bp.route("/hooks/<int:hook_id>/delete", methods=["POST"])
@requires("orders.place")
def delete(hook_id: int):
    hook = _hook(hook_id)
    alerts.audit_hook("delete", current_user, hook, request.remote_addr)
    db.session.delete(hook)
    db.session.commit()
    flash("Hook deleted, with its alerts.", "info")
    return redirect(url_for("hooks.index"))
