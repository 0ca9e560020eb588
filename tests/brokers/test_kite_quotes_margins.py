"""Contract tests for the rest of Kite Connect v3 the emulator speaks, driven by the official
kiteconnect SDK: /quote/ltp and /quote/ohlc, quotes by instrument token, basket margins, the
charges in order margins (checked to the paisa against reference/charges-and-webhooks.md's worked
contract notes), and holdings' used quantity after a same-day sell."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from kiteconnect.exceptions import InputException, NetworkException, TokenException

from tests.brokers.kite_fixtures import KiteEnv, kite, kite_server  # noqa: F401

INFY, SBIN, RELIANCE = 408065, 779521, 738561  # instrument_token = exchange_token * 256 + 1 (NSE)
PAISA, RUPEE = Decimal("0.01"), Decimal("1")
LTP_FIELDS = {"instrument_token", "last_price"}
MARGIN_FIELDS = {
    "type",
    "tradingsymbol",
    "exchange",
    "span",
    "exposure",
    "option_premium",
    "additional",
    "bo",
    "cash",
    "var",
    "pnl",
    "leverage",
    "charges",
    "total",
}
CHARGE_FIELDS = {
    "transaction_tax",
    "transaction_tax_type",
    "exchange_turnover_charge",
    "sebi_turnover_charge",
    "brokerage",
    "stamp_duty",
    "gst",
    "total",
}


def dec(value: Any) -> Decimal:
    """A number as the SDK parsed it (a JSON float), read back exactly as Kite wrote it."""
    return Decimal(str(value))


def decimals(tree: Any) -> Any:
    """Every number in an SDK answer as a Decimal, so whole answers compare exactly."""
    if isinstance(tree, dict):
        return {key: decimals(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [decimals(value) for value in tree]
    return dec(tree) if isinstance(tree, (int, float)) and not isinstance(tree, bool) else tree


def margin_order(
    symbol: str, side: str, quantity: int, product: str, price: str | None = None, exchange: str = "NSE"
) -> dict[str, Any]:
    """One order of a margin request, as the SDK sends it (JSON numbers)."""
    return {
        "exchange": exchange,
        "tradingsymbol": symbol,
        "transaction_type": side,
        "variety": "regular",
        "product": product,
        "order_type": "LIMIT" if price else "MARKET",
        "quantity": quantity,
        "price": float(price) if price else 0,
        "trigger_price": 0,
    }


def charges(**lines: str) -> dict[str, Decimal | str | dict[str, Decimal]]:
    """Kite's charges object from its lines (zero where not given); GST is all IGST."""
    values = {
        name: Decimal(lines.get(name, "0"))
        for name in (
            "transaction_tax",
            "exchange_turnover_charge",
            "sebi_turnover_charge",
            "brokerage",
            "stamp_duty",
            "gst",
        )
    }
    gst = values.pop("gst")
    return {
        **values,
        "transaction_tax_type": "stt",
        "gst": {"igst": gst, "cgst": Decimal(0), "sgst": Decimal(0), "total": gst},
        "total": Decimal(lines["total"]),
    }


def contract_note(*orders: dict[str, Any]) -> dict[str, Decimal]:
    """One contract note over these orders' charges, rounded as the reference's §1.2 convention
    says: STT half-up to the rupee, brokerage, exchange charge and SEBI fee half-up to the paisa,
    stamp duty as it is, GST 18 % of the three rounded lines."""

    def line(name: str) -> Decimal:
        return sum((dec(order["charges"][name]) for order in orders), Decimal(0))

    note = {
        "brokerage": line("brokerage").quantize(PAISA, ROUND_HALF_UP),
        "stt": line("transaction_tax").quantize(RUPEE, ROUND_HALF_UP),
        "exchange": line("exchange_turnover_charge").quantize(PAISA, ROUND_HALF_UP),
        "sebi": line("sebi_turnover_charge").quantize(PAISA, ROUND_HALF_UP),
        "stamp": line("stamp_duty"),
    }
    note["gst"] = ((note["brokerage"] + note["exchange"] + note["sebi"]) * Decimal("0.18")).quantize(
        PAISA, ROUND_HALF_UP
    )
    note["total"] = sum(note.values(), Decimal(0))
    return note


