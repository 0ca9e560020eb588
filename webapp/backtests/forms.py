"""The backtest form. The strategy's own parameters arrive as param_<name> (rendered from its Param list);
a sweep's values for a parameter as sweep_<name>: a list ("5, 8, 13") or a range ("5:20:5", from 5 to
20 in steps of 5, both ends included)."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

from flask import Request
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, TimeField
from wtforms.validators import DataRequired, NumberRange, Optional

from webapp.automation.sizing import SIZINGS
from webapp.backtest.runs import CHARGES_OFF
from webapp.inputs import AmountField, IdField, WholeNumberField
from webapp.marketdata.intervals import INTERVALS
from webapp.models.base import Money
from webapp.strategies import Param, all_strategies, strategy_class

PRODUCTS = {"MIS": "Intraday (MIS), squared off each day", "CNC": "Delivery (CNC), carried overnight"}
FILLS = {"next_open": "Next bar's open", "close": "This bar's close"}
MAX_SWEEP_TEXT = 200
MAX_VALUES_PER_PARAM = 100
OFF = CHARGES_OFF
DEFAULT_SQUAREOFF = time(15, 15)  # IST: the engine squares MIS positions off here


def charge_plans() -> dict[str, str]:
    from webapp.backtest.charges import PLANS

    plans = {name: f"{plan.label}: brokerage + statutory charges" for name, plan in sorted(PLANS.items())}
    plans[OFF] = "Off (flat commission only)"
    return plans


class BacktestForm(FlaskForm):
    strategy = SelectField("Strategy", validators=[DataRequired(message="Choose a strategy.")])
    instrument_id = IdField("Instrument", validators=[DataRequired(message="Choose an instrument.")])
    interval = SelectField("Candle interval", choices={str(i): f"{i} min" for i in INTERVALS}, default="1")
    start = DateField("From (IST day)", validators=[DataRequired(message="Enter the first day (YYYY-MM-DD).")])
    end = DateField("To (IST day, included)", validators=[DataRequired(message="Enter the last day (YYYY-MM-DD).")])
    capital = AmountField(
        "Capital (₹)",
        column=Money,
        minimum=Decimal(1),
        default=Decimal(100000),
        validators=[DataRequired(message="Enter the starting capital.")],
    )
    product = SelectField("Product", choices=PRODUCTS, default="MIS")
    allow_short = BooleanField("Allow short entries")
    sizing = SelectField("Sizing", choices=SIZINGS, default="capital_pct")
    sizing_value = AmountField(
        "Sizing value",
        column=Money,
        minimum=Decimal("0.0001"),
        default=Decimal(100),
        validators=[DataRequired(message="Enter a sizing value above zero.")],
    )
    fill = SelectField("Market orders fill at", choices=FILLS, default="next_open")
    slippage_ticks = WholeNumberField(
        "Slippage (ticks)", default=0, validators=[Optional(), NumberRange(max=100, message="At most 100 ticks.")]
    )
    squareoff = TimeField("MIS square-off (IST)", validators=[Optional()])
    charges = SelectField("Charges", default="zerodha")
    commission = AmountField("Flat commission per order (₹)", column=Money, minimum=Decimal(0), validators=[Optional()])

    def __init__(self, instruments, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.strategy.choices = {s.name: s.title for s in all_strategies()}
        self.instrument_ids = [i.id for i in instruments]
        self.charges.choices = charge_plans()


def param_fields(strategy: str) -> tuple[Param, ...]:
    try:
        return strategy_class(strategy).params
    except KeyError:
        return ()


def params_from(request: Request, strategy: str) -> dict[str, str]:
    """The chosen strategy's param_<name> fields (only its own names; blank means its default)."""
    values = {}
    for param in param_fields(strategy):
        raw = request.form.get(f"param_{param.name}")
        if raw is not None and raw.strip():
            values[param.name] = raw[:64]
    return values


def sweep_from(request: Request, strategy: str) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """(grid, errors): each swept parameter's values, parsed by the parameter itself; errors by
    `sweep_<name>`."""
    grid, errors = {}, {}
    for param in param_fields(strategy):
        raw = request.form.get(f"sweep_{param.name}")
        if raw is None or not raw.strip():
            continue
        try:
            grid[param.name] = sweep_values(param, raw)
        except ValueError as exc:
            errors[f"sweep_{param.name}"] = str(exc)
    return grid, errors


def sweep_values(param: Param, raw: str) -> list[Any]:
    """ "5, 8, 13" or "5:20:5" (inclusive) as the parameter's own values, each within its bounds."""
    text = raw.strip()
    if len(text) > MAX_SWEEP_TEXT:
        raise ValueError(f"At most {MAX_SWEEP_TEXT} characters.")
    if param.kind is bool:
        raise ValueError("A yes/no parameter is not swept.")
    if ":" in text:
        parts = [part.strip() for part in text.split(":")]
        if len(parts) != 3:
            raise ValueError("Write a range as from:to:step, e.g. 5:20:5.")
        try:
            first, last, step = (param.parse(part) if i < 2 else _step(param, part) for i, part in enumerate(parts))
        except ValueError as exc:
            raise ValueError(f"{exc} (in from:to:step)") from None
        if last < first:
            raise ValueError("The range's end must not be below its start.")
        count = int((Decimal(str(last)) - Decimal(str(first))) / Decimal(str(step))) + 1
        if count > MAX_VALUES_PER_PARAM:
            raise ValueError(f"At most {MAX_VALUES_PER_PARAM} values for one parameter.")
        values = [param.kind(Decimal(str(first)) + Decimal(str(step)) * i) for i in range(count)]
    else:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if len(parts) > MAX_VALUES_PER_PARAM:
            raise ValueError(f"At most {MAX_VALUES_PER_PARAM} values for one parameter.")
        values = []
        for part in parts:
            try:
                values.append(param.parse(part))
            except ValueError as exc:
                raise ValueError(f"{part[:20]}: {exc}") from None
    values = list(dict.fromkeys(values))
    if not values:
        raise ValueError("Enter values separated by commas, or a range from:to:step.")
    return values


def _step(param: Param, raw: str):
    if param.kind is int:
        if not raw.isdigit() or len(raw) > 6:
            raise ValueError("the step must be a whole number")
        step = int(raw)
    else:
        try:
            step = float(raw)
        except ValueError:
            raise ValueError("the step must be a number") from None
        if not step == step or step in (float("inf"), float("-inf")):  # NaN, infinities
            raise ValueError("the step must be a finite number")
    if step <= 0:
        raise ValueError("the step must be above zero")
    return step
