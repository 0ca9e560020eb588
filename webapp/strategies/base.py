"""What a strategy is: typed, validated parameters, a warm-up length and one pure function from candle
arrays to signals. Nothing here knows of clients, brokers, the database or whether it runs live.

The live runner calls `signal_at_last(series.tail(warmup + 1))` at each candle close; the backtester calls
`signals(series)` once over the whole history. Both give the same signal for the same bar because every
strategy is *finite-memory*: its signal at bar i is a function of bars i - warmup … i only, computed with
the same floating-point operations whatever comes before (tests/strategies/ prove it bar by bar).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from webapp.strategies import indicators as ind


@dataclass(frozen=True)
class Candles:
    """A candle series as numpy arrays, oldest first, all the same length. `time` is each bar's START,
    epoch seconds UTC (int64); prices and volume are float64. The arrays are read-only."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        arrays = {"time": np.asarray(self.time, dtype=np.int64)}
        for name in ("open", "high", "low", "close", "volume"):
            arrays[name] = np.asarray(getattr(self, name), dtype=np.float64)
        lengths = {name: array.shape for name, array in arrays.items()}
        if len(set(lengths.values())) != 1 or arrays["time"].ndim != 1:
            raise ValueError(f"candle arrays must be one-dimensional and of equal length, got {lengths}")
        for name, array in arrays.items():
            if array.flags.writeable and array.base is None and array is getattr(self, name):
                array = array.copy()  # never freeze the caller's own array under them
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.time)

    def __getitem__(self, index: slice) -> Candles:
        if not isinstance(index, slice):
            raise TypeError("Candles are sliced (candles[a:b]), not indexed")
        return Candles(*(getattr(self, name)[index] for name in self._fields()))

    def tail(self, n: int) -> Candles:
        """The last n bars (all of them when there are fewer)."""
        if n <= 0:
            return self[0:0]
        return self[-n:]

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("time", "open", "high", "low", "close", "volume")

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[Any, Any, Any, Any, Any, Any]]) -> Candles:
        """From rows of (time, open, high, low, close, volume); time in epoch seconds (or an aware
        datetime), prices and volume as numbers, Decimals included."""
        columns = list(zip(*rows, strict=True)) or [(), (), (), (), (), ()]
        times = [int(t.timestamp()) if isinstance(t, datetime) else int(t) for t in columns[0]]
        return cls(
            np.array(times, dtype=np.int64),
            *(np.array([float(value) for value in column], dtype=np.float64) for column in columns[1:]),
        )

    @classmethod
    def empty(cls) -> Candles:
        return cls.from_rows([])


class Action(StrEnum):
    """What a signal asks for. EXIT closes whatever is open; EXIT_LONG / EXIT_SHORT close only a
    position on that side (a strategy whose long and short exits differ, such as a channel exit)."""

    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    EXIT = "exit"
    EXIT_LONG = "exit_long"
    EXIT_SHORT = "exit_short"


@dataclass(frozen=True)
class Signal:
    index: int  # the bar (in the Candles given) at whose close it fires
    action: Action
    stop: float | None = None  # absolute stop-loss price, or None
    target: float | None = None  # absolute target price, or None
    trail: float | None = None  # trailing-stop DISTANCE in price, or None
    values: dict[str, float] = field(default_factory=dict)  # the indicator values that caused it


def next_side(current: int, action: Action, allow_short: bool) -> int:
    """The position side (-1 short, 0 flat, +1 long) after `action`, from side `current`. Shared by the
    live runner and the backtester, so both treat a signal alike:

    - ENTER_LONG: flat → long; long → long (already in: no new order); short → long (reverse).
    - ENTER_SHORT: flat → short if shorts are allowed, else flat (nothing); short → short (no new order);
      long → short if shorts are allowed, else flat (the long is closed and nothing opened).
    - EXIT: any → flat (flat stays flat: nothing to do).
    - EXIT_LONG: long → flat; flat and short unchanged. EXIT_SHORT: short → flat; flat and long unchanged.
    """
    if current not in (-1, 0, 1):
        raise ValueError(f"side must be -1, 0 or 1, got {current!r}")
    action = Action(action)
    if action is Action.ENTER_LONG:
        return 1
    if action is Action.ENTER_SHORT:
        return -1 if allow_short else 0
    if action is Action.EXIT:
        return 0
    if action is Action.EXIT_LONG:
        return 0 if current == 1 else current
    return 0 if current == -1 else current  # EXIT_SHORT


