"""What a person may do to one order from the order book: cancel it, or give an open LIMIT / SL order
a new price, trigger or quantity. The request side only (which order, checks, the audit event, the
job); the broker call is a job on the `orders` queue (jobs.orders.cancel_children, the batch cancel's
own job, and jobs.orders.modify_order), exactly as the batch actions do. No request object in here: a
refusal is an ActionRefused (webapp.orders.batch_actions) the route shows next to the row or field."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flask import abort
from flask_wtf import FlaskForm
from redis.exceptions import RedisError
from wtforms.validators import Optional

from webapp import audit
from webapp.access import client_for
from webapp.extensions import db, get_redis
from webapp.inputs import AmountField, WholeNumberField
from webapp.models import Order, User
from webapp.money import rupees
from webapp.orders.batch_actions import INVALID, NOTHING, UNAVAILABLE, ActionRefused
from webapp.tasks import QUEUE_ORDERS, QUEUE_UNAVAILABLE, enqueue, queue_available
from webapp.trading import states
from webapp.trading.risk import desk_killed
from webapp.trading.tickets import PRICED, TRIGGERED, Ticket, price_errors

MODIFIABLE_TYPES = ("LIMIT", "SL")
# a second click (or a replayed POST) while the first request's job is still on its way is refused,
# not queued again: the first job's broker call and sync settle the order within this many seconds
PENDING_SECONDS = 10


class ModifyForm(FlaskForm):
    price = AmountField("Price (₹)", column=Order.price, validators=[Optional()])
    trigger_price = AmountField("Trigger (₹)", column=Order.trigger_price, validators=[Optional()])
    quantity = WholeNumberField("Quantity", validators=[Optional()], minimum=1)


def order_for(user: User, order_id: int) -> Order:
    """The order, or 404 when it does not exist or its client is not granted to the user."""
    order = db.session.get(Order, order_id) or abort(404)
    client_for(user, order.client_id)  # 404 without a grant, as for the client itself
    return order


def can_cancel(order: Order) -> bool:
    return order.status in states.AT_BROKER


def can_modify(order: Order) -> bool:
    return order.status in states.AT_BROKER and order.order_type in MODIFIABLE_TYPES


def _not_now(order: Order, verb: str) -> ActionRefused:
    if order.status in states.FINAL:
        return ActionRefused(NOTHING, f"Order #{order.id} is already {order.status}: it can no longer be {verb}.")
    return ActionRefused(
        NOTHING, f"Order #{order.id} is {order.status}: not open at its broker, so it cannot be {verb} now."
    )


def _claim(order: Order, action: str) -> None:
    """One job per order and action while one is on its way (the queue was checked first)."""
    try:
        fresh = get_redis().set(f"fanout:order-action:{order.id}:{action}", "1", nx=True, ex=PENDING_SECONDS)
    except RedisError:
        raise ActionRefused(UNAVAILABLE, QUEUE_UNAVAILABLE) from None
    if not fresh:
        raise ActionRefused(NOTHING, f"A {action} of order #{order.id} is already on its way to the broker.")


def _release(order_id: int, action: str) -> None:
    try:
        get_redis().delete(f"fanout:order-action:{order_id}:{action}")
    except RedisError:
        pass  # it lapses by itself


def cancel_order(user: User, order: Order, ip: str | None) -> None:
    """Ask the broker to cancel this open order (a job on the orders queue)."""
    if not can_cancel(order):
        raise _not_now(order, "cancelled")
    if not queue_available():  # before anything is written
        raise ActionRefused(UNAVAILABLE, QUEUE_UNAVAILABLE)
    _claim(order, "cancel")
    audit.record(
        "order.cancel",
        actor_id=user.id,
        actor=user.username,
        target=f"order:{order.id}",
        clients=[order.client_id],
        ip=ip,
    )
    db.session.commit()
    # the batch cancel's job; `by` puts "Cancelled by <user>" in the order's reason (trading/order_actions.py)
    _enqueue(order.id, "cancel", "jobs.orders.cancel_children", [order.id], user.username)


def _enqueue(order_id: int, action: str, func: str, *args) -> None:
    try:
        enqueue(func, *args, queue_name=QUEUE_ORDERS)
    except RedisError:
        _release(order_id, action)
        raise ActionRefused(UNAVAILABLE, QUEUE_UNAVAILABLE) from None


@dataclass(frozen=True)
class Change:
    quantity: int | None
    price: Decimal | None
    trigger_price: Decimal | None

    def describe(self) -> str:
        parts = []
        if self.price is not None:
            parts.append(f"price ₹{rupees(self.price)}")
        if self.trigger_price is not None:
            parts.append(f"trigger ₹{rupees(self.trigger_price)}")
        if self.quantity is not None:
            parts.append(f"quantity {self.quantity}")
        return ", ".join(parts)


def wanted_change(order: Order, price: Decimal | None, trigger: Decimal | None, quantity: int | None) -> Change:
    """What differs from the order as it stands, checked as a ticket's would be (tick size, band,
    a stop-loss's price against its trigger, lot size) and against the limits a bigger order meets.
    Blank fields keep the order's own value. Raises ActionRefused(INVALID) with field messages."""
    if not can_modify(order):
        if order.status in states.AT_BROKER:
            raise ActionRefused(NOTHING, "Only open LIMIT and SL orders can be modified.")
        raise _not_now(order, "modified")
    instrument = order.instrument
    new_price = price if price is not None else order.price
    new_trigger = trigger if trigger is not None and order.order_type in TRIGGERED else order.trigger_price
    new_quantity = quantity if quantity is not None else order.quantity
    probe = Ticket(
        ticket_id="",
        action=order.side,
        instrument_id=order.instrument_id,
        product=order.product,
        order_type=order.order_type,
        price=new_price if order.order_type in PRICED else None,
        trigger_price=new_trigger if order.order_type in TRIGGERED else None,
    )
    errors = price_errors(probe, instrument)
    if new_quantity <= order.filled_quantity:
        errors["quantity"] = (
            f"Quantity must be more than the {order.filled_quantity} already filled."
            if order.filled_quantity
            else "Quantity must be at least 1."
        )
    elif new_quantity % (instrument.lot_size or 1):
        errors["quantity"] = f"Quantity must be a multiple of the lot size {instrument.lot_size}."
    if not errors:
        errors.update(_limit_errors(order, new_quantity, new_price))
    if errors:
        raise ActionRefused(INVALID, next(iter(errors.values())), errors)
    change = Change(
        quantity=new_quantity if new_quantity != order.quantity else None,
        price=new_price if new_price != order.price else None,
        trigger_price=new_trigger if order.order_type in TRIGGERED and new_trigger != order.trigger_price else None,
    )
    if change == Change(None, None, None):
        message = "Nothing to change: this is the order as it stands."
        raise ActionRefused(INVALID, message, {"price": message})
    return change


