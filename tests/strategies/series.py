"""Generated candle series with a real market's shape: positive prices on a tick grid, high >= max(open,
close), low <= min(open, close), flat stretches (no trade: high = low = close, no volume) and volume
spikes. Seeded, so a failure names its seed."""

from __future__ import annotations

import numpy as np

from webapp.strategies import Candles

START = 1_767_239_100  # 2026-01-01 09:15 IST


def make_series(
    n: int,
    seed: int,
    volatility: float = 0.004,
    flat_share: float = 0.1,
    spike_share: float = 0.05,
    tick: float = 0.05,
    price: float = 500.0,
) -> Candles:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, volatility, n)
    # trends and calm spells, so breakouts, squeezes and explosions happen
    returns += np.repeat(rng.normal(0.0, volatility / 2, n // 25 + 1), 25)[:n]
    returns *= np.repeat(rng.choice([0.3, 1.0, 2.5], n // 40 + 1, p=[0.3, 0.5, 0.2]), 40)[:n]
    close = np.maximum(np.round(price * np.exp(np.cumsum(returns)) / tick) * tick, tick)
    flat = rng.random(n) < flat_share
    flat[0] = False
    for i in np.flatnonzero(flat):  # a minute without a trade repeats the last close
        close[i] = close[i - 1]
    open_ = np.r_[close[0], close[:-1]]
    open_[~flat] = np.maximum(
        np.round(open_[~flat] * (1 + rng.normal(0, volatility / 4, (~flat).sum())) / tick) * tick, tick
    )
    open_[flat] = close[flat]
    wick = np.abs(rng.normal(0, volatility / 2, (2, n))) * close
    high = np.maximum(open_, close) + np.round(wick[0] / tick) * tick
    low = np.maximum(np.minimum(open_, close) - np.round(wick[1] / tick) * tick, tick / 2)
    high[flat], low[flat] = close[flat], close[flat]
    volume = rng.integers(100, 5000, n).astype(np.float64)
    volume[rng.random(n) < spike_share] *= rng.uniform(3, 20)
    volume[flat] = 0.0
    return Candles(START + 60 * np.arange(n, dtype=np.int64), open_, high, low, close, np.round(volume))
