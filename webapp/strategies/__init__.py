"""Strategies, registered like the broker adapters: each module ends with `register(Cls)`.

The built-ins are listed in STRATEGY_MODULES. A desk adds its own as a Python module on the server
(never code uploaded through the web) and names it in the environment variable FANOUT_STRATEGY_MODULES
(comma-separated module paths). A module that fails to import is logged and skipped, never breaks
start-up. This package is pure: no Flask, no database, nothing of the desk but the clock helpers.
docs/strategies.md has every built-in's exact rule.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from webapp.strategies.base import (
    Action,
    Candles,
    Param,
    ParamError,
    Signal,
    Strategy,
    next_side,
)

__all__ = [
    "Action",
    "Candles",
    "Param",
    "ParamError",
    "Signal",
    "Strategy",
    "all_strategies",
    "create_strategy",
    "import_strategies",
    "next_side",
    "register",
    "strategy_class",
    "strategy_names",
]

log = logging.getLogger(__name__)

STRATEGY_MODULES = (
    "webapp.strategies.ema_crossover",
    "webapp.strategies.rsi_reversion",
    "webapp.strategies.breakout",
    "webapp.strategies.momentum_breakout",
    "webapp.strategies.volume_scalper",
    "webapp.strategies.volatility_explosion",
    "webapp.strategies.confluence",
    "webapp.strategies.optimized_scalper",
)
MODULES_ENV = "FANOUT_STRATEGY_MODULES"

_registry: dict[str, type[Strategy]] = {}
_imported = False
_import_lock = threading.RLock()


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class under its `name`. A second class under a name already taken is refused."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"{cls!r} is not a Strategy")
    for attribute in ("name", "title", "summary", "params"):
        if not hasattr(cls, attribute):
            raise TypeError(f"strategy {cls.__name__} declares no {attribute}")
    existing = _registry.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"strategy name {cls.name!r} is taken by {existing.__module__}.{existing.__qualname__}")
    _registry[cls.name] = cls
    return cls


def configured_modules() -> tuple[str, ...]:
    extra = tuple(part.strip() for part in os.environ.get(MODULES_ENV, "").split(",") if part.strip())
    return STRATEGY_MODULES + extra


def import_strategies(modules: tuple[str, ...] | None = None) -> None:
    """Import the built-ins and the desk's own modules (once). A module that raises is skipped."""
    global _imported
    with _import_lock:
        if _imported:
            return
        for module in configured_modules() if modules is None else modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - a desk's broken module must not stop the desk
                log.error("strategy_module=%s state=skipped error=%s: %s", module, type(exc).__name__, exc)
        _imported = True


def _ready() -> None:
    if not _imported:
        import_strategies()


def strategy_class(name: str) -> type[Strategy]:
    _ready()
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}") from None


def strategy_names() -> list[str]:
    _ready()
    return sorted(_registry)


def all_strategies() -> list[type[Strategy]]:
    """Every registered strategy class, by name."""
    _ready()
    return [_registry[name] for name in sorted(_registry)]


def create_strategy(name: str, values: Mapping[str, Any] | None = None) -> Strategy:
    """The strategy `name` with validated parameters; KeyError for an unknown name, ParamError (field →
    message) for bad values."""
    return strategy_class(name)(**dict(values or {}))


def builtin_strategies() -> list[type[Strategy]]:
    """The strategies the desk ships (STRATEGY_MODULES), without any a desk or a test added."""
    return [cls for cls in all_strategies() if cls.__module__ in STRATEGY_MODULES]
