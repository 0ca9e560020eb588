"""Exits and kill switches through the API: who holds an instrument, exit it across clients, exit one
position, square off a client, the client and desk kill switches. The pages' rules (webapp/exits),
through the same domain calls (webapp/trading/exits.py); every write that makes orders answers with
the batch (webapp/api/batches_out.py)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from flask import g, request
from pydantic import BaseModel, Field, StrictBool, WithJsonSchema
from spectree import Response

from webapp import inputs
from webapp.access import accessible_client_ids, accessible_clients, client_for
from webapp.api import bp
from webapp.api.batches_out import BatchOut, batch_out
from webapp.api.core import ApiError, Id, Page, PageQuery, Quantity, Strict, operation, replies
from webapp.extensions import db
from webapp.models import Batch, Client, Instrument
from webapp.orders.batches import batch_for
from webapp.tasks import QUEUE_UNAVAILABLE, queue_available
from webapp.trading import exits
from webapp.trading.batch_requests import queue_send

MAX_CLIENTS = 1000  # client ids in one request (a desk's book is hundreds)
MAX_REASON = 200
PRODUCTS = Literal["MIS", "CNC", "MTF"]

# {"<client id>": quantity}: the keys are client ids written as JSON object keys
ClientQuantities = Annotated[
    dict[Id, Quantity],
    Field(max_length=MAX_CLIENTS),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_CLIENTS,
            "propertyNames": {"pattern": "^[1-9][0-9]{0,9}$"},
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": inputs.MAX_INT},
        }
    ),
]


# --- schemas ---------------------------------------------------------------------------------------


class HoldersQuery(PageQuery):
    instrument_id: Id


class HolderOut(BaseModel):
    client_id: int
    client_name: str
    product: str
    quantity: int = Field(description="Held now: positive long, negative short.")
    side: str = Field(description="The exit's side: SELL for a long holding, BUY for a short one.")


class ExitIn(Strict):
    instrument_id: Id
    client_ids: list[Id] | None = Field(
        None, max_length=MAX_CLIENTS, description="Whose holdings to exit; null: every holder you may act for."
    )
    share: Literal[100, 50] | None = Field(
        None,
        description="Percent of each holding, rounded down to the lot (50% of 3 is 1). Default 100 "
        "unless `quantities` is sent.",
    )
    quantities: ClientQuantities | None = Field(
        None,
        description="An exact quantity per client id instead of a share (0 skips), at most what the client "
        "holds; taken from its intraday position first, delivery last.",
    )


class PositionExitIn(Strict):
    client_id: Id
    instrument_id: Id
    product: PRODUCTS
    quantity: Annotated[int, Field(ge=1, le=inputs.MAX_INT, strict=True)] | None = Field(
        None, description="How many to exit, at most the position; null: all of it."
    )


class FlatOut(BaseModel):
    batch: None = Field(None, description="No batch: the client holds no open position.")
    cancelled: int = Field(description="Open orders whose cancel was queued.")


class KillIn(Strict):
    on: StrictBool = Field(
        description="true engages (cancels open orders, squares off intraday positions, refuses new orders); "
        "false re-arms."
    )
    reason: str = Field("", max_length=MAX_REASON, description="Why it was engaged; shown with the switch.")


class KillOut(BaseModel):
    scope: Literal["client", "desk"]
    client_id: int | None
    on: bool
    reason: str
    batch: None = Field(None, description="No batch: released, or nothing intraday was held.")


def _made() -> Response:
    """201 BatchOut: the batch made; 409 when there is nothing to exit."""
    return replies(BatchOut, status=201, extra=(409,))


def _made_or(model: type[BaseModel]):
    """201 BatchOut when a batch is made, else 200 `model`."""
    documented = _made()
    documented.add_model(200, model, description="No batch was made.")
    return documented


# --- operations ------------------------------------------------------------------------------------


@bp.get("/exits/holders")
@operation("exits.all", scope="read", replies=replies(Page[HolderOut]), tag="exits")
def list_holders(query: HoldersQuery):
    """Who holds an instrument, among the clients you may act for: client, product and quantity."""
    _instrument(query.instrument_id)
    found = exits.holders(accessible_clients(g.api_user), query.instrument_id)
    pages = max(1, math.ceil(len(found) / query.per_page))
    shown = found[(query.page - 1) * query.per_page : query.page * query.per_page]
    return Page[HolderOut](
        items=[
            HolderOut(
                client_id=h.client.id,
                client_name=h.client.name,
                product=h.product,
                quantity=h.quantity,
                side="SELL" if h.quantity > 0 else "BUY",
            )
            for h in shown
        ],
        page=query.page,
        per_page=query.per_page,
        total=len(found),
        pages=pages,
        next_page=query.page + 1 if query.page < pages else None,
    )


@bp.post("/exits")
@operation("exits.all", scope="trade", replies=_made(), tag="exits", idempotent=True)
def exit_instrument(json: ExitIn):
    """Exit an instrument across clients: a share of every holding, or an exact quantity per client."""
    user = g.api_user
    _instrument(json.instrument_id)
    if json.quantities is not None and (json.share is not None or json.client_ids is not None):
        raise ApiError(
            422,
            "invalid",
            "Send `quantities` alone (its keys name the clients), or `share` with `client_ids`.",
            {"quantities": "Not with `share` or `client_ids`."},
        )
    clients = _clients(user, json)
    found = exits.holders(clients, json.instrument_id)
    if json.quantities is not None:
        legs, errors = exits.client_legs(found, json.quantities)
        if errors:
            raise ApiError(
                422,
                "invalid",
                "Some quantities are more than the client holds; nothing was exited.",
                {f"quantities.{client_id}": message for client_id, message in errors.items()},
            )
    else:
        legs = exits.share_legs(found, json.share or 100)
    if not legs:
        raise ApiError(
            409, "nothing_to_exit", "Nothing to exit: none of these clients holds it (or its share rounds to 0)."
        )
    return _send(exits.create_exit_batch(user, "exit", legs, instrument_id=json.instrument_id, ip=request.remote_addr))


@bp.post("/exits/position")
@operation("orders.place", scope="trade", replies=_made(), tag="exits", idempotent=True)
def exit_position(json: PositionExitIn):
    """Exit one position (one client, instrument and product): all of it, or a quantity."""
    client = client_for(g.api_user, json.client_id)
    _instrument(json.instrument_id)
    holder = exits.position_of(client, json.instrument_id, json.product)
    if holder is None:
        raise ApiError(409, "nothing_to_exit", "Nothing to exit: that position is already flat.")
    quantity = json.quantity or abs(holder.quantity)
    if error := exits.exceeds(quantity, [holder]):
        raise ApiError(422, "invalid", "That is more than the position holds; nothing was exited.", {"quantity": error})
    return _send(
        exits.create_exit_batch(
            g.api_user, "exit", [(holder, quantity)], instrument_id=json.instrument_id, ip=request.remote_addr
        )
    )


@bp.post("/clients/<int:client_id>/square-off")
@operation("exits.all", scope="trade", replies=_made_or(FlatOut), tag="exits", idempotent=True)
def square_off(client_id: int):
    """Square off a client: cancel its open orders and exit today's positions (delivery holdings stay)."""
    client = client_for(g.api_user, client_id)
    _require_queue()
    positions = exits.holders([client], with_holdings=False)
    batch, cancelled = exits.square_off(g.api_user, client, positions, request.remote_addr)
    if batch is None:
        db.session.commit()
        return FlatOut(cancelled=cancelled)
    return _send(batch)


