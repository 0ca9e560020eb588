"""The numpy indicators against TA-Lib, the maintained C library most trading tools check against
(its Python wrapper ships the library in its wheel, needs only numpy, and seeds EMA, RSI and ATR the
textbook way: with the simple mean of the first `period` values — the same seed as ours).

Two checks each: (1) our value at bar i is exactly TA-Lib's over the window our definition reads (to
1e-9, rounding only); (2) against TA-Lib over the whole series (infinite memory) it is within
TAIL × the series' range once warmed up. And every indicator is finite-memory bit for bit: computed from
the whole series or from just its lookback, the value at a bar is the same float."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from tests.strategies.series import make_series
from webapp.strategies import indicators as ind

SERIES = make_series(1500, seed=7)
H, L, C, V = SERIES.high, SERIES.low, SERIES.close, SERIES.volume
RANGE = float(C.max() - C.min())


def windows(lookback: int, step: int = 37):
    return range(lookback, len(C), step)


@pytest.mark.parametrize("period", [1, 2, 9, 21, 50])
def test_ema_is_talib_ema_over_its_window_and_close_to_the_infinite_one(period):
    ours = ind.ema(C, period)
    lookback = ind.ema_lookback(period)
    assert np.isnan(ours[:lookback]).all() and not np.isnan(ours[lookback:]).any()
    for i in windows(lookback):
        assert ours[i] == pytest.approx(talib.EMA(C[i - lookback : i + 1], period)[-1], rel=1e-9)
    full = talib.EMA(C, period)
    assert np.max(np.abs(ours[lookback:] - full[lookback:])) <= ind.TAIL * RANGE


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_is_talib_rsi_over_its_window_and_close_to_the_infinite_one(period):
    ours = ind.rsi(C, period)
    lookback = ind.rsi_lookback(period)
    assert np.isnan(ours[:lookback]).all() and not np.isnan(ours[lookback:]).any()
    for i in windows(lookback):
        theirs = talib.RSI(C[i - lookback : i + 1], period)[-1]
        assert ours[i] == pytest.approx(theirs, rel=1e-9, abs=1e-9)
    full = talib.RSI(C, period)
    # RSI is a ratio of two smoothed series, each off by at most TAIL of its own range
    assert np.max(np.abs(ours[lookback:] - full[lookback:])) <= 100 * 2 * ind.TAIL * 2


def test_rsi_of_a_flat_stretch_is_50_and_of_a_rise_100():
    flat = np.full(80, 100.0)
    rising = np.linspace(100, 200, 80)
    assert ind.rsi(flat, 5)[-1] == 50.0
    assert ind.rsi(rising, 5)[-1] == 100.0


@pytest.mark.parametrize("period", [1, 5, 14])
def test_atr_is_talib_atr_over_its_window_and_close_to_the_infinite_one(period):
    ours = ind.atr(H, L, C, period)
    lookback = ind.atr_lookback(period)
    assert np.isnan(ours[:lookback]).all() and not np.isnan(ours[lookback:]).any()
    for i in windows(lookback):
        window = slice(i - lookback, i + 1)
        theirs = talib.ATR(H[window], L[window], C[window], period)[-1]
        assert ours[i] == pytest.approx(theirs, rel=1e-9)
    full = talib.ATR(H, L, C, period)
    assert np.max(np.abs(ours[lookback:] - full[lookback:])) <= ind.TAIL * float(H.max() - L.min())


def test_true_range_is_talibs():
    np.testing.assert_allclose(ind.true_range(H, L, C)[1:], talib.TRANGE(H, L, C)[1:], rtol=1e-12)


@pytest.mark.parametrize("period", [2, 5, 20])  # TA-Lib takes periods from 2
def test_sma_rolling_max_min_and_rate_of_change_are_talibs(period):
    np.testing.assert_allclose(ind.sma(C, period), talib.SMA(C, period), rtol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(ind.rolling_max(H, period), talib.MAX(H, period))
    np.testing.assert_array_equal(ind.rolling_min(L, period), talib.MIN(L, period))
    np.testing.assert_allclose(ind.rate_of_change(C, period), talib.ROCR(C, period) - 1.0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(("period", "k"), [(5, 2.0), (20, 2.0), (20, 1.5)])
def test_bollinger_bands_are_talibs(period, k):
    lower, middle, upper = ind.bollinger(C, period, k)
    t_upper, t_middle, t_lower = talib.BBANDS(C, period, k, k, matype=0)
    for ours, theirs in ((lower, t_lower), (middle, t_middle), (upper, t_upper)):
        np.testing.assert_allclose(ours[period - 1 :], theirs[period - 1 :], rtol=1e-9, atol=1e-6)


def test_macd_is_talibs_ema_difference_and_its_signal_line():
    fast, slow, signal = 12, 26, 9
    line, signal_line, histogram = ind.macd(C, fast, slow, signal)
    lookback = ind.macd_lookback(fast, slow, signal)
    assert not np.isnan(histogram[lookback:]).any() and np.isnan(histogram[lookback - 1])
    t_line, t_signal, t_hist = talib.MACD(C, fast, slow, signal)
    # TA-Lib's MACD seeds its EMAs its own way; past the warm-up both forget their seeds
    tolerance = 3 * ind.TAIL * RANGE
    assert np.max(np.abs(line[lookback:] - t_line[lookback:])) <= tolerance
    assert np.max(np.abs(signal_line[lookback:] - t_signal[lookback:])) <= tolerance
    assert np.max(np.abs(histogram[lookback:] - t_hist[lookback:])) <= 2 * tolerance


def test_vwap_is_the_volume_weighted_typical_price():
    n = 10
    ours = ind.vwap(H, L, C, V, n)
    typical = (H + L + C) / 3
    for i in windows(n - 1, step=13):
        window = slice(i - n + 1, i + 1)
        if V[window].sum() > 0:
            expected = float((typical[window] * V[window]).sum() / V[window].sum())
        else:
            expected = float(typical[window].mean())
        assert ours[i] == pytest.approx(expected, rel=1e-12)


def test_vwap_of_bars_without_volume_is_their_mean_typical_price():
    flat = np.full(5, 10.0)
    assert ind.vwap(flat, flat, flat, np.zeros(5), 3)[-1] == 10.0


def test_crosses_and_starts():
    a = np.array([1.0, 2.0, 3.0, 2.0, 1.0, np.nan, 3.0])
    assert ind.crosses_above(a, 2.0).tolist() == [False, False, True, False, False, False, False]
    assert ind.crosses_below(a, 2.0).tolist() == [False, False, False, False, True, False, False]
    condition = np.array([True, True, False, True, True])
    assert ind.starts(condition).tolist() == [True, False, False, True, False]


FINITE = [
    ("ema", lambda x: ind.ema(x.close, 9), ind.ema_lookback(9)),
    ("rsi", lambda x: ind.rsi(x.close, 14), ind.rsi_lookback(14)),
    ("atr", lambda x: ind.atr(x.high, x.low, x.close, 14), ind.atr_lookback(14)),
    ("macd", lambda x: ind.macd(x.close, 12, 26, 9)[2], ind.macd_lookback(12, 26, 9)),
    ("bollinger", lambda x: ind.bollinger(x.close, 20, 2.0)[2], 19),
    ("vwap", lambda x: ind.vwap(x.high, x.low, x.close, x.volume, 20), 19),
    ("sma", lambda x: ind.sma(x.volume, 20), 19),
]


@pytest.mark.parametrize(("name", "compute", "lookback"), FINITE, ids=[f[0] for f in FINITE])
def test_each_indicator_reads_only_its_lookback_bit_for_bit(name, compute, lookback):
    whole = compute(SERIES)
    for i in range(lookback, len(SERIES), 11):
        alone = compute(SERIES[i - lookback : i + 1])
        assert alone[-1] == whole[i], f"{name} at bar {i}"  # the same float, not merely close
        assert np.isnan(compute(SERIES[i - lookback + 1 : i + 1])[-1]), "one bar fewer is not enough"


@pytest.mark.parametrize("period", [3, 14, 50])
def test_the_few_outputs_path_gives_the_numpy_paths_bits(period):
    """smooth() computes a handful of outputs (the live window) with Python floats and many with numpy
    calls: the same operations in the same order, so the same floats."""
    lookback = ind.ema_lookback(period)
    many = ind.ema(C, period)  # well over SCALAR_OUTPUTS outputs
    assert len(C) - lookback > ind.SCALAR_OUTPUTS
    for i in range(lookback, len(C), 29):
        for outputs in (1, 2, ind.SCALAR_OUTPUTS):
            start = i - lookback - outputs + 1
            if start >= 0:
                few = ind.ema(C[start : i + 1], period)
                assert few[-outputs:].tolist() == many[i - outputs + 1 : i + 1].tolist()
    rsi_many = ind.rsi(C, period)
    rsi_lookback = ind.rsi_lookback(period)
    i = rsi_lookback + 40
    assert ind.rsi(C[i - rsi_lookback : i + 1], period)[-1] == rsi_many[i]
