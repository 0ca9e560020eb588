"""The backtest engine: a strategy class (the live code) over a candle series, with the live sizing rules
and Indian charges. Pure: no Flask, no database.

How it works. The strategy's `signals(candles)` is computed once over the whole array. A fill simulator
then walks the signals in time order and, between them, only the bars it must: the bars during which a
position is open with a stop, target or trail armed (vectorised over each stretch with numpy) and the
MIS square-off bars. Prices are held as whole ticks (int64), so every fill is on the tick grid and every
rupee figure that comes back is an exact Decimal.

The rules (docs/backtesting.md states them with backtesting.py's, and where they differ):
- A signal fires at the close of its bar. A market order fills at the next bar's open (`fill="next_open"`),
  or at the signal bar's own close (`fill="close"`); slippage moves a market or stop fill `slippage_ticks`
  against the order. A signal on the last bar has no next bar to fill on: it is dropped.
- A position's side follows `strategies.next_side`: ENTER_LONG while long does nothing (the first entry's
  levels stay); ENTER_SHORT while long reverses when shorts are allowed, else closes.
- Stop, target and trail, from the signal: a stop is rounded to the tick away from the price (a long's down),
  a target too (a long's up), a trail distance up to whole ticks. From the bar the entry filled at its open
  (the bar after, for a fill at the close) each bar's range is checked: a long's stop fills when the low
  reaches it, at min(open, stop) — a gap through it fills at the open; its target when the high reaches it,
  at max(open, target). When both are inside one bar, the stop is taken first. A trailing stop is armed
  at the close of the first bar the position is held through; from then it sits the trail distance from
  the best price since the entry (the entry price and the highs of the bars before the current one); the
  tighter of it and the fixed stop is the stop. Shorts mirror all of this.
- A market order at a bar's open comes before any stop in that bar: an exit signal's fill at the open
  ends the position before its stop could fire later in the bar.
- MIS is squared off at `squareoff` (IST): at the open of the day's first bar starting at or after it, or at
  the close of the day's last bar when none does; no MIS entry fills at or after it. `squareoff=None` (or
  CNC) carries positions overnight. A position still open after the last bar is closed at its close ("end").
- Quantity: `webapp.automation.sizing.quantity` with the signal bar's close (the price the live runner
  knows), the signal's stop, `capital` and the lot; a quantity of 0 skips the entry (counted).
- Charges: one contract note per IST day (webapp.backtest.charges), shared among that day's fills in
  proportion to each fill's own charges, to the paisa; plus `commission` per executed order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

import numpy as np

from webapp.automation import sizing as sizing_rules
from webapp.backtest import charges as charge_rules
from webapp.backtest import metrics as metric_rules
from webapp.strategies import Action, Candles, Signal, Strategy, next_side

IST_OFFSET = 19800  # seconds; IST has no daylight saving
DAY = 86400
FILLS = ("next_open", "close")
EXIT_REASONS = ("signal", "stop", "target", "trail", "squareoff", "end")
_NO_LEVEL = -(2**62)  # a long's unarmed trail (a short's is its negation): no price reaches it
_EPS = 1e-6  # a level within this many ticks of the grid is on it (float noise)


class BacktestCancelled(Exception):
    """The caller's `cancelled()` said stop."""


