"""RSI mean reversion: long when RSI falls into oversold, short when it rises into overbought, out when
it crosses back through the exit level."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits


class RsiReversion(ExitsStrategy):
    name = "rsi_reversion"
    title = "RSI mean reversion"
    summary = (
        "Enter long on the bar Wilder's RSI falls below the oversold level, short on the bar it rises above "
        "the overbought level; exit on the bar it crosses the exit level (either way)."
    )
    params = with_exits(
        Param("period", "RSI period", int, 14, 2, 200, "Bars in the RSI (Wilder's smoothing)"),
        Param("oversold", "Oversold level", float, 30.0, 1.0, 99.0, "Enter long when RSI falls below this"),
        Param("overbought", "Overbought level", float, 70.0, 1.0, 99.0, "Enter short when RSI rises above this"),
        Param("exit_level", "Exit level", float, 50.0, 1.0, 99.0, "Exit when RSI crosses this (between the two)"),
    )

    @classmethod
    def check_own(cls, values: Mapping[str, Any]) -> dict[str, str]:
        errors = {}
        if values["oversold"] >= values["overbought"]:
            errors["oversold"] = "must be below the overbought level"
        elif not values["oversold"] < values["exit_level"] < values["overbought"]:
            errors["exit_level"] = "must lie between the oversold and overbought levels"
        return errors

    @property
    def lookback(self) -> int:
        return ind.rsi_lookback(self.period) + 1

    def _signals(self, candles: Candles) -> list[Signal]:
        rsi = ind.rsi(candles.close, self.period)
        long_entry = ind.crosses_below(rsi, self.oversold)
        short_entry = ind.crosses_above(rsi, self.overbought)
        # from an oversold entry RSI's next crossing of the exit level is upward, from an overbought one
        # downward, so one EXIT on either crossing closes the right side
        out = ind.crosses_above(rsi, self.exit_level) | ind.crosses_below(rsi, self.exit_level)
        return events(candles, long_entry, short_entry, out, out, self.exits, {"rsi": rsi})


register(RsiReversion)
