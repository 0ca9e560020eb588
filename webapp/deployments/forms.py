"""The deployment form. The strategy's own parameters arrive as param_<name> (rendered from its Param
list), the instruments as repeated instrument_ids, each client's sizing override and capital as
size_<client id> and capital_<client id>."""

from __future__ import annotations

from decimal import Decimal

from flask import Request
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField, SelectMultipleField, StringField, TimeField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from webapp.automation import deployments as domain
from webapp.automation.sizing import SIZINGS
from webapp.inputs import MAX_IDS, AmountField, IdsField, InputError, WholeNumberField, decimal_number, record_id
from webapp.marketdata.intervals import INTERVALS
from webapp.models import Deployment, DeploymentClient
from webapp.strategies import all_strategies, strategy_class


class _Checks:
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class DayChecks(_Checks, SelectMultipleField):
    def process_formdata(self, valuelist):
        self.data = []
        if len(valuelist) > 7:
            raise ValueError("Choose trading days from the list.")
        days = [record_id(v) if v != "0" else 0 for v in valuelist]
        if None in days:
            raise ValueError("Choose trading days from the list.")
        self.data = list(dict.fromkeys(days))


class ClientChecks(_Checks, IdsField):
    pass


class DeploymentForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Name the deployment."), Length(max=80)])
    strategy = SelectField("Strategy", validators=[DataRequired(message="Choose a strategy.")])
    interval = SelectField("Candle interval", coerce=int, choices={i: f"{i} min" for i in INTERVALS}, default=5)
    product = SelectField("Product", choices=domain.PRODUCTS, default="MIS")
    mode = RadioField("Mode", choices=domain.MODES, default=domain.PAPER)
    allow_short = BooleanField("Allow short entries")
    sizing = SelectField("Sizing", choices=SIZINGS, default="fixed")
    sizing_value = AmountField("Sizing value", column=Deployment.sizing_value, validators=[Optional()])
    window_start = TimeField("Entries from (IST)", default=domain.MARKET_OPEN, validators=[Optional()])
    last_entry = TimeField("Last entry (IST)", validators=[Optional()])
    squareoff_at = TimeField("Square off at (IST, intraday)", validators=[Optional()])
    days = DayChecks("Days", coerce=int, choices=dict(domain.DAYS), default=list(domain.DAYS))
    clients = ClientChecks("Clients")
    max_loss = AmountField("Max loss (₹)", column=Deployment.max_loss, minimum=Decimal(0), validators=[Optional()])
    max_orders_per_day = WholeNumberField("Max orders a day", validators=[Optional()])
    max_open_positions = WholeNumberField("Max open positions", validators=[Optional()])

    def __init__(self, clients, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.strategy.choices = {s.name: s.title for s in all_strategies()}
        self.clients.choices = {c.id: c.name for c in clients}
        days = domain.trading_days()
        self.days.choices = dict(days)
        if not self.days.raw_data and self.days.data == list(domain.DAYS):  # a new form: every trading day
            self.days.data = list(days)


def params_from(request: Request, strategy: str) -> dict[str, str]:
    """The chosen strategy's param_<name> fields (only its own names are read; blank means default)."""
    try:
        cls = strategy_class(strategy)
    except KeyError:
        return {}
    values = {}
    for param in cls.params:
        raw = request.form.get(f"param_{param.name}")
        if raw is not None and raw.strip():
            values[param.name] = raw[:64]
    return values


def instrument_ids(request: Request) -> tuple[list[int], str]:
    raw = request.form.getlist("instrument_ids")
    if len(raw) > MAX_IDS:
        return [], f"At most {domain.MAX_INSTRUMENTS} instruments."
    ids = [record_id(v) for v in raw if v.strip()]
    if None in ids:
        return [], "Choose instruments from the search."
    return list(dict.fromkeys(ids)), ""


def client_values(request: Request, prefix: str, client_ids: list[int]) -> tuple[dict[int, Decimal], dict[str, str]]:
    """size_<id> / capital_<id> for the chosen clients: blank is none; anything else a number above 0."""
    column = DeploymentClient.sizing_value if prefix == "size" else DeploymentClient.capital
    precision, scale = column.type.precision, column.type.scale
    values, errors = {}, {}
    for client_id in client_ids:
        raw = request.form.get(f"{prefix}_{client_id}", "")
        if not raw.strip():
            continue
        try:
            values[client_id] = decimal_number(raw, precision=precision, scale=scale, minimum=Decimal("0.0001"))
        except InputError as exc:
            errors[f"{prefix}_{client_id}"] = str(exc).replace("Must be at least 0.0001.", "Must be above zero.")
    return values, errors


def spec_from(form: DeploymentForm, request: Request) -> tuple[domain.Spec, dict[str, str]]:
    """The spec the domain validates, and the errors of fields parsed outside WTForms."""
    errors: dict[str, str] = {}
    ids, problem = instrument_ids(request)
    if problem:
        errors["instruments"] = problem
    client_ids = list(form.clients.data or [])
    sizes, size_errors = client_values(request, "size", client_ids)
    capital, capital_errors = client_values(request, "capital", client_ids)
    errors.update(size_errors)
    errors.update(capital_errors)
    spec = domain.Spec(
        name=(form.name.data or "").strip(),
        strategy=form.strategy.data or "",
        params=params_from(request, form.strategy.data or ""),
        instrument_ids=ids,
        interval=form.interval.data,
        product=form.product.data,
        mode=form.mode.data,
        sizing=form.sizing.data,
        sizing_value=form.sizing_value.data,
        window_start=form.window_start.data,
        last_entry=form.last_entry.data,
        squareoff_at=form.squareoff_at.data,
        days=list(form.days.data or []),
        client_ids=client_ids,
        allow_short=bool(form.allow_short.data),
        client_sizing=sizes,
        client_capital=capital,
        max_loss=form.max_loss.data,
        max_orders_per_day=form.max_orders_per_day.data,
        max_open_positions=form.max_open_positions.data,
    )
    return spec, errors
