"""How orders meet a quote: walking the depth, crossing resting limits, triggering stops. Pure.

A BUY trades against the asks (cheapest first), a SELL against the bids (dearest first). Only depth
levels an exchange could show are used: on the tick grid, inside the circuit band, quantity above
zero. So no fill can ever land off the grid or outside the band, whatever a quote feed writes.

The depth is a snapshot: it is not consumed between orders, so two accounts trading in the same
tick each see the full book (the simulator refreshes it on every step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from webapp.brokers.base import DepthLevel, Quote, Side
from webapp.money import is_tick_multiple, round_to_tick


@dataclass(frozen=True)
class Fill:
    quantity: int
    price: Decimal


def book_side(side: Side, quote: Quote, tick: Decimal, band: tuple[Decimal, Decimal]) -> list[DepthLevel]:
    """The levels a `side` order trades against, best first, sane levels only."""
    lower, upper = band
    levels = quote.asks if side is Side.BUY else quote.bids
    usable = [
        level
        for level in levels
        if level.quantity > 0 and is_tick_multiple(level.price, tick) and lower <= level.price <= upper
    ]
    return sorted(usable, key=lambda level: level.price, reverse=side is Side.SELL)


def at_or_better(side: Side, price: Decimal, limit: Decimal) -> bool:
    """True when trading at `price` is at least as good as `limit` for this side."""
    return price <= limit if side is Side.BUY else price >= limit


def walk(levels: Sequence[DepthLevel], side: Side, quantity: int, limit: Decimal | None = None) -> list[Fill]:
    """Take liquidity level by level (the slippage of a large order) up to `quantity`, never past `limit`."""
    fills: list[Fill] = []
    left = quantity
    for level in levels:
        if left == 0 or (limit is not None and not at_or_better(side, level.price, limit)):
            break
        take = min(left, level.quantity)
        fills.append(Fill(take, level.price))
        left -= take
    return fills


def crossing_quantity(levels: Sequence[DepthLevel], side: Side, limit: Decimal) -> int:
    """Quantity on the other side at or through a resting limit: what it can fill at its own price."""
    return sum(level.quantity for level in levels if at_or_better(side, level.price, limit))


def sweep(levels: Sequence[DepthLevel], side: Side, quantity: int, fallback: Decimal) -> list[Fill]:
    """Fill all of `quantity` (the broker's square-off must flatten): past the visible depth the rest
    goes at the last level's price, or at `fallback` (the last price) when that side is empty."""
    fills = walk(levels, side, quantity)
    left = quantity - sum(fill.quantity for fill in fills)
    if left:
        fills.append(Fill(left, fills[-1].price if fills else fallback))
    return fills


def protection_limit(
    side: Side, last_price: Decimal, pct: Decimal, tick: Decimal, band: tuple[Decimal, Decimal]
) -> Decimal:
    """The worst price a MARKET order may trade at: `pct` percent from the last price, inside the band."""
    lower, upper = band
    if side is Side.BUY:
        return min(round_to_tick(last_price * (100 + pct) / 100, tick, up=False), upper)
    return max(round_to_tick(last_price * (100 - pct) / 100, tick, up=True), lower)


def is_triggered(side: Side, trigger: Decimal, last_price: Decimal) -> bool:
    """A stop BUY fires when the market trades at or above its trigger; a stop SELL at or below."""
    return last_price >= trigger if side is Side.BUY else last_price <= trigger


def last_price_in_band(quote: Quote, tick: Decimal, band: tuple[Decimal, Decimal]) -> Decimal:
    """The quote's last price, snapped to the grid and the band (a fill price of last resort)."""
    lower, upper = band
    return min(max(round_to_tick(quote.last_price, tick), lower), upper)
