"""Confluence amplifier (the ShareKhan system's fourth): enter only when k of four indicators agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits


class Confluence(ExitsStrategy):
    name = "confluence"
    title = "Confluence amplifier"
    summary = (
        "Four votes each bar, each bullish, bearish or neither: trend (close vs EMA), RSI (vs 50), MACD "
        "(histogram vs 0) and volume (a spike above k × average on an up or a down bar). Enter long on the "
        "bar the bullish votes reach the required count, short on the bar the bearish ones do; exit a "
        "long on the bar the bullish votes fall below the exit count, a short likewise."
    )
    params = with_exits(
        Param("required", "Votes to enter", int, 3, 3, 4, "Of the four indicators, how many must agree"),
        Param("exit_below", "Exit below (votes)", int, 2, 1, 4, "Exit when fewer than this still agree"),
        Param("ema_period", "Trend EMA period", int, 50, 2, 1000, "Bars in the trend EMA"),
        Param("rsi_period", "RSI period", int, 14, 2, 200, "Bars in the RSI"),
        Param("macd_fast", "MACD fast", int, 12, 1, 500, "Fast EMA of the MACD line"),
        Param("macd_slow", "MACD slow", int, 26, 2, 1000, "Slow EMA of the MACD line"),
        Param("macd_signal", "MACD signal", int, 9, 1, 500, "EMA of the MACD line for its signal line"),
        Param("volume_period", "Average volume period", int, 20, 1, 1000, "Previous bars the average volume is over"),
        Param("volume_multiplier", "Volume multiplier", float, 1.5, 0.1, 100.0, "A spike: volume above this × average"),
    )

    @classmethod
    def check_own(cls, values: Mapping[str, Any]) -> dict[str, str]:
        errors = {}
        if values["exit_below"] > values["required"]:
            errors["exit_below"] = "must not be above the votes to enter"
        if values["macd_fast"] >= values["macd_slow"]:
            errors["macd_fast"] = "must be below the MACD slow period"
        return errors

    @property
    def lookback(self) -> int:
        return (
            max(
                ind.ema_lookback(self.ema_period),
                ind.rsi_lookback(self.rsi_period),
                ind.macd_lookback(self.macd_fast, self.macd_slow, self.macd_signal),
                self.volume_period,
            )
            + 1
        )

    def _signals(self, candles: Candles) -> list[Signal]:
        close = candles.close
        trend = ind.ema(close, self.ema_period)
        rsi = ind.rsi(close, self.rsi_period)
        _, _, histogram = ind.macd(close, self.macd_fast, self.macd_slow, self.macd_signal)
        average_volume = ind.shift(ind.sma(candles.volume, self.volume_period))
        spike = candles.volume > self.volume_multiplier * average_volume
        bull = _votes(close > trend, rsi > 50.0, histogram > 0.0, spike & (close > candles.open))
        bear = _votes(close < trend, rsi < 50.0, histogram < 0.0, spike & (close < candles.open))
        long_entry, short_entry = ind.starts(bull >= self.required), ind.starts(bear >= self.required)
        exit_long, exit_short = ind.starts(bull < self.exit_below), ind.starts(bear < self.exit_below)
        values = {
            "bullish_votes": bull.astype(np.float64),
            "bearish_votes": bear.astype(np.float64),
            "trend_ema": trend,
            "rsi": rsi,
            "macd_histogram": histogram,
            "average_volume": average_volume,
        }
        return events(candles, long_entry, short_entry, exit_long, exit_short, self.exits, values)


def _votes(*conditions: np.ndarray) -> np.ndarray:
    return np.sum(conditions, axis=0)


register(Confluence)
