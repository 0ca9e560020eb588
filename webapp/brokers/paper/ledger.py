"""Booking fills into the paper book, and the funds that follow from it.

Everything here runs inside one transaction that holds the account's row lock (`lock_account`), so
two processes can never both spend the same margin. The accounting identity it keeps is in
webapp/models/paper.py: every fill moves cash by its full value and a position's or holding's cost
basis by the same amount, and a close moves the difference into realised P&L. The only division
(the cost leaving a partly closed position) is rounded to the Money column's scale *before* it is
used, so the identity stays exact.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.brokers.base import BrokerOrderStatus, Funds, Product, Side
from webapp.brokers.paper.matching import Fill
from webapp.brokers.paper.rules import DELIVERY_PRODUCTS, MarginPolicy
from webapp.models.paper import PaperAccount, PaperHolding, PaperOrder, PaperPosition, PaperTrade
from webapp.timeutil import IST

ZERO = Decimal("0")
_COST_PLACES = Decimal("0.0001")  # the Money column's scale
OPEN_STATUSES = tuple(s.value for s in BrokerOrderStatus if not s.is_final)


def make_id(prefix: str, pk: int, now: datetime) -> str:
    """Broker-style ids: a letter, the IST trade date and the row id (unique because the row id is)."""
    return f"{prefix}{now.astimezone(IST):%y%m%d}{pk:09d}"


def _touch(s: Session, client_code: str) -> int:
    """UPDATE the account row: that takes its row lock on Postgres and the write lock on SQLite
    (which ignores SELECT ... FOR UPDATE), before anything is read."""
    result = s.execute(
        sa.update(PaperAccount)
        .where(PaperAccount.client_code == client_code)
        .values(lock_version=PaperAccount.lock_version + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def lock_account(s: Session, client_code: str, opening_cash: Decimal, now: datetime) -> PaperAccount:
    """The account row, locked for this transaction; created with `opening_cash` on first use."""
    if not _touch(s, client_code):
        try:
            with s.begin_nested():
                s.add(
                    PaperAccount(
                        client_code=client_code,
                        cash=opening_cash,
                        deposited=opening_cash,
                        opening_balance=opening_cash,
                        session_started_at=now,
                    )
                )
        except IntegrityError:  # another process created it first: lock theirs
            _touch(s, client_code)
    return s.execute(
        sa.select(PaperAccount).where(PaperAccount.client_code == client_code).with_for_update()
    ).scalar_one()


def closed_cost(cost: Decimal, held: int, quantity: int) -> Decimal:
    """The cost basis leaving a holding of `held` when `quantity` of it goes (all of it when closed out)."""
    if quantity == held:
        return cost
    return (cost * quantity / held).quantize(_COST_PLACES, rounding=ROUND_HALF_UP)


def apply_to_position(position: PaperPosition, side: Side, quantity: int, price: Decimal) -> None:
    """Net a trade into a position: close against it first, then open the other way with the rest."""
    sign = 1 if side is Side.BUY else -1
    net = position.net_quantity
    closing = min(quantity, abs(net)) if net and (net > 0) != (side is Side.BUY) else 0
    if closing:
        removed = closed_cost(position.cost, abs(net), closing)
        position.realised_pnl += -sign * closing * price - removed  # the cash flow minus the cost let go
        position.cost -= removed
        position.net_quantity += sign * closing
    if quantity > closing:
        position.cost += sign * (quantity - closing) * price
        position.net_quantity += sign * (quantity - closing)


def sell_from_holding(position: PaperPosition, holding: PaperHolding, quantity: int, price: Decimal) -> None:
    """Sell delivery stock out of holdings (settled first, then T1): today's position row carries the P&L."""
    removed = closed_cost(holding.cost, holding.total_quantity, quantity)
    holding.cost -= removed
    from_settled = min(quantity, holding.quantity)
    holding.quantity -= from_settled
    holding.t1_quantity -= quantity - from_settled
    position.realised_pnl += quantity * price - removed


