"""Position arithmetic from fills (average-cost method), exact to the paisa.

A position carries its net quantity and the cost of what is open. A fill that adds to it adds its
value to the cost; one that reduces it closes shares at their share of the cost (rounded once to
1/100 of a paisa, so rounding never compounds with quantity) and realizes the difference; one that
crosses zero closes everything and opens the rest at the fill price. The average price is derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0")
PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Book:
    quantity: int = 0  # net, signed: + long, − short
    cost: Decimal = ZERO  # what the open shares cost, always ≥ 0
    realized_pnl: Decimal = ZERO

    @property
    def average_price(self) -> Decimal:
        if self.quantity == 0:
            return ZERO
        return (self.cost / abs(self.quantity)).quantize(PLACES, rounding=ROUND_HALF_UP)


def apply_fill(book: Book, side: str, quantity: int, price: Decimal) -> Book:
    signed = quantity if side == "BUY" else -quantity
    held = book.quantity
    if held == 0 or (held > 0) == (signed > 0):  # opening or adding
        return Book(held + signed, book.cost + price * quantity, book.realized_pnl)
    closing = min(abs(held), quantity)
    direction = 1 if held > 0 else -1
    cost_closed = (book.cost * closing / abs(held)).quantize(PLACES, rounding=ROUND_HALF_UP)
    realized = book.realized_pnl + (price * closing - cost_closed) * direction
    remaining = held + signed
    if remaining == 0:
        return Book(0, ZERO, realized)
    if (remaining > 0) == (held > 0):  # partly closed
        return Book(remaining, book.cost - cost_closed, realized)
    return Book(remaining, price * abs(remaining), realized)  # reversed: the rest opens at the fill price


def unrealized(book: Book, last_price: Decimal | None) -> Decimal:
    if last_price is None or book.quantity == 0:
        return ZERO
    direction = 1 if book.quantity > 0 else -1
    return (last_price * abs(book.quantity) - book.cost) * direction