# ---------------------------------------------------------------------------- quotes


def test_ltp_by_symbol_and_by_instrument_token_keyed_as_asked(kite: KiteEnv):
    kite.emulator.set_price("INFY", "1520.10")
    answer = kite.sdk().ltp(["NSE:INFY", str(SBIN), RELIANCE, "NSE:NOSUCH", "424242"])
    assert list(answer) == ["NSE:INFY", str(SBIN), str(RELIANCE)]  # unknown ones left out, as Kite does
    assert decimals(answer) == {
        "NSE:INFY": {"instrument_token": Decimal(INFY), "last_price": Decimal("1520.1")},
        str(SBIN): {"instrument_token": Decimal(SBIN), "last_price": Decimal("812.45")},
        str(RELIANCE): {"instrument_token": Decimal(RELIANCE), "last_price": Decimal("1418.7")},
    }


def test_ohlc_by_symbol_and_by_instrument_token(kite: KiteEnv):
    kite.emulator.set_price("INFY", "1520.10")  # up from the 1512.40 close
    kite.emulator.set_price("SBIN", "800.00")  # down from the 812.45 close
    answer = kite.sdk().ohlc("NSE:INFY", str(SBIN))
    assert decimals(answer) == {
        "NSE:INFY": {
            "instrument_token": Decimal(INFY),
            "last_price": Decimal("1520.1"),
            "ohlc": {
                "open": Decimal("1512.4"),
                "high": Decimal("1520.1"),
                "low": Decimal("1512.4"),
                "close": Decimal("1512.4"),
            },
        },
        str(SBIN): {
            "instrument_token": Decimal(SBIN),
            "last_price": Decimal("800"),
            "ohlc": {
                "open": Decimal("812.45"),
                "high": Decimal("812.45"),
                "low": Decimal("800"),
                "close": Decimal("812.45"),
            },
        },
    }


def test_full_quote_by_instrument_token(kite: KiteEnv):
    answer = kite.sdk().quote([str(INFY), "NSE:SBIN"])
    assert list(answer) == [str(INFY), "NSE:SBIN"]
    infy = answer[str(INFY)]
    assert (infy["instrument_token"], dec(infy["last_price"])) == (INFY, Decimal("1512.4"))
    assert (dec(infy["lower_circuit_limit"]), dec(infy["upper_circuit_limit"])) == (
        Decimal("1361.2"),
        Decimal("1663.6"),
    )
    assert [dec(level["price"]) for level in infy["depth"]["buy"]] == [
        Decimal("1512.3"),
        Decimal("1512.2"),
        Decimal("1512.1"),
        Decimal("1512"),
        Decimal("1511.9"),
    ]
    assert answer["NSE:SBIN"]["instrument_token"] == SBIN


@pytest.mark.parametrize("first, second", [("ltp", "ohlc"), ("ohlc", "quote"), ("quote", "ltp")])
def test_quote_endpoints_share_one_request_a_second(kite: KiteEnv, first, second):
    sdk = kite.sdk()
    getattr(sdk, first)("NSE:INFY")
    with pytest.raises(NetworkException) as caught:
        getattr(sdk, second)("NSE:INFY")
    assert (caught.value.code, str(caught.value)) == (429, "Too many requests")


@pytest.mark.parametrize("call", ["ltp", "ohlc", "quote"])
def test_quote_endpoints_refuse_no_instruments_and_too_many(kite: KiteEnv, call):
    with pytest.raises(InputException, match=r"^No instruments specified\.$") as caught:
        getattr(kite.sdk(), call)([])
    assert caught.value.code == 400
    cap = 500 if call == "quote" else 1000
    with pytest.raises(InputException, match=r"^Too many instruments\.$"):
        getattr(kite.sdk(kite.emulator.add_account()), call)([str(INFY)] * (cap + 1))
    assert len(getattr(kite.sdk(kite.emulator.add_account()), call)([str(INFY)] * cap)) == 1


# ---------------------------------------------------------------------------- session expiry on the new routes

