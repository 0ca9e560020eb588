"""Property tests of the paper exchange (hypothesis).

(1) Conservation. For one account, after every step of any sequence of quotes, orders (any side,
product, type, validity), modifies, cancels, resting matches, square-offs and day rolls, with no fees:

    cash + Σ position.cost + Σ holding.cost − Σ position.realised_pnl == opening_balance

exactly (Decimal equality, no tolerance), where
    cash             the ledger every fill moves by its full value (BUY −q×p, SELL +q×p), any product;
    position.cost    the signed cost basis of today's net quantity (long > 0, short < 0);
    holding.cost     the cost basis of delivery stock carried overnight (settled + T1);
    realised_pnl     today's realised P&L, closes out of positions and sales out of holdings alike;
    opening_balance  the deposit plus the realised P&L of every earlier day (the roll folds it in).
Margin is not a term: it is not money that moves but a claim computed from the book (see
webapp/models/paper.py), so the identity holds for every product's leverage. Alongside it:
    cash == deposit + Σ sells − Σ buys over every trade of the account  (the ledger is the trades)
    delivery stock is never short: CNC/MTF positions and holdings never go below zero.

(2) Fills stay on the exchange's grid: whatever depth a feed writes (prices off the tick, outside
the circuit band, zero quantities, a last price anywhere), every trade price is a multiple of the
instrument's tick and inside its circuit band.

Each example trades a fresh account (the database and Redis are shared across the examples of one
test, which is why the function-scoped fixtures health check is off), and ends with a day roll.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.paper.conftest import publish, quote
from webapp.brokers.base import DepthLevel, OrderRequest, OrderType, Product, Quote, Rejected, Side, Validity
from webapp.brokers.paper.exchange import PaperExchange
from webapp.models.paper import PaperAccount, PaperHolding, PaperPosition, PaperTrade
from webapp.money import is_tick_multiple

D = Decimal
TICK = D("0.10")
LOWER, UPPER = D("1393.40"), D("1703.00")  # INFY's band in the fixture
LOW_TICKS, HIGH_TICKS = 13934, 17030
_codes = itertools.count(1)
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def at(ticks: int) -> Decimal:
    return D(min(max(ticks, LOW_TICKS), HIGH_TICKS)) * TICK


levels = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 400)), max_size=5)
quotes = st.builds(lambda last, bids, asks: (last, bids, asks), st.integers(LOW_TICKS, HIGH_TICKS), levels, levels)
orders = st.tuples(
    st.sampled_from(Side),
    st.sampled_from([Product.MIS, Product.CNC, Product.MTF]),
    st.sampled_from(OrderType),
    st.integers(1, 400),
    st.integers(-30, 30),
    st.integers(1, 30),
    st.sampled_from(Validity),
)
# most steps trade; the rest move the market or the day (sampled_from is uniform, so repeat to weigh)
KINDS = ["order"] * 6 + ["quote"] * 2 + ["match", "cancel", "modify", "square_off", "roll"]


@st.composite
def action(draw):
    kind = draw(st.sampled_from(KINDS))
    if kind == "order":
        return kind, draw(orders)
    if kind == "quote":
        return kind, draw(quotes)
    if kind in ("cancel", "modify"):
        return kind, draw(st.integers(0, 20)), draw(st.integers(-30, 30))
    return (kind,)


actions = st.lists(action(), min_size=6, max_size=30)


class Trader:
    """One example's trader: the latest quote, the orders placed, the clock."""

    def __init__(self, exchange: PaperExchange, redis, infy, clock):
        self.exchange, self.redis, self.infy, self.clock = exchange, redis, infy, clock
        self.code = f"PROP{next(_codes):05d}"
        self.last_ticks = 15482
        self.latest: Quote | None = None
        self.placed: list[str] = []

    def show(self, last: int, bids, asks) -> None:
        self.last_ticks = last
        self.latest = publish(
            self.redis,
            self.infy,
            quote(
                str(at(last)),
                bids=[(str(at(last - off)), qty) for off, qty in bids],
                asks=[(str(at(last + off)), qty) for off, qty in asks],
            ),
        )

    def request(self, side, product, kind, quantity, price_off, trigger_off, validity) -> OrderRequest:
        up = 1 if side is Side.BUY else -1
        trigger = at(self.last_ticks + up * trigger_off)
        # a LIMIT anywhere around the market; an SL's limit on the right side of its trigger
        beyond = self.last_ticks + up * (trigger_off + abs(price_off))
        price = at(self.last_ticks + price_off) if kind is OrderType.LIMIT else at(beyond)
        return OrderRequest(
            exchange="NSE",
            tradingsymbol="INFY",
            exchange_token=1594,
            side=side,
            quantity=quantity,
            product=product,
            order_type=kind,
            price=price,
            trigger_price=trigger,
            validity=validity,
        )

    def step(self, action) -> None:
        kind, *args = action
        try:
            if kind == "quote":
                self.show(*args[0])
            elif kind == "order":
                self.placed.append(self.exchange.place(self.code, self.request(*args[0])))
            elif kind == "match" and self.latest is not None:
                self.exchange.match_resting([self.latest])
            elif kind == "cancel" and self.placed:
                self.exchange.cancel(self.code, self.placed[args[0] % len(self.placed)])
            elif kind == "modify" and self.placed:
                self.exchange.modify(
                    self.code, self.placed[args[0] % len(self.placed)], price=at(self.last_ticks + args[1])
                )
            elif kind == "square_off":
                self.exchange.square_off_intraday(self.clock.at(15, 25), [self.code])
            elif kind == "roll":
                self.clock.now += timedelta(days=1)
                self.exchange.day_roll(self.clock(), [self.code])
        except Rejected:
            pass  # refusals are part of trading; the book must still balance


