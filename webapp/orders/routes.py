"""The ticket, batch progress and batch actions. Thin: parse → webapp.trading → render/enqueue.
The request thread never calls a broker: sends, cancels and modifies are RQ jobs."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from webapp.access import accessible_clients
from webapp.automation import stops
from webapp.extensions import db, get_redis, page_redis
from webapp.htmx import render_page_or_partial
from webapp.inputs import record_id
from webapp.instruments.master import search
from webapp.models import FundsSnapshot, Instrument
from webapp.models.base import in_ids
from webapp.orders import bp
from webapp.orders.batches import (
    arm_ticket_stops,
    batch_for,
    enqueue_send,
    show_stop_errors,
    stop_errors,
    ticket_from_form,
)
from webapp.orders.forms import PriceForm, TicketForm, quantities
from webapp.permissions import requires
from webapp.tasks import QUEUE_UNAVAILABLE, queue_available
from webapp.trading import batch_requests, exits, states
from webapp.trading.tickets import Ticket, create_batch, existing_batch, reference_price, review_ticket


def _ticket_clients():
    return [c for c in accessible_clients(current_user) if c.enabled]


def _render_ticket(form: TicketForm, clients, review=None, qtys=None, status: int = 200):
    instrument = db.session.get(Instrument, form.instrument_id.data) if form.instrument_id.data else None
    ltp = reference_price(instrument, page_redis()) if instrument else None
    # one query for every client's capital (a lazy load per row was a query per client)
    capital = (
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
        capital=capital,
        instrument=instrument,
        ltp=ltp,
        band=instrument.circuit_limits() if instrument else None,
    ), status


@bp.route("/new", methods=["GET", "POST"])
@requires("orders.place")
def ticket():
    clients = _ticket_clients()
    form = TicketForm()
    if request.method == "GET":
        form.ticket_id.data = str(uuid.uuid4())
        form.instrument_id.data = record_id(request.args.get("instrument_id"))
        if request.args.get("action") in ("BUY", "SELL"):
            form.action.data = request.args["action"]
        return _render_ticket(form, clients)
    if not form.validate_on_submit():
        return _render_ticket(form, clients)
    if (done := existing_batch(form.ticket_id.data)) is not None:
        return _already_submitted(form, clients, done)
    qtys, qty_errors = quantities(request, [c.id for c in clients])
    if not queue_available():  # before anything is written: a refused ticket leaves no batch behind
        flash(QUEUE_UNAVAILABLE, "error")
        return _render_ticket(form, clients, qtys=qtys, status=503)
    review = review_ticket(current_user, ticket_from_form(form, qtys), clients, get_redis())
    review.quantity_errors.update(qty_errors)
    levels_wrong = stop_errors(form, review)
    show_stop_errors(form, levels_wrong)
    if not review.ok or levels_wrong:
        return _render_ticket(form, clients, review, qtys)
    try:
        batch = create_batch(current_user, ticket_from_form(form, qtys), review, ip=request.remote_addr)
        armed = arm_ticket_stops(form, batch, review, current_user, request.remote_addr)
        db.session.commit()
    except IntegrityError:  # the same ticket posted twice at once: the first one won
        db.session.rollback()
        return _already_submitted(form, clients, existing_batch(form.ticket_id.data))
    except stops.StopError as exc:  # validated above; only a changed instrument could get here
        db.session.rollback()
        show_stop_errors(form, exc.errors)
        return _render_ticket(form, clients, review, qtys)
    enqueue_send(batch.id)
    if armed:
        stops.notify_changed(get_redis())
    return redirect(url_for("orders.batch", batch_id=batch.id))


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
    qtys, qty_errors = quantities(request, [c.id for c in clients])
    review = review_ticket(current_user, ticket_from_form(form, qtys), clients, get_redis())
    review.quantity_errors.update(qty_errors)
    levels_wrong = stop_errors(form, review, parsed=True)
    return render_template(
        "orders/_preview.html", review=review, clients=clients, qtys=qtys, form=form, stop_errors=levels_wrong
    )


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
    if found.action == "EXIT":
        return _retry_exit(found, [c for c in children if c.status in states.RETRYABLE])
    failed = {c.client_id: c.quantity for c in children if c.status in states.RETRYABLE}
    if not failed or found.instrument_id is None or found.action not in ("BUY", "SELL"):
        flash("Nothing to retry: only failed or rejected children of a ticket can be sent again.", "info")
        return redirect(url_for("orders.batch", batch_id=found.id))
    ticket = Ticket(
        ticket_id=str(uuid.uuid4()),
        action=found.action,
        instrument_id=found.instrument_id,
        product=found.product,
        order_type=found.order_type,
        validity=found.validity,
        price=found.price,
        trigger_price=found.trigger_price,
        quantities=failed,
        kind="retry",
        note=f"retry of batch {found.id}",
    )
    if not queue_available():
        flash(QUEUE_UNAVAILABLE, "error")
        return redirect(url_for("orders.batch", batch_id=found.id))
    review = review_ticket(current_user, ticket, _ticket_clients(), get_redis())
    if not review.ok:
        flash("Retry refused: " + (next(iter(review.errors.values()), "") or "no client can take it"), "error")
        return redirect(url_for("orders.batch", batch_id=found.id))
    retry_batch = create_batch(current_user, ticket, review, ip=request.remote_addr)
    db.session.commit()
    enqueue_send(retry_batch.id)
    return redirect(url_for("orders.batch", batch_id=retry_batch.id))


def _retry_exit(found, failed):
    """An exit's (or a kill switch's square-off's) failed children, as a new exit batch of what is
    still held: new children, so a fresh send deadline."""
    legs = exits.retry_legs(failed) if failed else []
    if not legs:
        flash("Nothing to retry: no failed or rejected child of this exit is still held.", "info")
        return redirect(url_for("orders.batch", batch_id=found.id))
    if not queue_available():
        flash(QUEUE_UNAVAILABLE, "error")
        return redirect(url_for("orders.batch", batch_id=found.id))
    retry_batch = exits.create_exit_batch(
        current_user,
        "retry",
        legs,
        instrument_id=found.instrument_id,
        ip=request.remote_addr,
        note=f"retry of batch {found.id}",
    )
    db.session.commit()
    enqueue_send(retry_batch.id)
    return redirect(url_for("orders.batch", batch_id=retry_batch.id))


@bp.route("/batches/<int:batch_id>/cancel", methods=["POST"])
@requires("orders.place")
def cancel(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    open_ids = batch_requests.cancellable(children)
    if open_ids and not queue_available():
        flash(QUEUE_UNAVAILABLE, "error")
        return redirect(url_for("orders.batch", batch_id=found.id))
    if open_ids:
        batch_requests.request_cancel(current_user, found, children, open_ids, request.remote_addr)
    flash(f"Cancelling {len(open_ids)} open order(s)." if open_ids else "No open orders to cancel.", "info")
    return redirect(url_for("orders.batch", batch_id=found.id))


@bp.route("/batches/<int:batch_id>/modify", methods=["POST"])
@requires("orders.place")
def modify(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    form = PriceForm()
    open_ids = batch_requests.modifiable(children)
    error = None if form.validate_on_submit() else next(iter(form.errors.values()))[0]
    if error is None:
        error = batch_requests.price_error(found, found.instrument, form.price.data)
    if error is None and not open_ids:
        error = "No open limit orders to modify."
    if error is None and not queue_available():
        error = QUEUE_UNAVAILABLE
    if error:
        flash(f"Price not changed: {error}", "error")
        return redirect(url_for("orders.batch", batch_id=found.id))
    batch_requests.request_modify(current_user, found, children, open_ids, form.price.data, request.remote_addr)
    flash(f"Changing the price of {len(open_ids)} open order(s) to ₹{form.price.data}.", "info")
    return redirect(url_for("orders.batch", batch_id=found.id))


@bp.route("/batches/<int:batch_id>/children")
@requires("desk.view")
def batch_children(batch_id: int):
    found, children = batch_for(current_user, batch_id)
    return render_template("orders/_batch_children.html", batch=found, children=children, states=states)
