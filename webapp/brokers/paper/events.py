"""What the paper exchange does when the market moves or the day turns.

- `match_resting`: the feed hands in each simulator step's quotes; resting LIMIT orders whose price
  the opposite side now crosses fill at their own price, and stops whose trigger the last price has
  reached fire (an SL then works as a LIMIT, an SL-M as a MARKET order).
- `square_off_intraday`: from the square-off time (15:20 IST by default) open MIS orders are
  cancelled and MIS positions closed at the market, in full: past the visible depth, at the last
  level's price, because a broker's square-off must leave the account flat.
- `day_roll`: once per IST date per account: open orders expire, leftover MIS is squared off, T1
  holdings settle, today's CNC/MTF buys become T1 holdings, today's realised P&L joins the opening
  balance and a new session (an empty order book) begins.
Each account is handled in its own locked transaction, so one bad account cannot stall the rest.
The prices a square-off needs are read from Redis before that lock is taken (`intraday_quotes`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa

from webapp.brokers.base import BrokerOrderStatus as Status
from webapp.brokers.base import OrderRequest, OrderType, Product, Quote, Side
from webapp.brokers.paper import rules
from webapp.brokers.paper.ledger import OPEN_STATUSES, Ledger, make_id
from webapp.brokers.paper.matching import (
    Fill,
    book_side,
    crossing_quantity,
    is_triggered,
    last_price_in_band,
    sweep,
)
from webapp.brokers.paper.quotes import band_of
from webapp.models import Instrument
from webapp.models.paper import PaperAccount, PaperHolding, PaperOrder, PaperPosition
from webapp.money import is_tick_multiple
from webapp.timeutil import IST

if TYPE_CHECKING:
    from webapp.brokers.paper.exchange import PaperExchange

log = logging.getLogger(__name__)

ZERO = Decimal(0)
EXPIRED = "Expired at the end of the day"
ROLL_SQUARE_OFF = "Squared off at the day roll"


# ---------------------------------------------------------------------------- resting orders


def meets(order: PaperOrder, instrument: Instrument, quote: Quote) -> bool:
    """Does this quote trigger the stop, or cross the resting limit, of an open order?"""
    side, kind = Side(order.side), OrderType(order.order_type)
    if rules.uses_trigger(kind) and not order.triggered:
        return is_triggered(side, order.trigger_price, quote.last_price)
    if not rules.uses_price(kind):
        return False
    tick, band = instrument.tick_size, band_of(quote, instrument)
    return (
        is_tick_multiple(order.price, tick)
        and band[0] <= order.price <= band[1]
        and crossing_quantity(book_side(side, quote, tick, band), side, order.price) > 0
    )


def _candidates(exchange: PaperExchange, by_key: dict[tuple[str, str], Quote]) -> list[tuple[int, str, tuple]]:
    """(order pk, client code, instrument key) of open orders these quotes act on, oldest first.
    Read without locks; each is re-checked under its account's lock before anything is booked."""
    symbols = sorted({symbol for _, symbol in by_key})
    with exchange.reading() as s:
        rows = s.execute(
            sa.select(PaperOrder, Instrument, PaperAccount.client_code)
            .join(Instrument, PaperOrder.instrument_id == Instrument.id)
            .join(PaperAccount, PaperOrder.account_id == PaperAccount.id)
            .where(PaperOrder.status.in_(OPEN_STATUSES), Instrument.tradingsymbol.in_(symbols))
            .order_by(PaperOrder.placed_at, PaperOrder.id)
        ).all()
    found = []
    for order, instrument, client_code in rows:
        key = (instrument.exchange, instrument.tradingsymbol)
        if key in by_key and meets(order, instrument, by_key[key]):
            found.append((order.id, client_code, key))
    return found


def _on_quote(
    exchange: PaperExchange, ledger: Ledger, order: PaperOrder, instrument: Instrument, quote: Quote, now: datetime
) -> None:
    tick, band, side = instrument.tick_size, band_of(quote, instrument), Side(order.side)
    if rules.uses_trigger(OrderType(order.order_type)) and not order.triggered:
        order.triggered = True
        exchange.arrive(ledger, order, quote, tick, band, now)
        return
    # a resting order is the passive side: it trades at its own price, as much as the crossing side shows
    available = crossing_quantity(book_side(side, quote, tick, band), side, order.price)
    ledger.book(order, Fill(min(order.pending_quantity, available), order.price), now)
    exchange.settle_status(order, ioc=False, now=now)


