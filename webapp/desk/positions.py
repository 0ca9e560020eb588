"""Desk-wide positions (/positions): every visible client's open positions in one table, filtered
by a bookmarkable GET query, live through a polling partial, exported as CSV, and a selection of
rows exited in one batch on the same path as every exit (review → confirm → batch → engine).

A blueprint nested in the desk's (endpoints `desk.positions.*`), so the nav can mark it on its own."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user

from webapp.access import accessible_clients, client_scope
from webapp.csvexport import csv_response
from webapp.desk import book
from webapp.htmx import hx_redirect, is_htmx
from webapp.inputs import InputError
from webapp.orders.batches import enqueue_send
from webapp.permissions import requires, user_can
from webapp.tasks import QUEUE_UNAVAILABLE, queue_available
from webapp.timeutil import format_ist
from webapp.trading import exits

bp = Blueprint("positions", __name__)


def _filtered():
    clients = accessible_clients(current_user)
    parsed = book.parse_filter(request.args, [c.id for c in clients])
    return clients, parsed


@bp.route("/")
@requires("desk.view")
def index():
    clients, parsed = _filtered()
    scope = client_scope(current_user)
    rows = [] if parsed.errors else book.book_positions(scope, parsed.filter)
    totals = None if parsed.errors else book.book_totals(scope, parsed.filter)
    return render_template(
        "desk/positions.html",
        clients=clients,
        products=book.PRODUCTS,
        f=parsed.filter,
        errors=parsed.errors,
        rows=rows,
        totals=totals,
        max_rows=book.MAX_ROWS,
        key=book.position_key,
        can_exit_many=user_can("exits.all"),
        can_exit_one=user_can("orders.place"),
    ), (400 if parsed.errors else 200)


@bp.route("/live")
@requires("desk.view")
def live():
    """The shown rows' moving cells (LTP, quantity, P&L) and the filtered totals, swapped by id (the
    checkboxes are left alone, so a selection survives the refresh)."""
    _, parsed = _filtered()
    if parsed.errors:
        abort(400)
    scope = client_scope(current_user)
    try:
        rows = book.shown_positions(scope, request.args.get("ids"))
    except InputError:
        abort(400)
    return render_template("desk/_positions_live.html", rows=rows, totals=book.book_totals(scope, parsed.filter))


@bp.route("/export.csv")
@requires("desk.view")
def export():
    _, parsed = _filtered()
    if parsed.errors:
        abort(400)
    rows = book.book_positions(client_scope(current_user), parsed.filter, limit=None)
    return csv_response("desk-positions", book.CSV_HEADER, book.csv_rows(rows, format_ist))


@bp.route("/exit", methods=["POST"])
@requires("exits.all")
def exit_selected():
    """Step 1 (step=review): each picked position's client, side and quantity, for a confirmation.
    Step 2 (step=confirm): the same legs again from the book; sent only when they are what the trader
    confirmed, otherwise the review is shown again with what changed."""
    try:
        keys = book.parse_keys(request.form.getlist("pick"))
    except InputError as exc:
        return _back(str(exc))
    if not keys:
        return _back("Select at least one position to exit.")
    selection = book.exit_selection(accessible_clients(current_user), keys)
    if selection.missing:
        return _back(
            f"{len(selection.missing)} selected position(s) are not open positions of your clients "
            "(closed since the page loaded?); nothing was sent."
        )
    message = ""
    if request.form.get("step") == "confirm":
        if not book.same_legs(selection, exits.reviewed_quantities(request.form)):
            message = "The positions changed since your review: check the quantities again; nothing was sent."
        elif not queue_available():
            message = QUEUE_UNAVAILABLE
        else:
            batch, created = exits.place_reviewed_exit(
                current_user,
                "exit",
                selection.legs,
                ticket_id=exits.review_id(request.form.get("ticket_id")),
                instrument_id=selection.instrument_id,
                ip=request.remote_addr,
                note=f"desk positions: {len(selection.legs)} selected",
            )
            if created:
                enqueue_send(batch.id)
            target = url_for("orders.batch", batch_id=batch.id)
            return hx_redirect(target) if is_htmx() else redirect(target)
    return render_template(
        "desk/positions_review.html",
        selection=selection,
        side=exits.exit_side,
        message=message,
        ticket_id=exits.review_id(None),  # this review's confirmation makes at most one batch
    ), (409 if message else 200)


def _back(message: str):
    """A refused selection: said on the review page, which offers the way back; nothing written."""
    return render_template(
        "desk/positions_review.html",
        selection=book.ExitSelection([], []),
        side=exits.exit_side,
        message=message,
    ), 400
