"""A backtest's measures. Money (P&L, charges, drawdown depth, per-trade averages) is exact Decimal from the
trades; ratios are floats from the equity curve. A ratio with nothing to divide by is NaN (a profit factor
with no losing trade is +inf); the pages show either as a dash.

- net_pnl, gross_pnl, charges: sums over the trades. return_pct: net P&L ÷ capital.
- cagr_pct: (final ÷ capital) ^ (1 ÷ years) − 1, years from the first bar to the last (365.25-day years).
- max_drawdown (₹), max_drawdown_pct: the deepest fall of the equity below its running peak, at bar closes;
  max_drawdown_duration: the longest time, in days, the equity spent below a peak before regaining it
  (or until the last bar).
- win_rate_pct: trades with net > 0 ÷ trades; profit_factor: the winners' net ÷ the losers' |net|;
  expectancy and avg_trade: the mean net a trade; avg_trade_pct: the mean of net ÷ entry value.
- sharpe, sortino: from the daily returns of the equity at each IST day's last bar, risk-free rate 0,
  × √252; sortino divides by the downside deviation (root mean square of the negative returns).
- calmar: cagr_pct ÷ max_drawdown_pct. exposure_pct: bars with a position open ÷ bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

PAISA = Decimal("0.01")
YEAR = 365.25 * 86400
IST_OFFSET = 19800
TRADING_DAYS = 252
NAN = float("nan")


def _money(value: Decimal) -> Decimal:
    return value.quantize(PAISA)


def _float_money(value: float) -> Decimal:
    return Decimal(repr(round(value, 2))).quantize(PAISA)


def drawdown_stats(times: np.ndarray, equity: np.ndarray) -> tuple[float, float, float]:
    """(depth in rupees, depth in %, longest duration in days) of the equity curve."""
    if not len(equity):
        return 0.0, 0.0, 0.0
    peak = np.maximum.accumulate(equity)
    fall = peak - equity
    k = int(np.argmax(fall))
    depth = float(fall[k])
    pct = float(fall[k] / peak[k] * 100.0) if peak[k] > 0 else 0.0
    below = fall > 1e-9
    longest = 0.0
    if below.any():
        edges = np.diff(np.r_[0, below.astype(np.int8), 0])
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        peak_times = times[np.maximum(starts - 1, 0)]
        recovered = times[np.minimum(ends, len(times) - 1)]
        longest = float(np.max(recovered - peak_times)) / 86400.0
    return depth, pct, longest


def daily_returns(times: np.ndarray, equity: np.ndarray) -> np.ndarray:
    if len(equity) < 2:
        return np.zeros(0)
    day = (times.astype(np.int64) + IST_OFFSET) // 86400
    last_of_day = np.r_[day[1:] != day[:-1], True]
    closes = equity[last_of_day]
    if len(closes) < 2:
        return np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return closes[1:] / closes[:-1] - 1.0


def compute(
    trades: Sequence[Any],
    times: np.ndarray,
    equity: np.ndarray,
    capital: Decimal,
    *,
    held_bars: int,
) -> dict[str, Decimal | float | int | str]:
    n_trades = len(trades)
    gross = sum((t.gross for t in trades), Decimal(0))
    charges = sum((t.charges for t in trades), Decimal(0))
    net = sum((t.net for t in trades), Decimal(0))
    wins = [t.net for t in trades if t.net > 0]
    losses = [t.net for t in trades if t.net <= 0]
    won, lost = sum(wins, Decimal(0)), sum(losses, Decimal(0))

    capital_f = float(capital)
    final = capital_f + float(net)
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    years = span / YEAR
    cagr = NAN
    if years > 0 and final > 0 and capital_f > 0:
        exponent = math.log(final / capital_f) / years
        cagr = (math.exp(exponent) - 1.0) * 100.0 if exponent < 50 else math.inf  # a few minutes' gain, a year
    depth, depth_pct, duration = drawdown_stats(times, equity)
    returns = daily_returns(times, equity)
    returns = returns[np.isfinite(returns)]
    if len(returns) > 1 and returns.std(ddof=1) > 0:
        sharpe = float(returns.mean() / returns.std(ddof=1) * math.sqrt(TRADING_DAYS))
    else:
        sharpe = NAN
    downside = np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)) if len(returns) else 0.0
    sortino = float(returns.mean() / downside * math.sqrt(TRADING_DAYS)) if downside > 0 else NAN
    calmar = cagr / depth_pct if depth_pct > 0 and math.isfinite(cagr) else NAN

    per_trade_pct = [float(t.net) / float(t.entry_price) / t.quantity * 100.0 for t in trades if t.entry_price > 0]
    return {
        "net_pnl": _money(net),
        "gross_pnl": _money(gross),
        "charges": _money(charges),
        "return_pct": float(net) / capital_f * 100.0 if capital_f > 0 else NAN,
        "cagr_pct": cagr,
        "max_drawdown": _float_money(depth),
        "max_drawdown_pct": depth_pct,
        "max_drawdown_duration": duration,
        "win_rate_pct": len(wins) / n_trades * 100.0 if n_trades else NAN,
        "profit_factor": (float(won / -lost) if lost < 0 else (math.inf if won > 0 else NAN)),
        "expectancy": _money(net / n_trades) if n_trades else Decimal(0),
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "exposure_pct": held_bars / len(times) * 100.0 if len(times) else 0.0,
        "trades": n_trades,
        "avg_trade": _money(net / n_trades) if n_trades else Decimal(0),
        "avg_trade_pct": float(np.mean(per_trade_pct)) if per_trade_pct else NAN,
        "avg_win": _money(won / len(wins)) if wins else Decimal(0),
        "avg_loss": _money(lost / len(losses)) if losses else Decimal(0),
        "best_trade": _money(max(t.net for t in trades)) if trades else Decimal(0),
        "worst_trade": _money(min(t.net for t in trades)) if trades else Decimal(0),
        "final_equity": _money(capital + net),
    }
