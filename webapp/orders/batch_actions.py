"""What a person may do to a batch — retry its failed children, cancel or re-price its open ones — as
functions the batch page and the API (POST /api/v1/batches/{id}/retry|cancel|modify) both call. No
request object in here; a refusal is an ActionRefused the caller shows (a flash, a JSON error)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from webapp.extensions import db, get_redis
from webapp.models import Batch, Client, Order, User
from webapp.tasks import QUEUE_UNAVAILABLE, queue_available
from webapp.trading import batch_requests, exits, states
from webapp.trading.tickets import Ticket, create_batch, review_ticket

NOTHING, UNAVAILABLE, INVALID = "nothing", "unavailable", "invalid"


class ActionRefused(Exception):
    """Nothing was done. `reason`: NOTHING (no child the action applies to), UNAVAILABLE (no job can be
    queued now) or INVALID (the input or the review refused it; `fields` says where)."""

    def __init__(self, reason: str, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.reason, self.message, self.fields = reason, message, fields or {}


def _queue_or_refuse() -> None:
    if not queue_available():  # before anything is written
        raise ActionRefused(UNAVAILABLE, QUEUE_UNAVAILABLE)


@dataclass
class Retried:
    batch: Batch
    not_queued: int | None  # children failed because the send could not be queued after the commit


def retry_batch(user: User, batch: Batch, children: list[Order], clients: list[Client], ip: str | None) -> Retried:
    """A new batch for the failed or rejected children the user may see (fresh children, so a fresh
    send deadline): a ticket's again as it was, reviewed again; an exit's for what is still held."""
    failed = [c for c in children if c.status in states.RETRYABLE]
    if batch.action == "EXIT":
        return _retry_exit(user, batch, failed, ip)
    if not failed or batch.instrument_id is None or batch.action not in ("BUY", "SELL"):
        raise ActionRefused(
            NOTHING, "Nothing to retry: only failed or rejected children of a ticket can be sent again."
        )
    ticket = Ticket(
        ticket_id=str(uuid.uuid4()),
        action=batch.action,
        instrument_id=batch.instrument_id,
        product=batch.product,
        order_type=batch.order_type,
        validity=batch.validity,
        price=batch.price,
        trigger_price=batch.trigger_price,
        quantities={c.client_id: c.quantity for c in failed},
        kind="retry",
        note=f"retry of batch {batch.id}",
    )
    _queue_or_refuse()
    review = review_ticket(user, ticket, clients, get_redis())
    if not review.ok:
        fields = {**review.errors, **{f"clients.{k}": v for k, v in review.quantity_errors.items()}}
        why = next(iter(fields.values()), "") or "no client can take it"
        raise ActionRefused(INVALID, f"Retry refused: {why}", fields)
    retried = create_batch(user, ticket, review, ip=ip)
    db.session.commit()
    return Retried(retried, batch_requests.queue_send(retried.id))


def _retry_exit(user: User, batch: Batch, failed: list[Order], ip: str | None) -> Retried:
    """An exit's (or a kill switch's square-off's) failed children, as a new exit batch of what is
    still held."""
    legs = exits.retry_legs(failed) if failed else []
    if not legs:
        raise ActionRefused(NOTHING, "Nothing to retry: no failed or rejected child of this exit is still held.")
    _queue_or_refuse()
    retried = exits.create_exit_batch(
        user, "retry", legs, instrument_id=batch.instrument_id, ip=ip, note=f"retry of batch {batch.id}"
    )
    if retried is None:
        db.session.rollback()
        raise ActionRefused(NOTHING, "Nothing to retry: no failed or rejected child of this exit is still held.")
    db.session.commit()
    return Retried(retried, batch_requests.queue_send(retried.id))


def cancel_batch(user: User, batch: Batch, children: list[Order], ip: str | None) -> int:
    """Ask the brokers to cancel the batch's open children the user may see: how many."""
    open_ids = batch_requests.cancellable(children)
    if not open_ids:
        raise ActionRefused(NOTHING, "No open orders to cancel.")
    _queue_or_refuse()
    batch_requests.request_cancel(user, batch, children, open_ids, ip)
    return len(open_ids)


def modify_batch(user: User, batch: Batch, children: list[Order], price: Decimal, ip: str | None) -> int:
    """Give the batch's open priced children the user may see a new price: how many."""
    error = batch_requests.price_error(batch, batch.instrument, price)
    if error is not None:
        raise ActionRefused(INVALID, error, {"price": error})
    open_ids = batch_requests.modifiable(children)
    if not open_ids:
        raise ActionRefused(NOTHING, "No open limit orders to modify.")
    _queue_or_refuse()
    batch_requests.request_modify(user, batch, children, open_ids, price, ip)
    return len(open_ids)
