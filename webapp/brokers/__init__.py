"""Broker adapters, Redash-style registry: each adapter module ends with `register(Cls)`.

Adding a broker is its own package (webapp/brokers/<name>/, an adapter class declaring its name,
label, options from config, capabilities, rate limits and session schedule) plus one line in
BROKER_MODULES. Code outside webapp/brokers/ asks this registry what a broker can do and never
names one (tests/brokers/test_registry.py checks both).

An adapter whose optional dependency is missing reports `enabled() == False` and is skipped
instead of breaking start-up.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

from webapp.brokers.base import Account, Broker

log = logging.getLogger(__name__)

_registry: dict[str, type[Broker]] = {}
_imported = False  # importing one adapter directly registers it; the rest still need importing
_import_lock = threading.Lock()  # job threads may ask for an adapter at the same moment

# modules imported by import_brokers(); each registers its adapter
BROKER_MODULES = (
    "webapp.brokers.paper",
    "webapp.brokers.kite",
    "webapp.brokers.motilal",
    "webapp.brokers.sharekhan",
    "webapp.brokers.angel",
    "webapp.brokers.kotak",
    "webapp.brokers.upstox",
    "webapp.brokers.dhan",
)


def register(cls: type[Broker]) -> type[Broker]:
    if not cls.enabled():
        log.warning("broker=%s state=disabled reason=missing-dependency", cls.name)
        return cls
    _registry[cls.name] = cls
    return cls


def import_brokers(modules: tuple[str, ...] = BROKER_MODULES) -> None:
    global _imported
    with _import_lock:
        if _imported:
            return
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:  # an adapter with a missing optional dependency
                log.warning("broker_module=%s state=skipped error=%s", module, exc)
        _imported = True


def broker_class(name: str) -> type[Broker]:
    if not _imported:
        import_brokers()
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(f"unknown broker {name!r}") from None


def broker_names() -> list[str]:
    if not _imported:
        import_brokers()
    return sorted(_registry)


def create_broker(name: str, account: Account, options: Mapping[str, Any] | None = None) -> Broker:
    return broker_class(name)(account, options)


def broker_options(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The options `name`'s adapter reads from the desk's settings (its own declaration)."""
    return broker_class(name).options_from(config)


def broker_settings() -> dict[str, str]:
    """Every registered broker's own settings with their defaults (`Broker.settings`): the desk's
    Config reads each from the environment, so a new broker's endpoints need no edit there."""
    return {key: default for name in broker_names() for key, default in broker_class(name).settings.items()}


def broker_choices() -> list[tuple[str, str]]:
    """(name, label) of every registered broker, for forms."""
    return [(name, broker_class(name).label) for name in broker_names()]


def quote_brokers() -> list[str]:
    """Brokers with a quote API, in the order repricing's fallback asks them."""
    return sorted(
        (name for name in broker_names() if broker_class(name).capabilities.quotes),
        key=lambda name: (broker_class(name).quote_preference, name),
    )


def streaming_brokers() -> list[str]:
    return [name for name in broker_names() if broker_class(name).capabilities.streaming]


def history_brokers() -> list[str]:
    """Brokers whose adapter answers historical_candles() (past bars on request)."""
    return [name for name in broker_names() if broker_class(name).capabilities.historical_candles]


def sessionless_brokers() -> list[str]:
    """Brokers with no login (paper): their clients are always connected. Asked once per client
    by Client.session_state(), so it reads the registry directly (about 1 µs)."""
    if not _imported:
        import_brokers()
    return [name for name, cls in _registry.items() if not cls.needs_login()]


# The feed's embedded default: the paper exchange's simulator moves prices (no broker session)
SIMULATED_FEED = "paper"


def paper_broker() -> str:
    """The paper exchange's registry name: a paper deployment's twins trade there (webapp.automation.twins)."""
    return SIMULATED_FEED


def feed_sources() -> tuple[str, ...]:
    """What FEED_SOURCE may name: the simulator, or a broker whose adapter can stream."""
    return (SIMULATED_FEED, *streaming_brokers())
