"""The allowed import directions between the desk's core packages (docs/ARCHITECTURE.md lists them).

From the bottom up: the broker port (webapp.brokers.base) and the registry (webapp.brokers) import
nothing of the desk but the clock helpers; market data (quote store, simulator, candles, stream
machinery) sits on the port; the broker adapters (webapp.brokers.<name>) sit on market data (the
paper exchange prices from the quote store, the brokers' streams use its WebSocket client); the
trading core sits on the registry and market data and never imports an adapter. The feed process
(webapp.marketfeed), jobs/ and the blueprints sit on top and may import any of it.
Checked over every import, function-level ones included, so no package cycle can come back.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("kite", "motilal", "paper", "sharekhan")
FEED_PROCESS = ("webapp.marketfeed",)
BLUEPRINTS = (
    "webapp.admin",
    "webapp.api",
    "webapp.hooks",
    "webapp.auth",
    "webapp.clients",
    "webapp.deployments",
    "webapp.desk",
    "webapp.exits",
    "webapp.feed",
    "webapp.health",
    "webapp.instruments",
    "webapp.orders",
    "webapp.risk",
    "webapp.stops",
    "webapp.backtests",
)
AUTOMATION = ("webapp.automation", "webapp.backtest")  # on the trading core; jobs, pages and the feed on them


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, where) for every import of the desk's own code."""
    found = []
    for folder in ("webapp", "jobs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = module_of(path)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                else:
                    continue
                found += [
                    (source, target, f"{path.relative_to(ROOT)}:{node.lineno}")
                    for target in targets
                    if target.split(".")[0] in ("webapp", "jobs")
                ]
    return found


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def adapter_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["webapp", "brokers"] and parts[2] in ADAPTERS else None


def broken_rule(source: str, target: str) -> str | None:
    if source == "webapp.brokers.base" and not within(target, "webapp.timeutil"):
        return "the broker port imports only the clock helpers"
    if within(source, "webapp.strategies") and not within(target, "webapp.strategies", "webapp.timeutil"):
        return "strategies are pure: they import only themselves and the clock helpers"
    if source == "webapp.brokers" and not within(target, "webapp.brokers.base") and target != "webapp.brokers":
        return "the registry imports only the port (adapters are imported by name at start-up)"
    allowed = {("webapp.demo", "paper"), ("webapp.marketfeed.sources", "paper")}  # the demo seed, the simulator
    if (
        adapter_of(target)
        and adapter_of(target) != adapter_of(source)
        and source != "webapp.brokers"
        and (source, adapter_of(target)) not in allowed
    ):
        return "only the registry imports a broker adapter (ask webapp.brokers for it)"
    if adapter_of(source) and within(target, "webapp.trading", "jobs", *BLUEPRINTS, *FEED_PROCESS):
        return "an adapter imports the port, market data, models and helpers, never the desk above it"
    if within(source, "webapp.marketdata") and within(target, "webapp.trading", "jobs", *BLUEPRINTS, *FEED_PROCESS):
        return "market data sits below trading and the feed process"
    if within(source, "webapp.trading") and within(target, "jobs", *BLUEPRINTS, *FEED_PROCESS, *AUTOMATION):
        return "the trading core imports no job, blueprint, the feed process or the automation above it"
    if within(source, "webapp.marketdata") and within(target, *AUTOMATION):
        return "market data sits below automation and the backtester"
    if within(source, *AUTOMATION) and within(target, "jobs", *BLUEPRINTS, *FEED_PROCESS):
        return "automation and the backtester import no job, blueprint or the feed process"
    return None


def test_imports_follow_the_layers():
    broken = [
        f"{where}: {source} -> {target}: {rule}"
        for source, target, where in imports()
        if (rule := broken_rule(source, target))
    ]
    assert broken == [], "\n".join(broken)


def test_market_data_and_the_trading_core_do_not_import_each_other_both_ways():
    """The package-level cycle the feed process made (it lived in webapp.marketdata and imported
    webapp.trading) is gone: trading reads market data, market data never reads trading."""
    edges = {
        (source.split(".")[1], target.split(".")[1])
        for source, target, _ in imports()
        if source.startswith("webapp.") and target.startswith("webapp.") and len(target.split(".")) > 1
    }
    assert ("trading", "marketdata") in edges
    assert ("marketdata", "trading") not in edges


def test_the_rules_catch_a_cycle():
    assert broken_rule("webapp.brokers.paper.quotes", "webapp.trading.pnl")
    assert broken_rule("webapp.marketdata.store", "webapp.trading.states")
    assert broken_rule("webapp.marketdata.candles", "webapp.marketfeed.feed")
    assert broken_rule("webapp.trading.pnl", "webapp.brokers.kite.adapter")
    assert broken_rule("webapp.brokers.base", "webapp.models")
    assert broken_rule("webapp.strategies.base", "webapp.models")
    assert broken_rule("webapp.automation.runner", "jobs.automation")
    assert broken_rule("webapp.trading.exits", "webapp.automation.alerts")
    assert broken_rule("webapp.backtest.engine", "webapp.backtests.routes")
    assert broken_rule("webapp.strategies", "webapp.strategies.base") is None
    assert broken_rule("webapp.brokers.paper.quotes", "webapp.marketdata.store") is None


def test_the_domain_packages_import_no_flask():
    """Strategies, automation, the backtester and market data run the same in a job, a test or the
    feed: none of them imports Flask (the trading core's one exception is its context builder)."""
    offenders = []
    for folder in ("strategies", "automation", "backtest", "marketdata", "trading"):
        for path in sorted((ROOT / "webapp" / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                if any(n.split(".")[0] in ("flask", "flask_login", "flask_wtf") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [o for o in offenders if not o.startswith("webapp/trading/context.py:")] == []
