"""The books: order book, trade book, batch history — filtered by what the user may see, as pages
and as CSV exports."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional, Regexp, ValidationError

from webapp.access import accessible_clients, client_scope
from webapp.backtest.runs import range_utc
from webapp.csvexport import csv_response
from webapp.extensions import db
from webapp.htmx import is_htmx, render_page_or_partial
from webapp.inputs import IdField, WholeNumberField, record_id
from webapp.models import Batch, Instrument, Order, Trade
from webapp.orders import bp, order_actions
from webapp.orders.batch_actions import INVALID, NOTHING, ActionRefused
from webapp.permissions import allowed, requires
from webapp.timeutil import IST, format_ist, utcnow
from webapp.trading import states

PAGE = 200  # batch history
PER_PAGE = 50  # the order and trade books
MAX_DAYS = 366
OPEN = "open"  # the order book's "any open state" choice: what can still be cancelled


class BookFilters(FlaskForm):
    """The books' search, read from the query string (a bookmarkable GET: no CSRF token)."""

    class Meta:
        csrf = False

    symbol = StringField(
        "Symbol",
        validators=[
            Optional(),
            Length(max=32, message="At most 32 characters."),
            Regexp(r"^[A-Za-z0-9&._ -]+$", message="Letters, digits, spaces and & . - _ only."),
        ],
    )
    client = IdField("Client", validators=[Optional()], message="Choose a client from the list.")
    status = SelectField(
        "State", choices={"": "All states", OPEN: "Open (any)", **{s: s for s in states.ALL}}, default=""
    )
    side = SelectField("Side", choices={"": "Both sides", "BUY": "Buy", "SELL": "Sell"}, default="")
    start = DateField("From (IST)", validators=[Optional()])
    end = DateField("To (IST)", validators=[Optional()])
    page = WholeNumberField("Page", validators=[Optional()], minimum=1, maximum=100_000)
    instrument = IdField(validators=[Optional()])
    batch = IdField(validators=[Optional()])

    def validate_end(self, field):
        if self.start.data and field.data and field.data < self.start.data:
            raise ValidationError("The last day is before the first.")
        if self.start.data and field.data and (field.data - self.start.data).days >= MAX_DAYS:
            raise ValidationError(f"At most {MAX_DAYS} days at a time.")

    def validate_client(self, field):
        if field.data is not None and field.data not in {c.id for c in accessible_clients(current_user)}:
            raise ValidationError("Choose a client from the list.")


def read_filters(default_today: bool = False) -> BookFilters:
    form = BookFilters(request.args)
    form.validate()
    if default_today and not request.args.get("start") and not request.args.get("end") and not form.errors:
        form.start.data = form.end.data = utcnow().astimezone(IST).date()
    return form


def _days(form: BookFilters):
    """The IST day range as [start, end) in UTC; an open end where a day is not given."""
    first, last = form.start.data, form.end.data
    start = range_utc(first, first)[0] if first else None
    end = range_utc(last, last)[1] if last else None
    return start, end


def _client_scope(query, column):
    if (scope := client_scope(current_user)) is None:
        return query
    return query.where(column.in_(scope))


def _symbol(query, column, form: BookFilters):
    if form.symbol.data and form.symbol.data.strip():
        wanted = form.symbol.data.strip().upper()
        query = query.join(Instrument, column == Instrument.id).where(
            sa.func.upper(Instrument.tradingsymbol).contains(wanted, autoescape=True)
        )
    return query


def _orders_query(form: BookFilters):
    query = _client_scope(sa.select(Order).order_by(Order.id.desc()), Order.client_id)
    if form.status.data == OPEN:
        query = query.where(Order.status.in_(sorted(states.AT_BROKER)))
    elif form.status.data:
        query = query.where(Order.status == form.status.data)
    if form.batch.data:
        query = query.where(Order.batch_id == form.batch.data)
    return _filtered(query, Order, Order.created_at, form)


def _filtered(query, model, when, form: BookFilters):
    """The filters the order book and the trade book share: client, side, instrument, IST days, symbol."""
    if form.client.data:
        query = query.where(model.client_id == form.client.data)
    if form.side.data:
        query = query.where(model.side == form.side.data)
    if form.instrument.data:
        query = query.where(model.instrument_id == form.instrument.data)
    start, end = _days(form)
    if start:
        query = query.where(when >= start)
    if end:
        query = query.where(when < end)
    query = query.options(selectinload(model.client), selectinload(model.instrument))  # rows name both
    return _symbol(query, model.instrument_id, form)


def _id_arg(name: str) -> int | None:
    """A filter's id (the input layer's bounds); blank is no filter, anything else not an id is a 400."""
    raw = request.args.get(name, "")
    if not raw.strip():
        return None
    return record_id(raw) or abort(400)


@dataclass
class Paged:
    rows: list
    total: int
    page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))

    @property
    def first(self) -> int:
        return (self.page - 1) * PER_PAGE + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * PER_PAGE + len(self.rows)


