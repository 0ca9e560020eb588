"""Each built-in does what docs/strategies.md says: hand-made series where the bar of each signal is
known, and, over a long generated series, every signal's recorded values satisfy its rule."""

from __future__ import annotations

import numpy as np
import pytest

from tests.strategies.series import START, make_series
from webapp.strategies import Action, Candles, create_strategy
from webapp.strategies import indicators as ind


def candles_from_closes(closes, volumes=None, spread=0.5) -> Candles:
    close = np.asarray(closes, dtype=float)
    open_ = np.r_[close[0], close[:-1]]
    volume = np.full(len(close), 1000.0) if volumes is None else np.asarray(volumes, dtype=float)
    return Candles(
        START + 60 * np.arange(len(close)),
        open_,
        np.maximum(open_, close) + spread,
        np.minimum(open_, close) - spread,
        close,
        volume,
    )


def actions(signals):
    return [(s.index, s.action) for s in signals]


def test_ema_crossover_enters_on_the_crossing_bars_with_its_levels():
    closes = [100.0] * 150 + [100 - k for k in range(1, 16)] + [86 + 2 * k for k in range(1, 16)]
    candles = candles_from_closes(closes)
    strategy = create_strategy("ema_crossover", {"fast": 3, "slow": 6, "stop_pct": 1, "target_atr": 2})
    fast, slow = ind.ema(candles.close, 3), ind.ema(candles.close, 6)
    up = [i for i in range(1, len(closes)) if fast[i] > slow[i] and fast[i - 1] <= slow[i - 1]]
    down = [i for i in range(1, len(closes)) if fast[i] < slow[i] and fast[i - 1] >= slow[i - 1]]
    assert len(up) == 1 and len(down) == 1 and down[0] == 150  # the first falling bar; up on the way back
    signals = strategy.signals(candles)
    assert actions(signals) == [(150, Action.ENTER_SHORT), (up[0], Action.ENTER_LONG)]
    long = signals[1]
    close = closes[up[0]]
    atr = ind.atr(candles.high, candles.low, candles.close, 14)[up[0]]
    assert long.stop == pytest.approx(close * 0.99) and long.target == pytest.approx(close + 2 * atr)
    assert long.trail is None
    assert long.values == {"fast_ema": fast[up[0]], "slow_ema": slow[up[0]], "atr": atr}
    assert signals[0].stop == pytest.approx(99 * 1.01)  # a short's stop is above its close


def test_rsi_reversion_enters_oversold_exits_at_the_level_and_shorts_overbought():
    closes = [100.0 + (k % 2) * 0.5 for k in range(60)]  # calm: RSI near 50 (crossing it: exits, no entry)
    closes += [closes[-1] - 1.5 * k for k in range(1, 8)]  # a slide: RSI under 30
    closes += [closes[-1] + 1.5 * k for k in range(1, 20)]  # a rally: over 50, then over 70
    candles = candles_from_closes(closes)
    strategy = create_strategy("rsi_reversion", {"period": 5})
    rsi = ind.rsi(candles.close, 5)
    signals = strategy.signals(candles)
    signals = signals[[s.action for s in signals].index(Action.ENTER_LONG) :]  # the calm's exits before
    kinds = [s.action for s in signals]
    assert kinds[:3] == [Action.ENTER_LONG, Action.EXIT, Action.ENTER_SHORT]
    enter, out, short = signals[:3]
    assert rsi[enter.index] < 30 <= rsi[enter.index - 1]
    assert rsi[out.index] >= 50 > rsi[out.index - 1]
    assert rsi[short.index] > 70 >= rsi[short.index - 1]
    assert enter.values == {"rsi": rsi[enter.index]}


def test_breakout_enters_above_the_channel_and_exits_on_the_opposite_one():
    closes = [100.0, 100.4] * 12 + [102.0, 103.0, 103.5, 101.0, 100.5, 100.3, 100.2]
    candles = candles_from_closes(closes, spread=0.2)
    strategy = create_strategy("breakout", {"entry_period": 20, "exit_period": 3})
    signals = strategy.signals(candles)
    assert actions(signals) == [(24, Action.ENTER_LONG), (28, Action.EXIT_LONG)]
    assert signals[0].values["entry_high"] == pytest.approx(100.6)  # the previous 20 bars' highest high
    assert signals[1].values["exit_low"] == pytest.approx(100.8)  # lows of bars 25-27: 101.8, 102.8, 100.8


def test_a_short_survives_a_long_exit_rule_and_ends_on_its_own():
    closes = [100.0, 100.4] * 12 + [98.0, 97.0, 96.0, 95.0, 99.0]
    candles = candles_from_closes(closes, spread=0.2)
    signals = create_strategy("breakout", {"entry_period": 20, "exit_period": 3}).signals(candles)
    # falling closes are below the 3-bar low too (a long's exit), but a short is only ended above the high
    assert actions(signals) == [(24, Action.ENTER_SHORT), (28, Action.EXIT_SHORT)]