@bp.post("/clients/<int:client_id>/kill")
@operation("kill.client", scope="trade", replies=_made_or(KillOut), tag="kill switches", idempotent=True)
def client_kill(client_id: int, json: KillIn):
    """A client's kill switch: on cancels its orders, squares off intraday and refuses new orders; off re-arms."""
    client = client_for(g.api_user, client_id)
    if json.on:  # on cancels and squares off (jobs); off queues nothing
        _require_queue()
    reason = json.reason.strip()
    batch = exits.engage_client_kill(g.api_user, client, json.on, request.remote_addr, reason)
    return _switched(batch, KillOut(scope="client", client_id=client.id, on=json.on, reason=client.kill_reason))


@bp.post("/desk/kill")
@operation("kill.desk", scope="admin", replies=_made_or(KillOut), tag="kill switches", idempotent=True)
def desk_kill(json: KillIn):
    """The desk's kill switch: on cancels every order, squares off intraday and refuses new orders; off re-arms."""
    if json.on:
        _require_queue()
    reason = json.reason.strip()
    batch = exits.engage_desk_kill(g.api_user, accessible_clients(g.api_user), json.on, request.remote_addr, reason)
    return _switched(batch, KillOut(scope="desk", client_id=None, on=json.on, reason=reason if json.on else ""))


# --- helpers ---------------------------------------------------------------------------------------


def _instrument(instrument_id: int) -> Instrument:
    found = db.session.get(Instrument, instrument_id)
    if found is None:
        raise ApiError(404, "not_found", "No such instrument.", {"instrument_id": "No such instrument."})
    return found


def _clients(user, body: ExitIn) -> list[Client]:
    """The clients an exit may touch: those named (each one the user may act for, else 404 and nothing
    written), or every client the user may act for."""
    if body.client_ids is None and body.quantities is None:
        return accessible_clients(user)
    named = body.client_ids if body.client_ids is not None else list(body.quantities)
    field = "client_ids" if body.client_ids is not None else "quantities"
    granted = accessible_client_ids(user)
    missing = {
        (f"client_ids.{index}" if field == "client_ids" else f"quantities.{client_id}"): "No such client, or not yours."
        for index, client_id in enumerate(named)
        if client_id not in granted
    }
    if missing:
        raise ApiError(404, "not_found", "Some clients do not exist or are not yours to act for.", missing)
    return [c for c in accessible_clients(user) if c.id in set(named)]


def _require_queue() -> None:
    """Asked before anything is written, so a refused request writes nothing (as on the pages)."""
    if not queue_available():
        raise ApiError(503, "queue_unavailable", QUEUE_UNAVAILABLE)


def _send(batch: Batch | None):
    """Commit the written batch, queue its send, answer with it (201). When the send cannot be queued
    after all, its children are FAILED at once (queue_send) and the reply shows them so."""
    if batch is None:  # create_exit_batch drops zero legs; callers have made sure there are some
        raise ApiError(409, "nothing_to_exit", "Nothing to exit.")
    _require_queue()
    db.session.commit()
    queue_send(batch.id)
    found, children = batch_for(g.api_user, batch.id)
    return batch_out(found, children), 201


def _switched(batch: Batch | None, state: KillOut):
    if batch is None:
        db.session.commit()
        return state
    return _send(batch)
