"""/api/v1 strategies, deployments and backtests: the strategy registry, deployments (create from a spec,
start / pause / stop, their signals) and backtest runs (queue one, follow it, read its metrics, cancel it).

The same domain as the pages: webapp.automation.deployments validates and changes deployments (who sees
which one: `visible_select`, so a deployment trading a client the key's user may not act for is a 404),
webapp.backtest.runs checks, stores, queues and reads runs. Errors come back per field, by the body's
own names (`params.fast`, `client_ids`, `start`)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from flask import g, request
from pydantic import AfterValidator, BaseModel, Field

from webapp.api import bp
from webapp.api.core import ApiError, DecimalIn, Id, Money, Page, PageQuery, Strict, operation, paged, replies
from webapp.automation import deployments as domain
from webapp.automation.sizing import SIZINGS
from webapp.backtest import runs as service
from webapp.backtest.charges import PLANS
from webapp.extensions import db, page_redis
from webapp.models import BacktestRun, Deployment, StrategySignal
from webapp.strategies import all_strategies
from webapp.tasks import queue_available

TAG = "automation"
# a write on /.../{id}: an id the router refuses (0, past INTEGER) answers 405 there; 409 a conflict or an
# Idempotency-Key in use
ID_WRITE = (405, 409)
MAX_PARAMS = 40


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("Give an IST wall-clock time like 09:15, without a zone.")
    return value


IstTime = Annotated[time, AfterValidator(_wall_clock)]
ParamName = Annotated[str, Field(max_length=64)]
ParamValue = bool | int | float | Annotated[str, Field(max_length=64)]
Params = Annotated[
    dict[ParamName, ParamValue],
    Field(default_factory=dict, max_length=MAX_PARAMS, description="The strategy's parameters (omitted: default)."),
]
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))]


def _invalid(errors: dict[str, str], names: dict[str, str] | None = None) -> ApiError:
    """The domain's messages by the body's field names: param_<name> → params.<name>, and `names`."""
    fields = {}
    for name, message in errors.items():
        if name.startswith("param_"):
            name = f"params.{name.removeprefix('param_')}"
        fields[(names or {}).get(name, name)] = message
    return ApiError(422, "invalid", "Some fields are not valid; see `fields`.", fields)


# --- strategies ------------------------------------------------------------------------------------


class ParamOut(BaseModel):
    name: str
    label: str
    type: Literal["int", "float", "bool"]
    default: bool | int | float | None
    minimum: float | None = Field(description="Inclusive (null: unbounded).")
    maximum: float | None = Field(description="Inclusive (null: unbounded).")
    help: str


class StrategyOut(BaseModel):
    name: str = Field(description="The registry name a deployment or a backtest names.")
    title: str
    description: str
    params: list[ParamOut]


@bp.get("/strategies")
@operation("desk.view", scope="read", replies=replies(Page[StrategyOut]), tag=TAG)
def list_strategies(query: PageQuery):
    """List the strategies a deployment or a backtest may run, each parameter with its type, bounds and default."""
    found = all_strategies()
    start = (query.page - 1) * query.per_page
    items = [
        StrategyOut(
            name=cls.name,
            title=cls.title,
            description=cls.summary,
            params=[
                ParamOut(
                    name=p.name,
                    label=p.label,
                    type=p.kind.__name__,
                    default=p.default,
                    minimum=p.minimum,
                    maximum=p.maximum,
                    help=p.help,
                )
                for p in cls.params
            ],
        )
        for cls in found[start : start + query.per_page]
    ]
    pages = max(1, -(-len(found) // query.per_page))
    return Page[StrategyOut](
        items=items,
        page=query.page,
        per_page=query.per_page,
        total=len(found),
        pages=pages,
        next_page=query.page + 1 if query.page < pages else None,
    )


# --- deployments -----------------------------------------------------------------------------------


class DeploymentClientOut(BaseModel):
    client_id: int
    sizing_value: Money | None = Field(description="This client's own sizing value (null: the deployment's).")
    capital: Money | None = Field(description="Capital for % sizing (null: the broker funds last synced).")


class DeploymentOut(BaseModel):
    id: int
    name: str
    state: Literal["ACTIVE", "PAUSED", "STOPPED"]
    state_reason: str
    strategy: str
    params: dict[str, Any] = Field(description="As the strategy validated them (every parameter, defaults included).")
    instrument_ids: list[int]
    interval: int = Field(description="Candle minutes.")
    product: str
    mode: Literal[tuple(domain.MODES)]
    allow_short: bool
    sizing: str
    sizing_value: Money
    window_start: time = Field(description="IST.")
    last_entry: time = Field(description="IST.")
    squareoff_at: time | None = Field(description="IST.")
    days: list[int] = Field(description="0 = Monday.")
    clients: list[DeploymentClientOut]
    max_loss: Money | None
    max_orders_per_day: int | None
    max_open_positions: int | None
    created_at: datetime


def _deployment_out(deployment: Deployment) -> DeploymentOut:
    return DeploymentOut(
        id=deployment.id,
        name=deployment.name,
        state=deployment.state,
        state_reason=deployment.state_reason,
        strategy=deployment.strategy,
        params=deployment.params,
        instrument_ids=[di.instrument_id for di in deployment.instruments],
        interval=deployment.interval,
        product=deployment.product,
        mode=deployment.mode,
        allow_short=deployment.allow_short,
        sizing=deployment.sizing,
        sizing_value=deployment.sizing_value,
        window_start=deployment.window_start,
        last_entry=deployment.last_entry,
        squareoff_at=deployment.squareoff_at,
        days=deployment.day_list,
        clients=[
            DeploymentClientOut(client_id=dc.client_id, sizing_value=dc.sizing_value, capital=dc.capital)
            for dc in deployment.clients
        ],
        max_loss=deployment.max_loss,
        max_orders_per_day=deployment.max_orders_per_day,
        max_open_positions=deployment.max_open_positions,
        created_at=deployment.created_at,
    )


PerClient = Annotated[
    dict[Id, DecimalIn(18, 4, minimum=Decimal("0.0001"))],
    Field(default_factory=dict, max_length=domain.MAX_CLIENTS),
]


class DeploymentIn(Strict):
    name: str = Field(max_length=200)
    strategy: str = Field(max_length=64, description="A name from GET /strategies.")
    params: Params
    instrument_ids: list[Id] = Field(max_length=domain.MAX_INSTRUMENTS)
    interval: int = Field(5, ge=1, le=1440, description="Candle minutes.")
    product: Literal[tuple(domain.PRODUCTS)] = "MIS"  # type: ignore[valid-type]
    mode: Literal[tuple(domain.MODES)] = domain.PAPER  # type: ignore[valid-type]
    allow_short: bool = False
    sizing: Literal[tuple(SIZINGS)] = "fixed"  # type: ignore[valid-type]
    sizing_value: DecimalIn(18, 4) = Field(description="Shares (fixed), lots (multiplier) or a % of capital.")
    window_start: IstTime = Field(domain.MARKET_OPEN, description="IST: entries from.")
    last_entry: IstTime = Field(time(15, 0), description="IST: the last entry.")
    squareoff_at: IstTime | None = Field(None, description="IST: intraday square-off (null: none).")
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field([0, 1, 2, 3, 4], max_length=7, description="0 = Monday.")
    client_ids: list[Id] = Field(max_length=domain.MAX_CLIENTS)
    client_sizing: PerClient = Field(description="A client's own sizing value, by client id.")
    client_capital: PerClient = Field(description="A client's capital for % sizing, by client id.")
    max_loss: DecimalIn(18, 4, minimum=Decimal(0)) | None = None
    max_orders_per_day: int | None = Field(None, ge=0, le=2**31 - 1)
    max_open_positions: int | None = Field(None, ge=0, le=2**31 - 1)


DEPLOYMENT_FIELDS = {"instruments": "instrument_ids", "clients": "client_ids"}


def _visible_deployment(deployment_id: int) -> Deployment:
    found = domain.visible_one(g.api_user, deployment_id)
    if found is None:
        raise ApiError(404, "not_found", "No such deployment, or it trades a client you may not act for.")
    return found


@bp.get("/deployments")
@operation("desk.view", scope="read", replies=replies(Page[DeploymentOut]), tag=TAG)
def list_deployments(query: PageQuery):
    """List the deployments you may see (every one of their clients granted to you), newest first."""
    return paged(domain.visible_select(g.api_user), query, DeploymentOut, _deployment_out)


@bp.get("/deployments/<int:deployment_id>")
@operation("desk.view", scope="read", replies=replies(DeploymentOut), tag=TAG)
def get_deployment(deployment_id: int):
    """One deployment: its strategy, parameters, instruments, clients, window and state."""
    return _deployment_out(_visible_deployment(deployment_id))


@bp.post("/deployments")
@operation("deployments.manage", scope="trade", replies=replies(DeploymentOut, status=201), tag=TAG, idempotent=True)
def create_deployment(json: DeploymentIn):
    """Create a deployment (PAUSED: start it when ready) from a strategy, its parameters, instruments and clients."""
    spec = domain.Spec(
        name=json.name.strip(),
        strategy=json.strategy,
        params=dict(json.params),
        instrument_ids=list(dict.fromkeys(json.instrument_ids)),
        interval=json.interval,
        product=json.product,
        mode=json.mode,
        sizing=json.sizing,
        sizing_value=json.sizing_value,
        window_start=json.window_start,
        last_entry=json.last_entry,
        squareoff_at=json.squareoff_at,
        days=list(dict.fromkeys(json.days)),
        client_ids=list(dict.fromkeys(json.client_ids)),
        allow_short=json.allow_short,
        client_sizing=dict(json.client_sizing),
        client_capital=dict(json.client_capital),
        max_loss=json.max_loss,
        max_orders_per_day=json.max_orders_per_day,
        max_open_positions=json.max_open_positions,
    )
    errors = {}
    if stray := (set(json.client_sizing) | set(json.client_capital)) - set(spec.client_ids):
        errors["client_sizing"] = f"Client {min(stray)} is not among client_ids."
    checked = domain.validate(g.api_user, spec, page_redis())
    errors.update(checked.errors)
    if errors:
        names = {**DEPLOYMENT_FIELDS, **{f"client_{i}": f"client_ids.{i}" for i in spec.client_ids}}
        raise _invalid(errors, names)
    deployment = domain.create(g.api_user, spec, checked, ip=request.remote_addr)
    db.session.commit()
    domain.announce(page_redis(), deployment)
    return _deployment_out(deployment), 201


def _change(deployment_id: int, act) -> DeploymentOut:
    deployment = _visible_deployment(deployment_id)
    try:
        act(deployment)
    except domain.DeploymentError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    db.session.commit()
    domain.announce(page_redis(), deployment)
    return _deployment_out(deployment)


CHANGE = dict(scope="trade", replies=replies(DeploymentOut, extra=ID_WRITE), tag=TAG, idempotent=True)


@bp.post("/deployments/<int:deployment_id>/start")
@operation("deployments.manage", **CHANGE)
def start_deployment(deployment_id: int):
    """Start a paused deployment (409 when it runs already, is stopped, or a kill switch is on)."""
    return _change(deployment_id, lambda d: domain.start(g.api_user, d, ip=request.remote_addr))


@bp.post("/deployments/<int:deployment_id>/pause")
@operation("deployments.manage", **CHANGE)
def pause_deployment(deployment_id: int):
    """Pause a running deployment: no new signals until it is started again (409 when not running)."""
    return _change(deployment_id, lambda d: domain.pause(g.api_user, d, ip=request.remote_addr))


@bp.post("/deployments/<int:deployment_id>/stop")
@operation("deployments.manage", **CHANGE)
def stop_deployment(deployment_id: int):
    """Stop a deployment for good (its open positions stay; 409 when already stopped)."""
    return _change(deployment_id, lambda d: domain.stop(g.api_user, d, ip=request.remote_addr))


class SignalOut(BaseModel):
    id: int
    instrument_id: int
    bar_time: datetime = Field(description="The bar's start (UTC).")
    action: str = Field(description="enter_long, enter_short or exit.")
    price: Money = Field(description="The bar's close.")
    stop: Money | None
    target: Money | None
    trail: Money | None
    batch_id: int | None = Field(description="The batch it made (GET /batches/{id}), or null.")
    outcome: str = Field(description="What became of it, or why it made no batch.")
    created_at: datetime


@bp.get("/deployments/<int:deployment_id>/signals")
@operation("desk.view", scope="read", replies=replies(Page[SignalOut]), tag=TAG)
def list_signals(deployment_id: int, query: PageQuery):
    """A deployment's signals, newest first, each with the batch it made or why it made none."""
    deployment = _visible_deployment(deployment_id)
    select = (
        sa.select(StrategySignal)
        .where(StrategySignal.deployment_id == deployment.id)
        .order_by(StrategySignal.id.desc())
    )
    return paged(select, query, SignalOut)


