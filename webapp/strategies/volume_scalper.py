"""Volume profile scalper (the ShareKhan system's second): the close crossing the rolling volume-weighted
price on a volume spike."""

from __future__ import annotations

from webapp.strategies import indicators as ind
from webapp.strategies import register
from webapp.strategies.base import Candles, ExitsStrategy, Param, Signal, events, with_exits

VOLUME_PARAMS = (
    Param("vwap_period", "VWAP period", int, 20, 1, 1000, "Bars in the rolling volume-weighted typical price"),
    Param("volume_period", "Average volume period", int, 20, 1, 1000, "Previous bars the average volume is over"),
    Param(
        "volume_multiplier",
        "Volume multiplier",
        float,
        2.0,
        0.1,
        100.0,
        "A spike: the bar's volume above this × the average (the seed's VOLUME_MULTIPLIER = 2.0)",
    ),
)


def vwap_crosses(candles: Candles, vwap_period: int, volume_period: int, multiplier: float) -> dict:
    """The scalpers' shared arrays: VWAP, the average volume of the previous bars, the spike and crosses."""
    vwap = ind.vwap(candles.high, candles.low, candles.close, candles.volume, vwap_period)
    average_volume = ind.shift(ind.sma(candles.volume, volume_period))
    return {
        "vwap": vwap,
        "average_volume": average_volume,
        "spike": candles.volume > multiplier * average_volume,
        "up": ind.crosses_above(candles.close, vwap),
        "down": ind.crosses_below(candles.close, vwap),
    }


def vwap_lookback(vwap_period: int, volume_period: int) -> int:
    return max(vwap_period, volume_period)  # the cross reads the VWAP a bar back; the average is of previous bars


class VolumeScalper(ExitsStrategy):
    name = "volume_scalper"
    title = "Volume profile scalper"
    summary = (
        "Enter long on the bar the close crosses above the rolling VWAP with volume above k × the average "
        "of the previous bars; short when it crosses below on such volume. Exit a long when the close "
        "crosses back below the VWAP, a short when it crosses back above. Default stop 0.5 %, target 1 %."
    )
    params = with_exits(*VOLUME_PARAMS, stop_pct=0.5, target_pct=1.0)

    @property
    def lookback(self) -> int:
        return vwap_lookback(self.vwap_period, self.volume_period)

    def _signals(self, candles: Candles) -> list[Signal]:
        a = vwap_crosses(candles, self.vwap_period, self.volume_period, self.volume_multiplier)
        values = {"vwap": a["vwap"], "average_volume": a["average_volume"], "volume": candles.volume}
        return events(candles, a["up"] & a["spike"], a["down"] & a["spike"], a["down"], a["up"], self.exits, values)


register(VolumeScalper)
