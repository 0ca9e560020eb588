"""The paper exchange's rules: session hours, order checks and margin by product. Pure functions.

Every refusal raises `Rejected` with the sentence a broker's RMS would show the trader; the tests
assert these sentences word for word.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_CEILING, Decimal

from webapp.brokers.base import OrderRequest, OrderType, Product, Rejected, Side
from webapp.money import PAISA, is_tick_multiple, rupees
from webapp.timeutil import IST

MARKET_OPEN = time(9, 15)
MARKET_CLOSE = time(15, 30)
SQUARE_OFF_AT = time(15, 20)  # MIS positions are closed by the broker at this IST time
TRADED_PRODUCTS = (Product.CNC, Product.MIS, Product.MTF)  # NRML is F&O only
DELIVERY_PRODUCTS = (Product.CNC, Product.MTF)  # sells need stock; buys end up in holdings
LIMIT_TYPES = (OrderType.LIMIT.value, OrderType.SL.value)  # the order types that carry a price

MARKET_CLOSED = "Market is closed: NSE equity trades 09:15–15:30 IST, Monday to Friday"
MIS_BLOCKED = "New MIS positions are blocked after the 15:20 IST square-off; use CNC"


def is_market_open(now: datetime, holidays: Iterable[date] = ()) -> bool:
    """NSE normal market: 09:15–15:30 IST on weekdays that are not exchange holidays."""
    local = now.astimezone(IST)
    return local.weekday() < 5 and local.date() not in set(holidays) and MARKET_OPEN <= local.time() < MARKET_CLOSE


def after_square_off(now: datetime, square_off_at: time = SQUARE_OFF_AT) -> bool:
    return now.astimezone(IST).time() >= square_off_at


def _an(order_type: OrderType) -> str:
    return {OrderType.LIMIT: "A LIMIT", OrderType.SL: "An SL", OrderType.SLM: "An SL-M"}.get(order_type, "A MARKET")


def check_shape(
    quantity: int,
    product: Product,
    order_type: OrderType,
    price: Decimal | None,
    trigger_price: Decimal | None,
    lot_size: int = 1,
) -> None:
    """What a broker refuses before it looks at the market: quantity, product, missing prices."""
    if quantity <= 0:
        raise Rejected("Quantity must be greater than zero")
    if lot_size > 1 and quantity % lot_size:
        raise Rejected(f"Quantity must be a multiple of the lot size {lot_size}")
    if product not in TRADED_PRODUCTS:
        raise Rejected(f"Product {product.value} is for F&O; use CNC, MIS or MTF for equity")
    if order_type in (OrderType.LIMIT, OrderType.SL) and (price is None or price <= 0):
        raise Rejected(f"{_an(order_type)} order needs a price above zero")
    if order_type in (OrderType.SL, OrderType.SLM) and (trigger_price is None or trigger_price <= 0):
        raise Rejected(f"{_an(order_type)} order needs a trigger price above zero")


def check_request(request: OrderRequest, lot_size: int = 1) -> None:
    check_shape(request.quantity, request.product, request.order_type, request.price, request.trigger_price, lot_size)


def _price_text(value: Decimal) -> str:
    return rupees(value) if value == value.quantize(PAISA) else f"{value:f}"


def check_price(label: str, price: Decimal, tick: Decimal, band: tuple[Decimal, Decimal]) -> None:
    """On the tick grid and inside the circuit band, or Rejected."""
    if not is_tick_multiple(price, tick):
        raise Rejected(f"{label} {_price_text(price)} is not a multiple of the tick size {_price_text(tick)}")
    lower, upper = band
    if not lower <= price <= upper:
        raise Rejected(
            f"{label} {_price_text(price)} is outside the circuit band {_price_text(lower)}–{_price_text(upper)}"
        )


def uses_price(order_type: OrderType) -> bool:
    return order_type in (OrderType.LIMIT, OrderType.SL)


def uses_trigger(order_type: OrderType) -> bool:
    return order_type in (OrderType.SL, OrderType.SLM)


def check_prices(
    side: Side,
    order_type: OrderType,
    price: Decimal | None,
    trigger: Decimal | None,
    tick: Decimal,
    band: tuple[Decimal, Decimal],
    last_price: Decimal | None,
) -> None:
    """Tick, band and stop-loss sanity. `last_price` None skips the trigger-versus-market check
    (a stop that has already triggered is not re-checked on modify)."""
    if uses_price(order_type):
        check_price("Price", price, tick, band)
    if not uses_trigger(order_type):
        return
    check_price("Trigger price", trigger, tick, band)
    buy = side is Side.BUY
    if last_price is not None and (trigger <= last_price if buy else trigger >= last_price):
        raise Rejected(
            f"Trigger price {_price_text(trigger)} for a stop-loss {side.value} must be "
            f"{'above' if buy else 'below'} the last price {_price_text(last_price)}"
        )
    if order_type is OrderType.SL and (price < trigger if buy else price > trigger):
        raise Rejected(
            f"Price for a stop-loss {side.value} must be at or {'above' if buy else 'below'} "
            f"the trigger price {_price_text(trigger)}"
        )


def insufficient_funds(required: Decimal, available: Decimal) -> Rejected:
    return Rejected(f"Insufficient funds: required ₹{rupees(required)}, available ₹{rupees(available)}")


def insufficient_holdings(quantity: int, symbol: str, product: Product, available: int) -> Rejected:
    return Rejected(f"Insufficient holdings to sell {quantity} {symbol} ({product.value}): {available} available")


def opening_quantity(side: Side, quantity: int, net_quantity: int) -> int:
    """The part of an order that opens or grows exposure; the rest closes the current position."""
    closes = net_quantity != 0 and (net_quantity > 0) == (side is Side.SELL)
    return max(0, quantity - abs(net_quantity)) if closes else quantity


@dataclass(frozen=True)
class MarginPolicy:
    """Margin by product: CNC pays in full, MIS is leveraged, MTF is part-funded by the broker."""

    mis_leverage: Decimal = Decimal(5)
    mtf_funded_pct: Decimal = Decimal(75)  # the broker lends this share of an MTF buy

    def __post_init__(self):
        if self.mis_leverage < 1 or not Decimal(0) <= self.mtf_funded_pct < Decimal(100):
            raise ValueError("mis_leverage must be at least 1 and mtf_funded_pct in [0, 100)")

    def margin(self, product: Product | str, value: Decimal) -> Decimal:
        """Margin to hold `value` of exposure in `product`, rounded up to the paisa (never under-blocked)."""
        product, value = Product(product), abs(value)
        if product is Product.CNC:
            return value
        if product is Product.MIS:
            share = value / self.mis_leverage
        elif product is Product.MTF:
            share = value * (Decimal(100) - self.mtf_funded_pct) / Decimal(100)
        else:
            raise Rejected(f"Product {product.value} is for F&O; use CNC, MIS or MTF for equity")
        return share.quantize(PAISA, rounding=ROUND_CEILING)
