"""Indicators over numpy arrays, each FINITE-MEMORY: the value at bar i is a function of a fixed number
of bars ending at i (its lookback), computed with the same floating-point operations in the same order
whatever the array's length or where bar i sits in it. So a strategy gives bit-for-bit the same value at
a bar from the whole history (the backtester) as from the last warmup + 1 bars (the live runner).

How: sums over a window are built by adding shifted slices one offset at a time (never cumsum, whose
rounding depends on everything before), maxima/minima over sliding windows (exact), and the recursive
indicators (EMA, Wilder's RSI and ATR) are restarted at every bar over a fixed window: seeded by the
simple mean of the window's first `period` values, then smoothed over the rest. The window is long
enough that the seed's weight left in the result is at most TAIL, so the value differs from the
infinite-memory textbook one (TA-Lib's, checked in tests/strategies/test_indicators.py) by at most
TAIL × the series' range. Values not yet defined (too few bars) are NaN. docs/strategies.md has every
definition.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# The weight a recursive indicator's seed may keep in its value: 1e-4 of the price range, below a
# rupee tick for any realistic range, for windows of about 4.6 × period (EMA) or 9.2 × period (Wilder)
TAIL = 1e-4


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def recursive_window(period: int, alpha: float) -> int:
    """Bars an exponential smoothing reads: `period` to seed it, then enough for the seed's weight
    (1 - alpha) ** (window - period) to fall to TAIL."""
    if alpha >= 1.0:
        return period
    return period + math.ceil(math.log(TAIL) / math.log(1.0 - alpha))


def ema_window(period: int) -> int:
    return recursive_window(period, 2.0 / (period + 1))


def wilder_window(period: int) -> int:
    return recursive_window(period, 1.0 / period)


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum of x[i-n+1 … i], added left to right."""
    out = _nan(len(x))
    m = len(x) - n + 1
    if m <= 0:
        return out
    acc = np.array(x[0:m], dtype=np.float64)
    for k in range(1, n):
        acc += x[k : k + m]
    out[n - 1 :] = acc
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple mean of the last n values (lookback n - 1)."""
    return rolling_sum(x, n) / n


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    out = _nan(len(x))
    if len(x) >= n:
        out[n - 1 :] = sliding_window_view(x, n).max(axis=-1)
    return out


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    out = _nan(len(x))
    if len(x) >= n:
        out[n - 1 :] = sliding_window_view(x, n).min(axis=-1)
    return out


def shift(x: np.ndarray, k: int = 1) -> np.ndarray:
    """x moved k bars later: out[i] = x[i - k] (NaN for the first k)."""
    out = _nan(len(x))
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def smooth(x: np.ndarray, period: int, alpha: float) -> np.ndarray:
    """Exponential smoothing restarted at each bar over a window of recursive_window(period, alpha)
    values: seed = mean of the window's first `period`, then e = (1 - alpha)·e + alpha·x over the rest.
    Lookback window - 1."""
    window = recursive_window(period, alpha)
    n = len(x)
    out = _nan(n)
    m = n - window + 1
    if m <= 0:
        return out
    beta = 1.0 - alpha
    ax = alpha * np.asarray(x, dtype=np.float64)
    if m <= SCALAR_OUTPUTS:
        out[window - 1 :] = _smooth_scalar(x, ax, m, period, window, beta)
        return out
    e = np.array(x[0:m], dtype=np.float64)
    for k in range(1, period):
        e += x[k : k + m]
    e /= period
    for k in range(period, window):
        e *= beta
        e += ax[k : k + m]
    out[window - 1 :] = e
    return out


# Few outputs (the live path: a window just long enough) are cheaper as Python floats than as a numpy call
# per step. The same IEEE-754 double operations in the same order (add, divide, multiply, add; never a
# fused multiply-add), so the same bits: the exactness tests compare this path with the numpy one.
SCALAR_OUTPUTS = 32


def _smooth_scalar(x: np.ndarray, ax: np.ndarray, m: int, period: int, window: int, beta: float) -> list[float]:
    xs, axs = x.tolist(), ax.tolist()
    values = []
    for j in range(m):
        e = xs[j]
        for k in range(j + 1, j + period):
            e += xs[k]
        e /= period
        for k in range(j + period, j + window):
            e = e * beta + axs[k]
        values.append(e)
    return values


def ema(x: np.ndarray, period: int) -> np.ndarray:
    """EMA, alpha = 2 / (period + 1), over a window of ema_window(period) values (lookback window - 1)."""
    return smooth(x, period, 2.0 / (period + 1))


def ema_lookback(period: int) -> int:
    return ema_window(period) - 1


def wilder(x: np.ndarray, period: int) -> np.ndarray:
    """Wilder's smoothing (RMA), alpha = 1 / period, over a window of wilder_window(period) values."""
    return smooth(x, period, 1.0 / period)


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI: 100 · avg gain / (avg gain + avg loss), both Wilder-smoothed over changes of the
    close; 50 when both are zero (a flat stretch). Lookback rsi_lookback(period)."""
    change = close - shift(close, 1)
    gain = np.maximum(change, 0.0)  # NaN stays NaN
    loss = np.maximum(-change, 0.0)
    avg_gain, avg_loss = wilder(gain, period), wilder(loss, period)
    total = avg_gain + avg_loss
    out = np.full(len(close), 50.0)
    np.divide(100.0 * avg_gain, total, out=out, where=total > 0)
    out[np.isnan(total)] = np.nan
    return out


def rsi_lookback(period: int) -> int:
    return wilder_window(period)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high - low, |high - previous close|, |low - previous close|); NaN for the first bar."""
    previous = shift(close, 1)
    return np.maximum(high - low, np.maximum(np.abs(high - previous), np.abs(low - previous)))


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's ATR: the true range Wilder-smoothed. Lookback atr_lookback(period)."""
    return wilder(true_range(high, low, close), period)


