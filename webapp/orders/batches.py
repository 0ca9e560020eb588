"""A batch from the order routes: the Ticket a form makes, the batch and children a user may see,
and queuing its send (shared by the ticket, retry and exit routes)."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import abort, flash
from redis.exceptions import RedisError

from webapp.access import client_scope
from webapp.extensions import db
from webapp.models import Batch, Order, User
from webapp.orders.forms import TicketForm

from webapp.tasks import QUEUE_ORDERS, SEND_JOB, enqueue
from webapp.trading import unsent
from webapp.trading.tickets import Ticket

log = logging.getLogger(__name__)


def ticket_from_form(form: TicketForm, qtys: dict[int, int]) -> Ticket:
    return Ticket(ticket_id=form.ticket_id.data or "", action=form.action.data or "BUY",
                  instrument_id=form.instrument_id.data, product=form.product.data, order_type=form.order_type.data,
                  validity=form.validity.data, price=form.price.data, trigger_price=form.trigger_price.data,
                  quantities=qtys, **chase_settings(form))


def chase_settings(form: TicketForm) -> dict:
    if not form.chase.data:
        return {}
    return {"chase_seconds": form.chase_seconds.data or 5, "chase_max_ticks": form.chase_max_ticks.data or 10,
            "chase_then": form.chase_then.data}


def batch_for(user: User, batch_id: int) -> tuple[Batch, list[Order]]:
    """The batch and the children this user may see; 404 when they may see none."""
    batch = db.session.get(Batch, batch_id)
    if batch is None:
        abort(404)
    query = sa.select(Order).where(Order.batch_id == batch.id).order_by(Order.id)
    if (scope := client_scope(user)) is not None:
        query = query.where(Order.client_id.in_(scope))
    children = list(db.session.execute(query).scalars())
    if not children and scope is not None:
        abort(404)
    return batch, children


def enqueue_send(batch_id: int) -> bool:
    """Queue the batch's send job (children already sent when a worker dies are resolved by tag,
    never sent twice). The batch is already written: if the job cannot be queued (Redis went away
    since), its NEW children are FAILED at once and the trader is told, so none is sent later
    without a person choosing it (retry). False then."""
    try:
        enqueue("jobs.orders.send_batch", batch_id, queue_name=QUEUE_ORDERS, job_id=f"send-batch-{batch_id}",
                **SEND_JOB)
        return True
    except RedisError as exc:
        log.warning("op=enqueue batch=%s job=send result=failed error=%s", batch_id, exc)
    failed = unsent.fail_unsent(unsent.NOT_QUEUED, batch_id=batch_id)  # no events: Redis is what is away
    flash(f"Nothing was sent: the orders could not be queued (Redis is unavailable). {len(failed)} order(s) "
          "are marked failed; retry when the desk is back if you still want them.", "error")
    return False
