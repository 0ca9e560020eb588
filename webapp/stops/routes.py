"""Stop rules on a client's positions: the chips on position rows, one form per position (arm or
edit a stop, a target, a trailing distance, optionally a quantity) and cancel. Trader, admin and
limited trader may set them (a stop only reduces risk: `orders.place`); viewers see them."""

from __future__ import annotations

from decimal import Decimal

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.access import client_for
from webapp.automation import stops
from webapp.extensions import db, get_redis, page_redis
from webapp.htmx import hx_redirect, is_htmx
from webapp.inputs import InputError, column_digits, decimal_number, record_id
from webapp.models import StopRule
from webapp.permissions import requires, user_can
from webapp.stops import bp
from webapp.trading.exits import holders
from webapp.trading.tickets import reference_price

PRECISION, SCALE = column_digits(StopRule.__table__.c.stop_price)
FIELDS = ("stop", "target", "trail")


@bp.app_template_global()
def armed_stops(client_id: int) -> dict:
    """(instrument id, product) → the ARMED rule, for the chips on a client's position rows."""
    return {(i, p): r for (_, i, p), r in stops.rules_for_clients([client_id]).items()}


def _positions(client):
    found = holders([client])
    rules = armed_stops(client.id)
    return [(h, rules.get((h.instrument.id, h.product))) for h in found]


def _page(client, errors=None, values=None, key=None, status=200):
    return (
        render_template(
            "stops/client.html",
            client=client,
            rows=_positions(client),
            errors=errors or {},
            values=values or {},
            err_key=key,
            can_set=user_can("orders.place"),
        ),
        status,
    )


@bp.route("/clients/<int:client_id>")
@requires("desk.view")
def client(client_id: int):
    return _page(client_for(current_user, client_id))


def _levels(form) -> tuple[dict, dict[str, str]]:
    values, errors = {}, {}
    for name in FIELDS:
        raw = form.get(name, "")
        if not isinstance(raw, str) or not raw.strip():
            values[name] = None
            continue
        try:
            values[name] = decimal_number(raw, precision=PRECISION, scale=SCALE, minimum=Decimal("0"))
        except InputError as exc:
            errors[name] = str(exc)
    raw = form.get("quantity", "")
    values["quantity"] = None
    if isinstance(raw, str) and raw.strip():
        values["quantity"] = record_id(raw)
        if values["quantity"] is None:
            errors["quantity"] = "Enter a whole quantity above zero, or leave it empty for the whole position."
    return values, errors


@bp.route("/clients/<int:client_id>/save", methods=["POST"])
@requires("orders.place")
def save(client_id: int):
    """Arm (or edit) the rule of one held position; a message next to the field and nothing saved
    on bad input."""
    found = client_for(current_user, client_id)
    instrument_id, product = record_id(request.form.get("instrument_id")), request.form.get("product")
    holder = next((h for h in holders([found], instrument_id) if h.product == product), None) if instrument_id else None
    if holder is None:
        abort(404)
    values, errors = _levels(request.form)
    key = holder.key
    if errors:
        return _page(found, errors, request.form, key, 422)
    price = reference_price(holder.instrument, page_redis())
    direction = 1 if holder.quantity > 0 else -1
    rule = stops.armed_rule(found.id, holder.instrument.id, holder.product)
    try:
        if rule is not None:
            stops.edit(rule, current_user, price=price, ip=request.remote_addr, **values)
        else:
            stops.arm(
                client_id=found.id,
                instrument_id=holder.instrument.id,
                product=holder.product,
                direction=direction,
                source="position",
                user=current_user,
                price=price,
                ip=request.remote_addr,
                **values,
            )
    except stops.StopError as exc:
        db.session.rollback()
        return _page(found, exc.errors, request.form, key, 422)
    db.session.commit()
    stops.notify_changed(get_redis())
    flash(f"Stop rule set on {holder.instrument.tradingsymbol} {holder.product}.", "success")
    target = url_for("stops.client", client_id=found.id)
    return hx_redirect(target) if is_htmx() else redirect(target, 303)


@bp.route("/clients/<int:client_id>/cancel", methods=["POST"])
@requires("orders.place")
def cancel(client_id: int):
    found = client_for(current_user, client_id)
    rule_id = record_id(request.form.get("rule_id")) or abort(404)
    rule = db.session.get(StopRule, rule_id)
    if rule is None or rule.client_id != found.id:
        abort(404)
    if stops.cancel(rule, current_user, reason=f"cancelled by {current_user.username}", ip=request.remote_addr):
        db.session.commit()
        stops.notify_changed(get_redis())
        flash("Stop rule cancelled.", "success")
    else:
        db.session.rollback()
        flash(f"That rule is no longer armed ({rule.state.lower()}).", "info")
    target = url_for("stops.client", client_id=found.id)
    return hx_redirect(target) if is_htmx() else redirect(target, 303)