class ParamError(ValueError):
    """Parameters that do not validate: `errors` maps each field name to a message for the form."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class Param:
    """One documented parameter. `kind` is int, float or bool; bounds are inclusive (None: unbounded)."""

    name: str
    label: str
    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""

    def parse(self, raw: Any) -> Any:
        """The value as `kind`, or ValueError with the message a form shows next to the field."""
        if self.kind is bool:
            return _parse_bool(raw)
        if self.kind is int:
            value = _parse_int(raw)
        elif self.kind is float:
            value = _parse_float(raw)
        else:  # a strategy author's mistake, not a user's
            raise TypeError(f"parameter {self.name}: kind must be int, float or bool")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {_number(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {_number(self.maximum)}")
        return value

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "kind": self.kind.__name__,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "help": self.help,
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "yes", "on", "y"):
        return True
    if isinstance(raw, str) and raw.strip().lower() in ("false", "0", "no", "off", "n", ""):
        return False
    raise ValueError("must be yes or no")


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("must be a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if math.isfinite(raw) and raw.is_integer():
            return int(raw)
        raise ValueError("must be a whole number")
    if isinstance(raw, str):
        text = raw.strip()
        if text and len(text) <= 20 and (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
            return int(text)
        raise ValueError("must be a whole number")
    try:
        value = float(raw)  # Decimal, numpy numbers
    except (TypeError, ValueError):
        raise ValueError("must be a whole number") from None
    if math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError("must be a whole number")


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("must be a number")
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw or len(raw) > 40:
            raise ValueError("must be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class Strategy(ABC):
    """Subclasses declare `name`, `title`, `summary` and `params`, and implement `warmup` and `_signals`
    (and `check` for rules across fields). `signals` and `signal_at_last` are the same code on any series."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]

    def __init__(self, **values: Any) -> None:
        errors: dict[str, str] = {}
        known = {param.name: param for param in self.params}
        for key in values:
            if key not in known:
                errors[str(key)] = f"is not a parameter of {self.title}"
        parsed: dict[str, Any] = {}
        for name, param in known.items():
            if name not in values or values[name] is None:
                parsed[name] = param.default
                continue
            try:
                parsed[name] = param.parse(values[name])
            except ValueError as exc:
                errors[name] = str(exc)
        if not errors:
            errors.update(self.check(parsed))
        if errors:
            raise ParamError(errors)
        self.values: dict[str, Any] = parsed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"

    def __getattr__(self, item: str) -> Any:  # parameters read as attributes: self.fast
        values = self.__dict__.get("values")
        if values is not None and item in values:
            return values[item]
        raise AttributeError(item)

    @classmethod
    def check(cls, values: Mapping[str, Any]) -> dict[str, str]:
        """Rules across fields (fast < slow …): field name → message. Override to add."""
        return {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "title": cls.title,
            "summary": cls.summary,
            "params": [param.describe() for param in cls.params],
        }

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Bars needed before the first signal: the signal at bar i reads bars i - warmup … i only."""

    @abstractmethod
    def _signals(self, candles: Candles) -> list[Signal]:
        """Every signal over the series, any index (signals() drops those before the warm-up)."""

    def signals(self, candles: Candles) -> list[Signal]:
        """Every signal over the whole series, oldest first; none before bar `warmup`. Pure and causal."""
        warmup = self.warmup
        if len(candles) <= warmup:
            return []
        return [signal for signal in self._signals(candles) if signal.index >= warmup]

    def signal_at_last(self, candles: Candles) -> Signal | None:
        """The live path: the signal at the LAST bar, or None. Give it at least warmup + 1 bars; only the
        last warmup + 1 are read."""
        if len(candles) < self.warmup + 1:
            raise ValueError(f"{self.name} needs {self.warmup + 1} bars, got {len(candles)}")
        window = candles.tail(self.warmup + 1)
        last = len(window) - 1
        for signal in self._signals(window):
            if signal.index == last:
                return signal
        return None


# The exit levels every built-in strategy offers: stop, target and trailing distance, each as a % of
# the signal bar's close or a multiple of ATR at that close (not both).
EXIT_PARAMS = (
    Param("stop_pct", "Stop-loss %", float, 0.0, 0.0, 50.0, "Stop this % away from the entry close; 0 = none"),
    Param("target_pct", "Target %", float, 0.0, 0.0, 100.0, "Target this % away from the entry close; 0 = none"),
    Param("trail_pct", "Trailing stop %", float, 0.0, 0.0, 50.0, "Trailing distance, % of the entry close; 0 = none"),
    Param("stop_atr", "Stop-loss × ATR", float, 0.0, 0.0, 20.0, "Stop this many ATRs from the entry close; 0 = none"),
    Param("target_atr", "Target × ATR", float, 0.0, 0.0, 50.0, "Target this many ATRs from the entry close; 0 = none"),
    Param("trail_atr", "Trailing stop × ATR", float, 0.0, 0.0, 20.0, "Trailing distance in ATRs; 0 = none"),
    Param("atr_period", "ATR period", int, 14, 1, 200, "Bars in the ATR (Wilder) used by the × ATR levels"),
)


def with_exits(*params: Param, **defaults: Any) -> tuple[Param, ...]:
    """A strategy's own params followed by EXIT_PARAMS, with some exit defaults changed."""
    exits = tuple(
        Param(p.name, p.label, p.kind, defaults.pop(p.name, p.default), p.minimum, p.maximum, p.help)
        for p in EXIT_PARAMS
    )
    if defaults:
        raise TypeError(f"unknown exit parameters {sorted(defaults)}")
    return (*params, *exits)