class Ledger:
    """One locked account's book inside one transaction."""

    def __init__(self, s: Session, account: PaperAccount, policy: MarginPolicy):
        self.s, self.account, self.policy = s, account, policy

    def _mine(self, model, instrument_id: int, product: Product | str):
        return self.s.execute(
            sa.select(model).filter_by(
                account_id=self.account.id, instrument_id=instrument_id, product=Product(product).value
            )
        ).scalar_one_or_none()

    def find_position(self, instrument_id: int, product: Product | str) -> PaperPosition | None:
        return self._mine(PaperPosition, instrument_id, product)

    def position(self, order: PaperOrder) -> PaperPosition:
        found = self.find_position(order.instrument_id, order.product)
        if found is None:
            found = PaperPosition(
                account_id=self.account.id,
                instrument_id=order.instrument_id,
                exchange=order.exchange,
                tradingsymbol=order.tradingsymbol,
                product=order.product,
                net_quantity=0,
                cost=ZERO,
                realised_pnl=ZERO,
                buy_quantity=0,
                sell_quantity=0,
                buy_value=ZERO,
                sell_value=ZERO,
            )
            self.s.add(found)
        return found

    def holding(self, instrument_id: int, product: Product | str) -> PaperHolding | None:
        return self._mine(PaperHolding, instrument_id, product)

    def open_orders(self, **criteria) -> list[PaperOrder]:
        query = (
            sa.select(PaperOrder)
            .filter_by(account_id=self.account.id, **criteria)
            .where(PaperOrder.status.in_(OPEN_STATUSES))
            .order_by(PaperOrder.placed_at, PaperOrder.id)
        )
        return list(self.s.scalars(query))

    def book(self, order: PaperOrder, fill: Fill, now: datetime) -> PaperTrade:
        """One trade: the order's fill, the position (or holding) and the cash ledger move together."""
        side, product = Side(order.side), Product(order.product)
        value = fill.quantity * fill.price
        position = self.position(order)
        to_position = fill.quantity
        if side is Side.SELL and product in DELIVERY_PRODUCTS:
            # today's delivery buys go first, then holdings (placement reserved enough of both)
            to_position = min(fill.quantity, max(position.net_quantity, 0))
            holding = self.holding(order.instrument_id, product)
            if holding is not None and fill.quantity > to_position:
                sell_from_holding(position, holding, fill.quantity - to_position, fill.price)
        if to_position:
            apply_to_position(position, side, to_position, fill.price)
        if side is Side.BUY:
            position.buy_quantity += fill.quantity
            position.buy_value += value
            self.account.cash -= value
        else:
            position.sell_quantity += fill.quantity
            position.sell_value += value
            self.account.cash += value
        order.filled_quantity += fill.quantity
        order.filled_value += value
        order.updated_at = now
        trade = PaperTrade(
            order_pk=order.id,
            order_id=order.order_id,
            account_id=self.account.id,
            instrument_id=order.instrument_id,
            exchange=order.exchange,
            tradingsymbol=order.tradingsymbol,
            side=order.side,
            product=order.product,
            quantity=fill.quantity,
            price=fill.price,
            filled_at=now,
        )
        self.s.add(trade)
        self.s.flush()
        trade.trade_id = make_id("T", trade.id, now)
        return trade

    def order_block(self, order: PaperOrder) -> Decimal:
        """Margin an open order holds: its still-unfilled opening quantity at its block price."""
        if order.block_price is None:
            return ZERO
        still_opening = min(order.opening_quantity, order.pending_quantity)
        return self.policy.margin(order.product, still_opening * order.block_price)

    def funds(self, exclude: PaperOrder | None = None) -> Funds:
        """Cash and margin from the book. available_cash is equity at cost less what holdings cost
        the trader; margin_used is what today's positions and open orders hold."""
        positions = list(self.s.scalars(sa.select(PaperPosition).filter_by(account_id=self.account.id)))
        holdings = list(self.s.scalars(sa.select(PaperHolding).filter_by(account_id=self.account.id)))
        equity = self.account.cash + sum((p.cost for p in positions), ZERO) + sum((h.cost for h in holdings), ZERO)
        paid = sum((self.policy.margin(h.product, h.cost) for h in holdings), ZERO)
        used = sum((self.policy.margin(p.product, p.cost) for p in positions), ZERO)
        used += sum((self.order_block(o) for o in self.open_orders() if o is not exclude), ZERO)
        return Funds(available_cash=equity - paid, margin_used=used, opening_balance=self.account.opening_balance)
