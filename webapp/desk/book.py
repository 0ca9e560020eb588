"""The desk-wide positions book: every open position of the clients a user may see, filtered by
instrument, client and product, with totals for the filtered set (SQL aggregates, exact), and the
legs that exit a selection of them through the ordinary exit path (webapp/trading/exits.py).

No Flask here: filters arrive as plain values and come back with the messages a user reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager, joinedload

from webapp.desk.summary import Scope, _escape_like, in_scope
from webapp.extensions import db
from webapp.inputs import MAX_IDS, InputError, id_list, record_id, text
from webapp.models import Client, Instrument, Position
from webapp.trading import exits
from webapp.trading.pnl import money, money_sum

ZERO = Decimal(0)
PRODUCTS = ("MIS", "CNC", "MTF")
MAX_SYMBOL = 40
MAX_ROWS = MAX_IDS  # rows one page shows (and its polling partial follows); totals cover them all
_KEY = re.compile(r"([0-9]{1,10})-([0-9]{1,10})-([A-Z]{2,8})")  # exits.Holder.key: client-instrument-product


@dataclass(frozen=True)
class PositionFilter:
    instrument: str = ""  # part of the trading symbol, any case
    client_id: int | None = None
    product: str = ""

    def args(self) -> dict[str, str]:
        """The filter as query arguments (links, the live partial, the export)."""
        out = {"instrument": self.instrument, "client": str(self.client_id or ""), "product": self.product}
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class ParsedFilter:
    filter: PositionFilter
    errors: dict[str, str] = field(default_factory=dict)  # field name → message


@dataclass(frozen=True)
class BookTotals:
    positions: int
    clients: int
    unrealized: Decimal
    realized: Decimal

    @property
    def day_pnl(self) -> Decimal:
        return self.realized + self.unrealized


def parse_filter(args: Mapping[str, str], visible: Iterable[int]) -> ParsedFilter:
    """A PositionFilter from query arguments; each bad value gets its message (and filters nothing).
    A client the user may not see reads as unknown, like one that does not exist."""
    errors = {}
    try:
        instrument = text(args.get("instrument"), max_length=MAX_SYMBOL)
    except InputError:
        instrument, errors["instrument"] = "", f"A symbol is at most {MAX_SYMBOL} characters."
    client_id = None
    raw_client = (args.get("client") or "").strip()
    if raw_client:
        client_id = record_id(raw_client)
        if client_id is None or client_id not in set(visible):
            client_id, errors["client"] = None, "Choose a client from the list."
    product = (args.get("product") or "").strip()
    if product and product not in PRODUCTS:
        product, errors["product"] = "", f"Product must be one of: {', '.join(PRODUCTS)}."
    return ParsedFilter(PositionFilter(instrument.upper(), client_id, product), errors)


def _where(scope: Scope, f: PositionFilter) -> list:
    where = [Position.quantity != 0, in_scope(Position.client_id, scope)]
    if f.instrument:
        pattern = f"%{_escape_like(f.instrument.lower())}%"
        where.append(sa.func.lower(Instrument.tradingsymbol).like(pattern, escape="\\"))
    if f.client_id is not None:
        where.append(Position.client_id == f.client_id)
    if f.product:
        where.append(Position.product == f.product)
    return where


def positions_select(scope: Scope, f: PositionFilter) -> sa.Select:
    """The open positions in scope matching the filter, by client, symbol and product."""
    return (
        sa.select(Position)
        .join(Client, Client.id == Position.client_id)
        .join(Instrument, Instrument.id == Position.instrument_id)
        .where(*_where(scope, f))
        .order_by(Client.name, Client.id, Instrument.tradingsymbol, Position.product)
        .options(contains_eager(Position.client), contains_eager(Position.instrument))  # rows name both
    )


def book_positions(scope: Scope, f: PositionFilter, limit: int | None = MAX_ROWS) -> list[Position]:
    query = positions_select(scope, f)
    return list(db.session.execute(query.limit(limit) if limit else query).scalars())


def book_totals(scope: Scope, f: PositionFilter) -> BookTotals:
    """Totals over every position the filter matches (not only the rows shown), each a SQL aggregate."""
    count, clients, unrealized, realized = db.session.execute(
        sa.select(
            sa.func.count(Position.id),
            sa.func.count(sa.distinct(Position.client_id)),
            money_sum(Position.unrealized_pnl),
            money_sum(Position.realized_pnl),
        )
        .select_from(Position)
        .join(Instrument, Instrument.id == Position.instrument_id)
        .where(*_where(scope, f))
    ).one()
    return BookTotals(int(count or 0), int(clients or 0), money(unrealized), money(realized))


def shown_positions(scope: Scope, raw_ids: str | None) -> list[Position]:
    """The positions a live page shows (`ids=1,2,3`), those in scope only, closed ones included (the
    page shows them flat). InputError for a list that is not ids."""
    ids = id_list(raw_ids, max_items=MAX_ROWS)
    if not ids:
        return []
    query = (
        sa.select(Position)
        .where(Position.id.in_(ids), in_scope(Position.client_id, scope))
        .options(joinedload(Position.client), joinedload(Position.instrument))  # one query, not one per row
    )
    return list(db.session.execute(query).scalars())


def position_key(p: Position) -> str:
    """The same key as exits.Holder.key, so a picked row names the holder the exit path builds."""
    return f"{p.client_id}-{p.instrument_id}-{p.product}"


def parse_keys(raw: Iterable[str]) -> list[str]:
    """Picked rows' keys; InputError for too many or anything that is not a key."""
    keys = list(dict.fromkeys(k.strip() for k in raw if k.strip()))
    if len(keys) > MAX_ROWS:
        raise InputError(f"At most {MAX_ROWS} positions at once.")
    if not all(_KEY.fullmatch(k) for k in keys):
        raise InputError("The selection is not a list of positions.")
    return keys


