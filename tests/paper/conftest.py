"""Fixtures for the paper exchange: a fixed clock on a trading Monday, INFY in the master, a quote
writer, and an exchange on the test database and Redis."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from webapp.brokers.base import DepthLevel, OrderRequest, OrderType, Product, Quote, Side, Validity
from webapp.brokers.paper.exchange import PaperExchange
from webapp.extensions import db
from webapp.marketdata.store import write_quotes
from webapp.timeutil import IST, UTC

D = Decimal
MONDAY_10AM = datetime(2025, 1, 6, 10, 0, tzinfo=IST).astimezone(UTC)  # NSE open


class Clock:
    """A settable clock: `clock()` is now; `clock.at(h, m)` moves it within the same IST day."""

    def __init__(self, now: datetime = MONDAY_10AM):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, hour: int, minute: int = 0, days: int = 0) -> datetime:
        local = self.now.astimezone(IST) + timedelta(days=days)
        self.now = local.replace(hour=hour, minute=minute, second=0, microsecond=0).astimezone(UTC)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def infy(factory):
    """INFY: close 1548.20, tick 0.10, 10% band → circuit 1393.40–1703.00."""
    return factory.instrument("INFY", 1594, "1548.20", "0.10", "10")


@pytest.fixture
def engine(app):
    with app.app_context():
        return db.engine


@pytest.fixture
def exchange(engine, redis_client, clock):
    return PaperExchange(engine, redis=redis_client, clock=clock)


def order(
    side: Side | str = Side.BUY,
    quantity: int = 10,
    product: Product | str = Product.MIS,
    order_type: OrderType | str = OrderType.MARKET,
    price: str | None = None,
    trigger: str | None = None,
    symbol: str = "INFY",
    tag: str | None = None,
    validity: Validity | str = Validity.DAY,
) -> OrderRequest:
    return OrderRequest(
        exchange="NSE",
        tradingsymbol=symbol,
        exchange_token=1594,
        side=Side(side),
        quantity=quantity,
        product=Product(product),
        order_type=OrderType(order_type),
        price=D(price) if price else None,
        trigger_price=D(trigger) if trigger else None,
        tag=tag,
        validity=Validity(validity),
    )


def quote(last: str, bids=(), asks=(), symbol: str = "INFY", band=("1393.40", "1703.00")) -> Quote:
    """A quote with depth given as (price, quantity) pairs, best first."""
    return Quote(
        exchange="NSE",
        tradingsymbol=symbol,
        last_price=D(last),
        lower_circuit=D(band[0]) if band else None,
        upper_circuit=D(band[1]) if band else None,
        bids=tuple(DepthLevel(D(p), q, 1) for p, q in bids),
        asks=tuple(DepthLevel(D(p), q, 1) for p, q in asks),
    )


def publish(redis, instrument, q: Quote) -> Quote:
    """Make `q` the feed's latest quote for the instrument."""
    write_quotes(redis, {instrument.instrument_token: q})
    return q
