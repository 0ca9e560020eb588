"""The market simulator: reproducible from its seed, always on the tick grid and inside the band.

Property: for any reference price, tick size, band (or none: the 10% operating range) and seed,
every last price and every depth level of every step is a multiple of the tick and lies inside
[lower_circuit, upper_circuit]; best bid < best ask; and a second simulator built with the same
seed and instruments (in any order) produces exactly the same quotes.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.paper.conftest import MONDAY_10AM
from webapp.marketdata.simulator import DEPTH_LEVELS, MarketSimulator, SimInstrument, price_band, static_quote
from webapp.money import is_tick_multiple

D = Decimal


def instrument(token=1, symbol="INFY", price="1548.20", tick="0.10", band="10"):
    return SimpleNamespace(
        instrument_token=token,
        exchange="NSE",
        tradingsymbol=symbol,
        tick_size=D(tick),
        last_price=D(price) if price is not None else None,
        band_pct=D(band) if band else None,
    )


def run(sim: MarketSimulator, steps: int):
    return [sim.step(MONDAY_10AM + timedelta(seconds=i)) for i in range(steps)]


def test_same_seed_same_quotes_whatever_the_instrument_order():
    a, b = instrument(1, "INFY"), instrument(2, "TCS", "3102.50")
    assert run(MarketSimulator([a, b], seed=7), 20) == run(MarketSimulator([b, a], seed=7), 20)


def test_another_seed_walks_another_path():
    def prices(seed):
        return [q[0].last_price for q in run(MarketSimulator([instrument()], seed), 20)]

    assert prices(1) != prices(2)


def test_a_step_quotes_five_levels_a_side_around_the_last_price():
    (quote,) = MarketSimulator([instrument()], seed=3).step(MONDAY_10AM)
    assert len(quote.bids) == len(quote.asks) == DEPTH_LEVELS
    assert quote.bids[0].price < quote.asks[0].price
    assert quote.last_price in (quote.bids[0].price, quote.asks[0].price)
    assert [lvl.price for lvl in quote.bids] == sorted((lvl.price for lvl in quote.bids), reverse=True)
    assert all(lvl.quantity > 0 for lvl in quote.bids + quote.asks)
    assert (quote.lower_circuit, quote.upper_circuit) == (D("1393.40"), D("1703.00"))
    assert quote.close == D("1548.20") and quote.timestamp == MONDAY_10AM


def test_volume_only_grows_and_high_low_bracket_the_last_price():
    steps = run(MarketSimulator([instrument()], seed=5), 50)
    volumes = [q[0].volume for q in steps]
    assert volumes == sorted(volumes)
    for (quote,) in steps:
        assert quote.low <= quote.last_price <= quote.high


def test_instruments_without_a_close_are_not_simulated():
    sim = MarketSimulator([instrument(1), instrument(2, "NEW", price=None)], seed=1)
    assert sim.tokens == (1,)
    assert [q.tradingsymbol for q in sim.step(MONDAY_10AM)] == ["INFY"]


def test_step_by_token_keys_quotes_by_instrument_token():
    sim = MarketSimulator([instrument(9, "TCS", "3102.50"), instrument(4)], seed=1)
    assert {t: q.tradingsymbol for t, q in sim.step_by_token(MONDAY_10AM).items()} == {4: "INFY", 9: "TCS"}


def test_a_stock_without_band_gets_the_ten_percent_operating_range():
    assert price_band(D("1000"), D("0.05"), None) == (D("900.00"), D("1100.00"))
    assert SimInstrument.of(instrument(band=None)).upper_circuit == D("1703.00")


def test_static_quote_is_the_close_with_a_one_tick_spread():
    quote = static_quote(instrument())
    assert quote.last_price == D("1548.20")
    assert [lvl.price for lvl in quote.bids] == [D(p) for p in ("1548.10", "1548.00", "1547.90", "1547.80", "1547.70")]
    assert [lvl.price for lvl in quote.asks] == [D(p) for p in ("1548.30", "1548.40", "1548.50", "1548.60", "1548.70")]
    assert static_quote(instrument(price=None)) is None


TICKS = [D("0.01"), D("0.05"), D("0.10"), D("0.50"), D("1"), D("5")]


@settings(max_examples=50, deadline=None)
@given(
    price=st.decimals(min_value=D("1"), max_value=D("30000"), places=2),
    tick=st.sampled_from(TICKS),
    band=st.sampled_from([None, "2", "5", "10", "20"]),
    seed=st.integers(0, 2**32),
    steps=st.integers(1, 60),
)
def test_simulator_stays_on_the_grid_inside_the_band_and_replays_from_its_seed(price, tick, band, seed, steps):
    spec = instrument(price=str(price), tick=str(tick), band=band)
    history = run(MarketSimulator([spec], seed), steps)
    assert history == run(MarketSimulator([spec], seed), steps)
    for (quote,) in history:
        lower, upper = quote.lower_circuit, quote.upper_circuit
        for value in [quote.last_price] + [lvl.price for lvl in quote.bids + quote.asks]:
            assert is_tick_multiple(value, tick), value
            assert lower <= value <= upper, (value, lower, upper)
        if quote.bids and quote.asks:
            assert quote.bids[0].price < quote.asks[0].price
