"""Deployments, the people's side: validate a spec, create and edit one, start / pause / stop it, and
the desk-wide "automation off" switch. No Flask here: routes parse a form into a `Spec`, call these,
commit, then `announce`.

A deployment is a strategy with validated parameters × instruments × a candle interval × clients (each
sized by the deployment's rule, or its own value) × product × mode (paper | live) × an IST window. A
new one is PAUSED; a person starts it. STOPPED is final. Every change is audited in the caller's
transaction, and a `deployment.updated` event follows the commit.

Who sees what: a user sees a deployment when every one of its clients is in their scope (an admin sees
all). A deployment that also trades someone else's client is not theirs to see, start or stop, since it
would act for a client they may not act for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from webapp import audit
from webapp.access import client_scope
from webapp.automation import sizing as sizing_rules
from webapp.automation.twins import LIVE, ensure_twins
from webapp.events import publish
from webapp.extensions import db
from webapp.marketdata.intervals import INTERVALS, current_session
from webapp.models import (
    Client,
    Deployment,
    DeploymentClient,
    DeploymentInstrument,
    DeskState,
    FundsSnapshot,
    Instrument,
    User,
)
from webapp.models.automation import ACTIVE, PAUSED, STOPPED
from webapp.models.base import in_ids
from webapp.strategies import ParamError, strategy_class
from webapp.timeutil import MARKET_CLOSE, MARKET_OPEN
from webapp.trading.tickets import reference_price

PRODUCTS = {"MIS": "Intraday (MIS)", "CNC": "Delivery (CNC)", "MTF": "MTF"}
# Deployment.mode: PAPER trades each client's paper twin, LIVE the client's broker (twins.is_paper asks)
PAPER = "paper"  # the mode's stored word (it is also the paper broker's name; this is not a broker check)
MODES = {PAPER: "Paper (twins on the paper exchange)", LIVE: "Live (the clients' brokers)"}
DAYS = {0: "Mon", 1: "Tue", 2: "Wed", 3: "Thu", 4: "Fri"}
ALL_DAYS = {**DAYS, 5: "Sat", 6: "Sun"}  # the demo's always-open market (intervals.ALL_DAY)


def trading_days() -> dict[int, str]:
    """The days a deployment may trade: NSE's weekdays, or every day in the demo's all-day session."""
    return ALL_DAYS if current_session().minutes >= 1440 else DAYS


MAX_INSTRUMENTS = 50
MAX_CLIENTS = 200
EVENT = "deployment.updated"
FINAL = "This deployment is stopped; stopping is final. Create a new one."


class DeploymentError(ValueError):
    """A change refused (start a stopped deployment, edit a running one): the message is for the user."""


@dataclass
class Spec:
    """What a person asks for, already parsed into plain values (the form does the parsing)."""

    name: str
    strategy: str
    params: dict[str, Any]
    instrument_ids: list[int]
    interval: int
    product: str
    mode: str
    sizing: str
    sizing_value: Decimal | None
    window_start: time | None
    last_entry: time | None
    days: list[int]
    client_ids: list[int]
    allow_short: bool = False
    squareoff_at: time | None = None
    client_sizing: dict[int, Decimal] = field(default_factory=dict)  # per-client override of sizing_value
    client_capital: dict[int, Decimal] = field(default_factory=dict)  # per-client capital for % sizing
    max_loss: Decimal | None = None
    max_orders_per_day: int | None = None
    max_open_positions: int | None = None


@dataclass
class Checked:
    """The outcome of `validate`: errors by field (params as `param_<name>`, a client's as
    `client_<id>`), and what a valid spec resolved to."""

    errors: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    instruments: list[Instrument] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # (client, instrument) → shares now

    @property
    def ok(self) -> bool:
        return not self.errors


# --- who sees what ---------------------------------------------------------------------------------


def visible_select(user: User) -> sa.Select:
    """Deployments whose clients are all in the user's scope, newest first."""
    query = sa.select(Deployment).order_by(Deployment.id.desc())
    if (scope := client_scope(user)) is not None:
        outside = sa.select(DeploymentClient.id).where(
            DeploymentClient.deployment_id == Deployment.id, DeploymentClient.client_id.not_in(scope)
        )
        query = query.where(~sa.exists(outside))
    return query


