"""backtesting.py (kernc, 0.6.6) driven by OUR strategy's signals inside its Strategy.next, as the reference
our engine's trades are compared with (tests/backtest/test_parity.py, bench/backtest.py).

The driver only says what to do at each bar's close — enter, exit, reverse, move a trailing stop — and
backtesting.py's broker does every fill by its own rules: market orders at the next bar's open (with
`trade_on_close`, at this bar's close), SL/TP by the bar's range with the SL first, commission per order.
Choices that keep both on one footing (docs/backtesting.md says why):
- exits and reversals are plain market orders of the opposite side (hedging=False closes the open trade
  FIFO, the rest opens the new one), not `trade.close()` (which fills at the next open even with
  trade_on_close); the trade's SL/TP are cancelled when the exit is placed, so the market order at the
  next open comes before any stop in that bar (backtesting.py would otherwise try its SL first);
- a trailing stop is the trade's SL, moved at each close to (best price since the entry − distance);
- the MIS square-off is a market exit placed on the bar before the square-off bar, and no entry is placed
  whose fill would be at or after the square-off time;
- positions still open after the last bar are left open (finalize_trades=False) and not compared: our
  engine closes them at the last close ("end"), backtesting.py at the last bar's open.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from webapp.automation import sizing as sizing_rules
from webapp.backtest.engine import IST_OFFSET, Settings, levels
from webapp.strategies import Action, Candles, Signal, next_side


@dataclass(frozen=True)
class RefTrade:
    entry_bar: int
    exit_bar: int
    direction: int
    quantity: int
    entry_price: Decimal
    exit_price: Decimal
    net: Decimal  # backtesting.py's PnL (commission included), to the paisa


def session_times(days: int, start_day: str = "2025-01-01", per_day: int = 375) -> np.ndarray:
    """Bar starts (epoch seconds UTC) for `days` weekdays of 1-minute bars from 09:15 IST."""
    import pandas as pd

    sessions = pd.bdate_range(start_day, periods=days)
    first = sessions.values.astype("datetime64[s]").astype(np.int64) + (9 * 3600 + 15 * 60) - IST_OFFSET
    return (first[:, None] + 60 * np.arange(per_day)[None, :]).ravel()


def frame(candles: Candles):
    import pandas as pd

    return pd.DataFrame(
        {
            "Open": candles.open,
            "High": candles.high,
            "Low": candles.low,
            "Close": candles.close,
            "Volume": candles.volume,
        },
        index=pd.to_datetime(candles.time, unit="s"),
    )


def backtest(candles: Candles, signals: list[Signal], settings: Settings, *, data=None):
    """A backtesting.py Backtest of these signals (not yet run); `data` reuses a frame from `frame()`."""
    from backtesting import Backtest
    from backtesting import Strategy as BtStrategy

    tick = float(settings.tick_size)
    ticks = {name: np.rint(getattr(candles, name) / tick).astype(np.int64) for name in ("high", "low", "close")}
    by_bar = {signal.index: signal for signal in signals}
    n = len(candles)
    at_open = settings.fill == "next_open"
    day, seconds = np.divmod(candles.time.astype(np.int64) + IST_OFFSET, 86400)
    cut = None
    if settings.product == "MIS" and settings.squareoff is not None:
        cut = settings.squareoff.hour * 3600 + settings.squareoff.minute * 60
    price_of = float(settings.tick_size)

    def quantity(close: int, stop: int | None) -> int:
        return sizing_rules.quantity(
            settings.sizing,
            settings.sizing_value,
            price=close * settings.tick_size,
            lot_size=settings.lot_size,
            capital=settings.capital,
            stop=None if stop is None else stop * settings.tick_size,
        )[0]

    class Driven(BtStrategy):
        def init(self) -> None:
            self.pending: tuple[int | None, int | None] = (None, None)  # the next entry's (stop, trail)
            self.armed: dict[int, tuple[int | None, int | None, int]] = {}  # id(trade) -> stop, trail, first bar

        def _trail(self, trade, i: int) -> None:
            key = id(trade)
            if key not in self.armed:
                stop, trail = self.pending
                self.armed = {key: (stop, trail, trade.entry_bar if at_open else trade.entry_bar + 1)}
            stop, trail, first = self.armed[key]
            if trail is None or i < first:
                return
            entry = round(trade.entry_price / tick)
            if trade.is_long:
                level = max(entry, int(ticks["high"][first : i + 1].max())) - trail
                level = level if stop is None else max(level, stop)
            else:
                level = min(entry, int(ticks["low"][first : i + 1].min())) + trail
                level = level if stop is None else min(level, stop)
            trade.sl = level * price_of

        def next(self) -> None:
            i = len(self.data) - 1
            trade = self.trades[0] if self.trades else None
            if trade is not None:
                self._trail(trade, i)
            current = 0 if trade is None else (1 if trade.is_long else -1)
            fill_bar = i + 1 if at_open else i
            if fill_bar >= n:
                return
            signal = by_bar.get(i)
            wanted = current if signal is None else next_side(current, signal.action, settings.allow_short)
            squareoff = (
                cut is not None
                and at_open
                and i + 1 < n
                and seconds[i + 1] >= cut
                and (seconds[i] < cut or day[i] != day[i + 1])
            )
            if squareoff and current != 0:
                wanted = 0
            if wanted == current:
                return
            new_size, stop, target = 0, None, None
            entering = signal is not None and signal.action in (Action.ENTER_LONG, Action.ENTER_SHORT)
            refused = cut is not None and seconds[fill_bar] >= cut
            if wanted != 0 and entering and not refused:
                close = int(ticks["close"][i])
                stop, target, trail = levels(signal, wanted, close, tick)
                q = quantity(close, stop)
                if q > 0:
                    new_size = wanted * q
                    self.pending = (stop, trail)
            if trade is not None:
                trade.sl = None
                trade.tp = None
            total = new_size - (trade.size if trade is not None else 0)
            if total == 0:
                return
            kwargs: dict[str, Any] = {}
            if new_size:
                if stop is not None:
                    kwargs["sl"] = stop * price_of
                if target is not None:
                    kwargs["tp"] = target * price_of
            if total > 0:
                self.buy(size=total, **kwargs)
            else:
                self.sell(size=-total, **kwargs)

    return Backtest(
        data if data is not None else frame(candles),
        Driven,
        cash=float(settings.capital),
        commission=(float(settings.commission), 0.0),
        trade_on_close=not at_open,
        hedging=False,
        exclusive_orders=False,
        finalize_trades=False,
    )


def reference_trades(candles: Candles, signals: list[Signal], settings: Settings) -> list[RefTrade]:
    tick = float(settings.tick_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = backtest(candles, signals, settings).run()
    return trades_of(stats, settings, tick)


def trades_of(stats, settings: Settings, tick: float) -> list[RefTrade]:
    out = []
    frame_ = stats["_trades"]
    for row in frame_.itertuples(index=False):
        size = int(row.Size)
        out.append(
            RefTrade(
                entry_bar=int(row.EntryBar),
                exit_bar=int(row.ExitBar),
                direction=1 if size > 0 else -1,
                quantity=abs(size),
                entry_price=round(row.EntryPrice / tick) * settings.tick_size,
                exit_price=round(row.ExitPrice / tick) * settings.tick_size,
                net=Decimal(repr(round(float(row.PnL), 2))).quantize(Decimal("0.01")),
            )
        )
    return out


def ours(trades) -> list[RefTrade]:
    """Our engine's trades in the reference's shape, leaving out those closed by the end of the data."""
    return [
        RefTrade(t.entry_bar, t.exit_bar, t.direction, t.quantity, t.entry_price, t.exit_price, t.net)
        for t in trades
        if t.exit_reason != "end"
    ]
