"""Indian charges against the worked contract notes of the desk's charges reference (paisa-exact)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from webapp.backtest import charges
from webapp.backtest.charges import Fee, Fill, contract_note, plan, share

D = Decimal
DAY = date(2026, 1, 5)  # every rate of the examples (2025-26) in force


def zerodha_without_ipft():
    return replace(plan("zerodha"), ipft="off")


def test_example_a_intraday_at_zerodha():
    """Buy 100 @ 1,000, sell 100 @ 1,010, MIS, one note: 82.48, net 917.52."""
    fills = [Fill("BUY", 100, D("1000")), Fill("SELL", 100, D("1010"))]
    note = contract_note(fills, product="MIS", plan=zerodha_without_ipft(), day=DAY)
    assert note.brokerage == D("40.00")
    assert note.stt == D("25.00")
    assert note.exchange == D("5.97")
    assert note.sebi == D("0.20")
    assert note.stamp == D("3.00")
    assert note.gst == D("8.31")
    assert note.dp == D("0")
    assert note.total == D("82.48")
    gross = D(100) * (D("1010") - D("1000"))
    assert gross - note.total == D("917.52")


def test_example_a_with_ipft_inside_the_exchange_charge():
    """Zerodha bills IPFT inside the exchange charge with GST on it (the plan's default): 82.72."""
    fills = [Fill("BUY", 100, D("1000")), Fill("SELL", 100, D("1010"))]
    note = contract_note(fills, product="MIS", plan=plan("zerodha"), day=DAY)
    assert (note.exchange, note.gst, note.total) == (D("6.17"), D("8.35"), D("82.72"))
    assert D("1000") - note.total == D("917.28")


def test_example_b_delivery_at_zerodha_two_notes_and_dp():
    """Buy 10 @ 2,500 on day 1, sell 10 @ 2,600 later: notes 29.66 and 26.94, DP 15.34, total 71.94."""
    zerodha = zerodha_without_ipft()
    buy = contract_note([Fill("BUY", 10, D("2500"))], product="CNC", plan=zerodha, day=DAY)
    assert (buy.brokerage, buy.stt, buy.exchange, buy.sebi, buy.stamp, buy.gst) == (
        D("0.00"),
        D("25.00"),
        D("0.74"),
        D("0.03"),
        D("3.75"),
        D("0.14"),
    )
    assert buy.note_total == D("29.66") and buy.dp == 0
    sell = contract_note([Fill("SELL", 10, D("2600"))], product="CNC", plan=zerodha, day=date(2026, 1, 7))
    assert (sell.stt, sell.exchange, sell.sebi, sell.stamp, sell.gst) == (
        D("26.00"),
        D("0.77"),
        D("0.03"),
        D("0.00"),
        D("0.14"),
    )
    assert sell.note_total == D("26.94")
    assert sell.dp == D("15.34")  # Rs 13 + 18% GST, on the ledger
    assert buy.total + sell.total == D("71.94")
    assert D("1000") - (buy.total + sell.total) == D("928.06")


def test_example_b_variants():
    """DP at Rs 13.5 + GST: 72.53; IPFT inside the exchange charge: 72.01."""
    old_dp = replace(zerodha_without_ipft(), dp=Fee(flat=D("13.5")))
    buy = contract_note([Fill("BUY", 10, D("2500"))], product="CNC", plan=old_dp, day=DAY)
    sell = contract_note([Fill("SELL", 10, D("2600"))], product="CNC", plan=old_dp, day=DAY)
    assert buy.total + sell.total == D("72.53")
    with_ipft = plan("zerodha")
    buy = contract_note([Fill("BUY", 10, D("2500"))], product="CNC", plan=with_ipft, day=DAY)
    sell = contract_note([Fill("SELL", 10, D("2600"))], product="CNC", plan=with_ipft, day=DAY)
    assert buy.total + sell.total == D("72.01")


def test_stt_uses_the_average_price_and_rounds_to_the_rupee():
    """100 × 1,005 × 0.025% = 25.125 -> 25; a sell of 100 @ 1,030 alone: 25.75 -> 26."""
    note = contract_note(
        [Fill("SELL", 100, D("1030")), Fill("BUY", 100, D("1030"))], product="MIS", plan=plan("zerodha"), day=DAY
    )
    assert note.stt == D("26.00")


def test_same_day_cnc_round_trip_is_intraday_for_stt_and_stamp():
    fills = [Fill("BUY", 100, D("1000")), Fill("SELL", 100, D("1010"))]
    cnc = contract_note(fills, product="CNC", plan=zerodha_without_ipft(), day=DAY)
    mis = contract_note(fills, product="MIS", plan=zerodha_without_ipft(), day=DAY)
    assert (cnc.stt, cnc.stamp) == (mis.stt, mis.stamp) == (D("25.00"), D("3.00"))
    assert cnc.brokerage == D("0.00")  # Zerodha's delivery brokerage
    assert cnc.dp == D("0")  # nothing left the demat account


def test_rates_are_dated():
    fills = [Fill("BUY", 1000, D("1000")), Fill("SELL", 1000, D("1000"))]  # turnover 20 lakh
    off = zerodha_without_ipft()
    assert contract_note(fills, product="MIS", plan=off, day=date(2024, 3, 28)).exchange == D("65.00")  # 0.00325%
    assert contract_note(fills, product="MIS", plan=off, day=date(2024, 6, 3)).exchange == D("64.40")  # 0.00322%
    assert contract_note(fills, product="MIS", plan=off, day=date(2024, 10, 1)).exchange == D("59.40")  # 0.00297%
    assert contract_note(fills, product="MIS", plan=off, day=date(2020, 8, 3)).sebi == D("1.00")  # Rs 5 / crore
    assert contract_note(fills, product="MIS", plan=off, day=date(2021, 4, 1)).sebi == D("2.00")  # Rs 10 / crore
    # IPFT inside the exchange charge only from 1 Apr 2023
    assert contract_note(fills, product="MIS", plan=plan("zerodha"), day=date(2023, 3, 31)).exchange == D("65.00")
    assert contract_note(fills, product="MIS", plan=plan("zerodha"), day=date(2023, 4, 3)).exchange == D("67.00")


def test_bse_and_upstox_ipft_outside_gst():
    fills = [Fill("BUY", 100, D("1000")), Fill("SELL", 100, D("1010"))]
    bse = contract_note(fills, product="MIS", plan=plan("zerodha"), day=DAY, exchange="BSE")
    assert bse.exchange == D("7.54")  # 0.00375% × 2,01,000 = 7.5375; no IPFT on BSE
    upstox = contract_note(fills, product="MIS", plan=plan("upstox"), day=DAY)
    assert upstox.brokerage == D("40.00")  # min(20, 0.05% × 1 lakh = 50) twice
    assert (upstox.exchange, upstox.ipft) == (D("5.97"), D("0.20"))
    assert upstox.gst == D("8.31")  # IPFT is outside the GST base


def test_brokerage_plans():
    assert plan("angel_one").brokerage("CNC", D("1000")) == D("2.00")  # 0.1% = 1, at least 2
    assert plan("angel_one").brokerage("CNC", D("50000")) == D("20.00")  # capped
    assert plan("kotak_neo_free").brokerage("CNC", D("1000")) == D("20.00")  # higher of 0.25% and 20
    assert plan("kotak_neo_free").brokerage("CNC", D("100000")) == D("250.00")
    assert plan("kotak_neo_free").brokerage("MIS", D("100000")) == D("0.00")
    assert plan("zerodha").brokerage("MIS", D("12345")) == D("3.70")  # 3.7035
    assert plan("sharekhan_standard").brokerage("MIS", D("100000")) == D("20.00")
    with pytest.raises(KeyError, match="unknown charges plan"):
        plan("nobody")


def test_a_desk_registers_its_own_plan():
    custom = charges.register_plan(
        charges.Plan("test_flat_10", "Test", "Flat Rs 10", intraday=Fee(flat=D("10")), delivery=Fee(flat=D("10")))
    )
    try:
        note = contract_note([Fill("BUY", 1, D("100"))], product="CNC", plan=plan("test_flat_10"), day=DAY)
        assert note.brokerage == D("10.00")
    finally:
        charges.PLANS.pop(custom.name)
    with pytest.raises(ValueError, match="ipft"):
        charges.register_plan(charges.Plan("bad", "B", "B", intraday=Fee(), delivery=Fee(), ipft="maybe"))


def test_bad_input():
    with pytest.raises(ValueError, match="product"):
        contract_note([Fill("BUY", 1, D("1"))], product="NRML", plan=plan("zerodha"), day=DAY)
    with pytest.raises(ValueError, match="side"):
        contract_note([Fill("HOLD", 1, D("1"))], product="MIS", plan=plan("zerodha"), day=DAY)
    assert contract_note([], product="MIS", plan=plan("zerodha"), day=DAY).total == 0


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (D("82.48"), [D("1"), D("1")], [D("41.24"), D("41.24")]),
        (D("0.05"), [D("1"), D("1")], [D("0.03"), D("0.02")]),
        (D("10.00"), [D("1"), D("2"), D("0")], [D("3.33"), D("6.67"), D("0.00")]),
        (D("1.00"), [D("0"), D("0")], [D("0.50"), D("0.50")]),
    ],
)
def test_share_adds_up_to_the_paisa(total, weights, expected):
    parts = share(total, weights)
    assert parts == expected
    assert sum(parts) == total