def match_resting(exchange: PaperExchange, quotes: Iterable[Quote]) -> list[str]:
    """Fill or trigger what these quotes reach; returns the order ids that changed."""
    by_key = {(q.exchange, q.tradingsymbol): q for q in quotes}
    changed: list[str] = []
    if not by_key:
        return changed
    for order_pk, client_code, key in _candidates(exchange, by_key):
        now = exchange.clock()
        with exchange.locked(client_code, now) as ledger:
            order = ledger.s.get(PaperOrder, order_pk)
            instrument = ledger.s.get(Instrument, order.instrument_id)
            if order.status in OPEN_STATUSES and meets(order, instrument, by_key[key]):
                _on_quote(exchange, ledger, order, instrument, by_key[key], now)
                changed.append(order.order_id)
                log.info(
                    "broker=paper op=match client=%s order_id=%s status=%s filled=%s/%s",
                    client_code,
                    order.order_id,
                    order.status,
                    order.filled_quantity,
                    order.quantity,
                )
    return changed


# ---------------------------------------------------------------------------- intraday square-off


def _close_position(
    exchange: PaperExchange,
    ledger: Ledger,
    position: PaperPosition,
    instrument: Instrument,
    quote: Quote,
    now: datetime,
    reason: str,
) -> str:
    side = Side.SELL if position.net_quantity > 0 else Side.BUY
    quantity = abs(position.net_quantity)
    request = OrderRequest(
        exchange=instrument.exchange,
        tradingsymbol=instrument.tradingsymbol,
        exchange_token=instrument.exchange_token,
        side=side,
        quantity=quantity,
        product=Product(position.product),
        order_type=OrderType.MARKET,
    )
    order = exchange.new_order(ledger.account, instrument, request, now)
    ledger.s.add(order)
    ledger.s.flush()
    order.order_id = make_id("P", order.id, now)
    tick, band = instrument.tick_size, band_of(quote, instrument)
    for fill in sweep(book_side(side, quote, tick, band), side, quantity, last_price_in_band(quote, tick, band)):
        ledger.book(order, fill, now)
    exchange.close_order(order, Status.COMPLETE, reason, now)
    return order.order_id


def intraday_quotes(exchange: PaperExchange, client_code: str) -> dict[int, Quote]:
    """Quotes (by instrument id) for the account's open MIS positions, read before its lock is taken."""
    with exchange.reading() as s:
        instruments = list(
            s.scalars(
                sa.select(Instrument)
                .join(PaperPosition, PaperPosition.instrument_id == Instrument.id)
                .join(PaperAccount, PaperPosition.account_id == PaperAccount.id)
                .where(
                    PaperAccount.client_code == client_code,
                    PaperPosition.product == "MIS",
                    PaperPosition.net_quantity != 0,
                )
                .distinct()
            )
        )
    return exchange.book.quotes(instruments)


def flatten_intraday(
    exchange: PaperExchange, ledger: Ledger, now: datetime, reason: str, quotes: dict[int, Quote]
) -> list[str]:
    """Cancel the account's open MIS orders and close its MIS positions at `quotes` (intraday_quotes);
    the square-off order ids."""
    for order in ledger.open_orders(product=Product.MIS.value):
        exchange.close_order(order, Status.CANCELLED, reason, now)
    placed = []
    positions = ledger.s.scalars(
        sa.select(PaperPosition)
        .filter_by(account_id=ledger.account.id, product="MIS")
        .where(PaperPosition.net_quantity != 0)
    )
    for position in list(positions):
        instrument = ledger.s.get(Instrument, position.instrument_id)
        quote = quotes.get(instrument.id)
        if quote is None:  # no tick and no close in the master (or opened since the prices were read)
            log.warning(
                "broker=paper op=square_off client=%s instrument=%s error=no-price",
                ledger.account.client_code,
                instrument.key,
            )
            continue
        placed.append(_close_position(exchange, ledger, position, instrument, quote, now, reason))
    return placed


def _intraday_accounts(exchange: PaperExchange, client_codes: Iterable[str] | None) -> list[str]:
    with exchange.reading() as s:
        open_mis = (
            sa.select(PaperAccount.client_code)
            .join(PaperOrder, PaperOrder.account_id == PaperAccount.id)
            .where(PaperOrder.product == "MIS", PaperOrder.status.in_(OPEN_STATUSES))
        )
        held_mis = (
            sa.select(PaperAccount.client_code)
            .join(PaperPosition, PaperPosition.account_id == PaperAccount.id)
            .where(PaperPosition.product == "MIS", PaperPosition.net_quantity != 0)
        )
        codes = set(s.scalars(open_mis)) | set(s.scalars(held_mis))
    if client_codes is not None:
        codes &= set(client_codes)
    return sorted(codes)


