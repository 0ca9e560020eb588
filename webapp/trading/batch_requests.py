"""A person asks to cancel or re-price a batch's open children (the request side: which children,
the audit event, the job). The job side, talking to each broker, is webapp/trading/order_actions.py."""

from __future__ import annotations

import logging
from decimal import Decimal

from redis.exceptions import RedisError

from webapp import audit
from webapp.extensions import db
from webapp.models import Batch, Instrument, Order, User
from webapp.tasks import QUEUE_ORDERS, SEND_JOB, enqueue
from webapp.trading import states, unsent
from webapp.trading.tickets import Ticket, price_errors

log = logging.getLogger(__name__)


def queue_send(batch_id: int) -> int | None:
    """Queue a written batch's send job (children already sent when a worker dies are resolved by
    tag, never sent twice). None when queued. If it cannot be (Redis went away since the batch was
    written), its NEW children are FAILED at once, so none is sent later without a person choosing
    it (retry): how many, then."""
    try:
        enqueue(
            "jobs.orders.send_batch", batch_id, queue_name=QUEUE_ORDERS, job_id=f"send-batch-{batch_id}", **SEND_JOB
        )
        return None
    except RedisError as exc:
        log.warning("op=enqueue batch=%s job=send result=failed error=%s", batch_id, exc)
    return len(unsent.fail_unsent(unsent.NOT_QUEUED, batch_id=batch_id))  # no events: Redis is what is away


def cancellable(children: list[Order]) -> list[int]:
    return [c.id for c in children if c.status in states.AT_BROKER]


def modifiable(children: list[Order]) -> list[int]:
    """Only priced orders can take a new price."""
    return [c.id for c in children if c.status in states.AT_BROKER and c.order_type in ("LIMIT", "SL")]


def price_error(batch: Batch, instrument: Instrument | None, price: Decimal) -> str | None:
    """The new limit price checked as a ticket's would be (tick size, band); None when it may go."""
    if instrument is None:
        return None
    probe = Ticket(
        ticket_id="",
        action=batch.action,
        instrument_id=batch.instrument_id,
        product=batch.product or "",
        order_type="LIMIT",
        price=price,
    )
    return price_errors(probe, instrument).get("price")


def request_cancel(user: User, batch: Batch, children: list[Order], open_ids: list[int], ip: str | None) -> None:
    """Audit, commit, then queue the cancel of these open children (the queue was checked first)."""
    audit.record(
        "batch.cancel",
        actor_id=user.id,
        actor=user.username,
        target=f"batch:{batch.id}",
        clients=[c.client_id for c in children if c.id in open_ids],
        ip=ip,
    )
    db.session.commit()
    enqueue("jobs.orders.cancel_children", open_ids, user.username, queue_name=QUEUE_ORDERS)


def request_modify(
    user: User, batch: Batch, children: list[Order], open_ids: list[int], price: Decimal, ip: str | None
) -> None:
    """Audit, commit, then queue the new price for these open children (the queue was checked first)."""
    audit.record(
        "batch.modify",
        actor_id=user.id,
        actor=user.username,
        target=f"batch:{batch.id}",
        clients=[c.client_id for c in children if c.id in open_ids],
        detail={"price": price},
        ip=ip,
    )
    db.session.commit()
    enqueue("jobs.orders.modify_children", open_ids, str(price), queue_name=QUEUE_ORDERS)