def visible_select_all() -> sa.Select:
    """Every deployment (the feed filters per socket by its own grants)."""
    return sa.select(Deployment).order_by(Deployment.id.desc())


def visible(user: User) -> list[Deployment]:
    return list(db.session.execute(visible_select(user)).scalars())


def visible_one(user: User, deployment_id: int) -> Deployment | None:
    """The deployment, or None when it does not exist or is not the user's to see (the route says 404)."""
    return db.session.execute(visible_select(user).where(Deployment.id == deployment_id)).scalar_one_or_none()


def selectable_clients(user: User) -> list[Client]:
    """The clients a deployment of this user may trade: their enabled, real (not paper-twin) clients."""
    query = sa.select(Client).where(Client.enabled.is_(True), Client.twin_of_id.is_(None)).order_by(Client.name)
    if (scope := client_scope(user)) is not None:
        query = query.where(Client.id.in_(scope))
    return list(db.session.execute(query).scalars())


# --- validation ------------------------------------------------------------------------------------


def validate(user: User, spec: Spec, redis=None) -> Checked:
    """Every rule of a deployment, each failure as a message for its field; nothing is written."""
    checked = Checked()
    errors = checked.errors
    if not spec.name.strip():
        errors["name"] = "Name the deployment."
    elif len(spec.name) > 80:
        errors["name"] = "At most 80 characters."
    _check_strategy(spec, checked)
    _check_instruments(spec, checked)
    if spec.interval not in INTERVALS:
        errors["interval"] = "Choose a candle interval of " + ", ".join(str(i) for i in INTERVALS) + " minutes."
    _check_window(spec, errors)
    if spec.mode not in MODES:
        errors["mode"] = "Choose paper or live."
    if spec.product not in PRODUCTS:
        errors["product"] = "Choose a product."
    if spec.sizing not in sizing_rules.SIZINGS:
        errors["sizing"] = "Choose a sizing rule."
    elif spec.sizing_value is None or spec.sizing_value <= 0:
        errors["sizing_value"] = "Enter a sizing value above zero."
    elif spec.sizing in (sizing_rules.CAPITAL_PCT, sizing_rules.RISK_PCT) and spec.sizing_value > 100:
        errors["sizing_value"] = "A percentage of capital is at most 100."
    _check_clients(user, spec, checked)
    if not errors:
        _check_sizes(spec, checked, redis)
    return checked


def _check_strategy(spec: Spec, checked: Checked) -> None:
    try:
        cls = strategy_class(spec.strategy)
    except KeyError:
        checked.errors["strategy"] = "Choose a strategy from the list."
        return
    try:
        checked.params = dict(cls(**spec.params).values)
    except ParamError as exc:
        checked.errors.update({f"param_{name}": message for name, message in exc.errors.items()})


def _check_instruments(spec: Spec, checked: Checked) -> None:
    ids = list(dict.fromkeys(spec.instrument_ids))
    if not ids:
        checked.errors["instruments"] = "Choose at least one instrument."
        return
    if len(ids) > MAX_INSTRUMENTS:
        checked.errors["instruments"] = f"At most {MAX_INSTRUMENTS} instruments."
        return
    found = {i.id: i for i in db.session.execute(sa.select(Instrument).where(in_ids(Instrument.id, ids))).scalars()}
    if missing := [i for i in ids if i not in found]:
        listed = ", ".join(str(i) for i in missing)
        checked.errors["instruments"] = f"Unknown instrument (id {listed}): choose from the search."
        return
    checked.instruments = [found[i] for i in ids]


