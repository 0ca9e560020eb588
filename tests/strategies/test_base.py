"""Candles, the position rules, parameter validation and the registry."""

from __future__ import annotations

import logging
import sys
from decimal import Decimal

import numpy as np
import pytest

import webapp.strategies as registry
from webapp.strategies import Action, Candles, ParamError, create_strategy, next_side, strategy_names
from webapp.strategies.base import Param, Strategy


def test_candles_from_rows_take_decimals_and_datetimes():
    from datetime import UTC, datetime

    rows = [
        (1_767_239_100, Decimal("100.05"), Decimal("101"), Decimal("99.5"), Decimal("100.5"), 1200),
        (datetime(2026, 1, 1, 3, 46, tzinfo=UTC), 100.5, 102.0, 100.0, 101.5, Decimal("300")),
    ]
    candles = Candles.from_rows(rows)
    assert len(candles) == 2
    assert candles.time.dtype == np.int64 and candles.time.tolist() == [1_767_239_100, 1_767_239_160]
    assert candles.open.dtype == np.float64 and candles.open.tolist() == [100.05, 100.5]
    assert candles.volume.tolist() == [1200.0, 300.0]
    assert len(Candles.from_rows([])) == 0


def test_candles_slice_and_tail_and_refuse_bad_shapes():
    candles = Candles(np.arange(5), *(np.arange(5.0) + k for k in range(5)))
    assert candles.tail(2).time.tolist() == [3, 4]
    assert candles.tail(10).time.tolist() == [0, 1, 2, 3, 4]
    assert len(candles.tail(0)) == 0
    assert candles[1:3].close.tolist() == [4.0, 5.0]
    with pytest.raises(ValueError, match="equal length"):
        Candles(np.arange(3), np.arange(3.0), np.arange(3.0), np.arange(2.0), np.arange(3.0), np.arange(3.0))
    with pytest.raises(TypeError):
        candles[0]


def test_candles_are_read_only_and_do_not_freeze_the_callers_arrays():
    mine = np.arange(3.0)
    candles = Candles(np.arange(3), mine, mine, mine, mine, mine)
    mine[0] = 9.0  # still mine to change
    assert candles.open[0] == 0.0
    with pytest.raises(ValueError):
        candles.close[0] = 1.0


@pytest.mark.parametrize(
    ("current", "action", "allow_short", "after"),
    [
        (0, Action.ENTER_LONG, False, 1),
        (1, Action.ENTER_LONG, False, 1),
        (-1, Action.ENTER_LONG, True, 1),
        (0, Action.ENTER_SHORT, True, -1),
        (0, Action.ENTER_SHORT, False, 0),
        (1, Action.ENTER_SHORT, True, -1),
        (1, Action.ENTER_SHORT, False, 0),
        (-1, Action.ENTER_SHORT, True, -1),
        (1, Action.EXIT, False, 0),
        (-1, Action.EXIT, True, 0),
        (0, Action.EXIT, True, 0),
        (1, Action.EXIT_LONG, True, 0),
        (-1, Action.EXIT_LONG, True, -1),
        (0, Action.EXIT_LONG, True, 0),
        (-1, Action.EXIT_SHORT, True, 0),
        (1, Action.EXIT_SHORT, True, 1),
        (0, Action.EXIT_SHORT, False, 0),
    ],
)
def test_next_side(current, action, allow_short, after):
    assert next_side(current, action, allow_short) == after
    assert next_side(current, action.value, allow_short) == after  # the stored string works too


def test_next_side_refuses_a_side_that_is_not_one():
    with pytest.raises(ValueError):
        next_side(2, Action.EXIT, True)


def test_params_take_form_strings_and_fill_defaults():
    strategy = create_strategy("ema_crossover", {"fast": "5", "slow": " 20 ", "stop_pct": "1.5"})
    assert strategy.values["fast"] == 5 and strategy.values["slow"] == 20 and strategy.values["stop_pct"] == 1.5
    assert strategy.values["atr_period"] == 14  # a default
    assert strategy.fast == 5


def test_every_bad_field_gets_its_own_message_at_once():
    with pytest.raises(ParamError) as caught:
        create_strategy("ema_crossover", {"fast": "0", "slow": "abc", "stop_pct": "nan", "colour": "red"})
    errors = caught.value.errors
    assert errors == {
        "fast": "must be at least 1",
        "slow": "must be a whole number",
        "stop_pct": "must be a finite number",
        "colour": "is not a parameter of EMA crossover",
    }


