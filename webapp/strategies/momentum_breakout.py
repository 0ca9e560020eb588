"""Momentum breakout (the ShareKhan system's first): a strong N-bar rate of change that also breaks the
N-bar channel."""

from __future__ import annotations

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits


class MomentumBreakout(ExitsStrategy):
    name = "momentum_breakout"
    title = "Momentum breakout"
    summary = (
        "Enter long on the bar where the close is up at least the threshold over N bars AND above the highest "
        "high of the previous N bars; short on the mirror image. Exit a long on the bar the N-bar rate of "
        "change turns negative, a short on the bar it turns positive. Default stop: 2 × ATR."
    )
    params = with_exits(
        Param("period", "Momentum period (N bars)", int, 20, 1, 1000, "Bars for the rate of change and channel"),
        Param(
            "threshold_pct",
            "Momentum threshold %",
            float,
            2.0,
            0.01,
            100.0,
            "Least N-bar change of the close, in % (the seed's MOMENTUM_THRESHOLD = 0.02)",
        ),
        stop_atr=2.0,
    )

    @property
    def lookback(self) -> int:
        return self.period + 1  # the channel is the previous N bars; + 1: rules fire on the bar they start

    def _signals(self, candles: Candles) -> list[Signal]:
        close, threshold = candles.close, self.threshold_pct / 100.0
        roc = ind.rate_of_change(close, self.period)
        channel_high = ind.shift(ind.rolling_max(candles.high, self.period))
        channel_low = ind.shift(ind.rolling_min(candles.low, self.period))
        long_entry = ind.starts((roc >= threshold) & (close > channel_high))
        short_entry = ind.starts((roc <= -threshold) & (close < channel_low))
        exit_long, exit_short = ind.starts(roc < 0), ind.starts(roc > 0)
        values = {"roc": roc, "channel_high": channel_high, "channel_low": channel_low}
        return events(candles, long_entry, short_entry, exit_long, exit_short, self.exits, values)


register(MomentumBreakout)