def _paged(query, form: BookFilters) -> Paged:
    if form.errors:
        return Paged([], 0, 1)
    page = form.page.data or 1
    total = db.session.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(query.limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars().all()
    return Paged(rows, total, page)


def page_args(form: BookFilters, page: int | None = None) -> dict[str, str]:
    """The filters as query arguments (blank ones left out), for the pager, the exports and the poll."""
    args = {name: value for name, value in request.args.items() if name in form._fields and value.strip()}
    args.pop("page", None)
    if page and page > 1:
        args["page"] = str(page)
    return args


def _render_book(form: BookFilters, paged: Paged, **extra):
    status = (422 if is_htmx() else 400) if form.errors else 200
    return render_page_or_partial(
        "orders/book.html",
        "orders/_book_rows.html",
        form=form,
        paged=paged,
        orders=paged.rows,
        states=states,
        clients=accessible_clients(current_user),
        page_args=page_args,
        actions=allowed(current_user.role, "orders.place"),
        oob_errors=is_htmx(),
        **extra,
    ), status


@bp.route("/")
@requires("desk.view")
def book():
    form = read_filters()
    return _render_book(form, _paged(_orders_query(form), form))


def _refuse_bad_filters(form: BookFilters):
    if form.errors:
        abort(400, description="; ".join(f"{form[name].label.text}: {errs[0]}" for name, errs in form.errors.items()))


@bp.route("/export.csv")
@requires("desk.view")
def book_csv():
    form = read_filters()
    _refuse_bad_filters(form)
    rows = db.session.execute(_orders_query(form)).scalars()
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


def _trades_query(form: BookFilters):
    query = _client_scope(sa.select(Trade).order_by(Trade.filled_at.desc(), Trade.id.desc()), Trade.client_id)
    return _filtered(query, Trade, Trade.filled_at, form)


@dataclass
class TradeTotals:
    count: int = 0
    buy_value: Decimal = Decimal(0)
    sell_value: Decimal = Decimal(0)

    @property
    def net(self) -> Decimal:
        """Sold minus bought: what the range's trades brought in (negative: paid out)."""
        return self.sell_value - self.buy_value


def trade_totals(query) -> TradeTotals:
    """Count and buy / sell value over every trade the filters match (not only the page shown),
    summed as Decimal here: SQLite's SUM of a NUMERIC is a float."""
    totals = TradeTotals()
    rows = db.session.execute(query.order_by(None).with_only_columns(Trade.side, Trade.quantity, Trade.price)).all()
    for side, quantity, price in rows:
        totals.count += 1
        if side == "BUY":
            totals.buy_value += price * quantity
        else:
            totals.sell_value += price * quantity
    return totals


@bp.route("/trades")
@requires("desk.view")
def trades():
    form = read_filters(default_today=True)
    query = _trades_query(form)
    paged = _paged(query, form)
    status = (422 if is_htmx() else 400) if form.errors else 200
    return render_page_or_partial(
        "orders/trades.html",
        "orders/_order_trades.html",
        form=form,
        paged=paged,
        trades=paged.rows,
        totals=TradeTotals() if form.errors else trade_totals(query),
        clients=accessible_clients(current_user),
        page_args=page_args,
        dates=_date_args(form),
        oob_errors=is_htmx(),
    ), status


def _date_args(form: BookFilters) -> dict[str, str]:
    """The day range shown (the default today included), so the export takes what the page shows."""
    return {name: field.data.isoformat() for name, field in (("start", form.start), ("end", form.end)) if field.data}


@bp.route("/trades/export.csv")
@requires("desk.view")
def trades_csv():
    form = read_filters(default_today=True)
    _refuse_bad_filters(form)
    rows = db.session.execute(_trades_query(form)).scalars()
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


# ---- one order: cancel, modify (the order book's per-row forms; the broker call is a job)


def _order_answer(order: Order, status: int = 200, **row):
    """The order's row again, for htmx to swap in place; a plain form post goes back to the book
    with the note flashed, or to a page of that one row when a field needs fixing."""
    db.session.refresh(order)
    context = dict(o=order, columns="book", actions=True, states=states, action_for=order.id, **row)
    if is_htmx():
        return render_template("orders/_order_row.html", **context), status
    if row.get("modify_errors"):
        return render_template("orders/order_modify.html", **context), 400
    flash(row.get("notice", ""), "error" if row.get("notice_error") else "info")
    return redirect(url_for("orders.book"))


@bp.route("/<int:order_id>/cancel", methods=["POST"])
@requires("orders.place")
def cancel_order(order_id: int):
    order = order_actions.order_for(current_user, order_id)
    try:
        order_actions.cancel_order(current_user, order, request.remote_addr)
    except ActionRefused as refused:
        return _order_answer(
            order, 200 if refused.reason == NOTHING else 422, notice=refused.message, notice_error=True
        )
    return _order_answer(order, notice=f"Cancel sent for order #{order.id}.")


@bp.route("/<int:order_id>/modify", methods=["POST"])
@requires("orders.place")
def modify_order(order_id: int):
    order = order_actions.order_for(current_user, order_id)
    form = order_actions.ModifyForm()
    values = {name: request.form.get(name, "")[:40] for name in ("price", "trigger_price", "quantity")}
    try:
        if not form.validate_on_submit():
            errors = {name: messages[0] for name, messages in form.errors.items()}
            if "csrf_token" in errors:  # the hidden token lapsed (htmx sends its header too)
                raise ActionRefused(INVALID, errors["csrf_token"], {"price": errors.pop("csrf_token")})
            raise ActionRefused(INVALID, next(iter(errors.values())), errors)
        change = order_actions.wanted_change(order, form.price.data, form.trigger_price.data, form.quantity.data)
        order_actions.modify_order(current_user, order, change, request.remote_addr)
    except ActionRefused as refused:
        if refused.reason == INVALID:
            return _order_answer(
                order,
                422,
                modify_for=order.id,
                modify_errors=refused.fields or {"price": refused.message},
                modify_values=values,
                notice="Not changed: fix the field below.",
                notice_error=True,
            )
        return _order_answer(
            order, 200 if refused.reason == NOTHING else 422, notice=refused.message, notice_error=True
        )
    return _order_answer(order, notice=f"Change sent for order #{order.id}: {change.describe()}.")
