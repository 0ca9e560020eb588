"""What the backtest pages show: metric labels and formats, the sweep table's order and the heatmap of two
parameters. Plain values in, plain values out (the templates draw them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from webapp.backtest.runs import metric_number
from webapp.models import BacktestRun

# the metrics the pages name first, in this order, with their label (others follow, named as stored)
LABELS = {
    "net_pnl": "Net P&L (₹)",
    "gross_pnl": "Gross P&L (₹)",
    "charges": "Charges paid (₹)",
    "return_pct": "Return %",
    "cagr_pct": "CAGR %",
    "max_drawdown_pct": "Max drawdown %",
    "max_drawdown": "Max drawdown (₹)",
    "max_drawdown_duration": "Max drawdown duration",
    "win_rate_pct": "Win rate %",
    "profit_factor": "Profit factor",
    "expectancy": "Expectancy (₹ a trade)",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "exposure_pct": "Exposure %",
    "trades": "Trades",
    "avg_trade": "Average trade (₹)",
    "avg_trade_pct": "Average trade %",
}
SWEEP_COLUMNS = (
    "net_pnl",
    "return_pct",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "sharpe",
    "trades",
    "charges",
)
DEFAULT_METRIC = "net_pnl"
LOWER_IS_BETTER = ("max_drawdown_pct", "max_drawdown", "max_drawdown_duration", "charges")
HEAT_LEVELS = 10


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def ordered_metrics(metrics: dict[str, Any] | None) -> list[tuple[str, str, Any]]:
    """(name, label, value) for every stored metric, the known ones first."""
    metrics = metrics or {}
    names = [n for n in LABELS if n in metrics] + sorted(n for n in metrics if n not in LABELS)
    return [(name, label(name), metrics[name]) for name in names]


def shown(value: Any) -> str:
    """A stored metric for the page: exact decimals as written (to 2 places), floats to 2 places."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        if number.is_finite():
            return f"{number.quantize(Decimal('0.01')):,}"
    return str(value)


def metric_columns(runs: list[BacktestRun]) -> list[str]:
    present = {name for run in runs for name in (run.metrics or {})}
    return [name for name in SWEEP_COLUMNS if name in present]


def sort_runs(runs: list[BacktestRun], key: str, descending: bool, params: list[str]) -> list[BacktestRun]:
    """By a metric or a parameter; runs without a value for it go last."""

    def value(run: BacktestRun):
        raw = run.params.get(key) if key in params else (run.metrics or {}).get(key)
        return metric_number(raw)

    with_value = [r for r in runs if value(r) is not None]
    without = [r for r in runs if value(r) is None]
    return sorted(with_value, key=value, reverse=descending) + without


def best_run(runs: list[BacktestRun], metric: str = DEFAULT_METRIC) -> BacktestRun | None:
    scored = [r for r in runs if metric_number((r.metrics or {}).get(metric)) is not None]
    if not scored:
        return None
    lower = metric in LOWER_IS_BETTER
    pick = min if lower else max
    return pick(scored, key=lambda r: metric_number(r.metrics[metric]))


@dataclass
class Heatmap:
    x: str
    y: str
    metric: str
    xs: list[Any] = field(default_factory=list)
    ys: list[Any] = field(default_factory=list)
    cells: dict[tuple[Any, Any], tuple[BacktestRun, float, int]] = field(default_factory=dict)  # run, value, level


def heatmap(runs: list[BacktestRun], grid: dict[str, list], x: str, y: str, metric: str) -> Heatmap | None:
    """The metric over two swept parameters; where other parameters were swept too, each cell is the best
    run of its (x, y). Levels 0..9 from worst to best (the page colours them)."""
    if x not in grid or y not in grid or x == y:
        return None
    result = Heatmap(x, y, metric, list(grid[x]), list(grid[y]))
    lower = metric in LOWER_IS_BETTER
    for run in runs:
        value = metric_number((run.metrics or {}).get(metric))
        if value is None:
            continue
        cell = (run.params.get(x), run.params.get(y))
        held = result.cells.get(cell)
        if held is None or (value < held[1] if lower else value > held[1]):
            result.cells[cell] = (run, value, 0)
    if not result.cells:
        return result
    values = [v for _, v, _ in result.cells.values()]
    low, high = min(values), max(values)
    span = high - low
    for cell, (run, value, _) in result.cells.items():
        level = 0 if span == 0 else int((value - low) / span * (HEAT_LEVELS - 1) + 0.5)
        result.cells[cell] = (run, value, HEAT_LEVELS - 1 - level if lower else level)
    return result


STATE_CHIPS = {
    "QUEUED": "chip-muted",
    "RUNNING": "chip-amber",
    "DONE": "chip-green",
    "FAILED": "chip-red",
    "CANCELLED": "chip-muted",
}


def state_chip(state: str) -> str:
    return STATE_CHIPS.get(state, "chip-muted")


def settings_rows(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's settings as (label, text) for the page."""
    charges = settings.get("charges")
    rows = [("Client", settings["client"])] if settings.get("client") else []
    rows += [
        ("Capital", f"₹{settings.get('capital')}"),
        ("Product", settings.get("product", "")),
        ("Shorts", "allowed" if settings.get("allow_short") else "off"),
        ("Sizing", f"{settings.get('sizing')} {settings.get('sizing_value')}"),
        ("Fills", "next bar's open" if settings.get("fill", "next_open") == "next_open" else "this bar's close"),
        ("Slippage", f"{settings.get('slippage_ticks', 0)} ticks"),
        ("Charges", charges if charges else "off"),
        ("Flat commission", f"₹{settings.get('commission') or 0} an order"),
    ]
    if settings.get("product") == "MIS":
        rows.append(("Square-off", f"{settings.get('squareoff') or 'none'} IST"))
    return rows
