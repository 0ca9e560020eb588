"""GET /api/v1/batches and /batches/{id}; POST /batches/{id}/retry, /cancel and /modify. The batch
page's own actions (webapp.orders.batch_actions): the same checks, audit events and jobs."""

from __future__ import annotations

import sqlalchemy as sa
from flask import g, request, url_for
from pydantic import Field
from sqlalchemy.orm import selectinload

from webapp.access import client_scope
from webapp.api import bp
from webapp.api.batches_out import BatchHeader, BatchOut, batch_out, header_fields
from webapp.api.core import ApiError, DecimalIn, Page, PageQuery, Strict, operation, paged, replies
from webapp.extensions import db
from webapp.models import Batch, Order, User
from webapp.models.base import in_ids
from webapp.orders.batch_actions import INVALID, NOTHING, ActionRefused, cancel_batch, modify_batch, retry_batch
from webapp.orders.batches import batch_for
from webapp.orders.placing import tradable_clients
from webapp.trading import states


class BatchSummary(BatchHeader):
    children: int = Field(description="How many of its children you may see.")


class PriceIn(Strict):
    price: DecimalIn(14, 4) = Field(description="The new limit price in rupees (tick size and circuit band apply).")


def visible_batches(user: User) -> sa.Select:
    """The batches with a child the user may see, or that the user made; newest first."""
    query = sa.select(Batch).options(selectinload(Batch.instrument)).order_by(Batch.created_at.desc(), Batch.id.desc())
    if (scope := client_scope(user)) is not None:
        seen = sa.select(Order.id).where(Order.batch_id == Batch.id, Order.client_id.in_(scope)).exists()
        query = query.where(sa.or_(seen, Batch.user_id == user.id))
    return query


def _summary(batch: Batch) -> BatchSummary:
    return BatchSummary(**header_fields(batch), children=0, counts={}, acknowledged=True)


def _count_children(user: User, items: list[BatchSummary]) -> None:
    """The page's children by batch and status, in one grouped query (only those the user may see)."""
    if not items:
        return
    query = sa.select(Order.batch_id, Order.status, sa.func.count()).where(
        in_ids(Order.batch_id, [i.id for i in items])
    )
    if (scope := client_scope(user)) is not None:
        query = query.where(Order.client_id.in_(scope))
    by_batch = {i.id: i for i in items}
    for batch_id, status, n in db.session.execute(query.group_by(Order.batch_id, Order.status)):
        item = by_batch[batch_id]
        item.counts[status] = n
        item.children += n
        item.acknowledged = item.acknowledged and status not in states.IN_FLIGHT


@bp.get("/batches")
@operation("desk.view", scope="read", replies=replies(Page[BatchSummary]), tag="batches")
def list_batches(query: PageQuery):
    """Batches you may see (a child of a client you may see, or made by you), newest first."""
    user = g.api_user
    page = paged(visible_batches(user), query, BatchSummary, _summary)
    _count_children(user, page.items)
    return page


@bp.get("/batches/<int:batch_id>")
@operation("desk.view", scope="read", replies=replies(BatchOut), tag="batches")
def get_batch(batch_id: int):
    """A batch with its children you may see: follow it until `acknowledged`."""
    return batch_out(*batch_for(g.api_user, batch_id))


def _refusal(refused: ActionRefused) -> ApiError:
    if refused.reason == NOTHING:
        return ApiError(409, "nothing_to_do", refused.message)
    if refused.reason == INVALID:
        return ApiError(422, "refused", refused.message, refused.fields)
    return ApiError(503, "unavailable", refused.message, headers={"Retry-After": "5"})


@bp.post("/batches/<int:batch_id>/retry")
@operation(
    "orders.place",
    scope="trade",
    replies=replies(BatchOut, status=201, extra=(409, 422)),
    tag="batches",
    idempotent=True,
)
def retry_batch_api(batch_id: int):
    """Send a batch's failed and rejected children again, as a new batch (an exit's: what is still held)."""
    user = g.api_user
    found, children = batch_for(user, batch_id)
    try:
        retried = retry_batch(user, found, children, tradable_clients(user), request.remote_addr)
    except ActionRefused as refused:
        raise _refusal(refused) from None
    batch, visible = batch_for(user, retried.batch.id)
    return batch_out(batch, visible), 201, {"Location": url_for("api.get_batch", batch_id=batch.id)}


@bp.post("/batches/<int:batch_id>/cancel")
@operation("orders.place", scope="trade", replies=replies(BatchOut, extra=(409,)), tag="batches", idempotent=True)
def cancel_batch_api(batch_id: int):
    """Cancel a batch's open children at their brokers (a worker does it; follow the batch)."""
    user = g.api_user
    found, children = batch_for(user, batch_id)
    try:
        cancel_batch(user, found, children, request.remote_addr)
    except ActionRefused as refused:
        raise _refusal(refused) from None
    return batch_out(*batch_for(user, batch_id))


@bp.post("/batches/<int:batch_id>/modify")
@operation("orders.place", scope="trade", replies=replies(BatchOut, extra=(409,)), tag="batches", idempotent=True)
def modify_batch_api(batch_id: int, json: PriceIn):
    """Give a batch's open LIMIT and SL children a new price (a worker does it; follow the batch)."""
    user = g.api_user
    found, children = batch_for(user, batch_id)
    try:
        modify_batch(user, found, children, json.price, request.remote_addr)
    except ActionRefused as refused:
        raise _refusal(refused) from None
    return batch_out(*batch_for(user, batch_id))