NEW_CALLS = {
    "ltp": lambda sdk: sdk.ltp("NSE:INFY"),
    "ohlc": lambda sdk: sdk.ohlc(str(INFY)),
    "quote": lambda sdk: sdk.quote(str(INFY)),
    "order_margins": lambda sdk: sdk.order_margins([margin_order("INFY", "BUY", 1, "CNC")]),
    "basket_margins": lambda sdk: sdk.basket_order_margins([margin_order("INFY", "BUY", 1, "CNC")]),
}


@pytest.mark.parametrize("name", NEW_CALLS)
def test_expired_session_is_a_token_exception(kite: KiteEnv, name):
    sdk = kite.sdk()
    kite.emulator.expire_sessions(kite.user_id)
    with pytest.raises(TokenException, match=r"^Incorrect `api_key` or `access_token`\.$") as caught:
        NEW_CALLS[name](sdk)
    assert caught.value.code == 403


@pytest.mark.parametrize("name", NEW_CALLS)
def test_token_expiring_mid_session_fault(kite: KiteEnv, name):
    sdk = kite.sdk()
    kite.emulator.faults.script("read", "expire_token")
    with pytest.raises(TokenException) as caught:
        NEW_CALLS[name](sdk)
    assert caught.value.code == 403
    with pytest.raises(TokenException):  # revoked from then on, not for one answer
        sdk.margins()


# ---------------------------------------------------------------------------- charges in order margins


def test_order_margins_carry_kites_fields_and_the_intraday_contract_note(kite: KiteEnv):
    """Worked example A: intraday at Zerodha on NSE, buy 100 @ 1,000 and sell 100 @ 1,010 on one note."""
    kite.emulator.add_instrument("FANOUTEQ", "FANOUT EQUITY", 99002, "1005.00", "0.05")
    buy, sell = kite.sdk().order_margins(
        [margin_order("FANOUTEQ", "BUY", 100, "MIS", "1000"), margin_order("FANOUTEQ", "SELL", 100, "MIS", "1010")]
    )
    assert set(buy) == set(sell) == MARGIN_FIELDS and set(buy["charges"]) == CHARGE_FIELDS
    assert (buy["type"], buy["tradingsymbol"], buy["exchange"], buy["leverage"]) == ("equity", "FANOUTEQ", "NSE", 5)
    assert (dec(buy["var"]), dec(buy["total"]), dec(sell["total"])) == (
        Decimal("20000"),
        Decimal("20000"),
        Decimal("20200"),
    )
    assert decimals(buy["charges"]) == charges(  # Kite reports each order's lines unrounded
        brokerage="20",
        exchange_turnover_charge="2.97",
        sebi_turnover_charge="0.1",
        stamp_duty="3",
        gst="4.1526",
        total="30.2226",
    )
    assert decimals(sell["charges"]) == charges(
        brokerage="20",
        transaction_tax="25.25",
        exchange_turnover_charge="2.9997",
        sebi_turnover_charge="0.101",
        gst="4.158126",
        total="52.508826",
    )
    note = contract_note(buy, sell)
    assert note == {
        "brokerage": Decimal("40.00"),
        "stt": Decimal("25"),
        "exchange": Decimal("5.97"),
        "sebi": Decimal("0.20"),
        "stamp": Decimal("3"),
        "gst": Decimal("8.31"),
        "total": Decimal("82.48"),
    }
    assert (dec(buy["charges"]["gst"]["total"]) + dec(sell["charges"]["gst"]["total"])).quantize(PAISA) == note["gst"]
    assert Decimal(100) * (1010 - 1000) - note["total"] == Decimal("917.52")  # the example's net P&L


