"""The ticket, batch progress and batch actions. Thin: parse → webapp.trading → render/enqueue.
The request thread never calls a broker: sends, cancels and modifies are RQ jobs."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.automation.breakers import desk_kill_reason
from webapp.extensions import db, get_redis, page_redis
from webapp.htmx import render_page_or_partial
from webapp.inputs import record_id
from webapp.instruments.master import search
from webapp.marketdata.depth import quote_view
from webapp.models import FundsSnapshot, Instrument
from webapp.models.base import in_ids
from webapp.orders import bp
from webapp.orders.batch_actions import INVALID, NOTHING, ActionRefused, cancel_batch, modify_batch, retry_batch
from webapp.orders.batches import (
    batch_for,
    say_not_queued,
    show_stop_errors,
    stop_levels,
    ticket_from_form,
    unreadable_levels,
)
from webapp.orders.forms import PriceForm, TicketForm, quantities, quantity_tools
from webapp.orders.placing import place_ticket, review_with_levels, tradable_clients, untradable
from webapp.permissions import requires
from webapp.tasks import QUEUE_UNAVAILABLE
from webapp.trading import states
from webapp.trading.risk import desk_killed
from webapp.trading.tickets import existing_batch, reference_price


def _ticket_clients():
    return tradable_clients(current_user)


def _render_ticket(form: TicketForm, clients, review=None, qtys=None, status: int = 200):
    instrument = db.session.get(Instrument, form.instrument_id.data) if form.instrument_id.data else None
    redis = page_redis()
    ltp = reference_price(instrument, redis) if instrument else None
    # one query for every client's available margin (a lazy load per row was a query per client)
    margin = (
        {
            f.client_id: f.available_margin
            for f in db.session.execute(
                sa.select(FundsSnapshot).where(in_ids(FundsSnapshot.client_id, [c.id for c in clients]))
            ).scalars()
        }
        if clients
        else {}
    )
    return render_template(
        "orders/ticket.html",
        form=form,
        clients=clients,
        review=review,
        qtys=qtys or {},
        margin=margin,
        tools=quantity_tools(request.form, [c.id for c in clients]) if request.method == "POST" else {},
        instrument=instrument,
        ltp=ltp,
        quote=quote_view(instrument, redis) if instrument else None,
        band=instrument.circuit_limits() if instrument else None,
        desk_kill=desk_killed(),
        desk_kill_reason=desk_kill_reason(),
    ), status


@bp.route("/new", methods=["GET", "POST"])
@requires("orders.place")
def ticket():
    clients = _ticket_clients()
    form = TicketForm()
    if request.method == "GET":
        form.ticket_id.data = str(uuid.uuid4())
        picked = record_id(request.args.get("instrument_id"))
        instrument = db.session.get(Instrument, picked) if picked else None
        if instrument is not None and (refused := untradable(instrument)):
            form.instrument_id.errors = [refused]  # not picked: the trader chooses a stock instead
        elif instrument is not None:
            form.instrument_id.data = instrument.id
        elif picked is not None or request.args.get("instrument_id"):
            form.instrument_id.errors = ["That instrument is not in the master; choose one from the search."]
        side = (request.args.get("side") or request.args.get("action") or "").upper()
        if side in ("BUY", "SELL"):  # the market watch and hotkeys send side=; older links action=
            form.action.data = side
        return _render_ticket(form, clients)
    if not form.validate_on_submit():
        return _render_ticket(form, clients, qtys=quantities(request, [c.id for c in clients])[0])
    if (done := existing_batch(form.ticket_id.data)) is not None:
        return _already_submitted(form, clients, done)
    qtys, qty_errors = quantities(request, [c.id for c in clients])
    placed = place_ticket(
        current_user,
        ticket_from_form(form, qtys),
        clients,
        stop_levels(form),
        ip=request.remote_addr,
        quantity_errors=qty_errors,
    )
    if placed.unavailable:  # checked before anything is written: a refused ticket leaves no batch behind
        flash(QUEUE_UNAVAILABLE, "error")
        return _render_ticket(form, clients, qtys=qtys, status=503)
    if placed.duplicate:  # the same ticket posted twice at once: the first one won
        return _already_submitted(form, clients, existing_batch(form.ticket_id.data))
    if placed.batch is None:
        show_stop_errors(form, placed.stop_errors)
        return _render_ticket(form, clients, placed.review, qtys)
    if placed.not_queued is not None:
        say_not_queued(placed.not_queued)
    return redirect(url_for("orders.batch", batch_id=placed.batch.id))


def _already_submitted(form: TicketForm, clients, done):
    """A ticket id names one user's ticket: posted again by that user, it shows the batch; another
    user's id (copied or forged) is refused as a stale ticket, without saying whose it is."""
    if done is None or done.user_id != current_user.id:
        form.ticket_id.errors = ["This ticket can no longer be sent; reload the ticket and try again."]
        form.ticket_id.data = str(uuid.uuid4())
        return _render_ticket(form, clients, status=400)
    flash("This ticket was already submitted; here is its batch.", "info")
    return redirect(url_for("orders.batch", batch_id=done.id))