@pytest.mark.parametrize(
    ("name", "values", "field", "message"),
    [
        ("ema_crossover", {"fast": 21, "slow": 21}, "fast", "must be below the slow period"),
        ("ema_crossover", {"fast": -3}, "fast", "must be at least 1"),
        ("ema_crossover", {"slow": 2.5}, "slow", "must be a whole number"),
        ("ema_crossover", {"stop_pct": 1, "stop_atr": 2}, "stop_atr", "set the stop as a % or as × ATR, not both"),
        ("rsi_reversion", {"oversold": 70, "overbought": 30}, "oversold", "must be below the overbought level"),
        ("rsi_reversion", {"exit_level": 80}, "exit_level", "must lie between the oversold and overbought levels"),
        ("rsi_reversion", {"period": 0}, "period", "must be at least 2"),
        ("breakout", {"entry_period": "1e9"}, "entry_period", "must be a whole number"),
        ("breakout", {"exit_period": 10**6}, "exit_period", "must be at most 1000"),
        ("confluence", {"required": 3, "exit_below": 4}, "exit_below", "must not be above the votes to enter"),
        ("confluence", {"macd_fast": 30}, "macd_fast", "must be below the MACD slow period"),
        ("volume_scalper", {"volume_multiplier": "-1"}, "volume_multiplier", "must be at least 0.1"),
        (
            "volatility_explosion",
            {"period": 5},
            "band_k",
            "must be below 1.78 for 5 bars: no close leaves such bands",
        ),
        ("momentum_breakout", {"threshold_pct": True}, "threshold_pct", "must be a number"),
    ],
)
def test_bad_values_say_what_is_wrong_next_to_the_field(name, values, field, message):
    with pytest.raises(ParamError) as caught:
        create_strategy(name, values)
    assert caught.value.errors[field] == message


def test_bool_params():
    param = Param("flag", "Flag", bool, False)
    assert param.parse("on") is True and param.parse("") is False and param.parse(True) is True
    with pytest.raises(ValueError, match="yes or no"):
        param.parse("maybe")


def test_the_builtins_are_registered_and_described():
    assert [cls.name for cls in registry.builtin_strategies()] == [
        "breakout",
        "confluence",
        "ema_crossover",
        "momentum_breakout",
        "optimized_scalper",
        "rsi_reversion",
        "volatility_explosion",
        "volume_scalper",
    ]
    assert set(strategy_names()) >= {cls.name for cls in registry.builtin_strategies()}  # a test may add its own
    for cls in registry.builtin_strategies():
        described = cls.describe()
        assert described["name"] == cls.name and described["title"] and described["summary"]
        assert all(p["label"] and p["help"] for p in described["params"])
        strategy = cls()  # the defaults validate
        assert strategy.warmup > 0


def test_an_unknown_strategy_is_a_key_error():
    with pytest.raises(KeyError, match="unknown strategy"):
        create_strategy("martingale", {})


def test_a_second_class_cannot_take_a_name():
    class Impostor(Strategy):
        name, title, summary, params = "ema_crossover", "Impostor", "x", ()

    with pytest.raises(ValueError, match="taken"):
        registry.register(Impostor)


@pytest.fixture
def fresh_registry(monkeypatch, tmp_path):
    """A registry that imports again, with a folder of the desk's own modules on the path."""
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))  # the built-ins stay imported
    monkeypatch.setattr(registry, "_imported", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("desk_mean_cross", "desk_broken"):
        sys.modules.pop(name, None)


def test_a_desk_adds_its_own_strategy_module_and_a_broken_one_is_skipped(fresh_registry, monkeypatch, caplog):
    """The example in docs/strategies.md, as the desk's module, works; a broken module is skipped."""
    from pathlib import Path

    from tests.strategies.series import make_series

    doc = (Path(__file__).resolve().parents[2] / "docs" / "strategies.md").read_text()
    example = doc.split("## Adding a strategy", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    (fresh_registry / "desk_mean_cross.py").write_text(example)
    (fresh_registry / "desk_broken.py").write_text("raise RuntimeError('half-written')\n")
    monkeypatch.setenv("FANOUT_STRATEGY_MODULES", "desk_broken, desk_mean_cross,no_such_module")
    with caplog.at_level(logging.ERROR, logger="webapp.strategies"):
        names = strategy_names()
    assert "close_above_sma" in names and "ema_crossover" in names
    strategy = create_strategy("close_above_sma", {"period": "10", "stop_pct": "1"})
    signals = strategy.signals(make_series(500, seed=3))
    assert {s.action for s in signals} == {Action.ENTER_LONG, Action.EXIT_LONG}
    skipped = " ".join(record.getMessage() for record in caplog.records)
    assert "strategy_module=desk_broken state=skipped error=RuntimeError" in skipped
    assert "strategy_module=no_such_module state=skipped" in skipped


def test_the_strategies_package_imports_no_flask_no_database_and_nothing_of_the_desk():
    """Pure: numpy, the standard library, itself and the clock helpers (tests/test_import_rules.py checks
    the desk's own modules; this checks the outside ones)."""
    import ast
    from pathlib import Path

    folder = Path(registry.__file__).parent
    allowed = set(sys.stdlib_module_names) | {"numpy"}
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                desk_ok = name.startswith("webapp.strategies") or name.startswith("webapp.timeutil")
                assert top in allowed or desk_ok, f"{path.name} imports {name}"