def square_off_intraday(
    exchange: PaperExchange, now: datetime | None = None, client_codes: Iterable[str] | None = None
) -> list[str]:
    """From the square-off time on, flatten every account's MIS; before it, do nothing. Order ids placed."""
    now = now or exchange.clock()
    if not rules.after_square_off(now, exchange.square_off_at):
        return []
    reason = f"Auto square-off at {exchange.square_off_at:%H:%M} IST"
    placed: list[str] = []
    for client_code in _intraday_accounts(exchange, client_codes):
        quotes = intraday_quotes(exchange, client_code)
        with exchange.locked(client_code, now) as ledger:
            closing = flatten_intraday(exchange, ledger, now, reason, quotes)
        placed += closing
        log.info("broker=paper op=square_off client=%s orders=%s", client_code, ",".join(closing) or "-")
    return placed


# ---------------------------------------------------------------------------- day roll


def _to_holding(ledger: Ledger, position: PaperPosition) -> None:
    """Today's delivery buys become T1 holdings, cost basis and all."""
    holding = ledger.holding(position.instrument_id, position.product)
    if holding is None:
        instrument = ledger.s.get(Instrument, position.instrument_id)
        holding = PaperHolding(
            account_id=ledger.account.id,
            instrument_id=position.instrument_id,
            exchange=position.exchange,
            tradingsymbol=position.tradingsymbol,
            isin=instrument.isin,
            product=position.product,
            quantity=0,
            t1_quantity=0,
            cost=ZERO,
        )
        ledger.s.add(holding)
    holding.t1_quantity += position.net_quantity
    holding.cost += position.cost
    position.net_quantity, position.cost = 0, ZERO


def _roll_account(
    exchange: PaperExchange, ledger: Ledger, now: datetime, today: date, quotes: dict[int, Quote]
) -> None:
    s, account = ledger.s, ledger.account
    for order in ledger.open_orders():
        exchange.close_order(order, Status.CANCELLED, EXPIRED, now)
    flatten_intraday(exchange, ledger, now, ROLL_SQUARE_OFF, quotes)
    for holding in list(s.scalars(sa.select(PaperHolding).filter_by(account_id=account.id))):
        holding.quantity, holding.t1_quantity = holding.total_quantity, 0  # T1 settles first...
        if holding.quantity == 0:
            s.delete(holding)
    s.flush()
    realised = ZERO
    for position in list(s.scalars(sa.select(PaperPosition).filter_by(account_id=account.id))):
        realised += position.realised_pnl
        if Product(position.product) in rules.DELIVERY_PRODUCTS and position.net_quantity > 0:
            _to_holding(ledger, position)  # ...then today's buys arrive as T1
        if position.net_quantity == 0:
            s.delete(position)
        else:  # only an unpriceable MIS leftover: carried at cost into the new session
            position.realised_pnl = position.buy_value = position.sell_value = ZERO
            position.buy_quantity = position.sell_quantity = 0
    account.opening_balance += realised
    account.session_started_at, account.last_roll_day = now, today


def day_roll(
    exchange: PaperExchange, now: datetime | None = None, client_codes: Iterable[str] | None = None
) -> list[str]:
    """Roll every account not yet rolled for `now`'s IST date (idempotent per date); the codes rolled."""
    now = now or exchange.clock()
    today = now.astimezone(IST).date()
    with exchange.reading() as s:
        query = sa.select(PaperAccount.client_code).where(
            sa.or_(PaperAccount.last_roll_day.is_(None), PaperAccount.last_roll_day < today)
        )
        if client_codes is not None:
            query = query.where(PaperAccount.client_code.in_(list(client_codes)))
        codes = list(s.scalars(query.order_by(PaperAccount.client_code)))
    rolled = []
    for client_code in codes:
        quotes = intraday_quotes(exchange, client_code)
        with exchange.locked(client_code, now) as ledger:
            if ledger.account.last_roll_day is not None and ledger.account.last_roll_day >= today:
                continue  # another process rolled it meanwhile
            _roll_account(exchange, ledger, now, today, quotes)
        rolled.append(client_code)
        log.info("broker=paper op=day_roll client=%s day=%s", client_code, today.isoformat())
    return rolled
