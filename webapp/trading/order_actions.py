"""Changing a child already at its broker: cancel, modify its price, convert it to MARKET (the
job side: talking to the broker). The broker's answer updates the child's reason; the sync that
follows updates its state."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from webapp.brokers.base import Broker, BrokerError, OrderType
from webapp.models import Order
from webapp.trading import states
from webapp.trading.children import on_child, write_child
from webapp.trading.context import Context


def _at_broker(order: Order) -> bool:
    return order.status in states.AT_BROKER and bool(order.broker_order_id)


def _change(order_id: int, ctx: Context, call: Callable[[Broker, Order], None]) -> str:
    """ "ok", "error" (the broker refused: its message is the child's reason), or why not tried."""

    def action(order: Order, adapter: Broker) -> str:
        try:
            call(adapter, order)
        except BrokerError as exc:
            write_child(order, order.status, ctx, reason=exc.message)
            return "error"
        return "ok"

    return on_child(order_id, ctx, _at_broker, action)


CANCEL_REQUESTED = "Cancel requested by "


def cancelled_reason(reason: str | None) -> str | None:
    """A cancelled child's reason when the cancel was ours: "Cancelled by <who asked>" (the broker's
    own words, "Cancelled on request" and the like, would hide who it was). None when the desk did
    not ask: the broker cancelled it itself, and its message is the reason."""
    if reason and reason.startswith(CANCEL_REQUESTED):
        return "Cancelled by " + reason.removeprefix(CANCEL_REQUESTED)
    return None


def cancel_child(order_id: int, ctx: Context, by: str) -> str:
    """Cancel at the broker. `by` names who asked (a username, "the kill switch", "the day-end
    square-off"); it is written before the call, so the sync that sees the child cancelled (maybe
    before this returns) names them."""

    def call(adapter: Broker, order: Order) -> None:
        broker_order_id = order.broker_order_id  # read before write_child's commit expires it
        write_child(order, order.status, ctx, reason=CANCEL_REQUESTED + by)
        adapter.cancel(broker_order_id)

    return _change(order_id, ctx, call)


def modify_child(order_id: int, price: Decimal, ctx: Context) -> str:
    def call(adapter: Broker, order: Order) -> None:
        adapter.modify(order.broker_order_id, price=price)
        write_child(order, order.status, ctx, price=price, reason=f"Price changed to {price}")

    return _change(order_id, ctx, call)


def convert_to_market(order_id: int, ctx: Context) -> str:
    def call(adapter: Broker, order: Order) -> None:
        adapter.modify(order.broker_order_id, order_type=OrderType.MARKET)
        write_child(
            order, order.status, ctx, order_type="MARKET", price=None, reason="Chase limit reached: converted to market"
        )

    return _change(order_id, ctx, call)


def change_child(
    order_id: int,
    ctx: Context,
    *,
    quantity: int | None = None,
    price: Decimal | None = None,
    trigger_price: Decimal | None = None,
) -> str:
    """One child's new quantity, price and/or trigger (the order book's per-order modify)."""
    changes = {
        name: value
        for name, value in (("quantity", quantity), ("price", price), ("trigger_price", trigger_price))
        if value is not None
    }

    def call(adapter: Broker, order: Order) -> None:
        adapter.modify(order.broker_order_id, **changes)
        said = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in changes.items())
        write_child(order, order.status, ctx, **changes, reason=f"Changed: {said}")

    return _change(order_id, ctx, call) if changes else "nothing"
