"""Load a broker instrument master (Kite's CSV layout) into the instrument table, idempotently.

Kite's header: instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,
lot_size,instrument_type,segment,exchange. Two optional extra columns are read when present: isin and
band_pct (the circuit band in % of the last price; empty for stocks without a fixed band).
Bad rows are reported with their line numbers and skipped; the good rows load.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Instrument

REQUIRED = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.created + self.updated + self.unchanged


class MasterFormatError(ValueError):
    pass


def _decimal(value: str, name: str, positive: bool = False) -> Decimal:
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"{name} is not a number ({value!r})") from None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        raise ValueError(f"{name} must be {'above' if positive else 'at least'} zero ({value!r})")
    return number


INDEX_TICK = Decimal("0.05")  # Kite lists an index with tick_size 0 and lot_size 0: it is never traded


def _parse_row(row: dict[str, str]) -> dict:
    try:
        token, exchange_token = int(row["instrument_token"]), int(row["exchange_token"])
        lot_size = int(row["lot_size"])
    except (TypeError, ValueError):
        raise ValueError("instrument_token, exchange_token and lot_size must be whole numbers") from None
    index = (row.get("segment") or "").strip().upper() == Instrument.INDICES_SEGMENT
    if index:  # its value still moves on a grid (the simulator's), and a lot of one keeps the column's rule
        lot_size = max(lot_size, 1)
        if not (row.get("tick_size") or "").strip() or _decimal(row["tick_size"], "tick_size") == 0:
            row = {**row, "tick_size": str(INDEX_TICK)}
    symbol = (row["tradingsymbol"] or "").strip().upper()
    exchange = (row["exchange"] or "").strip().upper()
    if not symbol or not exchange:
        raise ValueError("tradingsymbol and exchange are required")
    if lot_size < 1:
        raise ValueError(f"lot_size must be at least 1 ({lot_size})")
    band = (row.get("band_pct") or "").strip()
    last_price = _decimal(row["last_price"] or "0", "last_price")
    return {
        "instrument_token": token,
        "exchange_token": exchange_token,
        "tradingsymbol": symbol,
        "name": (row["name"] or "").strip(),
        "exchange": exchange,
        "lot_size": lot_size,
        "tick_size": _decimal(row["tick_size"], "tick_size", positive=True),
        "last_price": last_price or None,
        "instrument_type": (row["instrument_type"] or "EQ").strip().upper(),
        "segment": (row["segment"] or exchange).strip().upper(),
        "isin": (row.get("isin") or "").strip().upper() or None,
        "band_pct": _decimal(band, "band_pct", positive=True) if band else None,
    }


def load_master(stream: IO[str]) -> LoadReport:
    """Upsert every good row of the CSV; the caller commits."""
    reader = csv.DictReader(stream)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise MasterFormatError(f"not an instrument master: missing columns {', '.join(missing)}")
    existing = {(i.exchange, i.tradingsymbol): i for i in db.session.execute(sa.select(Instrument)).scalars()}
    report, seen = LoadReport(), set()
    for row in reader:
        line = reader.line_num
        try:
            values = _parse_row(row)
        except ValueError as exc:
            report.errors.append(f"line {line}: {exc}")
            continue
        key = (values["exchange"], values["tradingsymbol"])
        if key in seen:
            report.errors.append(f"line {line}: {key[0]}:{key[1]} appears twice; the first row was kept")
            continue
        seen.add(key)
        current = existing.get(key)
        if current is None:
            db.session.add(Instrument(**values))
            report.created += 1
        elif any(getattr(current, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(current, k, v)
            report.updated += 1
        else:
            report.unchanged += 1
    return report


def load_master_text(text: str) -> LoadReport:
    return load_master(io.StringIO(text))


def search(query: str, limit: int = 20) -> list[Instrument]:
    """Symbol prefix matches first, then name matches."""
    q = query.strip().upper()
    if not q:
        return []
    like = f"%{q}%"
    rows = db.session.execute(
        sa.select(Instrument)
        .where(sa.or_(Instrument.tradingsymbol.like(f"{q}%"), sa.func.upper(Instrument.name).like(like)))
        .order_by(
            sa.case((Instrument.tradingsymbol == q, 0), (Instrument.tradingsymbol.like(f"{q}%"), 1), else_=2),
            Instrument.tradingsymbol,
        )
        .limit(limit)
    ).scalars()
    return list(rows)
