"""The hook form: its kind — a ticket template (instrument and side fixed or from the alert, product,
order type, the clients with a quantity each or a sizing rule) or a deployment's signal (one of the
deployments the user may manage; the ticket fields are then ignored) — and the dedupe window.
Per-client quantities arrive as qty_<client id>."""

from __future__ import annotations

from decimal import Decimal

from flask import Request
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from webapp.automation.sizing import CAPITAL_PCT, FIXED, MULTIPLIER, SIZINGS
from webapp.hooks.alerts import find_instrument
from webapp.inputs import AmountField, IdsField, InputError, WholeNumberField, whole_number
from webapp.models import Hook, Instrument
from webapp.models.api import HOOK_SIGNAL, HOOK_TICKET

SIDES = {"": "From the alert (buy / sell)", "BUY": "Always BUY", "SELL": "Always SELL"}
PRODUCTS = {"MIS": "MIS (intraday)", "CNC": "CNC (delivery)", "MTF": "MTF"}
ORDER_TYPES = {"MARKET": "Market", "LIMIT": "Limit at the alert's price ± offset"}
QUANTITIES = "quantities"
MODES = {QUANTITIES: "A quantity per client", "rule": "A sizing rule"}
KINDS = {HOOK_TICKET: "A ticket for clients", HOOK_SIGNAL: "A deployment's signal"}
RULES = {k: SIZINGS[k] for k in (FIXED, MULTIPLIER, CAPITAL_PCT)}  # risk % needs a stop an alert does not carry


class ClientChecks(IdsField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def optional_id(value: object) -> int | None:
    """A chosen id, or None (nothing chosen, or not a number: apply() says so)."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


class HookForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Name the hook."), Length(max=64)])
    kind = RadioField("An alert makes", choices=KINDS, default=HOOK_TICKET)
    deployment = SelectField("Deployment (a signal hook)", coerce=optional_id, validate_choice=False)
    symbol = StringField("Instrument (NSE:SBIN; empty: from the alert)", validators=[Optional(), Length(max=80)])
    action = SelectField("Side", choices=SIDES, default="")
    product = SelectField("Product", choices=PRODUCTS, default="MIS")
    order_type = SelectField("Order type", choices=ORDER_TYPES, default="MARKET")
    limit_offset = AmountField(
        "Limit offset (₹)", column=Hook.limit_offset, minimum=Decimal(0), validators=[Optional()]
    )
    mode = RadioField("Clients", choices=MODES, default=QUANTITIES)
    sizing = SelectField("Sizing rule", choices=RULES, default=FIXED)
    sizing_value = AmountField(
        "Sizing value (empty: the alert's quantity)",
        column=Hook.sizing_value,
        minimum=Decimal("0.0001"),
        validators=[Optional()],
    )
    clients = ClientChecks("Clients")
    dedupe_seconds = WholeNumberField(
        "Dedupe window (seconds)",
        default=60,
        minimum=5,
        maximum=3600,
        validators=[DataRequired(message="Enter 5 to 3600 seconds."), NumberRange(5, 3600)],
    )


def apply(
    form: HookForm, hook: Hook, request: Request, client_ids: list[int], deployment_ids: list[int]
) -> dict[str, str]:
    """Copy a valid form onto the hook; the errors that stop it (nothing copied then). `deployment_ids`:
    the deployments the user may manage (a signal hook names one of them)."""
    if form.kind.data == HOOK_SIGNAL:
        return _apply_signal(form, hook, deployment_ids)
    errors: dict[str, str] = {}
    instrument: Instrument | None = None
    if form.symbol.data and form.symbol.data.strip():
        raw = form.symbol.data.strip().upper()
        exchange, _, symbol = raw.rpartition(":")
        instrument = find_instrument(exchange or None, symbol)
        if instrument is None:
            errors["symbol"] = f"No instrument {raw[:40]} in the master: write it as NSE:SBIN, or leave it empty."
    chosen = [i for i in form.clients.data or [] if i in client_ids]
    quantities: dict[str, int] = {}
    if form.mode.data == QUANTITIES:
        for client_id in chosen:
            raw = request.form.get(f"qty_{client_id}", "")
            try:
                quantities[str(client_id)] = whole_number(raw, minimum=1, maximum=10_000_000)
            except InputError:
                errors[f"qty_{client_id}"] = "Enter a whole number of shares above zero."
    elif not form.sizing_value.data and form.sizing.data != FIXED:
        errors["sizing_value"] = "Enter the rule's value (only a fixed rule can take the alert's quantity)."
    if not chosen:
        errors["clients"] = "Choose at least one client."
    if form.order_type.data != "LIMIT" and form.limit_offset.data:
        errors["limit_offset"] = "An offset applies to limit orders only."
    if errors:
        return errors
    hook.name = form.name.data.strip()
    hook.kind, hook.deployment_id = HOOK_TICKET, None
    hook.instrument_id = instrument.id if instrument else None
    hook.action = form.action.data or None
    hook.product, hook.order_type = form.product.data, form.order_type.data
    hook.limit_offset = form.limit_offset.data if form.order_type.data == "LIMIT" else None
    hook.quantities = quantities
    hook.client_ids = chosen if form.mode.data != QUANTITIES else []
    hook.sizing = form.sizing.data if form.mode.data != QUANTITIES else FIXED
    hook.sizing_value = form.sizing_value.data if form.mode.data != QUANTITIES else None
    hook.dedupe_seconds = form.dedupe_seconds.data
    return {}


def _apply_signal(form: HookForm, hook: Hook, deployment_ids: list[int]) -> dict[str, str]:
    """A signal hook: its deployment, and no ticket template (cleared, so nothing of it lingers)."""
    if form.deployment.data not in deployment_ids:
        return {"deployment": "Choose a deployment you may manage."}
    hook.name = form.name.data.strip()
    hook.kind, hook.deployment_id = HOOK_SIGNAL, form.deployment.data
    hook.instrument_id, hook.action, hook.product, hook.order_type = None, None, "MIS", "MARKET"
    hook.limit_offset, hook.quantities, hook.client_ids = None, {}, []
    hook.sizing, hook.sizing_value = FIXED, None
    hook.dedupe_seconds = form.dedupe_seconds.data
    return {}


def fill(form: HookForm, hook: Hook) -> dict[str, str]:
    """The form as the stored hook; the per-client quantities the table shows."""
    form.name.data = hook.name
    form.kind.data, form.deployment.data = hook.kind, hook.deployment_id
    form.symbol.data = hook.instrument.key if hook.instrument else ""
    form.action.data = hook.action or ""
    form.product.data, form.order_type.data = hook.product, hook.order_type
    form.limit_offset.data = hook.limit_offset
    form.mode.data = QUANTITIES if hook.quantities else "rule"
    form.sizing.data, form.sizing_value.data = hook.sizing, hook.sizing_value
    form.clients.data = [int(k) for k in hook.quantities] or [int(i) for i in hook.client_ids]
    form.dedupe_seconds.data = hook.dedupe_seconds
    return {f"qty_{k}": str(v) for k, v in hook.quantities.items()}