def _check_window(spec: Spec, errors: dict[str, str]) -> None:
    if current_session().minutes >= 1440:  # the demo's market never closes: any window, any day
        _check_all_day_window(spec, errors)
        return
    hours = f"market hours ({MARKET_OPEN:%H:%M}–{MARKET_CLOSE:%H:%M} IST)"
    start, last, square = spec.window_start, spec.last_entry, spec.squareoff_at
    if start is None:
        errors["window_start"] = "Enter the time entries start (IST)."
    elif not MARKET_OPEN <= start < MARKET_CLOSE:
        errors["window_start"] = f"Must be inside {hours}."
    if last is None:
        errors["last_entry"] = "Enter the time of the last entry (IST)."
    elif not MARKET_OPEN < last <= MARKET_CLOSE:
        errors["last_entry"] = f"Must be inside {hours}."
    elif start is not None and "window_start" not in errors and last <= start:
        errors["last_entry"] = "Must be after the start."
    if square is not None:
        if not MARKET_OPEN < square <= MARKET_CLOSE:
            errors["squareoff_at"] = f"Must be inside {hours}."
        elif last is not None and "last_entry" not in errors and square < last:
            errors["squareoff_at"] = "Must be at or after the last entry."
    if not spec.days:
        errors["days"] = "Choose at least one trading day."
    elif any(d not in DAYS for d in spec.days):
        errors["days"] = "Trading days are Monday to Friday."


def _check_all_day_window(spec: Spec, errors: dict[str, str]) -> None:
    start, last, square = spec.window_start, spec.last_entry, spec.squareoff_at
    if start is None:
        errors["window_start"] = "Enter the time entries start (IST)."
    if last is None:
        errors["last_entry"] = "Enter the time of the last entry (IST)."
    elif start is not None and last <= start:
        errors["last_entry"] = "Must be after the start."
    if square is not None and last is not None and "last_entry" not in errors and square < last:
        errors["squareoff_at"] = "Must be at or after the last entry."
    if not spec.days:
        errors["days"] = "Choose at least one trading day."
    elif any(d not in trading_days() for d in spec.days):
        errors["days"] = "Choose days of the week."


def _check_clients(user: User, spec: Spec, checked: Checked) -> None:
    ids = list(dict.fromkeys(spec.client_ids))
    if not ids:
        checked.errors["clients"] = "Choose at least one client."
        return
    if len(ids) > MAX_CLIENTS:
        checked.errors["clients"] = f"At most {MAX_CLIENTS} clients."
        return
    allowed = {c.id: c for c in selectable_clients(user)}
    if any(i not in allowed for i in ids):  # not granted, disabled, a twin or no such client: same answer
        checked.errors["clients"] = "Choose clients from the list (only enabled clients granted to you)."
        return
    checked.clients = [allowed[i] for i in ids]
    for client in checked.clients:
        if spec.product in PRODUCTS and spec.product not in client.allowed_product_list:
            checked.errors[f"client_{client.id}"] = f"{client.name} may not trade {spec.product}."


def capital_of(clients: Iterable[Client], overrides: dict[int, Decimal]) -> dict[int, Decimal | None]:
    """Each client's capital for % sizing: the deployment's own figure, else the broker funds last synced."""
    ids = [c.id for c in clients]
    funds = {
        f.client_id: f.available_margin
        for f in db.session.execute(sa.select(FundsSnapshot).where(in_ids(FundsSnapshot.client_id, ids))).scalars()
    }
    return {i: overrides.get(i) if overrides.get(i) is not None else funds.get(i) for i in ids}