@dataclass(frozen=True)
class ExitSelection:
    legs: list[tuple[exits.Holder, int]]
    missing: list[str]  # picked keys that are not an open position of a client the user may see

    @property
    def totals(self) -> dict[str, int]:
        """Total quantity per exit side."""
        out: dict[str, int] = {}
        for holder, quantity in self.legs:
            out[exits.exit_side(holder)] = out.get(exits.exit_side(holder), 0) + quantity
        return out

    @property
    def instrument_id(self) -> int | None:
        """The batch's instrument when every leg is in one, else None (a mixed exit, like a square-off)."""
        found = {h.instrument.id for h, _ in self.legs}
        return found.pop() if len(found) == 1 else None


def exit_selection(visible: list[Client], keys: list[str]) -> ExitSelection:
    """Full exits of the picked positions (intraday and delivery positions; holdings carried from
    earlier days are exited on the instrument's exit page), from the exit domain's own holders and
    share_legs: a key of a client not in `visible`, or of a position now flat, is missing."""
    wanted = {int(_KEY.fullmatch(k).group(1)) for k in keys}
    clients = [c for c in visible if c.id in wanted]
    found = {h.key: h for h in exits.holders(clients, with_holdings=False)} if clients else {}
    picked = [found[k] for k in keys if k in found]
    legs = sorted(
        exits.share_legs(picked, 100),
        key=lambda leg: (leg[0].client.name, leg[0].client.id, leg[0].instrument.tradingsymbol, leg[0].product),
    )
    return ExitSelection(legs, [k for k in keys if k not in found])


def same_legs(selection: ExitSelection, expected: Mapping[str, str]) -> bool:
    """The legs are the ones the trader confirmed (`expect_<key>` = quantity on the review)."""
    shown = exits.review_marks(selection.legs)
    return bool(shown) and shown == dict(expected)


def csv_rows(positions: Iterable[Position], format_ist) -> Iterable[list]:
    for p in positions:
        yield [
            p.client.name,
            p.client.client_code,
            p.client.broker,
            p.instrument.key,
            p.product,
            p.quantity,
            p.average_price,
            p.last_price if p.last_price is not None else "",
            p.unrealized_pnl,
            p.realized_pnl,
            p.realized_pnl + p.unrealized_pnl,
            format_ist(p.price_at),
            "yes" if p.price_stale else "",
        ]


CSV_HEADER = [
    "client",
    "client_code",
    "broker",
    "instrument",
    "product",
    "quantity",
    "average_price",
    "last_price",
    "unrealized_pnl",
    "realized_pnl",
    "day_pnl",
    "last_price_at_ist",
    "last_price_stale",
]


def desk_mtm_series(samples_by_client: Mapping[int, list[dict]]) -> list[dict]:
    """The desk's line from each client's P&L samples ([{time, value}], pnl.pnl_samples): at every
    sample time, the sum of each client's latest sample at or before it (a client not sampled yet
    that day counts as flat, as the day starts). Exact: Decimal strings in, Decimal strings out."""
    events = sorted(
        (int(s["time"]), client_id, Decimal(str(s["value"])))
        for client_id, samples in samples_by_client.items()
        for s in samples
    )
    latest: dict[int, Decimal] = {}
    total, series = ZERO, []
    for time, group in groupby(events, key=lambda e: e[0]):
        for _, client_id, value in group:
            total += value - latest.get(client_id, ZERO)
            latest[client_id] = value
        series.append({"time": time, "value": str(total)})
    return series
