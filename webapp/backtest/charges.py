"""Indian charges on NSE/BSE cash-equity trades, as a contract note computes them.

Every rate is a dated `Schedule` (the rate in force on a trade's IST day), each with the source it comes
from; docs/backtesting.md lists them all with the date each took effect. Brokerage is a broker's `Plan`
(PLANS, by name; a desk adds its own with `register_plan`). Money is Decimal throughout.

A note covers one scrip, one product, one IST day (the engine makes one per day it trades). Rounding,
per note, as in the worked examples of the desk's charges reference: brokerage per executed order, then
exchange charge, SEBI fee and GST half-up to the paisa; STT half-up to the rupee; stamp duty half-up to the
paisa. STT uses Zerodha's average-price method (intraday quantity × the day's average price × 0.025%,
delivery quantity × average × 0.1%); a same-day CNC buy and sell of the same quantity is intraday for
STT and stamp duty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
PAISA = Decimal("0.01")
RUPEE = Decimal(1)
PRODUCTS = ("MIS", "CNC")
EXCHANGES = ("NSE", "BSE")


def _pct(text: str) -> Decimal:
    """A rate written as a percentage ("0.025") as a fraction (0.00025)."""
    return Decimal(text) / 100


def paisa(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)


def whole_rupee(value: Decimal) -> Decimal:
    return value.quantize(RUPEE, rounding=ROUND_HALF_UP).quantize(PAISA)


@dataclass(frozen=True)
class Rate:
    value: Decimal  # a fraction of turnover (0.00025 is 0.025%)
    since: date  # the first day it applies
    source: str


@dataclass(frozen=True)
class Schedule:
    """A levy's rates over time, oldest first. Before the first date the first rate applies (the
    earliest a source showed; docs/backtesting.md says which dates are unconfirmed)."""

    name: str
    rates: tuple[Rate, ...]

    def at(self, day: date) -> Decimal:
        current = self.rates[0].value
        for rate in self.rates:
            if rate.since <= day:
                current = rate.value
        return current


# --- statutory and exchange levies (the same at every broker) -------------------------------------------
STT_INTRADAY = Schedule(
    "STT, intraday (sell side)",
    (Rate(_pct("0.025"), date(2006, 6, 1), "Finance Act 2006 (Budget 2006 STT table); unchanged by Finance Act 2013"),),
)
STT_DELIVERY = Schedule(
    "STT, delivery (buy and sell)",
    (Rate(_pct("0.1"), date(2013, 6, 1), "NSE circular on Finance Act 2013: 0.1% before and after 1 Jun 2013"),),
)
STAMP_INTRADAY = Schedule(
    "Stamp duty, intraday (buy side)",
    (Rate(_pct("0.003"), date(2020, 7, 1), "Indian Stamp Act amendment, uniform rates from 1 Jul 2020 (NSE)"),),
)
STAMP_DELIVERY = Schedule(
    "Stamp duty, delivery (buy side)",
    (Rate(_pct("0.015"), date(2020, 7, 1), "Indian Stamp Act amendment, uniform rates from 1 Jul 2020 (NSE)"),),
)
NSE_TRANSACTION = Schedule(
    "NSE transaction charge",
    (
        Rate(_pct("0.00325"), date(2000, 1, 1), "Zerodha's older charges page (start date unconfirmed)"),
        Rate(_pct("0.00322"), date(2024, 4, 1), "Upstox pricing page, Apr-Sep 2024"),
        Rate(_pct("0.00297"), date(2024, 10, 1), "NSE circular after SEBI's true-to-label rule (1 Oct 2024)"),
    ),
)
NSE_IPFT = Schedule(
    "NSE IPFT levy",
    (Rate(_pct("0.0001"), date(2023, 4, 1), "NSE IPFT, Rs 10 per crore from 1 Apr 2023 (Zerodha, Infinn)"),),
)
BSE_TRANSACTION = Schedule(
    "BSE transaction charge, groups A and B",
    (Rate(_pct("0.00375"), date(2022, 12, 1), "BSE, Rs 375 per crore from 1 Dec 2022 (Zerodha, Angel One)"),),
)
SEBI_FEE = Schedule(
    "SEBI turnover fee",
    (
        Rate(_pct("0.00015"), date(2014, 6, 1), "Rs 15 per crore before the 2019 cut (SEBI board, 2019)"),
        Rate(_pct("0.0001"), date(2019, 4, 1), "SEBI (Payment of Fees) (Amendment) Regulations 2019"),
        Rate(_pct("0.00005"), date(2020, 6, 1), "SEBI: 50% of the fee, June 2020 to March 2021 (COVID relief)"),
        Rate(_pct("0.0001"), date(2021, 4, 1), "SEBI (Payment of Fees) Regulations 2019 rate again"),
    ),
)
GST = Schedule("GST", (Rate(_pct("18"), date(2017, 7, 1), "GST on financial services from 1 Jul 2017"),))

LEVIES = (STT_INTRADAY, STT_DELIVERY, STAMP_INTRADAY, STAMP_DELIVERY, NSE_TRANSACTION, NSE_IPFT, BSE_TRANSACTION)
LEVIES += (SEBI_FEE, GST)


# --- brokerage plans ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fee:
    """A per-order fee: `flat` rupees, else `pct` (a fraction) of the order value, then at most `cap` and
    at least `floor`. Rounded half-up to the paisa."""

    pct: Decimal = ZERO
    cap: Decimal | None = None
    floor: Decimal | None = None
    flat: Decimal | None = None

    def on(self, value: Decimal) -> Decimal:
        amount = self.flat if self.flat is not None else value * self.pct
        if self.cap is not None:
            amount = min(amount, self.cap)
        if self.floor is not None:
            amount = max(amount, self.floor)
        return paisa(amount)


FREE = Fee()


@dataclass(frozen=True)
class Plan:
    """A broker's plan. `ipft`: how it bills NSE's IPFT levy — "exchange" (inside the exchange charge,
    GST on it: Zerodha), "no_gst" (a line of its own outside GST: Upstox) or "off". `dp` is charged (plus
    GST) per scrip per day a delivery sale debits the demat account; it goes to the ledger, not the note."""

    name: str
    broker: str
    label: str
    intraday: Fee
    delivery: Fee
    dp: Fee = FREE
    ipft: str = "exchange"
    source: str = ""

    def brokerage(self, product: str, value: Decimal) -> Decimal:
        return (self.intraday if product == "MIS" else self.delivery).on(value)


def _d(text: str) -> Decimal:
    return Decimal(text)


PLANS: dict[str, Plan] = {}


def register_plan(plan: Plan) -> Plan:
    """Add (or replace) a plan under its name: a desk's own negotiated brokerage."""
    if plan.ipft not in ("exchange", "no_gst", "off"):
        raise ValueError(f"plan {plan.name}: ipft must be exchange, no_gst or off")
    PLANS[plan.name] = plan
    return plan


