"""EMA crossover: long when the fast EMA crosses above the slow one, short when it crosses below."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits


class EmaCrossover(ExitsStrategy):
    name = "ema_crossover"
    title = "EMA crossover"
    summary = (
        "Enter long on the bar the fast EMA of the close crosses above the slow EMA; enter short (or exit a "
        "long when shorts are off) on the bar it crosses below. Optional stop, target and trail."
    )
    params = with_exits(
        Param("fast", "Fast EMA period", int, 9, 1, 500, "Bars in the fast EMA; below the slow period"),
        Param("slow", "Slow EMA period", int, 21, 2, 1000, "Bars in the slow EMA"),
    )

    @classmethod
    def check_own(cls, values: Mapping[str, Any]) -> dict[str, str]:
        if values["fast"] >= values["slow"]:
            return {"fast": "must be below the slow period"}
        return {}

    @property
    def lookback(self) -> int:
        return ind.ema_lookback(self.slow) + 1  # the cross compares with the bar before

    def _signals(self, candles: Candles) -> list[Signal]:
        fast, slow = ind.ema(candles.close, self.fast), ind.ema(candles.close, self.slow)
        up, down = ind.crosses_above(fast, slow), ind.crosses_below(fast, slow)
        return events(candles, up, down, None, None, self.exits, {"fast_ema": fast, "slow_ema": slow})


register(EmaCrossover)
