"""Position arithmetic from fills: average price, realized P&L, reversals — exact Decimal.

A fill that adds to a position moves its average price; one that reduces it realizes
(fill price − average) × quantity closed, in the position's direction; one that crosses zero
closes the old side and opens the rest at the fill price.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0")
AVERAGE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Book:
    quantity: int = 0  # net, signed
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO


def apply_fill(book: Book, side: str, quantity: int, price: Decimal) -> Book:
    signed = quantity if side == "BUY" else -quantity
    held = book.quantity
    if held == 0 or (held > 0) == (signed > 0):  # opening or adding
        total = held + signed
        cost = book.average_price * abs(held) + price * abs(signed)
        average = (cost / abs(total)).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_UP)
        return Book(total, average, book.realized_pnl)
    closing = min(abs(held), abs(signed))
    direction = 1 if held > 0 else -1
    realized = book.realized_pnl + (price - book.average_price) * closing * direction
    remaining = held + signed
    if remaining == 0:
        return Book(0, ZERO, realized)
    if (remaining > 0) == (held > 0):  # partly closed: the average stays
        return Book(remaining, book.average_price, realized)
    return Book(remaining, price, realized)  # reversed: the rest opens at the fill price


def unrealized(book: Book, last_price: Decimal | None) -> Decimal:
    if last_price is None or book.quantity == 0:
        return ZERO
    return (last_price - book.average_price) * book.quantity