def test_order_margins_delivery_contract_notes(kite: KiteEnv):
    """Worked example B: delivery at Zerodha on NSE, buy 10 @ 2,500 one day, sell 10 @ 2,600 a later day."""
    kite.emulator.add_instrument("FANOUTDLV", "FANOUT DELIVERY", 99003, "2550.00", "0.05")
    sdk = kite.sdk()
    [buy] = sdk.order_margins([margin_order("FANOUTDLV", "BUY", 10, "CNC", "2500")])
    [sell] = sdk.order_margins([margin_order("FANOUTDLV", "SELL", 10, "CNC", "2600")])
    assert (dec(buy["total"]), buy["leverage"], dec(sell["total"])) == (Decimal("25000"), 1, Decimal("0"))
    assert decimals(buy["charges"]) == charges(
        transaction_tax="25",
        exchange_turnover_charge="0.7425",
        sebi_turnover_charge="0.025",
        stamp_duty="3.75",
        gst="0.13815",
        total="29.65565",
    )
    assert decimals(sell["charges"]) == charges(
        transaction_tax="26",
        exchange_turnover_charge="0.7722",
        sebi_turnover_charge="0.026",
        gst="0.143676",
        total="26.941876",
    )
    assert contract_note(buy) == {
        "brokerage": Decimal("0"),
        "stt": Decimal("25"),
        "exchange": Decimal("0.74"),
        "sebi": Decimal("0.03"),
        "stamp": Decimal("3.75"),
        "gst": Decimal("0.14"),
        "total": Decimal("29.66"),
    }
    assert contract_note(sell) == {
        "brokerage": Decimal("0"),
        "stt": Decimal("26"),
        "exchange": Decimal("0.77"),
        "sebi": Decimal("0.03"),
        "stamp": Decimal("0"),
        "gst": Decimal("0.14"),
        "total": Decimal("26.94"),
    }


@pytest.mark.parametrize(
    "order, expected",
    [
        # intraday brokerage below the ₹20 cap: 0.03 % of 10,000
        (
            margin_order("FANOUTEQ", "BUY", 10, "MIS", "1000"),
            charges(
                brokerage="3",
                exchange_turnover_charge="0.297",
                sebi_turnover_charge="0.01",
                stamp_duty="0.3",
                gst="0.59526",
                total="4.20226",
            ),
        ),
        # MTF: delivery's STT and stamp duty, brokerage the lower of ₹20 and 0.3 %
        (
            margin_order("FANOUTEQ", "BUY", 10, "MTF", "1000"),
            charges(
                transaction_tax="10",
                brokerage="20",
                exchange_turnover_charge="0.297",
                sebi_turnover_charge="0.01",
                stamp_duty="1.5",
                gst="3.65526",
                total="35.46226",
            ),
        ),
        # BSE group A/B: ₹375 per crore; a sale pays no stamp duty
        (
            margin_order("FANOUTEQ", "SELL", 10, "CNC", "1000", exchange="BSE"),
            charges(
                transaction_tax="10",
                exchange_turnover_charge="0.375",
                sebi_turnover_charge="0.01",
                gst="0.0693",
                total="10.4543",
            ),
        ),
        # Kite's own sample order (INFY CNC 1 @ 1,498): stamp duty 0.2247 is reported to the paisa
        (
            margin_order("INFY", "BUY", 1, "CNC", "1498"),
            charges(
                transaction_tax="1.498",
                exchange_turnover_charge="0.0444906",
                sebi_turnover_charge="0.001498",
                stamp_duty="0.22",
                gst="0.008277948",
                total="1.772266548",
            ),
        ),
    ],
)
def test_order_charges_by_product_and_exchange(kite: KiteEnv, order, expected):
    kite.emulator.add_instrument("FANOUTEQ", "FANOUT EQUITY", 99002, "1005.00", "0.05")
    kite.emulator.add_instrument("FANOUTEQ", "FANOUT EQUITY", 99002, "1005.00", "0.05", exchange="BSE")
    [row] = kite.sdk().order_margins([order])
    assert decimals(row["charges"]) == expected


def test_a_market_order_is_costed_at_the_last_price(kite: KiteEnv):
    [row] = kite.sdk().order_margins([margin_order("SBIN", "BUY", 5, "MIS")])
    assert (dec(row["total"]), dec(row["charges"]["brokerage"])) == (Decimal("812.45"), Decimal("1.218675"))


