"""Volatility explosion (the ShareKhan system's third): a wide-range bar breaking out of the Bollinger
bands soon after a squeeze."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits


class VolatilityExplosion(ExitsStrategy):
    name = "volatility_explosion"
    title = "Volatility explosion"
    summary = (
        "A squeeze: the Bollinger bandwidth at its narrowest of the last S bars. Enter long on a bar within R "
        "bars after a squeeze whose range exceeds m × the previous bar's ATR and whose close is above the "
        "upper band; short on the mirror image below the lower band. Exit a long on the bar the close "
        "falls below the middle band, a short on the bar it rises above it. Default stop 2 × ATR."
    )
    params = with_exits(
        Param("period", "Bollinger period", int, 20, 2, 500, "Bars in the bands (the seed's VOLATILITY_WINDOW = 20)"),
        Param("band_k", "Band width (σ)", float, 2.0, 0.1, 10.0, "Standard deviations from the middle band"),
        Param("squeeze_lookback", "Squeeze lookback (S bars)", int, 50, 2, 1000, "A squeeze is the narrowest of these"),
        Param("squeeze_recent", "Squeeze recency (R bars)", int, 5, 1, 200, "The squeeze ended at most this long ago"),
        Param("range_multiplier", "Range × ATR", float, 1.5, 0.1, 20.0, "The explosive bar's range, in ATRs"),
        stop_atr=2.0,
    )

    @classmethod
    def check_own(cls, values: Mapping[str, Any]) -> dict[str, str]:
        # the close is one of the `period` closes its bands are computed from, so it lies at most
        # (period - 1) / sqrt(period) standard deviations from their mean: wider bands it never leaves
        reach = (values["period"] - 1) / math.sqrt(values["period"])
        if values["band_k"] >= reach:
            limit = math.floor(reach * 100) / 100
            return {"band_k": f"must be below {limit} for {values['period']} bars: no close leaves such bands"}
        return {}

    @property
    def lookback(self) -> int:
        squeeze = (self.period - 1) + (self.squeeze_lookback - 1) + self.squeeze_recent
        return max(squeeze, ind.atr_lookback(self.atr_period) + 1) + 1

    def _signals(self, candles: Candles) -> list[Signal]:
        close = candles.close
        lower, middle, upper = ind.bollinger(close, self.period, self.band_k)
        bandwidth = (upper - lower) / middle
        squeeze = (bandwidth <= ind.rolling_min(bandwidth, self.squeeze_lookback)).astype(np.float64)
        recent_squeeze = ind.shift(ind.rolling_max(squeeze, self.squeeze_recent)) == 1.0
        atr_before = ind.shift(ind.atr(candles.high, candles.low, close, self.atr_period))
        explosive = (candles.high - candles.low) > self.range_multiplier * atr_before
        long_entry = ind.starts(recent_squeeze & explosive & (close > upper))
        short_entry = ind.starts(recent_squeeze & explosive & (close < lower))
        exit_long, exit_short = ind.starts(close < middle), ind.starts(close > middle)
        values = {"bandwidth": bandwidth, "upper": upper, "lower": lower, "middle": middle, "atr_before": atr_before}
        return events(candles, long_entry, short_entry, exit_long, exit_short, self.exits, values)


register(VolatilityExplosion)