def _limit_errors(order: Order, quantity: int, price: Decimal | None) -> dict[str, str]:
    """A bigger or dearer order meets the limits a new one would (the kill switches too); a smaller
    one only reduces what is already accepted."""
    grows = quantity > order.quantity or (price is not None and order.price is not None and price > order.price)
    if not grows:
        return {}
    client, value = order.client, (price or Decimal(0)) * quantity
    if desk_killed():
        return {"quantity": "The desk kill switch is on: an order may not grow until an admin re-arms it."}
    if client.kill_switch:
        return {"quantity": "This client's kill switch is on: an order may not grow."}
    if client.max_quantity and quantity > client.max_quantity:
        return {"quantity": f"Quantity {quantity} is above this client's limit of {client.max_quantity}."}
    if client.max_order_value and value > client.max_order_value:
        return {
            "quantity": f"Order value ₹{rupees(value)} is above this client's limit of "
            f"₹{rupees(client.max_order_value)}."
        }
    return {}


def modify_order(user: User, order: Order, change: Change, ip: str | None) -> None:
    """Send the checked change to the broker (a job on the orders queue)."""
    if not queue_available():
        raise ActionRefused(UNAVAILABLE, QUEUE_UNAVAILABLE)
    _claim(order, "modify")
    audit.record(
        "order.modify",
        actor_id=user.id,
        actor=user.username,
        target=f"order:{order.id}",
        clients=[order.client_id],
        detail={"quantity": change.quantity, "price": change.price, "trigger": change.trigger_price},
        ip=ip,
    )
    db.session.commit()
    _enqueue(
        order.id,
        "modify",
        "jobs.orders.modify_order",
        order.id,
        change.quantity,
        None if change.price is None else str(change.price),
        None if change.trigger_price is None else str(change.trigger_price),
    )
