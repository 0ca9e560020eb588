"""The ticket form: the order's fields; per-client quantities arrive as qty_<client id>."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import Request
from flask_wtf import FlaskForm
from wtforms import BooleanField, DecimalField, HiddenField, IntegerField, RadioField, SelectField
from wtforms.validators import DataRequired, NumberRange, Optional

PRODUCTS = {"MIS": "Intraday (MIS)", "CNC": "Delivery (CNC)", "MTF": "MTF"}
ORDER_TYPES = {"MARKET": "Market", "LIMIT": "Limit", "SL": "Stop-loss (SL)", "SL-M": "Stop-loss market (SL-M)"}


class TicketForm(FlaskForm):
    ticket_id = HiddenField(validators=[DataRequired(message="Reload the ticket and try again.")])
    instrument_id = IntegerField("Instrument", validators=[Optional()])
    action = RadioField("Side", choices={"BUY": "Buy", "SELL": "Sell"}, default="BUY")
    product = SelectField("Product", choices=PRODUCTS, default="MIS")
    order_type = SelectField("Order type", choices=ORDER_TYPES, default="MARKET")
    price = DecimalField("Price (₹)", places=None, validators=[Optional()])
    trigger_price = DecimalField("Trigger (₹)", places=None, validators=[Optional()])
    validity = SelectField("Validity", choices={"DAY": "Day", "IOC": "IOC"}, default="DAY")
    chase = BooleanField("Chase unfilled limit orders")
    chase_seconds = IntegerField("every (seconds)", default=5, validators=[
        Optional(), NumberRange(min=2, max=300, message="Between 2 and 300 seconds.")])
    chase_max_ticks = IntegerField("at most (ticks from the price)", default=10, validators=[
        Optional(), NumberRange(min=1, max=500, message="Between 1 and 500 ticks.")])
    chase_then = SelectField("then", choices={"leave": "leave them", "market": "convert to market"}, default="leave")


class PriceForm(FlaskForm):
    price = DecimalField("New price (₹)", places=None,
                         validators=[DataRequired(message="Enter the new price."), NumberRange(min=Decimal("0.01"))])


def quantities(request: Request, client_ids: list[int]) -> tuple[dict[int, int], dict[int, str]]:
    """qty_<id> fields for the clients shown: blank is 0; what is not a whole number is an error.
    A quantity for any other client id (a forged field) comes back under that id, so the ticket's
    review refuses it as a client the user may not trade."""
    result, errors = {}, {}
    for name, raw in request.form.items():
        if name.startswith("qty_") and raw.strip() and not name[4:].isdigit():
            errors[0] = "A quantity field on this ticket is malformed."
        elif name.startswith("qty_") and raw.strip() and int(name[4:]) not in client_ids:
            result[int(name[4:])] = 1
    for client_id in client_ids:
        raw = request.form.get(f"qty_{client_id}", "").strip()
        if not raw:
            continue
        try:
            value = Decimal(raw)
            if value != value.to_integral_value():
                raise InvalidOperation
            result[client_id] = int(value)
        except InvalidOperation:
            errors[client_id] = "Enter a whole number of shares."
    return result, errors
