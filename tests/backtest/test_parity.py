"""Parity: with charges off and a flat commission, every built-in strategy's trades — entry and exit bar,
price, size, and net P&L — equal backtesting.py's on the same candles, backtesting.py's broker filling
the orders our signals ask for (tests/backtest/btdriver.py). backtesting.py is a dev dependency: without
it these tests fail (they are never skipped)."""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from decimal import Decimal

import numpy as np
import pytest

from tests.backtest.btdriver import ours, reference_trades, session_times
from tests.strategies.series import make_series
from webapp.backtest.engine import Settings, make_plan, run
from webapp.strategies import Candles, builtin_strategies, create_strategy
from webapp.timeutil import IST

D = Decimal

PARITY = Settings(
    capital=D("10000000"),
    product="MIS",
    allow_short=True,
    sizing="fixed",
    sizing_value=D("25"),
    tick_size=D("0.05"),
    lot_size=1,
    squareoff=None,
    charges=None,
    commission=D("20"),
)

# each built-in at its defaults, and again with every kind of exit level armed
EXITS = [
    {},
    {"stop_pct": 0.6, "target_pct": 1.2},
    {"trail_pct": 0.5},
    {"stop_atr": 1.5, "target_atr": 3.0, "trail_atr": 1.0},
]


def on_grid(candles: Candles, tick: float = 0.05) -> Candles:
    """The same candles with every price the one float of its tick count (k × tick): the generated series
    adds tick multiples, whose float sums can sit a hair off k × tick and flip backtesting.py's float
    comparisons against a level that is exactly k × tick."""
    grid = [np.rint(getattr(candles, name) / tick) * tick for name in ("open", "high", "low", "close")]
    return Candles(candles.time, *grid, candles.volume)


def compare(strategy, candles: Candles, settings: Settings) -> int:
    candles = on_grid(candles, float(settings.tick_size))
    result = run(strategy, candles, settings)
    reference = reference_trades(candles, make_plan(strategy, candles).signals, settings)
    mine = ours(result.trades)
    assert len(mine) == len(reference), f"{len(mine)} trades against backtesting.py's {len(reference)}"
    for k, (a, b) in enumerate(zip(mine, reference, strict=True)):
        assert a == b, f"trade {k}: ours {a} != backtesting.py {b}"
    return len(mine)


def exits_for(cls, extra: dict) -> dict:
    names = {param.name for param in cls.params}
    if not set(extra) <= names:
        return {}
    values = dict(extra)
    if any(key.endswith("_atr") for key in extra):  # a default stop in % (volume scalper) gives way to ATR
        values.update({key.replace("_atr", "_pct"): 0.0 for key in extra if key.endswith("_atr")})
    if any(key.endswith("_pct") for key in extra):
        values.update({key.replace("_pct", "_atr"): 0.0 for key in extra if key.endswith("_pct")})
    return values


@pytest.mark.parametrize("cls", builtin_strategies(), ids=lambda cls: cls.name)
@pytest.mark.parametrize("exits", EXITS, ids=["defaults", "stop_target", "trail", "atr_levels"])
def test_every_builtin_strategy_trades_as_backtesting_py(cls, exits):
    strategy = cls(**exits_for(cls, exits))
    total = 0
    for seed in (11, 12):
        candles = make_series(3000, seed)
        total += compare(strategy, candles, PARITY)
    assert total > 0, "no trade to compare: the series must make this strategy trade"


@pytest.mark.parametrize("name", ["ema_crossover", "volume_scalper", "breakout"])
def test_fill_at_the_signal_bars_close(name):
    """fill="close" against backtesting.py's trade_on_close=True."""
    strategy = create_strategy(name, {"stop_pct": 0.6, "target_pct": 1.2, "trail_pct": 0.0, "stop_atr": 0.0})
    settings = replace(PARITY, fill="close")
    assert compare(strategy, make_series(3000, 21), settings) > 0


def test_long_only_cnc_and_risk_sizing():
    """Delivery, no shorts (a down-cross closes the long), quantity by risk % to the stop."""
    strategy = create_strategy("ema_crossover", {"fast": 5, "slow": 20, "stop_pct": 1.0})
    settings = replace(PARITY, product="CNC", allow_short=False, sizing="risk_pct", sizing_value=D("0.5"))
    candles = make_series(3000, 31)
    result = run(strategy, candles, settings)
    assert {t.direction for t in result.trades} == {1}
    assert len({t.quantity for t in result.trades}) > 1  # the size follows the stop distance
    assert compare(strategy, candles, settings) > 0


def test_mis_square_off_inside_sessions():
    """Sessions of 09:15-15:29 IST: squared off at the 15:15 bar's open, no entry from 15:15 on."""
    series = make_series(375 * 8, 41)
    candles = Candles(session_times(8), series.open, series.high, series.low, series.close, series.volume)
    settings = replace(PARITY, squareoff=time(15, 15))
    strategy = create_strategy("ema_crossover", {"fast": 3, "slow": 10})
    result = run(strategy, candles, settings)
    squared = [t for t in result.trades if t.exit_reason == "squareoff"]
    assert squared, "the series must leave positions open at 15:15"
    for trade in squared:
        local = trade.exit_time.astimezone(IST)
        assert (local.hour, local.minute) == (15, 15)
    assert compare(strategy, candles, settings) > 0
