"""Optimized volume scalper (the ShareKhan system's fifth): the volume scalper, trading only with the
trend of a rising/falling EMA, with ATR stop and target."""

from __future__ import annotations

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits
from webapp.strategies.volume_scalper import VOLUME_PARAMS, vwap_crosses, vwap_lookback


class OptimizedScalper(ExitsStrategy):
    name = "optimized_scalper"
    title = "Optimized volume scalper"
    summary = (
        "The volume profile scalper's entries, long only while the close is above a rising trend EMA and "
        "short only while it is below a falling one; same VWAP exits. Default stop 1 × ATR, target 2 × ATR."
    )
    params = with_exits(
        *VOLUME_PARAMS,
        Param("trend_period", "Trend EMA period", int, 50, 2, 1000, "Bars in the trend filter's EMA"),
        stop_atr=1.0,
        target_atr=2.0,
    )

    @property
    def lookback(self) -> int:
        return max(vwap_lookback(self.vwap_period, self.volume_period), ind.ema_lookback(self.trend_period) + 1)

    def _signals(self, candles: Candles) -> list[Signal]:
        a = vwap_crosses(candles, self.vwap_period, self.volume_period, self.volume_multiplier)
        trend = ind.ema(candles.close, self.trend_period)
        previous = ind.shift(trend)
        uptrend = (candles.close > trend) & (trend > previous)
        downtrend = (candles.close < trend) & (trend < previous)
        values = {"vwap": a["vwap"], "average_volume": a["average_volume"], "volume": candles.volume}
        values["trend_ema"] = trend
        long_entry, short_entry = a["up"] & a["spike"] & uptrend, a["down"] & a["spike"] & downtrend
        return events(candles, long_entry, short_entry, a["down"], a["up"], self.exits, values)


register(OptimizedScalper)
