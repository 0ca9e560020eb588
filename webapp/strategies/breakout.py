"""Breakout (Donchian channel): enter on a close beyond the previous N bars' high or low, exit on the
opposite M-bar channel."""

from __future__ import annotations

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits


class Breakout(ExitsStrategy):
    name = "breakout"
    title = "Breakout (N-bar high/low)"
    summary = (
        "Enter long on the bar the close first rises above the highest high of the previous N bars, short "
        "on the bar it first falls below their lowest low; exit a long on the bar the close first falls "
        "below the lowest low of the previous M bars, a short on the bar it first rises above their "
        "highest high."
    )
    params = with_exits(
        Param("entry_period", "Entry channel (N bars)", int, 20, 1, 1000, "Bars whose high/low a close must break"),
        Param("exit_period", "Exit channel (M bars)", int, 10, 1, 1000, "Bars whose opposite low/high ends it"),
    )

    @property
    def lookback(self) -> int:
        return max(self.entry_period, self.exit_period) + 1  # + 1: each rule fires on the bar it starts

    def _signals(self, candles: Candles) -> list[Signal]:
        close = candles.close
        entry_high = ind.shift(ind.rolling_max(candles.high, self.entry_period))
        entry_low = ind.shift(ind.rolling_min(candles.low, self.entry_period))
        exit_high = ind.shift(ind.rolling_max(candles.high, self.exit_period))
        exit_low = ind.shift(ind.rolling_min(candles.low, self.exit_period))
        values = {"entry_high": entry_high, "entry_low": entry_low, "exit_high": exit_high, "exit_low": exit_low}
        long_entry, short_entry = ind.starts(close > entry_high), ind.starts(close < entry_low)
        exit_long, exit_short = ind.starts(close < exit_low), ind.starts(close > exit_high)
        return events(candles, long_entry, short_entry, exit_long, exit_short, self.exits, values)


register(Breakout)
