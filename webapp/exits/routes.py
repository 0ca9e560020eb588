"""Exits and kill switches: list holders, confirm, then the same order path as any ticket."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.access import accessible_clients, client_for
from webapp.automation.breakers import desk_kill_reason
from webapp.exits import bp
from webapp.extensions import db
from webapp.htmx import hx_redirect, is_htmx
from webapp.inputs import InputError, choice, record_id
from webapp.models import Instrument
from webapp.orders.batches import enqueue_send
from webapp.permissions import requires
from webapp.security import same_site_referrer
from webapp.tasks import QUEUE_UNAVAILABLE, queue_available
from webapp.trading import exits
from webapp.trading.risk import desk_killed

SHARES = {"100": 100, "50": 50}


def _legs(found: list[exits.Holder]) -> tuple[list[tuple[exits.Holder, int]], dict[str, str]]:
    """Selected holders and the quantity to exit for each, from the form; errors by holder key."""
    share = request.form.get("share", "100")
    picked = [h for h in found if request.form.get(f"pick_{h.key}") == "1"]
    if share != "custom":
        return exits.share_legs(picked, SHARES.get(share, 100)), {}
    legs, errors = [], {}
    for holder in picked:
        qty = record_id(request.form.get(f"qty_{holder.key}"))  # ASCII digits, 1..INTEGER max
        error = "Enter a whole quantity above zero." if qty is None else exits.exceeds(qty, [holder])
        if error:
            errors[holder.key] = error
        else:
            legs.append((holder, qty))
    return legs, errors


@bp.route("/<int:instrument_id>", methods=["GET", "POST"])
@requires("exits.all")
def instrument(instrument_id: int):
    found_instrument = db.session.get(Instrument, instrument_id) or abort(404)
    found = exits.holders(accessible_clients(current_user), instrument_id)
    errors, message = {}, ""
    if request.method == "POST":
        legs, errors = _legs(found)
        if not legs and not errors:
            message = "Select at least one client to exit (a 50% share of a single share is nothing)."
        if legs and not errors and not queue_available():
            message = QUEUE_UNAVAILABLE
        elif legs and not errors:
            batch = exits.create_exit_batch(
                current_user, "exit", legs, instrument_id=instrument_id, ip=request.remote_addr
            )
            db.session.commit()
            enqueue_send(batch.id)
            return redirect(url_for("orders.batch", batch_id=batch.id))
    return render_template(
        "exits/instrument.html", instrument=found_instrument, holders=found, errors=errors, message=message
    )


@bp.route("/position", methods=["POST"])
@requires("orders.place")
def position():
    """Exit one position (one client, instrument and product) in full."""
    client = client_for(current_user, record_id(request.form.get("client_id")) or abort(404))
    instrument_id = record_id(request.form.get("instrument_id")) or abort(404)
    found = exits.position_of(client, instrument_id, request.form.get("product", ""))
    if found is None:
        flash("That position is already flat.", "info")
        return redirect(same_site_referrer() or url_for("desk.index"))
    if not queue_available():
        return _refused(same_site_referrer() or url_for("desk.index"))
    batch = exits.create_exit_batch(
        current_user, "exit", [(found, abs(found.quantity))], instrument_id=instrument_id, ip=request.remote_addr
    )
    db.session.commit()
    enqueue_send(batch.id)
    target = url_for("orders.batch", batch_id=batch.id)
    return hx_redirect(target) if is_htmx() else redirect(target)


@bp.route("/clients/<int:client_id>/square-off", methods=["GET", "POST"])
@requires("exits.all")
def square_off(client_id: int):
    client = client_for(current_user, client_id)
    positions = exits.holders([client], with_holdings=False)  # today's positions; older holdings stay
    if request.method == "POST" and not queue_available():
        return _refused(url_for("exits.square_off", client_id=client.id))
    if request.method == "POST":
        batch, cancelled = exits.square_off(current_user, client, positions, request.remote_addr)
        db.session.commit()
        if batch is None:
            flash(f"{client.name} has no open positions; {cancelled} open order(s) cancelled.", "info")
            return redirect(url_for("clients.detail", client_id=client.id))
        enqueue_send(batch.id)
        return redirect(url_for("orders.batch", batch_id=batch.id))
    return render_template(
        "exits/square_off.html", client=client, positions=positions, open_orders=len(exits.open_children([client.id]))
    )


@bp.route("/clients/<int:client_id>/kill", methods=["GET", "POST"])
@requires("kill.client")
def client_kill(client_id: int):
    client = client_for(current_user, client_id)
    if request.method == "POST":
        on = _switch(request.form.get("on"))
        if on and not queue_available():  # on cancels and squares off (jobs); off queues nothing
            return _refused(url_for("exits.client_kill", client_id=client.id))
        batch = exits.engage_client_kill(current_user, client, on, request.remote_addr)
        db.session.commit()
        if batch is not None and not enqueue_send(batch.id):  # the switch is on; its square-off was not queued
            return redirect(url_for("orders.batch", batch_id=batch.id))
        flash(
            f"Kill switch {'ON' if on else 'off'} for {client.name}."
            + (" Open orders cancelled, intraday positions squared off." if on else " New orders are allowed again."),
            "success",
        )
        return redirect(url_for("clients.detail", client_id=client.id))
    return render_template(
        "exits/kill.html",
        scope=client.name,
        client=client,
        on=client.kill_switch,
        reason=client.kill_reason,
        intraday=exits.intraday_holders([client]),
        open_orders=len(exits.open_children([client.id])),
        action=url_for("exits.client_kill", client_id=client.id),
    )


@bp.route("/desk/kill", methods=["GET", "POST"])
@requires("kill.desk")
def desk_kill():
    clients = accessible_clients(current_user)
    if request.method == "POST":
        on = _switch(request.form.get("on"))
        if on and not queue_available():
            return _refused(url_for("exits.desk_kill"))
        batch = exits.engage_desk_kill(current_user, clients, on, request.remote_addr)
        db.session.commit()
        if batch is not None and not enqueue_send(batch.id):  # the switch is on; its square-off was not queued
            return redirect(url_for("orders.batch", batch_id=batch.id))
        flash(
            "Desk kill switch ON: open orders cancelled, intraday positions squared off, new orders refused."
            if on
            else "Desk kill switch off: new orders are allowed again.",
            "success",
        )
        return redirect(url_for("desk.index"))
    return render_template(
        "exits/kill.html",
        scope="the whole desk",
        client=None,
        on=desk_killed(),
        reason=desk_kill_reason(),
        intraday=exits.intraday_holders(clients),
        open_orders=len(exits.open_children([c.id for c in clients])),
        action=url_for("exits.desk_kill"),
    )


def _switch(raw: str | None) -> bool:
    """The kill switch's on=1 / on=0; anything else is refused (400), not read as "off"."""
    try:
        return choice(raw, ("1", "0")) == "1"
    except InputError:
        abort(400)


def _refused(target: str):
    """Redis is away: nothing was written and nothing queued; say so where the trader was."""
    flash(QUEUE_UNAVAILABLE, "error")
    return hx_redirect(target) if is_htmx() else redirect(target)
