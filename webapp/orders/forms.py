"""The ticket form: the order's fields; per-client quantities arrive as qty_<client id>."""

from __future__ import annotations

from decimal import Decimal

from flask import Request
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField
from wtforms.validators import DataRequired, NumberRange, Optional

from webapp.inputs import (
    MAX_IDS,
    MAX_INT,
    AmountField,
    IdField,
    InputError,
    TicketTokenField,
    WholeNumberField,
    looks_whole,
    record_id,
    whole_number,
)
from webapp.models import Batch, Order, StopRule

PRODUCTS = {"MIS": "Intraday (MIS)", "CNC": "Delivery (CNC)", "MTF": "MTF"}
ORDER_TYPES = {"MARKET": "Market", "LIMIT": "Limit", "SL": "Stop-loss (SL)", "SL-M": "Stop-loss market (SL-M)"}


class TicketForm(FlaskForm):
    ticket_id = TicketTokenField(validators=[DataRequired(message="Reload the ticket and try again.")])
    instrument_id = IdField("Instrument", validators=[Optional()], message="Choose an instrument from the search.")
    action = RadioField("Side", choices={"BUY": "Buy", "SELL": "Sell"}, default="BUY")
    product = SelectField("Product", choices=PRODUCTS, default="MIS")
    order_type = SelectField("Order type", choices=ORDER_TYPES, default="MARKET")
    price = AmountField("Price (₹)", column=Batch.price, validators=[Optional()])
    trigger_price = AmountField("Trigger (₹)", column=Batch.trigger_price, validators=[Optional()])
    validity = SelectField("Validity", choices={"DAY": "Day", "IOC": "IOC"}, default="DAY")
    chase = BooleanField("Chase unfilled limit orders")
    chase_seconds = WholeNumberField(
        "every (seconds)",
        default=5,
        validators=[Optional(), NumberRange(min=2, max=300, message="Between 2 and 300 seconds.")],
    )
    chase_max_ticks = WholeNumberField(
        "at most (ticks from the price)",
        default=10,
        validators=[Optional(), NumberRange(min=1, max=500, message="Between 1 and 500 ticks.")],
    )
    chase_then = SelectField("then", choices={"leave": "leave them", "market": "convert to market"}, default="leave")
    # optional stop rules armed for every child when the ticket is placed (webapp.automation.stops)
    stop = AmountField("Stop-loss (₹)", column=StopRule.stop_price, validators=[Optional()])
    target = AmountField("Target (₹)", column=StopRule.target_price, validators=[Optional()])
    trail = AmountField("Trailing distance (₹)", column=StopRule.trail_distance, validators=[Optional()])


class PriceForm(FlaskForm):
    price = AmountField(
        "New price (₹)",
        column=Order.price,
        validators=[DataRequired(message="Enter the new price."), NumberRange(min=Decimal("0.01"))],
    )


def quantities(request: Request, client_ids: list[int]) -> tuple[dict[int, int], dict[int, str]]:
    """qty_<id> fields for the clients shown: blank is 0; what is not a whole number is an error.
    A quantity for any other client id (a forged field) comes back under that id, so the ticket's
    review refuses it as a client the user may not trade."""
    return quantity_fields(request.form.items(multi=True), client_ids)


def quantity_fields(items, client_ids: list[int]) -> tuple[dict[int, int], dict[int, str]]:
    result, errors = {}, {}
    shown = set(client_ids)
    filled = [(name[4:], raw) for name, raw in items if name.startswith("qty_") and raw.strip()]
    if len(filled) > len(shown) + MAX_IDS:  # far more rows than the ticket shows: forged; not read one by one
        return {}, {0: "This ticket has more quantity fields than clients; reload it."}
    for key, raw in filled:
        client_id = record_id(key)
        if client_id is None:
            errors[0] = "A quantity field on this ticket is malformed."
        elif client_id not in shown:
            result[client_id] = 1
        elif client_id in result or client_id in errors:
            errors[client_id] = "This client's quantity was sent twice; reload the ticket."
        else:
            try:  # a negative number parses, so the review can say "cannot be negative"
                result[client_id] = whole_number(raw, minimum=-MAX_INT)
            except InputError as exc:
                errors[client_id] = "Enter a whole number of shares." if not looks_whole(raw) else str(exc)
    return result, errors


TOOL_FIELDS = ("tool_same", "tool_base", "tool_pct")


def quantity_tools(form, client_ids: list[int]) -> dict[str, str]:
    """The quantity tools' inputs as posted (same qty, multiplier base and each row's multiplier, % of
    available margin), so a ticket shown again after a refused submit keeps them. They only help fill the
    quantities in the browser; the server never reads a quantity from them. Anything but a short plain
    number is dropped."""
    names = [*TOOL_FIELDS, *(f"mult_{client_id}" for client_id in client_ids)]
    kept = {}
    for name in names:
        raw = (form.get(name) or "").strip()
        if raw and len(raw) <= 12 and raw.isascii() and raw.replace(".", "", 1).isdigit():
            kept[name] = raw
    return kept
