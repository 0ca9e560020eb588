"""The books: order book, trade book, batch history — filtered by what the user may see, as pages
and as CSV exports."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, render_template, request
from flask_login import current_user

from webapp.access import accessible_clients, client_scope
from webapp.csvexport import csv_response
from webapp.extensions import db
from webapp.htmx import render_page_or_partial
from webapp.inputs import record_id
from webapp.models import Batch, Order, Trade
from webapp.orders import bp
from webapp.permissions import requires
from webapp.timeutil import format_ist
from webapp.trading import states

PAGE = 200


def _client_scope(query, column):
    if (scope := client_scope(current_user)) is None:
        return query
    return query.where(column.in_(scope))


def _orders_query():
    query = _client_scope(sa.select(Order).order_by(Order.id.desc()), Order.client_id)
    args = request.args
    if client_id := _id_arg("client"):
        query = query.where(Order.client_id == client_id)
    if args.get("status") in states.ALL:
        query = query.where(Order.status == args["status"])
    if instrument_id := _id_arg("instrument"):
        query = query.where(Order.instrument_id == instrument_id)
    if batch_id := _id_arg("batch"):
        query = query.where(Order.batch_id == batch_id)
    return query


def _id_arg(name: str) -> int | None:
    """A filter's id (the input layer's bounds); blank is no filter, anything else not an id is a 400."""
    raw = request.args.get(name, "")
    if not raw.strip():
        return None
    return record_id(raw) or abort(400)


@bp.route("/")
@requires("desk.view")
def book():
    rows = db.session.execute(_orders_query().limit(PAGE)).scalars().all()
    return render_page_or_partial(
        "orders/book.html",
        "orders/_book_rows.html",
        orders=rows,
        states=states,
        clients=accessible_clients(current_user),
        args=request.args,
    )


@bp.route("/export.csv")
@requires("desk.view")
def book_csv():
    rows = db.session.execute(_orders_query()).scalars()
    return csv_response(
        "orders",
        [
            "order_id",
            "batch",
            "client",
            "client_code",
            "broker",
            "instrument",
            "side",
            "product",
            "order_type",
            "quantity",
            "price",
            "trigger_price",
            "status",
            "filled",
            "average_price",
            "broker_order_id",
            "tag",
            "reason",
            "created_ist",
        ],
        (
            [
                o.id,
                o.batch_id or "",
                o.client.name,
                o.client.client_code,
                o.client.broker,
                o.instrument.key,
                o.side,
                o.product,
                o.order_type,
                o.quantity,
                o.price or "",
                o.trigger_price or "",
                o.status,
                o.filled_quantity,
                o.average_price or "",
                o.broker_order_id or "",
                o.tag,
                o.reason,
                format_ist(o.created_at),
            ]
            for o in rows
        ),
    )


def _trades_query():
    query = _client_scope(sa.select(Trade).order_by(Trade.filled_at.desc(), Trade.id.desc()), Trade.client_id)
    if client_id := _id_arg("client"):
        query = query.where(Trade.client_id == client_id)
    return query


@bp.route("/trades")
@requires("desk.view")
def trades():
    rows = db.session.execute(_trades_query().limit(PAGE)).scalars().all()
    return render_template(
        "orders/trades.html", trades=rows, clients=accessible_clients(current_user), args=request.args
    )


@bp.route("/trades/export.csv")
@requires("desk.view")
def trades_csv():
    rows = db.session.execute(_trades_query()).scalars()
    return csv_response(
        "trades",
        [
            "trade_id",
            "order_id",
            "client",
            "client_code",
            "instrument",
            "side",
            "product",
            "quantity",
            "price",
            "value",
            "filled_ist",
        ],
        (
            [
                t.broker_trade_id,
                t.broker_order_id,
                t.client.name,
                t.client.client_code,
                t.instrument.key,
                t.side,
                t.product,
                t.quantity,
                t.price,
                t.price * t.quantity,
                format_ist(t.filled_at),
            ]
            for t in rows
        ),
    )


def _batches():
    query = sa.select(Batch).order_by(Batch.id.desc())
    if (scope := client_scope(current_user)) is not None:
        visible = sa.select(Order.batch_id).where(Order.client_id.in_(scope))
        query = query.where(Batch.id.in_(visible))
    return query


def _visible_children(batch_ids: list[int] | sa.Select) -> dict[int, dict[str, int]]:
    """Per batch, its children the user may see counted by status: a batch spans clients, and a
    trader's list must not reveal how many orders went to clients not granted to them."""
    query = (
        sa.select(Order.batch_id, Order.status, sa.func.count())
        .where(Order.batch_id.in_(batch_ids))
        .group_by(Order.batch_id, Order.status)
        .order_by(Order.batch_id, Order.status)
    )
    scope = client_scope(current_user)
    if scope is not None:
        query = query.where(Order.client_id.in_(scope))
    counts: dict[int, dict[str, int]] = {}
    for batch_id, status, number in db.session.execute(query):
        counts.setdefault(batch_id, {})[status] = number
    return counts


@bp.route("/batches")
@requires("desk.view")
def batches():
    rows = db.session.execute(_batches().limit(PAGE)).scalars().all()
    return render_template("orders/batches.html", batches=rows, children=_visible_children([b.id for b in rows]))


@bp.route("/batches/export.csv")
@requires("desk.view")
def batches_csv():
    children = _visible_children(_batches().with_only_columns(Batch.id).order_by(None))
    rows = db.session.execute(_batches()).scalars()
    return csv_response(
        "batches",
        [
            "batch",
            "kind",
            "action",
            "instrument",
            "product",
            "order_type",
            "price",
            "user",
            "children",
            "created_ist",
            "note",
        ],
        (
            [
                b.id,
                b.kind,
                b.action,
                b.instrument.key if b.instrument else "",
                b.product or "",
                b.order_type or "",
                b.price or "",
                b.user.username if b.user else "",
                sum(children.get(b.id, {}).values()),
                format_ist(b.created_at),
                b.note,
            ]
            for b in rows
        ),
    )