@dataclass(frozen=True)
class Settings:
    capital: Decimal
    product: str  # "MIS" | "CNC"
    allow_short: bool
    sizing: str  # the live sizing rule (automation.sizing): fixed | multiplier | capital_pct | risk_pct
    sizing_value: Decimal
    tick_size: Decimal
    lot_size: int
    fill: str = "next_open"  # or "close"
    slippage_ticks: int = 0
    squareoff: time | None = time(15, 15)  # IST, MIS only
    charges: str | None = "zerodha"  # a plan name from charges.PLANS, or None = off
    commission: Decimal = Decimal(0)  # flat per executed order (parity mode)
    exchange: str = "NSE"  # for the exchange transaction charge

    def errors(self) -> dict[str, str]:
        """Field → message for settings the engine cannot run with."""
        errors: dict[str, str] = {}
        if not isinstance(self.capital, Decimal) or not self.capital.is_finite() or self.capital <= 0:
            errors["capital"] = "must be above zero"
        if self.product not in charge_rules.PRODUCTS:
            errors["product"] = "must be MIS or CNC"
        elif self.product == "CNC" and self.allow_short:
            errors["allow_short"] = "short selling needs MIS: a delivery (CNC) short cannot be carried"
        if self.sizing not in sizing_rules.SIZINGS:
            errors["sizing"] = f"must be one of {', '.join(sizing_rules.SIZINGS)}"
        if not isinstance(self.sizing_value, Decimal) or not self.sizing_value.is_finite() or self.sizing_value <= 0:
            errors["sizing_value"] = "must be above zero"
        if not isinstance(self.tick_size, Decimal) or not self.tick_size.is_finite() or self.tick_size <= 0:
            errors["tick_size"] = "must be above zero"
        if not isinstance(self.lot_size, int) or self.lot_size < 1:
            errors["lot_size"] = "must be a whole number, at least 1"
        if self.fill not in FILLS:
            errors["fill"] = "must be next_open or close"
        if not isinstance(self.slippage_ticks, int) or not 0 <= self.slippage_ticks <= 1000:
            errors["slippage_ticks"] = "must be a whole number of ticks, 0 to 1000"
        if self.squareoff is not None and not isinstance(self.squareoff, time):
            errors["squareoff"] = "must be a time of day"
        if self.charges is not None and self.charges not in charge_rules.PLANS:
            errors["charges"] = f"unknown plan; known: {', '.join(sorted(charge_rules.PLANS))}"
        if not isinstance(self.commission, Decimal) or not self.commission.is_finite() or self.commission < 0:
            errors["commission"] = "must be zero or more"
        if self.exchange not in charge_rules.EXCHANGES:
            errors["exchange"] = "must be NSE or BSE"
        return errors

    def check(self) -> None:
        errors = self.errors()
        if errors:
            raise ValueError("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass(frozen=True)
class Trade:
    entry_time: datetime  # UTC: the start of the bar the entry filled in
    exit_time: datetime
    direction: int  # +1 long, -1 short
    quantity: int
    entry_price: Decimal
    exit_price: Decimal
    gross: Decimal
    charges: Decimal
    net: Decimal
    exit_reason: str  # signal | stop | target | trail | squareoff | end
    entry_bar: int = -1  # indexes into the candles given
    exit_bar: int = -1


@dataclass
class Result:
    trades: list[Trade]
    times: np.ndarray  # bar start, epoch seconds UTC
    equity: np.ndarray  # rupees at each bar's close (float64, for the charts)
    drawdown: np.ndarray  # % below the running peak at each bar's close (<= 0)
    metrics: dict[str, Decimal | float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Client:
    """One client of a multi-client deployment: its own capital and sizing (run_clients)."""

    key: str
    capital: Decimal
    sizing: str
    sizing_value: Decimal


# --- preparing the series ------------------------------------------------------------------------------
@dataclass
class _Market:
    n: int
    time: np.ndarray
    open: np.ndarray  # ticks, int64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    tick: Decimal
    day: np.ndarray  # IST day number of each bar
    seconds: np.ndarray  # IST seconds since midnight of each bar's start
    squareoff_bar: np.ndarray  # MIS: each day's square-off bar, ascending
    squareoff_at_open: np.ndarray  # ... at its open (else at its close)
    squareoff_seconds: int | None


def _ticks(prices: np.ndarray, tick: float) -> np.ndarray:
    return np.rint(prices / tick).astype(np.int64)


def prepare(candles: Candles, settings: Settings) -> _Market:
    n = len(candles)
    tick_f = float(settings.tick_size)
    for name in ("open", "high", "low", "close"):
        bad = np.flatnonzero(~np.isfinite(getattr(candles, name)) | (getattr(candles, name) <= 0))
        if len(bad):
            raise ValueError(f"the candles have a missing or non-positive {name} price at bar {int(bad[0])}")
    local = candles.time.astype(np.int64) + IST_OFFSET
    day, seconds = np.divmod(local, DAY)
    market = _Market(
        n=n,
        time=candles.time,
        open=_ticks(candles.open, tick_f),
        high=_ticks(candles.high, tick_f),
        low=_ticks(candles.low, tick_f),
        close=_ticks(candles.close, tick_f),
        tick=settings.tick_size,
        day=day,
        seconds=seconds,
        squareoff_bar=np.zeros(0, dtype=np.int64),
        squareoff_at_open=np.zeros(0, dtype=bool),
        squareoff_seconds=None,
    )
    if settings.product == "MIS" and settings.squareoff is not None and n:
        cut = settings.squareoff.hour * 3600 + settings.squareoff.minute * 60 + settings.squareoff.second
        market.squareoff_seconds = cut
        new_day = np.r_[True, day[1:] != day[:-1]]
        last_of_day = np.r_[day[1:] != day[:-1], True]
        after = seconds >= cut
        first_after = after & (new_day | np.r_[True, ~after[:-1]])  # the day's first bar at/after the cut
        # a day whose bars all start before the cut is squared off at its last bar's close
        day_ids = np.cumsum(new_day) - 1
        has_after = np.zeros(int(day_ids[-1]) + 1, dtype=bool)
        has_after[day_ids[after]] = True
        at_close = last_of_day & ~has_after[day_ids]
        bars = np.flatnonzero(first_after | at_close)
        market.squareoff_bar = bars
        market.squareoff_at_open = first_after[bars]
    return market


# --- levels ----------------------------------------------------------------------------------------------
def _level(value: float | None, tick: float, up: bool) -> int | None:
    """A price level in whole ticks, rounded up or down (a value within float noise of the grid is on it)."""
    if value is None or not math.isfinite(value):
        return None
    q = value / tick
    r = round(q)
    if abs(q - r) < _EPS:
        return int(r)
    return math.ceil(q) if up else math.floor(q)


def levels(signal: Signal, direction: int, close: int, tick: float) -> tuple[int | None, int | None, int | None]:
    """(stop, target, trail) of an entry signal in ticks: stop and target rounded away from the price,
    kept strictly on their side of the signal bar's close; the trail in whole ticks, at least one."""
    if signal.stop is None and signal.target is None and signal.trail is None:
        return None, None, None
    long = direction == 1
    stop = _level(signal.stop, tick, up=not long)
    target = _level(signal.target, tick, up=long)
    if stop is not None:
        stop = min(stop, close - 1) if long else max(stop, close + 1)
        if stop <= 0:
            stop = None
    if target is not None:
        target = max(target, close + 1) if long else min(target, close - 1)
        if target <= 0:
            target = None
    trail = None
    if signal.trail is not None and math.isfinite(signal.trail) and signal.trail > 0:
        trail = max(_level(signal.trail, tick, up=True) or 1, 1)
    return stop, target, trail


# --- the simulator ---------------------------------------------------------------------------------------
@dataclass
class _Position:
    direction: int
    quantity: int
    entry_bar: int
    entry: int  # ticks
    stop: int | None
    target: int | None
    trail: int | None
    scan_from: int  # the first bar whose range has not been checked
    extreme: int  # best price since the entry (ticks), for the trail
    trail_from: int  # the first bar the trail is armed in (it arms at the close of the first bar held through)


@dataclass
class _Closed:
    direction: int
    quantity: int
    entry_bar: int
    entry: int
    exit_bar: int
    exit: int
    reason: str


@dataclass(frozen=True)
class Plan:
    """A strategy's signals, made once for a series (run_clients shares one among clients)."""

    signals: list[Signal]


def _scan(position: _Position, m: _Market, a: int, b: int, slip: int) -> tuple[int, int, str] | None:
    """Check bars a..b (inclusive) against the position's stop, target and trail. Returns (bar, price,
    reason) of the first exit, or None (the trail's extreme then moves past b)."""
    if b < a:
        return None
    if position.stop is None and position.target is None and position.trail is None:
        return None
    d = position.direction
    lows, highs = m.low[a : b + 1], m.high[a : b + 1]
    adverse, favourable = (lows, highs) if d == 1 else (highs, lows)
    stop_level = None
    trail_level = None
    if position.trail is not None:
        if d == 1:
            run = np.maximum.accumulate(highs)
            before = np.maximum(np.r_[position.extreme, run[:-1]], position.extreme)
            trail_level = before - position.trail
        else:
            run = np.minimum.accumulate(lows)
            before = np.minimum(np.r_[position.extreme, run[:-1]], position.extreme)
            trail_level = before + position.trail
        if position.trail_from > a:  # not armed yet in the first bars of the stretch
            unarmed = min(position.trail_from - a, len(trail_level))
            trail_level[:unarmed] = _NO_LEVEL if d == 1 else -_NO_LEVEL
        stop_level = trail_level
        if position.stop is not None:
            stop_level = np.maximum(trail_level, position.stop) if d == 1 else np.minimum(trail_level, position.stop)
    elif position.stop is not None:
        stop_level = position.stop
    hit = np.zeros(len(lows), dtype=bool)
    stop_hit = None
    if stop_level is not None:
        stop_hit = adverse <= stop_level if d == 1 else adverse >= stop_level
        hit |= stop_hit
    if position.target is not None:
        target_hit = favourable >= position.target if d == 1 else favourable <= position.target
        hit |= target_hit
    found = np.flatnonzero(hit)
    if not len(found):
        if position.trail is not None:
            position.extreme = max(position.extreme, int(run[-1])) if d == 1 else min(position.extreme, int(run[-1]))
        position.scan_from = b + 1
        return None
    k = int(found[0])
    bar = a + k
    open_ = int(m.open[bar])
    if stop_hit is not None and stop_hit[k]:
        level = int(stop_level[k]) if isinstance(stop_level, np.ndarray) else int(stop_level)
        price = (min(open_, level) - slip) if d == 1 else (max(open_, level) + slip)
        reason = "stop"
        if trail_level is not None and (position.stop is None or level != position.stop):
            reason = "trail"
        return bar, price, reason
    price = max(open_, position.target) if d == 1 else min(open_, position.target)
    return bar, price, "target"


def _advance(position: _Position, m: _Market, through: int, slip: int) -> tuple[int, int, str] | None:
    """Walk the position from its scan point through bar `through` (its whole range): square-offs and
    stops in time order. Returns the exit (bar, price, reason) or None."""
    a = position.scan_from
    if through < a:
        return None
    if m.squareoff_seconds is not None and len(m.squareoff_bar):
        k = int(np.searchsorted(m.squareoff_bar, a))
        if k < len(m.squareoff_bar) and m.squareoff_bar[k] <= through:
            s = int(m.squareoff_bar[k])
            at_open = bool(m.squareoff_at_open[k])
            hit = _scan(position, m, a, s - 1 if at_open else s, slip)
            if hit is not None:
                return hit
            price = (int(m.open[s]) if at_open else int(m.close[s])) - position.direction * slip
            return s, price, "squareoff"
    return _scan(position, m, a, through, slip)


def _entry_refused(m: _Market, fill_bar: int, at_open: bool) -> bool:
    """MIS: no entry fills at or after the square-off."""
    if m.squareoff_seconds is None:
        return False
    if m.seconds[fill_bar] >= m.squareoff_seconds:
        return True
    k = int(np.searchsorted(m.squareoff_bar, fill_bar))
    return not at_open and k < len(m.squareoff_bar) and int(m.squareoff_bar[k]) == fill_bar


def simulate(
    signals: Sequence[Signal],
    m: _Market,
    settings: Settings,
    *,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[list[_Closed], int]:
    """The fills of `signals` over the prepared market: closed positions and the entries sizing skipped."""
    at_open = settings.fill == "next_open"
    slip = settings.slippage_ticks
    tick_f = float(settings.tick_size)
    tick = settings.tick_size
    closed: list[_Closed] = []
    skipped = 0
    position: _Position | None = None
    opens, closes = m.open, m.close
    transitions: dict[tuple[int, Action], int] = {}  # next_side's answers, asked once each
    total = max(len(signals), 1)
    every = max(total // 50, 200)

    sizes: dict[tuple[int, int | None], int] = {}
    reads_price = settings.sizing not in (sizing_rules.FIXED, sizing_rules.MULTIPLIER)

    def size(close: int, stop: int | None) -> int:
        """The live sizing rule's quantity (asked once for the rules that read neither price nor stop)."""
        key = (close, stop) if reads_price else (0, None)
        if key not in sizes:
            sizes[key] = sizing_rules.quantity(
                settings.sizing,
                settings.sizing_value,
                price=close * tick,
                lot_size=settings.lot_size,
                capital=settings.capital,
                stop=None if stop is None else stop * tick,
            )[0]
        return sizes[key]

    def close(bar: int, price: int, reason: str) -> None:
        nonlocal position
        assert position is not None
        closed.append(
            _Closed(position.direction, position.quantity, position.entry_bar, position.entry, bar, price, reason)
        )
        position = None

    for count, signal in enumerate(signals):
        if count % every == 0:
            if cancelled is not None and cancelled():
                raise BacktestCancelled("cancelled")
            if progress is not None and count:
                progress(0.1 + 0.8 * count / total)
        i = signal.index
        fill_bar = i + 1 if at_open else i
        if fill_bar >= m.n:
            break  # a signal on the last bar has no bar to fill on (signals are in time order)
        if position is not None:
            exit_ = _advance(position, m, i, slip)
            if exit_ is not None:
                close(*exit_)
        current = 0 if position is None else position.direction
        key = (current, signal.action)
        side = transitions.get(key)
        if side is None:
            side = transitions[key] = next_side(current, signal.action, settings.allow_short)
        if side == current:
            continue
        price = int(opens[fill_bar]) if at_open else int(closes[i])
        if position is not None:
            close(fill_bar, price - position.direction * slip, "signal")
        if side == 0 or signal.action not in (Action.ENTER_LONG, Action.ENTER_SHORT):
            continue
        if _entry_refused(m, fill_bar, at_open):
            continue
        signal_close = int(closes[i])
        stop, target, trail = levels(signal, side, signal_close, tick_f)
        quantity = size(signal_close, stop)
        if quantity <= 0:
            skipped += 1
            continue
        entry = price + side * slip
        position = _Position(
            direction=side,
            quantity=quantity,
            entry_bar=fill_bar,
            entry=entry,
            stop=stop,
            target=target,
            trail=trail,
            scan_from=fill_bar if at_open else fill_bar + 1,
            extreme=entry,
            trail_from=fill_bar + 1 if at_open else fill_bar + 2,
        )
    if position is not None:
        exit_ = _advance(position, m, m.n - 1, slip)
        if exit_ is not None:
            close(*exit_)
        else:
            close(m.n - 1, int(m.close[m.n - 1]) - position.direction * slip, "end")
    return closed, skipped


# --- charges and results ---------------------------------------------------------------------------------
def charge(closed: Sequence[_Closed], m: _Market, settings: Settings) -> list[Decimal]:
    """Each position's charges: the day's contract note shared among its fills, plus the commission."""
    tick = settings.tick_size
    per_trade = [charge_rules.paisa(settings.commission * 2) for _ in closed]
    if settings.charges is None or not closed:
        return per_trade
    plan = charge_rules.plan(settings.charges)
    product = settings.product
    by_day: dict[int, list[tuple[int, charge_rules.Fill]]] = {}
    for index, position in enumerate(closed):
        buy_first = position.direction == 1
        for bar, price, side in (
            (position.entry_bar, position.entry, "BUY" if buy_first else "SELL"),
            (position.exit_bar, position.exit, "SELL" if buy_first else "BUY"),
        ):
            fill = charge_rules.Fill(side, position.quantity, price * tick)
            by_day.setdefault(int(m.day[bar]), []).append((index, fill))
    for day_number, legs in by_day.items():
        day = date.fromordinal(date(1970, 1, 1).toordinal() + day_number)
        fills = [fill for _, fill in legs]
        note = charge_rules.contract_note(fills, product=product, plan=plan, day=day, exchange=settings.exchange)
        if len(legs) == 1:
            per_trade[legs[0][0]] += note.total
            continue
        weights = charge_rules.weights(fills, product=product, plan=plan, day=day, exchange=settings.exchange)
        for (index, _), part in zip(legs, charge_rules.share(note.total, weights), strict=True):
            per_trade[index] += part
    return per_trade


def _times(m: _Market, bars: list[int]) -> list[datetime]:
    """The bars' start times as aware UTC datetimes (converted together: a few thousand at once)."""
    naive = m.time[np.asarray(bars, dtype=np.int64)].astype("datetime64[s]").tolist() if bars else []
    return [moment.replace(tzinfo=UTC) for moment in naive]


def trades_of(closed: Sequence[_Closed], costs: Sequence[Decimal], m: _Market) -> list[Trade]:
    tick = m.tick
    entry_times = _times(m, [position.entry_bar for position in closed])
    exit_times = _times(m, [position.exit_bar for position in closed])
    trades = []
    for position, cost, entered, exited in zip(closed, costs, entry_times, exit_times, strict=True):
        gross = position.direction * position.quantity * (position.exit - position.entry) * tick
        trade = object.__new__(Trade)  # a frozen dataclass's __init__ costs ~10 µs a trade: fill it directly
        trade.__dict__.update(
            entry_time=entered,
            exit_time=exited,
            direction=position.direction,
            quantity=position.quantity,
            entry_price=position.entry * tick,
            exit_price=position.exit * tick,
            gross=gross,
            charges=cost,
            net=gross - cost,
            exit_reason=position.reason,
            entry_bar=position.entry_bar,
            exit_bar=position.exit_bar,
        )
        trades.append(trade)
    return trades


def equity_curve(closed: Sequence[_Closed], trades: Sequence[Trade], m: _Market, settings: Settings):
    """Equity at each bar's close (capital + closed trades' net + the open position marked to the close),
    and the drawdown in % below the running peak. Floats, for the charts and the ratios."""
    n = m.n
    tick_f = float(settings.tick_size)
    held = np.zeros(n + 1, dtype=np.float64)  # signed quantity held at each close, by differences
    basis = np.zeros(n + 1, dtype=np.float64)  # signed quantity × entry price (ticks)
    realised = np.zeros(n + 1, dtype=np.float64)
    if closed:
        entry_bar = np.fromiter((p.entry_bar for p in closed), dtype=np.int64, count=len(closed))
        exit_bar = np.fromiter((p.exit_bar for p in closed), dtype=np.int64, count=len(closed))
        signed = np.fromiter((p.direction * p.quantity for p in closed), dtype=np.float64, count=len(closed))
        entry = np.fromiter((p.entry for p in closed), dtype=np.float64, count=len(closed))
        net = np.fromiter((float(t.net) for t in trades), dtype=np.float64, count=len(trades))
        np.add.at(held, entry_bar, signed)
        np.add.at(held, exit_bar, -signed)
        np.add.at(basis, entry_bar, signed * entry)
        np.add.at(basis, exit_bar, -signed * entry)
        np.add.at(realised, exit_bar, net)
    held, basis, realised = np.cumsum(held[:n]), np.cumsum(basis[:n]), np.cumsum(realised[:n])
    equity = float(settings.capital) + realised + (held * m.close - basis) * tick_f
    peak = np.maximum.accumulate(equity) if n else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, (equity - peak) / peak * 100.0, 0.0)
    return equity, drawdown


def _result(closed, skipped, m: _Market, settings: Settings, strategy_name: str = "") -> Result:
    costs = charge(closed, m, settings)
    trades = trades_of(closed, costs, m)
    equity, drawdown = equity_curve(closed, trades, m, settings)
    metrics = metric_rules.compute(trades, m.time, equity, settings.capital, held_bars=_held_bars(closed, m.n))
    metrics["skipped_entries"] = skipped
    metrics["bars"] = m.n
    return Result(trades=trades, times=np.asarray(m.time), equity=equity, drawdown=drawdown, metrics=metrics)


def _held_bars(closed: Sequence[_Closed], n: int) -> int:
    """Bars with a position open at their close (or squared off / stopped within them)."""
    marks = np.zeros(n + 1, dtype=np.int64)
    if closed:
        np.add.at(marks, np.fromiter((p.entry_bar for p in closed), dtype=np.int64, count=len(closed)), 1)
        ends = np.fromiter((min(p.exit_bar + 1, n) for p in closed), dtype=np.int64, count=len(closed))
        np.add.at(marks, ends, -1)
    return int(np.count_nonzero(np.cumsum(marks[:n]) > 0)) if n else 0


# --- the entry points --------------------------------------------------------------------------------------
def make_plan(strategy: Strategy, candles: Candles) -> Plan:
    return Plan(signals=sorted(strategy.signals(candles), key=lambda s: s.index))


def run(
    strategy: Strategy,
    candles: Candles,
    settings: Settings,
    *,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Result:
    """Run `strategy` over `candles` with `settings`. ValueError for settings it cannot run with;
    BacktestCancelled when `cancelled()` turns true; `progress(fraction)` now and then."""
    settings.check()
    if cancelled is not None and cancelled():
        raise BacktestCancelled("cancelled")
    plan = make_plan(strategy, candles)
    if progress is not None:
        progress(0.1)
    m = prepare(candles, settings)
    closed, skipped = simulate(plan.signals, m, settings, progress=progress, cancelled=cancelled)
    if cancelled is not None and cancelled():
        raise BacktestCancelled("cancelled")
    result = _result(closed, skipped, m, settings)
    if progress is not None:
        progress(1.0)
    return result


def run_clients(
    strategy: Strategy,
    candles: Candles,
    settings: Settings,
    clients: Sequence[Client],
    *,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict[str, Result]:
    """A multi-client deployment: one set of signals, each client filled with its own capital and sizing
    (the rest of `settings` shared). Results by client key."""
    if len({client.key for client in clients}) != len(clients):
        raise ValueError("each client needs its own key")
    for client in clients:
        _for(settings, client).check()
    plan = make_plan(strategy, candles)
    m = prepare(candles, settings)
    results = {}
    for k, client in enumerate(clients):
        if cancelled is not None and cancelled():
            raise BacktestCancelled("cancelled")
        own = _for(settings, client)
        closed, skipped = simulate(plan.signals, m, own)
        results[client.key] = _result(closed, skipped, m, own)
        if progress is not None:
            progress((k + 1) / len(clients))
    return results


def _for(settings: Settings, client: Client) -> Settings:
    from dataclasses import replace

    return replace(settings, capital=client.capital, sizing=client.sizing, sizing_value=client.sizing_value)
