"""Sizing: every rule rounds down to the lot, respects the caps, and says why when it gives nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.automation.sizing import CAPITAL_PCT, FIXED, MULTIPLIER, RISK_PCT, SIZINGS, quantity

D = Decimal


def test_fixed_is_shares_rounded_down_to_the_lot():
    assert quantity(FIXED, "10", price=D("100"), lot_size=1) == (10, "")
    assert quantity(FIXED, "10", price=D("100"), lot_size=4) == (8, "")


def test_multiplier_is_lots():
    assert quantity(MULTIPLIER, "3", price=D("100"), lot_size=25) == (75, "")


def test_capital_pct_divides_the_share_of_capital_by_the_price():
    # 10% of 1,00,000 = 10,000 at 1,548.20 → 6.46 → 6
    assert quantity(CAPITAL_PCT, "10", price=D("1548.20"), lot_size=1, capital=D("100000")) == (6, "")


def test_risk_pct_divides_the_risk_by_the_distance_to_the_stop():
    # 1% of 5,00,000 = 5,000 at risk; entry 1,000, stop 990 → 500 shares; a short's stop above works alike
    assert quantity(RISK_PCT, "1", price=D("1000"), lot_size=1, capital=D("500000"), stop=D("990")) == (500, "")
    assert quantity(RISK_PCT, "1", price=D("1000"), lot_size=1, capital=D("500000"), stop=D("1010")) == (500, "")


def test_risk_pct_without_a_stop_gives_zero_with_the_reason():
    qty, why = quantity(RISK_PCT, "1", price=D("1000"), lot_size=1, capital=D("500000"), stop=None)
    assert qty == 0 and "needs a stop" in why and "₹1,000.00" in why


def test_zero_shares_says_so_with_the_price():
    qty, why = quantity(CAPITAL_PCT, "0.01", price=D("3102.50"), lot_size=1, capital=D("100000"))
    assert qty == 0 and why.startswith("sizing gives 0 shares at ₹3,102.50 for this client")


def test_no_capital_is_zero_with_the_reason():
    qty, why = quantity(CAPITAL_PCT, "10", price=D("100"), lot_size=1, capital=None)
    assert qty == 0 and "no capital" in why


def test_caps_by_max_quantity_and_max_order_value():
    assert quantity(FIXED, "100", price=D("10"), lot_size=1, cap=40) == (40, "")
    assert quantity(FIXED, "100", price=D("10"), lot_size=1, max_value=D("255")) == (25, "")
    assert quantity(FIXED, "100", price=D("10"), lot_size=10, cap=15) == (10, "")
    qty, why = quantity(FIXED, "100", price=D("10"), lot_size=10, cap=5)
    assert qty == 0 and "max quantity 5" in why


@pytest.mark.parametrize("value", ["0", "-1", None])
def test_a_value_not_above_zero_gives_zero(value):
    qty, why = quantity(FIXED, value, price=D("10"), lot_size=1)
    assert qty == 0 and why


def test_no_price_gives_zero():
    assert quantity(FIXED, "5", price=None, lot_size=1)[0] == 0


def test_floats_are_refused():
    with pytest.raises(TypeError):
        quantity(FIXED, 1.5, price=D("10"), lot_size=1)


money = st.decimals(min_value=D("0.05"), max_value=D("100000"), places=2)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    sizing=st.sampled_from(sorted(SIZINGS)),
    value=st.decimals(min_value=D("0.01"), max_value=D("1000"), places=2),
    price=money,
    lot=st.integers(1, 100),
    capital=st.one_of(st.none(), st.decimals(min_value=D("0"), max_value=D("100000000"), places=2)),
    stop=st.one_of(st.none(), money),
    cap=st.one_of(st.none(), st.integers(0, 100000)),
    max_value=st.one_of(st.none(), st.decimals(min_value=D("0"), max_value=D("10000000"), places=2)),
)
def test_properties(sizing, value, price, lot, capital, stop, cap, max_value):
    qty, why = quantity(
        sizing, value, price=price, lot_size=lot, capital=capital, stop=stop, cap=cap, max_value=max_value
    )
    assert isinstance(qty, int) and qty >= 0 and qty % lot == 0
    assert (qty == 0) == bool(why)  # zero always has a reason, a quantity never does
    if cap is not None:
        assert qty <= cap
    if max_value is not None:
        assert qty * price <= max_value
    if qty:  # never more than the rule asks for (rounded down, never up)
        if sizing == FIXED:
            assert qty <= value
        elif sizing == MULTIPLIER:
            assert qty <= value * lot
        elif sizing == CAPITAL_PCT:
            assert qty * price <= capital * value / 100
        else:
            assert qty * abs(price - stop) <= capital * value / 100
        # and at most one lot short of it, unless a cap cut it
        if cap is None and max_value is None:
            ask = {
                FIXED: value,
                MULTIPLIER: value * lot,
                CAPITAL_PCT: capital * value / 100 / price if capital else 0,
                RISK_PCT: capital * value / 100 / abs(price - stop) if capital and stop and stop != price else 0,
            }[sizing]
            assert ask - qty < lot