class ExitLevels:
    """Computes the stop / target / trail of an entry from EXIT_PARAMS' values (a mixin's helper)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.stop_pct, self.target_pct, self.trail_pct = values["stop_pct"], values["target_pct"], values["trail_pct"]
        self.stop_atr, self.target_atr, self.trail_atr = values["stop_atr"], values["target_atr"], values["trail_atr"]
        self.atr_period = values["atr_period"]

    @staticmethod
    def check(values: Mapping[str, Any]) -> dict[str, str]:
        errors = {}
        for level in ("stop", "target", "trail"):
            if values[f"{level}_pct"] > 0 and values[f"{level}_atr"] > 0:
                errors[f"{level}_atr"] = f"set the {level} as a % or as × ATR, not both"
        return errors

    @property
    def uses_atr(self) -> bool:
        return self.stop_atr > 0 or self.target_atr > 0 or self.trail_atr > 0

    @property
    def warmup(self) -> int:
        """Bars the ATR reads (0 when no level uses it)."""
        return ind.atr_lookback(self.atr_period) if self.uses_atr else 0

    def atr(self, candles: Candles) -> np.ndarray | None:
        return ind.atr(candles.high, candles.low, candles.close, self.atr_period) if self.uses_atr else None

    def levels(self, side: int, close: float, atr: float | None) -> tuple[float | None, float | None, float | None]:
        """(stop, target, trail) for an entry on `side` (+1 long, -1 short) at `close`."""

        def distance(pct: float, multiple: float) -> float | None:
            if pct > 0:
                return close * pct / 100.0
            if multiple > 0 and atr is not None:
                return multiple * atr
            return None

        stop_d = distance(self.stop_pct, self.stop_atr)
        target_d = distance(self.target_pct, self.target_atr)
        trail = distance(self.trail_pct, self.trail_atr)
        stop = None if stop_d is None else close - side * stop_d
        target = None if target_d is None else close + side * target_d
        return stop, target, trail


def events(
    candles: Candles,
    long_entry: np.ndarray | None,
    short_entry: np.ndarray | None,
    exit_long: np.ndarray | None,
    exit_short: np.ndarray | None,
    exits: ExitLevels,
    values: Mapping[str, np.ndarray],
) -> list[Signal]:
    """Signals from boolean arrays (None: never), one per bar at most: an entry wins over an exit on the
    same bar (a long entry also ends a short: next_side reverses). When both exits fire, the signal is
    EXIT. NaN comparisons are False, so bars whose indicators are not yet defined fire nothing."""
    atr = exits.atr(candles)
    extra = {"atr": atr} if atr is not None else {}
    n = len(candles)
    none = np.zeros(n, dtype=bool)
    long_entry, short_entry, exit_long, exit_short = (
        none if array is None else array for array in (long_entry, short_entry, exit_long, exit_short)
    )
    if atr is not None:  # an entry whose ATR is not defined yet cannot carry its levels: it waits
        defined = ~np.isnan(atr)
        long_entry, short_entry = long_entry & defined, short_entry & defined
    fired = np.flatnonzero(long_entry | short_entry | exit_long | exit_short)
    close = candles.close
    signals = []
    for i in fired.tolist():
        row = {key: float(array[i]) for key, array in {**values, **extra}.items()}
        if long_entry[i] or short_entry[i]:
            side = 1 if long_entry[i] else -1
            stop, target, trail = exits.levels(side, float(close[i]), row.get("atr"))
            action = Action.ENTER_LONG if side == 1 else Action.ENTER_SHORT
            signals.append(Signal(i, action, stop, target, trail, row))
        else:
            if exit_long[i] and exit_short[i]:
                action = Action.EXIT
            else:
                action = Action.EXIT_LONG if exit_long[i] else Action.EXIT_SHORT
            signals.append(Signal(i, action, values=row))
    return signals


class ExitsStrategy(Strategy):
    """A strategy with EXIT_PARAMS among its params: validates them and adds the ATR to the warm-up."""

    @classmethod
    def check(cls, values: Mapping[str, Any]) -> dict[str, str]:
        return {**ExitLevels.check(values), **cls.check_own(values)}

    @classmethod
    def check_own(cls, values: Mapping[str, Any]) -> dict[str, str]:
        return {}

    @property
    def exits(self) -> ExitLevels:
        return ExitLevels(self.values)

    @property
    def warmup(self) -> int:
        return max(self.lookback, self.exits.warmup)

    @property
    @abstractmethod
    def lookback(self) -> int:
        """Bars the entry/exit rule itself reads before the current one."""