def test_volume_scalper_needs_the_spike_to_enter_and_exits_without_one():
    closes = [100.0] * 10 + [99.0, 101.0, 99.0, 101.5, 99.5]
    volumes = [1000.0] * 10 + [1000.0, 5000.0, 1000.0, 1500.0, 1000.0]
    candles = candles_from_closes(closes, volumes)
    strategy = create_strategy("volume_scalper", {"vwap_period": 5, "volume_period": 5, "volume_multiplier": 2})
    signals = strategy.signals(candles)
    # bar 11 crosses above on 5× volume: long; 12 crosses below quietly: exit the long; 13 crosses above
    # on 1.5× (not a spike): only a short's exit; 14 crosses below quietly: a long's exit
    assert actions(signals) == [
        (10, Action.EXIT_LONG),  # 99 crosses below the flat VWAP of 100: a long's exit (nothing when flat)
        (11, Action.ENTER_LONG),
        (12, Action.EXIT_LONG),
        (13, Action.EXIT_SHORT),
        (14, Action.EXIT_LONG),
    ]
    long = signals[1]
    assert long.stop == pytest.approx(101 * 0.995) and long.target == pytest.approx(101 * 1.01)
    assert long.values["volume"] == 5000.0 and long.values["average_volume"] == pytest.approx(1000.0)


LONG = make_series(4000, seed=2026, volatility=0.006, flat_share=0.1, spike_share=0.08)


def check_rule(name, signal, v, candles):
    i, close = signal.index, float(candles.close[signal.index])
    if name == "momentum_breakout":
        if signal.action is Action.ENTER_LONG:
            assert v["roc"] >= 0.02 and close > v["channel_high"]
        elif signal.action is Action.ENTER_SHORT:
            assert v["roc"] <= -0.02 and close < v["channel_low"]
        else:
            assert (v["roc"] < 0) if signal.action is Action.EXIT_LONG else (v["roc"] > 0)
    elif name in ("volume_scalper", "optimized_scalper"):
        if signal.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
            assert v["volume"] > 2.0 * v["average_volume"]
        above = close > v["vwap"]
        assert above == (signal.action in (Action.ENTER_LONG, Action.EXIT_SHORT))
        if name == "optimized_scalper" and signal.action is Action.ENTER_LONG:
            assert close > v["trend_ema"]
        if name == "optimized_scalper" and signal.action is Action.ENTER_SHORT:
            assert close < v["trend_ema"]
    elif name == "volatility_explosion":
        if signal.action is Action.ENTER_LONG:
            assert close > v["upper"]
        elif signal.action is Action.ENTER_SHORT:
            assert close < v["lower"]
        if signal.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
            assert float(candles.high[i] - candles.low[i]) > 1.5 * v["atr_before"]
        if signal.action is Action.EXIT_LONG:
            assert close < v["middle"]
    elif name == "confluence":
        if signal.action is Action.ENTER_LONG:
            assert v["bullish_votes"] >= 3
        elif signal.action is Action.ENTER_SHORT:
            assert v["bearish_votes"] >= 3
        elif signal.action is Action.EXIT_LONG:
            assert v["bullish_votes"] < 2
        else:
            assert v["bearish_votes"] < 2


@pytest.mark.parametrize(
    "name", ["momentum_breakout", "volume_scalper", "optimized_scalper", "volatility_explosion", "confluence"]
)
def test_every_signal_of_the_sharekhan_five_satisfies_its_rule(name):
    strategy = create_strategy(name, {})
    signals = strategy.signals(LONG)
    entries = [s for s in signals if s.action in (Action.ENTER_LONG, Action.ENTER_SHORT)]
    assert entries, "the defaults enter on a 4,000-bar series"
    for signal in signals:
        check_rule(name, signal, signal.values, LONG)


def test_an_entry_carries_no_level_the_parameters_did_not_ask_for():
    signal = create_strategy("breakout", {"entry_period": 5, "exit_period": 5}).signals(LONG)[0]
    assert (signal.stop, signal.target, signal.trail) == (None, None, None)
    assert "atr" not in signal.values


def test_trailing_distance_is_a_distance_in_price():
    strategy = create_strategy("breakout", {"entry_period": 5, "exit_period": 5, "trail_pct": 2})
    entry = next(s for s in strategy.signals(LONG) if s.action is Action.ENTER_SHORT)
    assert entry.trail == pytest.approx(float(LONG.close[entry.index]) * 0.02)


def test_signal_at_last_wants_the_warm_up_and_reads_no_more():
    strategy = create_strategy("ema_crossover", {"fast": 3, "slow": 8})
    with pytest.raises(ValueError, match=f"needs {strategy.warmup + 1} bars"):
        strategy.signal_at_last(LONG.tail(strategy.warmup))
    assert strategy.signals(LONG.tail(strategy.warmup)) == []
