"""A desk's own strategy module, as FANOUT_STRATEGY_MODULES names one: the runner's tests script its
signals by price, so each test says exactly what a bar makes.

At each bar's close: close >= long_above → enter long; close <= exit_below → exit; raise_above > 0
and close >= raise_above → the strategy raises (a bug on some candles). With stop_pct > 0 an entry
carries a stop that far below the close. When the file FANOUT_TEST_STRATEGY_HOLD names exists, an
evaluation writes "<file>.started" and waits until it is gone (a worker killed mid-evaluation)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from webapp.strategies import Action, Param, Signal, Strategy, register

HOLD_ENV = "FANOUT_TEST_STRATEGY_HOLD"


class Scripted(Strategy):
    name = "test_scripted"
    title = "Scripted (tests)"
    summary = "Signals chosen by the close price."
    params = (
        Param("long_above", "Enter long at or above", float, 1e9, 0),
        Param("exit_below", "Exit at or below", float, 0.0, 0),
        Param("raise_above", "Raise at or above", float, 0.0, 0),
        Param("stop_pct", "Stop %", float, 0.0, 0, 50),
    )

    @property
    def warmup(self) -> int:
        return 1

    def _signals(self, candles) -> list[Signal]:
        hold = os.environ.get(HOLD_ENV)
        if hold and Path(hold).exists():
            Path(hold + ".started").write_text("started")
            deadline = time.monotonic() + 60
            while Path(hold).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        signals = []
        for i, close in enumerate(candles.close):
            if self.raise_above and close >= self.raise_above:
                raise ValueError(f"cannot handle a close of {close:.2f}")
            if close >= self.long_above:
                stop = close * (1 - self.stop_pct / 100) if self.stop_pct else None
                signals.append(Signal(i, Action.ENTER_LONG, stop=stop, values={"close": float(close)}))
            elif close <= self.exit_below:
                signals.append(Signal(i, Action.EXIT, values={"close": float(close)}))
        return signals


register(Scripted)