for _plan in (
    Plan(
        "zerodha",
        "Zerodha",
        "Zerodha (equity)",
        intraday=Fee(pct=_pct("0.03"), cap=_d("20")),
        delivery=FREE,
        dp=Fee(flat=_d("13")),
        ipft="exchange",
        source="zerodha.com charges; support articles on brokerage, DP charges and IPFT",
    ),
    Plan(
        "angel_one",
        "Angel One",
        "Angel One (default retail)",
        intraday=Fee(pct=_pct("0.03"), cap=_d("20")),
        delivery=Fee(pct=_pct("0.1"), cap=_d("20"), floor=_d("2")),
        dp=Fee(flat=_d("20")),
        ipft="exchange",
        source="Angel One pricing from 1 Nov 2024 (secondary pages; unconfirmed)",
    ),
    Plan(
        "upstox",
        "Upstox",
        "Upstox (default retail)",
        intraday=Fee(pct=_pct("0.05"), cap=_d("20")),
        delivery=Fee(flat=_d("20")),
        ipft="no_gst",
        source="Upstox pricing page (late 2024); DP not in the source: 0",
    ),
    Plan(
        "dhan",
        "Dhan",
        "Dhan (default retail)",
        intraday=Fee(pct=_pct("0.03"), cap=_d("20")),
        delivery=FREE,
        dp=Fee(flat=_d("12.50")),
        ipft="exchange",
        source="Dhan pricing table (copy); IPFT billing unconfirmed",
    ),
    Plan(
        "kotak_neo_free",
        "Kotak Securities",
        "Kotak Neo Trade Free",
        intraday=FREE,
        delivery=Fee(pct=_pct("0.25"), floor=_d("20")),
        dp=Fee(pct=_pct("0.04"), floor=_d("20")),
        ipft="exchange",
        source="kotaksecurities.com Trade Free plan; IPFT billing unconfirmed",
    ),
    Plan(
        "kotak_neo_pro",
        "Kotak Securities",
        "Kotak Neo Trade Free Pro",
        intraday=FREE,
        delivery=Fee(pct=_pct("0.1")),
        ipft="exchange",
        source="kotaksecurities.com Trade Free Pro (Rs 249 + GST a month, not modelled); DP unconfirmed: 0",
    ),
    Plan(
        "motilal_oswal",
        "Motilal Oswal",
        "Motilal Oswal",
        intraday=Fee(pct=_pct("0.02")),
        delivery=Fee(pct=_pct("0.20")),
        ipft="exchange",
        source="Motilal Oswal learning centre, 2023 (2025-26 unconfirmed)",
    ),
    Plan(
        "sharekhan_standard",
        "Sharekhan",
        "Sharekhan",
        intraday=Fee(pct=_pct("0.02")),
        delivery=Fee(pct=_pct("0.30")),
        dp=Fee(flat=_d("16")),
        ipft="exchange",
        source="sharekhan.com pricing (page date unconfirmed); the 1 paisa per share minimum is not modelled",
    ),
):
    register_plan(_plan)