def atr_lookback(period: int) -> int:
    return wilder_window(period)


def macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line, signal line, histogram): line = EMA(fast) - EMA(slow), signal line = EMA(signal) of the
    line, histogram = line - signal line. Lookback macd_lookback(fast, slow, signal)."""
    line = ema(close, fast) - ema(close, slow)
    signal_line = ema(line, signal)
    return line, signal_line, line - signal_line


def macd_lookback(fast: int, slow: int, signal: int) -> int:
    return max(ema_lookback(fast), ema_lookback(slow)) + ema_lookback(signal)


def bollinger(close: np.ndarray, period: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, middle, upper): middle = SMA(period), bands at ± k population standard deviations of
    the same `period` closes. Lookback period - 1."""
    middle = sma(close, period)
    n = len(close)
    m = n - period + 1
    var = _nan(n)
    if m > 0:
        acc = np.zeros(m)
        centre = middle[period - 1 :]
        for j in range(period):
            d = close[j : j + m] - centre
            acc += d * d
        var[period - 1 :] = acc / period
    width = k * np.sqrt(var)
    return middle - width, middle, middle + width


def rate_of_change(close: np.ndarray, n: int) -> np.ndarray:
    """close / close n bars earlier - 1 (a fraction; lookback n)."""
    return close / shift(close, n) - 1.0


def vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """Rolling volume-weighted typical price (high + low + close) / 3 over the last n bars; the plain
    mean of the typical price where those bars traded no volume. Lookback n - 1."""
    typical = (high + low + close) / 3.0
    weighted = rolling_sum(typical * volume, n)
    volume_sum = rolling_sum(volume, n)
    out = sma(typical, n)
    np.divide(weighted, volume_sum, out=out, where=volume_sum > 0)
    return out


def crosses_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """a[i] > b[i] and a[i-1] <= b[i-1] (False where either is undefined)."""
    b_prev = shift(b, 1) if isinstance(b, np.ndarray) else b
    return (a > b) & (shift(a, 1) <= b_prev)


def crosses_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    b_prev = shift(b, 1) if isinstance(b, np.ndarray) else b
    return (a < b) & (shift(a, 1) >= b_prev)


def starts(condition: np.ndarray) -> np.ndarray:
    """condition[i] and not condition[i-1]: the bar a condition becomes true (lookback 1 more)."""
    before = np.zeros(len(condition), dtype=bool)
    before[1:] = condition[:-1]
    return condition & ~before
