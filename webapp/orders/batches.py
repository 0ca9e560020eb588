"""A batch from the order routes: the Ticket a form makes, the batch and children a user may see,
and queuing its send (shared by the ticket, retry and exit routes)."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from flask import abort, flash, render_template

from webapp.access import client_scope
from webapp.extensions import db
from webapp.models import Batch, Order, User
from webapp.orders.forms import TicketForm
from webapp.orders.placing import StopLevels
from webapp.trading import batch_requests, states
from webapp.trading.tickets import Ticket

STOP_FIELDS = ("stop", "target", "trail")


def ticket_from_form(form: TicketForm, qtys: dict[int, int]) -> Ticket:
    return Ticket(
        ticket_id=form.ticket_id.data or "",
        action=form.action.data or "BUY",
        instrument_id=form.instrument_id.data,
        product=form.product.data,
        order_type=form.order_type.data,
        validity=form.validity.data,
        price=form.price.data,
        trigger_price=form.trigger_price.data,
        quantities=qtys,
        **chase_settings(form),
    )


def chase_settings(form: TicketForm) -> dict:
    if not form.chase.data:
        return {}
    return {
        "chase_seconds": form.chase_seconds.data or 5,
        "chase_max_ticks": form.chase_max_ticks.data or 10,
        "chase_then": form.chase_then.data,
    }


def stop_levels(form: TicketForm) -> StopLevels:
    """The ticket's stop / target / trail (None when left empty)."""
    return StopLevels(**{name: getattr(form, name).data for name in STOP_FIELDS})


def unreadable_levels(form: TicketForm) -> dict[str, str]:
    """The stop fields' own parse errors: the preview's form is not validated, so they are shown beside
    the levels' errors against the price (webapp.orders.placing.level_errors)."""
    return {n: str(getattr(form, n).process_errors[0]) for n in STOP_FIELDS if getattr(form, n).process_errors}


def show_stop_errors(form: TicketForm, errors: dict[str, str]) -> None:
    """Put the messages next to their fields."""
    for name, message in errors.items():
        field = getattr(form, name if name in STOP_FIELDS else "stop")
        field.errors = [*field.errors, message]


def batch_for(user: User, batch_id: int) -> tuple[Batch, list[Order]]:
    """The batch and the children this user may see; 404 when they may see none (unless they made it:
    its children's clients may have been taken from them since)."""
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        abort(404)
    scope = client_scope(user)
    children = visible_children(batch.id, scope)
    if not children and scope is not None and batch.user_id != user.id:
        abort(404)
    return batch, children


def visible_children(batch_id: int, scope: Collection[int] | None) -> list[Order]:
    """The batch's children of these clients (None: every client), in the order they were made."""
    query = sa.select(Order).where(Order.batch_id == batch_id).order_by(Order.id)
    if scope is not None:
        query = query.where(Order.client_id.in_(scope))
    return list(db.session.execute(query).scalars())


def live_summary(batch_id: int, scope: Collection[int] | None) -> str:
    """The batch page's header line and child counts as out-of-band fragments, for a socket that sees
    these clients: sent with every child's row, so the counts, "updating…" and the price follow the
    children (a modify's new price, the last child's final state) without a reload."""
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        return ""
    children = visible_children(batch_id, scope)
    return render_template("orders/_batch_summary.html", batch=batch, children=children, states=states, oob=True)


def enqueue_send(batch_id: int) -> bool:
    """Queue the batch's send job (webapp/trading/batch_requests.py); when it could not be queued,
    tell the trader what that did. False then."""
    failed = batch_requests.queue_send(batch_id)
    if failed is None:
        return True
    say_not_queued(failed)
    return False


def say_not_queued(failed: int) -> None:
    """The batch was written but its send could not be queued: its children were failed at once."""
    flash(
        f"Nothing was sent: the orders could not be queued (Redis is unavailable). {failed} order(s) "
        "are marked failed; retry when the desk is back if you still want them.",
        "error",
    )