def plan(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise KeyError(f"unknown charges plan {name!r}; known: {', '.join(sorted(PLANS))}") from None


# --- the note ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fill:
    """One executed order on a note."""

    side: str  # "BUY" or "SELL"
    quantity: int
    price: Decimal

    @property
    def value(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True)
class NoteCharges:
    brokerage: Decimal
    stt: Decimal
    exchange: Decimal  # the exchange transaction charge (with IPFT when the plan bills it so)
    ipft: Decimal  # IPFT as a line of its own (plans with ipft="no_gst"), else 0
    sebi: Decimal
    stamp: Decimal
    gst: Decimal
    dp: Decimal  # the ledger's DP charge with its GST (not on the note)

    @property
    def note_total(self) -> Decimal:
        return self.brokerage + self.stt + self.exchange + self.ipft + self.sebi + self.stamp + self.gst

    @property
    def total(self) -> Decimal:
        """Everything the day's trades in the scrip cost: the note plus the DP charge."""
        return self.note_total + self.dp


def contract_note(
    fills: Sequence[Fill],
    *,
    product: str,
    plan: Plan,
    day: date,
    exchange: str = "NSE",
    rounded: bool = True,
) -> NoteCharges:
    """The charges of one contract note: one scrip, one product, one IST day. `rounded=False` gives the
    same lines unrounded (the engine uses it to share a note's total among its trades)."""
    if product not in PRODUCTS:
        raise ValueError(f"product must be one of {PRODUCTS}, got {product!r}")
    if exchange not in EXCHANGES:
        raise ValueError(f"exchange must be one of {EXCHANGES}, got {exchange!r}")
    money = paisa if rounded else _same
    rupee = whole_rupee if rounded else _same
    buys = [fill for fill in fills if fill.side == "BUY"]
    sells = [fill for fill in fills if fill.side == "SELL"]
    if len(buys) + len(sells) != len(fills):
        raise ValueError("a fill's side must be BUY or SELL")
    buy_qty, sell_qty = sum(f.quantity for f in buys), sum(f.quantity for f in sells)
    buy_value, sell_value = sum((f.value for f in buys), ZERO), sum((f.value for f in sells), ZERO)
    turnover = buy_value + sell_value
    if not fills or buy_qty + sell_qty == 0:
        return NoteCharges(*(ZERO,) * 8)

    if product == "MIS":
        intraday_qty, delivery_qty = sell_qty, 0
        intraday_buy_qty, delivery_buy_qty = buy_qty, 0
        delivery_sell_qty = 0
    else:  # CNC: what was bought and sold on the day is intraday for STT and stamp duty
        matched = min(buy_qty, sell_qty)
        intraday_qty, delivery_qty = matched, buy_qty + sell_qty - 2 * matched
        intraday_buy_qty, delivery_buy_qty = matched, buy_qty - matched
        delivery_sell_qty = sell_qty - matched

    brokerage = sum((money(plan.brokerage(product, fill.value)) for fill in fills), ZERO)

    average = turnover / (buy_qty + sell_qty)
    stt = rupee(intraday_qty * average * STT_INTRADAY.at(day) + delivery_qty * average * STT_DELIVERY.at(day))

    average_buy = buy_value / buy_qty if buy_qty else ZERO
    stamp = money(
        intraday_buy_qty * average_buy * STAMP_INTRADAY.at(day)
        + delivery_buy_qty * average_buy * STAMP_DELIVERY.at(day)
    )

    if exchange == "NSE":
        rate = NSE_TRANSACTION.at(day)
        ipft_rate = NSE_IPFT.at(day) if day >= NSE_IPFT.rates[0].since else ZERO
    else:
        rate, ipft_rate = BSE_TRANSACTION.at(day), ZERO
    ipft = ZERO
    if plan.ipft == "exchange":
        rate += ipft_rate
    elif plan.ipft == "no_gst":
        ipft = money(turnover * ipft_rate)
    exchange_charge = money(turnover * rate)
    sebi = money(turnover * SEBI_FEE.at(day))
    gst_rate = GST.at(day)
    gst = money((brokerage + exchange_charge + sebi) * gst_rate)

    dp = ZERO
    if delivery_sell_qty:
        delivery_sell_value = delivery_sell_qty * (sell_value / sell_qty)
        fee = money(plan.dp.on(delivery_sell_value))
        dp = money(fee + fee * gst_rate)
    return NoteCharges(brokerage, stt, exchange_charge, ipft, sebi, stamp, gst, dp)


def _same(value: Decimal) -> Decimal:
    return value


def weights(fills: Sequence[Fill], *, product: str, plan: Plan, day: date, exchange: str = "NSE") -> list[Decimal]:
    """Each fill's own charges, unrounded, as if it were alone on a delivery-free note: what a note's total
    is shared by (STT counted on the side that pays it: a sell for intraday, both sides for delivery)."""
    turnover_rate = (NSE_TRANSACTION.at(day) if exchange == "NSE" else BSE_TRANSACTION.at(day)) + SEBI_FEE.at(day)
    gst = GST.at(day)
    if product == "MIS":
        buy_rate, sell_rate = STAMP_INTRADAY.at(day), STT_INTRADAY.at(day)
    else:
        delivery = STT_DELIVERY.at(day)
        buy_rate, sell_rate = delivery + STAMP_DELIVERY.at(day), delivery
    out = []
    for fill in fills:
        value = fill.value
        brokerage = plan.brokerage(product, value)
        side_rate = buy_rate if fill.side == "BUY" else sell_rate
        out.append(brokerage * (1 + gst) + value * (turnover_rate * (1 + gst) + side_rate))
    return out


def share(total: Decimal, weights: Iterable[Decimal]) -> list[Decimal]:
    """`total` (whole paise) split in proportion to `weights`, in paise, adding up exactly: each gets the
    floor of its share and the leftover paise go to the largest remainders (ties: the earlier)."""
    weights = list(weights)
    if not weights:
        return []
    whole = int((total / PAISA).to_integral_value())
    weight_sum = sum(weights, ZERO)
    if weight_sum <= 0:
        weights, weight_sum = [Decimal(1)] * len(weights), Decimal(len(weights))
    exact = [Decimal(whole) * w / weight_sum for w in weights]
    floors = [int(x) for x in exact]  # exact >= 0: int() is the floor
    left = whole - sum(floors)
    order = sorted(range(len(weights)), key=lambda k: (-(exact[k] - floors[k]), k))
    for k in order[:left]:
        floors[k] += 1
    return [Decimal(p) * PAISA for p in floors]
