"""A backtest becomes a paper deployment: the deployment spec built from a finished run (its strategy,
parameters, instrument, interval, product, sizing and capital) for the clients chosen on the page."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from webapp.automation.deployments import MARKET_OPEN, MODES, Spec
from webapp.inputs import MAX_IDS, record_id
from webapp.models import BacktestRun

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