@bp.route("/preview", methods=["POST"])
@requires("orders.place")
def preview():
    clients = _ticket_clients()
    form = TicketForm()
    if form.instrument_id.data is None:  # nothing picked yet (the search may be open): no verdicts yet
        return render_template("orders/_preview.html", review=None, clients=clients, form=form, oob=True)
    qtys, qty_errors = quantities(request, [c.id for c in clients])
    review, levels_wrong = review_with_levels(
        current_user, ticket_from_form(form, qtys), clients, stop_levels(form), get_redis(), qty_errors
    )
    levels_wrong.update(unreadable_levels(form))
    return render_template(
        "orders/_preview.html",
        review=review,
        clients=clients,
        qtys=qtys,
        form=form,
        stop_errors=levels_wrong,
        oob=True,  # the messages go next to their fields (hx-swap-oob), once each
    )


@bp.route("/ticket/quote")
@requires("orders.place")
def ticket_quote():
    """The ticket's live price and depth, polled every second (an htmx partial: simple, works when the
    page socket is down, and the socket's ticks carry last prices only, not depth)."""
    return render_template("orders/_quote.html", **_instrument_quote(request.args.get("instrument_id")))


@bp.route("/depth")
@requires("desk.view")
def depth():
    """The instrument page's depth panel, polled every second."""
    return render_template("instruments/_depth.html", **_instrument_quote(request.args.get("instrument_id")))


def _instrument_quote(raw: str | None) -> dict:
    """The instrument a partial asks about and its quote view; a missing, malformed or unknown id is no
    instrument (the partial says so; nothing hostile gets a 500). Instruments are not client data:
    anyone who may open the page may read their prices."""
    instrument_id = record_id(raw)
    instrument = db.session.get(Instrument, instrument_id) if instrument_id else None
    if instrument is None:
        return {"instrument": None, "view": None, "asked": bool(raw)}
    return {"instrument": instrument, "view": quote_view(instrument, page_redis()), "asked": True}


@bp.route("/instrument-options")
@requires("orders.place")
def instrument_options():
    return render_template("orders/_instrument_options.html", results=search(request.args.get("q", "")[:64], limit=8))


@bp.route("/batches/<int:batch_id>")
@requires("desk.view")
def batch(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    return render_page_or_partial(
        "orders/batch.html",
        "orders/_batch_children.html",
        batch=found,
        children=children,
        price_form=PriceForm(),
        states=states,
    )


@bp.route("/batches/<int:batch_id>/retry", methods=["POST"])
@requires("orders.place")
def retry(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    try:
        retried = retry_batch(current_user, found, children, _ticket_clients(), request.remote_addr)
    except ActionRefused as refused:
        flash(refused.message, "info" if refused.reason == NOTHING else "error")
        return redirect(url_for("orders.batch", batch_id=found.id))
    if retried.not_queued is not None:
        say_not_queued(retried.not_queued)
    return redirect(url_for("orders.batch", batch_id=retried.batch.id))


@bp.route("/batches/<int:batch_id>/cancel", methods=["POST"])
@requires("orders.place")
def cancel(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    try:
        cancelling = cancel_batch(current_user, found, children, request.remote_addr)
    except ActionRefused as refused:
        flash(refused.message, "info" if refused.reason == NOTHING else "error")
    else:
        flash(f"Cancelling {cancelling} open order(s).", "info")
    return redirect(url_for("orders.batch", batch_id=found.id))


@bp.route("/batches/<int:batch_id>/modify", methods=["POST"])
@requires("orders.place")
def modify(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    form = PriceForm()
    try:
        if not form.validate_on_submit():
            raise ActionRefused(INVALID, next(iter(form.errors.values()))[0])
        changing = modify_batch(current_user, found, children, form.price.data, request.remote_addr)
    except ActionRefused as refused:
        flash(f"Price not changed: {refused.message}", "error")
    else:
        flash(f"Changing the price of {changing} open order(s) to ₹{form.price.data}.", "info")
    return redirect(url_for("orders.batch", batch_id=found.id))


@bp.route("/batches/<int:batch_id>/children")
@requires("desk.view")
def batch_children(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    return render_template("orders/_batch_children.html", batch=found, children=children, states=states)