# --- backtests -------------------------------------------------------------------------------------


class BacktestIn(Strict):
    strategy: str = Field(max_length=64, description="A name from GET /strategies.")
    params: Params
    instrument_id: Id
    interval: int = Field(5, ge=1, le=1440, description="Candle minutes.")
    start: Day = Field(description="The first IST day.")
    end: Day = Field(description="The last IST day (included).")
    capital: DecimalIn(18, 4, minimum=Decimal(1)) = Decimal(100000)
    product: Literal["MIS", "CNC"] = "MIS"
    allow_short: bool = False
    sizing: Literal[tuple(SIZINGS)] = "capital_pct"  # type: ignore[valid-type]
    sizing_value: DecimalIn(18, 4, minimum=Decimal("0.0001")) = Decimal(100)
    fill: Literal["next_open", "close"] = "next_open"
    slippage_ticks: int = Field(0, ge=0, le=100)
    squareoff: IstTime | None = Field(time(15, 15), description="IST: MIS positions squared off (MIS only).")
    charges: str = Field("zerodha", max_length=40, description="A charges plan's name, or `off`.")
    commission: DecimalIn(18, 4, minimum=Decimal(0)) = Decimal(0)


class BacktestOut(BaseModel):
    id: int
    state: Literal["QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"]
    progress: float = Field(ge=0, le=1)
    error: str
    strategy: str
    params: dict[str, Any]
    instrument_id: int
    interval: int
    start: date
    end: date
    settings: dict[str, Any] = Field(description="As stored: money as decimal strings.")
    sweep_id: int | None
    bars: int | None = Field(description="Candles the run walked (when DONE).")
    metrics: dict[str, str | None] | None = Field(description="By name, each number as a decimal string (when DONE).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _metric(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return format(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), "f")


def _backtest_out(run: BacktestRun, redis=None) -> BacktestOut:
    return BacktestOut(
        id=run.id,
        state=run.state,
        progress=service.progress_of(redis, run),
        error=run.error,
        strategy=run.strategy,
        params=run.params,
        instrument_id=run.instrument_id,
        interval=run.interval,
        start=run.start_day,
        end=run.end_day,
        settings=run.settings,
        sweep_id=run.sweep_id,
        bars=run.bars,
        metrics={name: _metric(value) for name, value in run.metrics.items()} if run.metrics is not None else None,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def _visible_run(run_id: int) -> BacktestRun:
    run = service.visible_run(db.session, g.api_user, run_id)
    if run is None:
        raise ApiError(404, "not_found", "No such backtest, or it belongs to a deployment you may not see.")
    return run


@bp.post("/backtests")
@operation("backtests.run", scope="trade", replies=replies(BacktestOut, status=202), tag=TAG, idempotent=True)
def create_backtest(json: BacktestIn):
    """Queue one backtest run of a strategy over stored history; follow it at GET /backtests/{id}."""
    if json.charges != service.CHARGES_OFF and json.charges not in PLANS:
        raise _invalid({"charges": f"Choose a plan ({', '.join(sorted(PLANS))}) or {service.CHARGES_OFF}."})
    spec = service.Spec(
        strategy=json.strategy,
        params=dict(json.params),
        instrument_id=json.instrument_id,
        interval=json.interval,
        start_day=json.start,
        end_day=json.end,
        settings=service.settings_from(
            capital=json.capital,
            product=json.product,
            allow_short=json.allow_short,
            sizing=json.sizing,
            sizing_value=json.sizing_value,
            fill=json.fill,
            slippage_ticks=json.slippage_ticks,
            squareoff=json.squareoff,
            charges=json.charges,
            commission=json.commission,
        ),
    )
    if errors := service.check_spec(db.session, spec):
        raise _invalid(errors)
    if not queue_available():
        raise ApiError(
            503, "unavailable", "Backtests cannot be queued right now (Redis is unavailable); nothing was saved."
        )
    run = service.start_run(db.session, spec, user_id=g.api_user.id)
    return _backtest_out(db.session.get(BacktestRun, run.id)), 202


@bp.get("/backtests")
@operation("desk.view", scope="read", replies=replies(Page[BacktestOut]), tag=TAG)
def list_backtests(query: PageQuery):
    """List backtest runs, newest first (a deployment's runs only when you may see the deployment)."""
    redis = page_redis()
    return paged(service.visible_select(g.api_user), query, BacktestOut, lambda run: _backtest_out(run, redis))


@bp.get("/backtests/<int:run_id>")
@operation("desk.view", scope="read", replies=replies(BacktestOut), tag=TAG)
def get_backtest(run_id: int):
    """One backtest run: its state and progress while it runs, its metrics when done."""
    return _backtest_out(_visible_run(run_id), page_redis())


@bp.post("/backtests/<int:run_id>/cancel")
@operation("backtests.run", scope="trade", replies=replies(BacktestOut, extra=ID_WRITE), tag=TAG, idempotent=True)
def cancel_backtest(run_id: int):
    """Cancel a run: a queued one at once, a running one at its next check (409 when it had ended)."""
    run = _visible_run(run_id)
    redis = page_redis()
    if not service.cancel_run(db.session, run, redis):
        raise ApiError(409, "finished", f"Backtest #{run.id} had already ended ({run.state}).")
    db.session.commit()
    return _backtest_out(run, redis)