def _check_sizes(spec: Spec, checked: Checked, redis) -> None:
    """Each client must get at least one share of each instrument at its reference price now."""
    stop_pct = Decimal(str(checked.params.get("stop_pct") or 0))
    if spec.sizing == sizing_rules.RISK_PCT and stop_pct <= 0 and not checked.params.get("stop_atr"):
        checked.errors["sizing"] = "Risk % sizing needs a stop: set the strategy's stop-loss % or × ATR."
        return
    capital = capital_of(checked.clients, spec.client_capital)
    for instrument in checked.instruments:
        price = reference_price(instrument, redis)
        if price is None:
            checked.errors["instruments"] = f"{instrument.tradingsymbol} has no price yet: sizing cannot be checked."
            return
        stop = None
        if spec.sizing == sizing_rules.RISK_PCT:
            if stop_pct <= 0:
                continue  # an ATR stop is known only at the signal: the runner sizes it then
            stop = price * (1 - stop_pct / 100)
        for client in checked.clients:
            value = spec.client_sizing.get(client.id) or spec.sizing_value
            qty, why = sizing_rules.quantity(
                spec.sizing,
                value,
                price=price,
                lot_size=instrument.lot_size,
                capital=capital[client.id],
                stop=stop,
                cap=client.max_quantity,
                max_value=client.max_order_value,
            )
            key = f"client_{client.id}"
            if qty == 0 and key not in checked.errors:
                checked.errors[key] = f"{instrument.tradingsymbol}: " + why.replace(
                    "for this client", f"for {client.name}"
                )
            checked.sizes[(client.id, instrument.id)] = qty


# --- changes ----------------------------------------------------------------------------------------


def _actor(user: User | None) -> dict:
    return {"actor_id": user.id, "actor": user.username} if user else {"actor_id": None, "actor": "system"}


def _client_ids(deployment: Deployment) -> list[int]:
    return [dc.client_id for dc in deployment.clients]


def _summary(deployment: Deployment) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "strategy": deployment.strategy,
        "params": deployment.params,
        "interval": deployment.interval,
        "instruments": [di.instrument_id for di in deployment.instruments],
        "mode": deployment.mode,
        "product": deployment.product,
        "sizing": deployment.sizing,
        "sizing_value": str(deployment.sizing_value),
    }


def _apply(deployment: Deployment, spec: Spec, checked: Checked) -> None:
    deployment.name = spec.name.strip()
    deployment.strategy = spec.strategy
    deployment.params = checked.params
    deployment.interval = spec.interval
    deployment.product = spec.product
    deployment.mode = spec.mode
    deployment.allow_short = spec.allow_short
    deployment.sizing = spec.sizing
    deployment.sizing_value = spec.sizing_value
    deployment.window_start = spec.window_start
    deployment.last_entry = spec.last_entry
    deployment.squareoff_at = spec.squareoff_at
    deployment.days = ",".join(str(d) for d in sorted(set(spec.days)))
    deployment.max_loss = spec.max_loss
    deployment.max_orders_per_day = spec.max_orders_per_day
    deployment.max_open_positions = spec.max_open_positions
    # rows kept where they stay (an instrument's evaluation cursor, a client's paper twin)
    keep_instruments = {di.instrument_id: di for di in deployment.instruments}
    deployment.instruments = [
        keep_instruments.get(i.id) or DeploymentInstrument(instrument_id=i.id) for i in checked.instruments
    ]
    keep_clients = {dc.client_id: dc for dc in deployment.clients}
    rows = []
    for client in checked.clients:
        row = keep_clients.get(client.id) or DeploymentClient(client_id=client.id)
        row.sizing_value = spec.client_sizing.get(client.id)
        row.capital = spec.client_capital.get(client.id)
        rows.append(row)
    deployment.clients = rows


def create(user: User, spec: Spec, checked: Checked, ip: str | None = None) -> Deployment:
    """A new deployment, PAUSED, from a spec `validate` passed. The caller commits, then announces."""
    if not checked.ok:
        raise DeploymentError("the deployment did not validate")
    deployment = Deployment(state=PAUSED, state_reason="new: start it when ready", created_by_id=user.id)
    _apply(deployment, spec, checked)
    db.session.add(deployment)
    db.session.flush()
    audit.record(
        "deployment.created",
        **_actor(user),
        target=f"deployment:{deployment.id}",
        clients=_client_ids(deployment),
        detail=_summary(deployment),
        ip=ip,
    )
    return deployment


def edit_refusal(deployment: Deployment) -> str:
    """Why this deployment may not be changed now ("" when it may: it is paused)."""
    if deployment.state == PAUSED:
        return ""
    return "Pause the deployment before changing it." if deployment.state == ACTIVE else FINAL