def test_order_margins_compact_mode_keeps_the_totals(kite: KiteEnv):
    """The SDK's order_margins has no `mode`; Kite's page documents it, so this one goes over plain HTTP."""
    body = [margin_order("INFY", "BUY", 2, "CNC", "1500")]
    full, compact = (
        kite.http().post(kite.url + "/margins/orders" + query, headers=kite.kite_headers(), json=body)
        for query in ("", "?mode=compact")
    )
    [full_row], [compact_row] = full.json(parse_float=Decimal)["data"], compact.json(parse_float=Decimal)["data"]
    assert (full_row["var"], full_row["total"]) == (Decimal("3000.00"), Decimal("3000.00"))
    assert (compact_row["var"], compact_row["total"]) == (0, Decimal("3000.00"))
    assert compact_row["charges"] == full_row["charges"] and full_row["charges"]["transaction_tax"] == Decimal("3")


@pytest.mark.parametrize(
    "query, body, message",
    [
        ("?mode=full", [margin_order("INFY", "BUY", 1, "CNC")], "Invalid `mode`."),
        ("", {"exchange": "NSE"}, "Invalid JSON body."),
        ("", ["INFY"], "Invalid JSON body."),
        ("", [margin_order("NOSUCH", "BUY", 1, "CNC")], "Invalid `tradingsymbol`."),
        ("", [margin_order("INFY", "BUY", 0, "CNC")], "Invalid `quantity`."),
        ("", [{**margin_order("INFY", "BUY", 1, "CNC"), "quantity": 1.5}], "Invalid `quantity`."),
        ("", [margin_order("INFY", "HOLD", 1, "CNC")], "Invalid `transaction_type`."),
        ("", [{**margin_order("INFY", "BUY", 1, "CNC"), "price": -5}], "Invalid `price`."),
        ("", [{**margin_order("INFY", "BUY", 1, "CNC"), "price": "abc"}], "Invalid `price`."),
    ],
)
def test_bad_margin_requests_are_input_exceptions(kite: KiteEnv, query, body, message):
    for path in ("/margins/orders", "/margins/basket"):
        answer = kite.http().post(kite.url + path + query, headers=kite.kite_headers(), json=body)
        assert answer.status_code == 400
        assert answer.json() == {"status": "error", "message": message, "error_type": "InputException", "data": None}


# ---------------------------------------------------------------------------- basket margins


def test_basket_margins_initial_final_and_orders(kite: KiteEnv):
    sdk = kite.sdk()
    basket = [margin_order("INFY", "BUY", 10, "MIS", "1510"), margin_order("SBIN", "BUY", 5, "CNC", "812.45")]
    answer = sdk.basket_order_margins(basket)
    assert set(answer) == {"initial", "final", "orders"}
    assert [(o["tradingsymbol"], dec(o["total"])) for o in answer["orders"]] == [
        ("INFY", Decimal("3020.00")),
        ("SBIN", Decimal("4062.25")),
    ]
    initial, final = answer["initial"], answer["final"]
    assert set(initial) == set(final) == MARGIN_FIELDS
    assert (initial["type"], initial["tradingsymbol"], initial["exchange"], initial["leverage"]) == ("", "", "", 0)
    assert (dec(initial["total"]), dec(final["total"])) == (Decimal("7082.25"), Decimal("7082.25"))
    order_charges = sum((dec(o["charges"]["total"]) for o in answer["orders"]), Decimal(0))
    assert dec(initial["charges"]["total"]) == dec(final["charges"]["total"]) == order_charges
    assert decimals(answer["orders"][0]["charges"]) == decimals(sdk.order_margins(basket[:1])[0]["charges"])


def test_basket_final_margin_nets_orders_that_close_positions(kite: KiteEnv):
    sdk = kite.sdk()
    sdk.place_order(
        variety="regular",
        exchange="NSE",
        tradingsymbol="INFY",
        transaction_type="BUY",
        quantity=10,
        product="MIS",
        order_type="MARKET",
        market_protection=-1,
    )  # a long MIS position of 10
    exit_and_buy = [margin_order("INFY", "SELL", 10, "MIS", "1510"), margin_order("SBIN", "BUY", 5, "CNC", "812.45")]
    with_positions = sdk.basket_order_margins(exit_and_buy)  # consider_positions defaults to True
    assert (dec(with_positions["initial"]["total"]), dec(with_positions["final"]["total"])) == (
        Decimal("7082.25"),
        Decimal("4062.25"),
    )
    without = sdk.basket_order_margins(exit_and_buy, consider_positions=False)
    assert (dec(without["initial"]["total"]), dec(without["final"]["total"])) == (
        Decimal("7082.25"),
        Decimal("7082.25"),
    )
    round_trip = [margin_order("SBIN", "BUY", 10, "MIS", "812.45"), margin_order("SBIN", "SELL", 4, "MIS", "813")]
    netted = sdk.basket_order_margins(round_trip, consider_positions=False)
    assert (dec(netted["initial"]["total"]), dec(netted["final"]["total"])) == (
        Decimal("2275.30"),
        Decimal("1624.90"),
    )  # 1,624.90 + 650.40 asked; the sale closes 4 of the 10


