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
CHANGED = "The holdings changed since you reviewed them: check the quantities again before sending."


def _percent() -> int | None:
    """The chosen share in percent, or None for custom quantities."""
    share = request.form.get("share", "100")
    return None if share == "custom" else SHARES.get(share, 100)


def _picked(found: list[exits.Holder]) -> list[exits.Holder]:
    """The ticked holders: every one on a first visit (an exit page is opened to exit), else the form's."""
    if request.method == "GET":
        return list(found)
    return [h for h in found if request.form.get(f"pick_{h.key}") == "1"]


def _legs(found: list[exits.Holder]) -> tuple[list[tuple[exits.Holder, int]], dict[str, str]]:
    """Selected holders and the quantity to exit for each, from the form; errors by holder key."""
    percent, picked = _percent(), _picked(found)
    if percent is not None:
        return exits.share_legs(picked, percent), {}
    legs, errors = [], {}
    for holder in picked:
        qty = record_id(request.form.get(f"qty_{holder.key}"))  # ASCII digits, 1..INTEGER max
        error = "Enter a whole quantity above zero." if qty is None else exits.exceeds(qty, [holder])
        if error:
            errors[holder.key] = error
        else:
            legs.append((holder, qty))
    return legs, errors


def _reviewed_differs(legs: list[tuple[exits.Holder, int]]) -> bool:
    """The confirmation carries the quantities the trader saw (expect_<key>); a change since then
    (a fill, another exit) sends them back to the review instead of sending other quantities."""
    expected = exits.reviewed_quantities(request.form)
    if not expected:
        return False  # a direct post (tests, scripts) without the review step: the form is the order
    return expected != exits.review_marks(legs)


def _notes(holders: list[exits.Holder], percent: int | None) -> dict[str, str]:
    """Each holder's rounding, in words, when a percentage share does not divide its holding."""
    if percent is None:
        return {}
    notes = {h.key: exits.share_note(h.quantity, percent, h.instrument.lot_size) for h in holders}
    return {key: note for key, note in notes.items() if note}


@bp.route("/<int:instrument_id>", methods=["GET", "POST"])
@requires("exits.all")
def instrument(instrument_id: int):
    """Choose holders and a share, review every client's side and quantity, then confirm."""
    found_instrument = db.session.get(Instrument, instrument_id) or abort(404)
    found = exits.holders(accessible_clients(current_user), instrument_id)
    step = request.form.get("step", "")
    errors, message = {}, ""
    if request.method == "POST" and step != "edit":
        legs, errors = _legs(found)
        if not legs and not errors:
            message = "Select at least one client to exit (a 50% share of a single share is nothing)."
        elif legs and not errors and (step == "review" or _reviewed_differs(legs)):
            return _review(found_instrument, legs, _picked(found), CHANGED if step != "review" else "")
        if legs and not errors and not queue_available():
            message = QUEUE_UNAVAILABLE
        elif legs and not errors:
            batch, created = exits.place_reviewed_exit(
                current_user,
                "exit",
                legs,
                ticket_id=exits.review_id(request.form.get("ticket_id")),
                instrument_id=instrument_id,
                ip=request.remote_addr,
            )
            if created:
                enqueue_send(batch.id)
            return redirect(url_for("orders.batch", batch_id=batch.id))
    halves = {h.key: exits.share_of(h.quantity, 50, h.instrument.lot_size) for h in found}
    return render_template(
        "exits/instrument.html",
        instrument=found_instrument,
        holders=found,
        picked={h.key for h in _picked(found)},
        halves=halves,
        half_notes=_notes(found, 50),
        errors=errors,
        message=message,
    )


def _review(found_instrument: Instrument, legs: list[tuple[exits.Holder, int]], picked, message: str):
    """The confirmation step: each client, side and quantity, the totals, and what rounding left out."""
    percent = _percent()
    sent = {h.key for h, _ in legs}
    totals: dict[str, int] = {}
    for holder, qty in legs:
        side = exits.exit_side(holder)
        totals[side] = totals.get(side, 0) + qty
    return render_template(
        "exits/review.html",
        instrument=found_instrument,
        legs=legs,
        left_out=[h for h in picked if h.key not in sent],
        notes=_notes(picked, percent),
        totals=totals,
        percent=percent,
        message=message,
        ticket_id=exits.review_id(None),  # this review's confirmation makes at most one batch
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