def check_books(engine, code: str) -> None:
    with Session(engine) as s:
        account = s.execute(sa.select(PaperAccount).filter_by(client_code=code)).scalar_one_or_none()
        if account is None:  # every order so far was refused before the account existed
            return
        positions = list(s.scalars(sa.select(PaperPosition).filter_by(account_id=account.id)))
        holdings = list(s.scalars(sa.select(PaperHolding).filter_by(account_id=account.id)))
        trades = list(s.scalars(sa.select(PaperTrade).filter_by(account_id=account.id)))
    held = sum((p.cost for p in positions), D(0)) + sum((h.cost for h in holdings), D(0))
    realised = sum((p.realised_pnl for p in positions), D(0))
    assert account.cash + held - realised == account.opening_balance
    flows = sum((t.quantity * t.price * (1 if t.side == "SELL" else -1) for t in trades), D(0))
    assert account.cash == account.deposited + flows
    assert all(p.net_quantity >= 0 for p in positions if p.product != "MIS")
    assert all(h.quantity >= 0 and h.t1_quantity >= 0 for h in holdings)


@pytest.fixture
def always_open(engine, redis_client, clock, infy):
    return PaperExchange(engine, redis=redis_client, clock=clock, always_open=True)


@SETTINGS
@given(steps=actions)
def test_money_is_conserved_to_the_paisa(always_open, engine, redis_client, infy, clock, steps):
    trader = Trader(always_open, redis_client, infy, clock)
    trader.show(15482, [(1, 300)], [(1, 300)])
    for action in steps:
        trader.step(action)
        check_books(engine, trader.code)
    trader.step(("roll",))
    check_books(engine, trader.code)


garbage_levels = st.lists(
    st.builds(DepthLevel, st.decimals(D("1300"), D("1800"), places=2), st.integers(0, 300), st.integers(0, 5)),
    max_size=6,
)
garbage_quotes = st.builds(
    lambda last, bids, asks, banded: Quote(
        exchange="NSE",
        tradingsymbol="INFY",
        last_price=last,
        lower_circuit=LOWER if banded else None,
        upper_circuit=UPPER if banded else None,
        bids=tuple(bids),
        asks=tuple(asks),
    ),
    st.decimals(D("1300"), D("1800"), places=2),
    garbage_levels,
    garbage_levels,
    st.booleans(),
)


@SETTINGS
@given(feed=st.lists(st.tuples(garbage_quotes, orders), min_size=1, max_size=8))
def test_no_fill_lands_off_the_tick_or_outside_the_circuit_band(always_open, engine, redis_client, infy, clock, feed):
    trader = Trader(always_open, redis_client, infy, clock)
    for garbage, request in feed:
        publish(redis_client, infy, garbage)
        trader.step(("order", request))
        always_open.match_resting([garbage])
    trader.step(("square_off",))
    for trade in always_open.trades(trader.code):
        assert is_tick_multiple(trade.price, TICK), trade
        assert LOWER <= trade.price <= UPPER, trade
