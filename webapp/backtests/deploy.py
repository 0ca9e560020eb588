"""Backtests and deployments, both ways: a finished run becomes a paper deployment (the deployment spec
built from its strategy, parameters, instrument, interval, product, sizing and capital, for the clients
chosen on the page); a deployment is backtested per client, each with its own capital and sizing."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal

from webapp.automation.deployments import MARKET_OPEN, MODES, Spec, capital_of
from webapp.backtest import runs as service
from webapp.extensions import db
from webapp.inputs import MAX_IDS, record_id
from webapp.models import BacktestRun, Deployment

LAST_ENTRY = time(15, 0)  # IST: the latest entry a deployment made from a backtest takes
WEEKDAYS = [0, 1, 2, 3, 4]
# the deployment mode that trades paper twins (the mode, not a broker: named by the one mode that is not live)
PAPER_MODE = next(mode for mode in MODES if mode != "live")


def client_choice(raw: list[str], allowed: list[int]) -> tuple[list[int], str]:
    """The posted client ids (each one the user may deploy for), or a message."""
    if len(raw) > MAX_IDS:
        return [], f"At most {MAX_IDS} clients."
    ids = [record_id(value) for value in raw]
    if None in ids or any(i not in allowed for i in ids):
        return [], "Choose clients from the list (only enabled clients granted to you)."
    if not ids:
        return [], "Choose at least one client whose paper twin trades it."
    return list(dict.fromkeys(ids)), ""


def deployment_spec(run: BacktestRun, client_ids: list[int]) -> Spec:
    settings = run.settings
    squareoff = settings.get("squareoff")
    squareoff_at = time.fromisoformat(squareoff) if squareoff and settings.get("product") == "MIS" else None
    last_entry = min(LAST_ENTRY, squareoff_at) if squareoff_at else LAST_ENTRY
    capital = Decimal(str(settings["capital"])) if settings.get("capital") else None
    symbol = run.instrument.tradingsymbol if run.instrument else f"instrument {run.instrument_id}"
    return Spec(
        name=f"{run.strategy} {symbol} (backtest #{run.id})"[:80],
        strategy=run.strategy,
        params=dict(run.params),
        instrument_ids=[run.instrument_id],
        interval=run.interval,
        product=settings.get("product", "MIS"),
        mode=PAPER_MODE,
        sizing=settings.get("sizing", "fixed"),
        sizing_value=Decimal(str(settings["sizing_value"])) if settings.get("sizing_value") else None,
        window_start=MARKET_OPEN,
        last_entry=last_entry,
        days=list(WEEKDAYS),
        client_ids=client_ids,
        allow_short=bool(settings.get("allow_short")),
        squareoff_at=squareoff_at,
        client_capital=dict.fromkeys(client_ids, capital) if capital is not None else {},
    )


DEFAULT_PLAN = "zerodha"  # charges for a deployment's backtest: the desk's usual plan (the form offers others)
SQUAREOFF = time(15, 15)


def client_specs(deployment: Deployment) -> tuple[list[service.Spec], list[str]]:
    """One spec per client × instrument of the deployment, over the last year of each instrument's
    stored history at the deployment's interval: the client's own sizing value (else the deployment's)
    and capital (the deployment's figure for it, else its synced funds). Problems as messages."""
    from webapp.marketdata import history

    problems: list[str] = []
    if deployment.product not in ("MIS", "CNC"):
        return [], [f"Backtests model MIS and CNC; this deployment trades {deployment.product}."]
    rows = list(deployment.clients)
    capital = capital_of([row.client for row in rows], {row.client_id: row.capital for row in rows})
    specs = []
    for di in deployment.instruments:
        covered = history.coverage(db.session, di.instrument_id, deployment.interval)
        if covered is None:
            problems.append(f"{di.instrument.tradingsymbol} has no {deployment.interval}-minute history stored.")
            continue
        end = covered[1].astimezone(service.IST).date()
        start = max(covered[0].astimezone(service.IST).date(), end - timedelta(days=365))
        for row in rows:
            money = capital.get(row.client_id)
            if money is None or money <= 0:
                problems.append(f"{row.client.name}: no capital known (set it on the deployment, or sync its funds).")
                continue
            settings = {
                "capital": money,
                "product": deployment.product,
                "allow_short": bool(deployment.allow_short),
                "sizing": deployment.sizing,
                "sizing_value": row.sizing_value or deployment.sizing_value,
                "fill": "next_open",
                "slippage_ticks": 0,
                "squareoff": (deployment.squareoff_at or SQUAREOFF) if deployment.product == "MIS" else None,
                "charges": DEFAULT_PLAN,
                "commission": Decimal(0),
                "client": row.client.name,
                "client_id": row.client_id,
            }
            specs.append(
                service.Spec(
                    deployment.strategy,
                    dict(deployment.params),
                    di.instrument_id,
                    deployment.interval,
                    start,
                    end,
                    service.settings_json(settings),
                )
            )
    return specs, list(dict.fromkeys(problems))
