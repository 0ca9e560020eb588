"""The paper book as the port's types: order book, trades, positions, holdings, instruments, quotes.

Read-only: plain sessions, no account lock (a broker's reports are a snapshot too). The order book
and trades show the current session only, like a real broker's day book.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.brokers.base import (
    BrokerOrderStatus,
    Holding,
    InstrumentRef,
    InstrumentRow,
    Order,
    OrderType,
    Position,
    Product,
    Quote,
    Side,
    Trade,
)
from webapp.models import Instrument
from webapp.models.paper import PaperAccount, PaperHolding, PaperOrder, PaperPosition, PaperTrade

if TYPE_CHECKING:
    from webapp.brokers.paper.exchange import PaperExchange


def to_order(row: PaperOrder) -> Order:
    return Order(
        order_id=row.order_id,
        status=BrokerOrderStatus(row.status),
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        side=Side(row.side),
        product=Product(row.product),
        order_type=OrderType(row.order_type),
        quantity=row.quantity,
        filled_quantity=row.filled_quantity,
        price=row.price,
        trigger_price=row.trigger_price,
        average_price=row.average_price,
        tag=row.tag,
        status_message=row.status_message,
        placed_at=row.placed_at,
        updated_at=row.updated_at,
        raw_status=row.status,
    )


def to_trade(row: PaperTrade) -> Trade:
    return Trade(
        trade_id=row.trade_id,
        order_id=row.order_id,
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        side=Side(row.side),
        product=Product(row.product),
        quantity=row.quantity,
        price=row.price,
        filled_at=row.filled_at,
    )


def to_position(row: PaperPosition, quote: Quote | None) -> Position:
    last = quote.last_price if quote else None
    unrealised = last * row.net_quantity - row.cost if last is not None and row.net_quantity else Decimal(0)
    return Position(
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        product=Product(row.product),
        quantity=row.net_quantity,
        average_price=row.average_price,
        last_price=last,
        realised_pnl=row.realised_pnl,
        unrealised_pnl=unrealised,
        buy_quantity=row.buy_quantity,
        sell_quantity=row.sell_quantity,
    )


def to_holding(row: PaperHolding, quote: Quote | None) -> Holding:
    return Holding(
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        quantity=row.quantity,
        average_price=row.average_price,
        isin=row.isin,
        last_price=quote.last_price if quote else None,
        t1_quantity=row.t1_quantity,
    )


def to_instrument_row(row: Instrument) -> InstrumentRow:
    return InstrumentRow(
        exchange=row.exchange,
        tradingsymbol=row.tradingsymbol,
        name=row.name,
        exchange_token=row.exchange_token,
        tick_size=row.tick_size,
        lot_size=row.lot_size,
        instrument_token=row.instrument_token,
        instrument_type=row.instrument_type,
        segment=row.segment,
    )


def _account(s: Session, client_code: str) -> PaperAccount | None:
    return s.execute(sa.select(PaperAccount).filter_by(client_code=client_code)).scalar_one_or_none()


def order_book(exchange: PaperExchange, client_code: str, tag: str | None = None) -> list[Order]:
    with exchange.reading() as s:
        account = _account(s, client_code)
        if account is None:
            return []
        query = sa.select(PaperOrder).where(
            PaperOrder.account_id == account.id, PaperOrder.placed_at >= account.session_started_at
        )
        if tag is not None:
            query = query.where(PaperOrder.tag == tag)
        return [to_order(row) for row in s.scalars(query.order_by(PaperOrder.placed_at, PaperOrder.id))]


def trades(exchange: PaperExchange, client_code: str) -> list[Trade]:
    with exchange.reading() as s:
        account = _account(s, client_code)
        if account is None:
            return []
        query = (
            sa.select(PaperTrade)
            .where(PaperTrade.account_id == account.id, PaperTrade.filled_at >= account.session_started_at)
            .order_by(PaperTrade.filled_at, PaperTrade.id)
        )
        return [to_trade(row) for row in s.scalars(query)]


def _instruments_of(s: Session, rows: Sequence[PaperPosition | PaperHolding]) -> list[Instrument]:
    ids = sorted({row.instrument_id for row in rows})
    return list(s.scalars(sa.select(Instrument).where(Instrument.id.in_(ids)))) if ids else []


# the quotes are read from Redis after the session closes: no connection is held while Redis answers


def positions(exchange: PaperExchange, client_code: str) -> list[Position]:
    with exchange.reading() as s:
        account = _account(s, client_code)
        if account is None:
            return []
        rows = list(s.scalars(sa.select(PaperPosition).filter_by(account_id=account.id).order_by(PaperPosition.id)))
        instruments = _instruments_of(s, rows)
    quotes = exchange.book.quotes(instruments)
    return [to_position(row, quotes.get(row.instrument_id)) for row in rows]


def holdings(exchange: PaperExchange, client_code: str) -> list[Holding]:
    with exchange.reading() as s:
        account = _account(s, client_code)
        if account is None:
            return []
        rows = list(s.scalars(sa.select(PaperHolding).filter_by(account_id=account.id).order_by(PaperHolding.id)))
        instruments = _instruments_of(s, rows)
    quotes = exchange.book.quotes(instruments)
    return [to_holding(row, quotes.get(row.instrument_id)) for row in rows]


def instruments(exchange: PaperExchange) -> list[InstrumentRow]:
    with exchange.reading() as s:
        rows = s.scalars(sa.select(Instrument).order_by(Instrument.exchange, Instrument.tradingsymbol))
        return [to_instrument_row(row) for row in rows]


def quotes(exchange: PaperExchange, refs: Sequence[InstrumentRef]) -> dict[str, Quote]:
    """Quotes keyed by "NSE:INFY"; instruments the master does not know are left out."""
    wanted = {(ref.exchange, ref.tradingsymbol) for ref in refs}
    if not wanted:
        return {}
    with exchange.reading() as s:
        rows = [
            row
            for row in s.scalars(
                sa.select(Instrument).where(Instrument.tradingsymbol.in_(sorted({symbol for _, symbol in wanted})))
            )
            if (row.exchange, row.tradingsymbol) in wanted
        ]
    found = exchange.book.quotes(rows)
    return {row.key: found[row.id] for row in rows if row.id in found}