def test_basket_compact_mode_keeps_only_the_totals(kite: KiteEnv):
    answer = kite.sdk().basket_order_margins([margin_order("INFY", "BUY", 10, "MIS", "1510")], mode="compact")
    assert [dec(answer[part]["var"]) for part in ("initial", "final")] == [Decimal(0), Decimal(0)]
    assert [dec(answer[part]["total"]) for part in ("initial", "final")] == [Decimal("3020.00")] * 2
    [order] = answer["orders"]
    assert (dec(order["var"]), dec(order["total"]), dec(order["charges"]["brokerage"])) == (
        Decimal(0),
        Decimal("3020.00"),
        Decimal("4.53"),
    )


def test_basket_refuses_a_bad_consider_positions(kite: KiteEnv):
    answer = kite.http().post(
        kite.url + "/margins/basket?consider_positions=maybe",
        headers=kite.kite_headers(),
        json=[margin_order("INFY", "BUY", 1, "CNC")],
    )
    assert answer.status_code == 400 and answer.json()["message"] == "Invalid `consider_positions`."


# ---------------------------------------------------------------------------- holdings after a same-day sell


def test_holdings_used_quantity_after_a_same_day_sell(kite: KiteEnv):
    sdk = kite.sdk(
        kite.emulator.add_account(
            holdings=[{"tradingsymbol": "TCS", "quantity": 12, "average_price": "3100.55", "t1_quantity": 3}]
        )
    )
    [before] = sdk.holdings()
    assert (
        before["quantity"],
        before["used_quantity"],
        before["t1_quantity"],
        before["realised_quantity"],
        before["opening_quantity"],
    ) == (12, 0, 3, 9, 12)
    sdk.place_order(
        variety="regular",
        exchange="NSE",
        tradingsymbol="TCS",
        transaction_type="SELL",
        quantity=5,
        product="CNC",
        order_type="MARKET",
        market_protection=-1,
    )
    [after] = sdk.holdings()
    assert (after["quantity"], after["used_quantity"], after["t1_quantity"], after["realised_quantity"]) == (
        12,
        5,
        3,
        9,
    )  # the holding's quantity stays until settlement; what was sold shows as used
    [position] = sdk.positions()["net"]
    assert (position["tradingsymbol"], position["product"], position["quantity"]) == ("TCS", "CNC", -5)


def test_cnc_bought_and_sold_the_same_day_uses_no_holding(kite: KiteEnv):
    sdk = kite.sdk(
        kite.emulator.add_account(holdings=[{"tradingsymbol": "ITC", "quantity": 20, "average_price": "400"}])
    )
    for side, quantity in (("BUY", 6), ("SELL", 8)):
        sdk.place_order(
            variety="regular",
            exchange="NSE",
            tradingsymbol="ITC",
            transaction_type=side,
            quantity=quantity,
            product="CNC",
            order_type="MARKET",
            market_protection=-1,
        )
    [holding] = sdk.holdings()
    assert (holding["quantity"], holding["used_quantity"]) == (20, 2)  # 6 of the 8 sold were today's buy
    sdk.place_order(
        variety="regular",
        exchange="NSE",
        tradingsymbol="ITC",
        transaction_type="SELL",
        quantity=30,
        product="CNC",
        order_type="MARKET",
        market_protection=-1,
    )
    assert sdk.holdings()[0]["used_quantity"] == 20  # never more than the holding