def edit(user: User, deployment: Deployment, spec: Spec, checked: Checked, ip: str | None = None) -> None:
    """Change a paused deployment (a running one is paused first; a stopped one is final)."""
    if refusal := edit_refusal(deployment):
        raise DeploymentError(refusal)
    if not checked.ok:
        raise DeploymentError("the deployment did not validate")
    before = _summary(deployment)
    _apply(deployment, spec, checked)
    db.session.flush()
    audit.record(
        "deployment.edited",
        **_actor(user),
        target=f"deployment:{deployment.id}",
        clients=_client_ids(deployment),
        detail={"before": before, "after": _summary(deployment)},
        ip=ip,
    )


def automation_off() -> bool:
    state = db.session.get(DeskState, 1)
    return bool(state and state.automation_off)


def start(user: User, deployment: Deployment, ip: str | None = None) -> None:
    if deployment.state == STOPPED:
        raise DeploymentError(FINAL)
    if deployment.state == ACTIVE:
        raise DeploymentError("This deployment is already running.")
    state = db.session.get(DeskState, 1)
    if state is not None and state.kill_switch:
        raise DeploymentError("The desk kill switch is on: nothing may trade until it is re-armed.")
    if state is not None and state.automation_off:
        raise DeploymentError("Automation is off for the desk: turn it on first.")
    if killed := [dc.client.name for dc in deployment.clients if dc.client.kill_switch]:
        raise DeploymentError(f"Kill switch on for {', '.join(killed)}: re-arm or remove them first.")
    ensure_twins(deployment)  # paper mode: each client's funded paper twin (nothing in live mode)
    _set_state(user, deployment, ACTIVE, f"started by {user.username}", "deployment.started", ip)


def pause(user: User | None, deployment: Deployment, reason: str = "", ip: str | None = None) -> None:
    if deployment.state == STOPPED:
        raise DeploymentError(FINAL)
    if deployment.state == PAUSED:
        raise DeploymentError("This deployment is already paused.")
    why = reason or (f"paused by {user.username}" if user else "paused by the desk")
    _set_state(user, deployment, PAUSED, why, "deployment.paused", ip)


def stop(user: User, deployment: Deployment, ip: str | None = None) -> None:
    """Final: the deployment makes no more signals. Its open positions stay (exit them as any other)."""
    if deployment.state == STOPPED:
        raise DeploymentError("This deployment is already stopped.")
    _set_state(user, deployment, STOPPED, f"stopped by {user.username}", "deployment.stopped", ip)


def _set_state(user: User | None, deployment: Deployment, state: str, reason: str, action: str, ip) -> None:
    before = deployment.state
    deployment.state, deployment.state_reason = state, reason[:300]
    audit.record(
        action,
        **_actor(user),
        target=f"deployment:{deployment.id}",
        clients=_client_ids(deployment),
        detail={"from": before, "to": state, "reason": reason},
        ip=ip,
    )


def set_automation(user: User, off: bool, ip: str | None = None) -> bool:
    """The desk-wide switch: while off, no deployment is evaluated (their states stay as they are, so
    turning it on again resumes the running ones). Returns whether anything changed."""
    state = db.session.get(DeskState, 1)
    if state is None:
        state = DeskState(id=1)
        db.session.add(state)
    elif bool(state.automation_off) == off:
        return False
    state.automation_off = off
    audit.record("automation.off" if off else "automation.on", **_actor(user), target="desk", ip=ip)
    return True


def announce(redis, deployment: Deployment | None = None) -> None:
    """After the commit: pages showing the deployment (or, with None, the desk's automation switch)."""
    if redis is None:  # Redis away (a page's page_redis()): the pages catch up by polling
        return
    if deployment is None:
        publish(redis, EVENT, deployment=None, automation_off=automation_off())
    else:
        publish(redis, EVENT, deployment=deployment.id, state=deployment.state, clients=_client_ids(deployment))
