"""The desk's figures, from its own book (no broker call): a page of client rows, and totals for the
whole desk.

A desk may hold hundreds of clients; a trader reads a page of them (searched, sorted by worst day P&L
or by name), while the totals are always over every client the user may see — SQL aggregates, never
a sum over loaded rows. `scope` is what a user may see: None for every client (an admin), otherwise a
collection of client ids or a SELECT of them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from webapp.access import twin_client_ids
from webapp.extensions import db, page_redis
from webapp.inputs import MAX_NUMBER_TEXT, InputError, id_list, whole_number
from webapp.marketfeed.feed import HEARTBEAT_KEY
from webapp.models import Client, FundsSnapshot, Order, Position
from webapp.models.base import in_ids
from webapp.timeutil import utcnow
from webapp.trading import states
from webapp.trading.pnl import money, money_sum

ZERO = Decimal(0)
STALE_AFTER_SECONDS = 5
PAGE_SIZE = 50
MAX_SHOWN = 200  # client rows one page (or socket) may ask to be kept live
SORTS = {"pnl": "Worst day P&L first", "name": "Name A–Z"}
DEFAULT_SORT = "pnl"  # what needs a trader's eye: the clients losing most today
MAX_QUERY = 100

Scope = None | Collection[int] | sa.Select


@dataclass(frozen=True)
class ClientRow:
    client: Client
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    available_margin: Decimal | None = None
    margin_used: Decimal | None = None
    open_positions: int = 0
    open_orders: int = 0

    @property
    def day_pnl(self) -> Decimal:
        return self.realized + self.unrealized


@dataclass(frozen=True)
class DeskTotals:
    realized: Decimal
    unrealized: Decimal  # the desk's mark to market
    margin_used: Decimal
    open_orders: int
    prices_age: float | None  # seconds since the feed's last tick; None: never
    clients: int = 0

    @property
    def day_pnl(self) -> Decimal:
        return self.realized + self.unrealized

    @property
    def stale(self) -> bool:
        return self.prices_age is None or self.prices_age > STALE_AFTER_SECONDS


@dataclass(frozen=True)
class DeskQuery:
    """What the client table shows: a search, a sort and a page (1-based)."""

    q: str = ""
    sort: str = DEFAULT_SORT
    page: int = 1


class BadDeskQuery(ValueError):
    """A page, sort or search the table cannot show; the message is for the user."""


@dataclass(frozen=True)
class DeskPage:
    rows: list[ClientRow]
    query: DeskQuery  # the page clamped to the last one
    matching: int  # clients that match the search
    pages: int

    @property
    def first(self) -> int:
        return (self.query.page - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def client_ids(self) -> list[int]:
        return [r.client.id for r in self.rows]


def parse_query(args) -> DeskQuery:
    """A DeskQuery from request args; BadDeskQuery for a page, sort or search that makes no sense."""
    raw_page = (args.get("page") or "1").strip()
    try:  # any page past the last shows the last one, however large the number
        page = whole_number(raw_page, minimum=1, maximum=10**MAX_NUMBER_TEXT)
    except InputError:
        raise BadDeskQuery(f"Page must be a whole number from 1 (got {raw_page[:20]!r}).") from None
    sort = (args.get("sort") or DEFAULT_SORT).strip()
    if sort not in SORTS:
        raise BadDeskQuery(f"Sort must be one of: {', '.join(SORTS)}.")
    q = (args.get("q") or "").strip()
    if len(q) > MAX_QUERY:
        raise BadDeskQuery(f"A search is at most {MAX_QUERY} characters.")
    return DeskQuery(q=q, sort=sort, page=min(page, 10**6))


def parse_client_ids(raw: str | None) -> list[int] | None:
    """The `clients=1,2,3` a live page sends (the rows it shows); None when absent."""
    if raw is None:
        return None
    if sum(1 for p in raw.split(",") if p.strip()) > MAX_SHOWN:
        raise BadDeskQuery(f"At most {MAX_SHOWN} clients can be followed at once.")
    try:
        return id_list(raw, max_items=MAX_SHOWN)
    except InputError:
        raise BadDeskQuery("clients must be client ids separated by commas.") from None


def in_scope(column, scope: Scope):
    """A WHERE clause: column within the scope (an admin's whole desk: every client but the paper twins)."""
    if scope is None:
        return column.not_in(twin_client_ids())
    return column.in_(scope) if isinstance(scope, sa.Select) else in_ids(column, scope)


def desk_totals(scope: Scope) -> DeskTotals:
    """Totals over every client in scope, each one a SQL aggregate."""
    realized, unrealized = db.session.execute(
        sa.select(money_sum(Position.realized_pnl), money_sum(Position.unrealized_pnl)).where(
            in_scope(Position.client_id, scope)
        )
    ).one()
    margin_used = db.session.execute(
        sa.select(money_sum(FundsSnapshot.margin_used)).where(in_scope(FundsSnapshot.client_id, scope))
    ).scalar()
    open_orders = db.session.execute(
        sa.select(sa.func.count())
        .select_from(Order)
        .where(in_scope(Order.client_id, scope), Order.status.in_(states.AT_BROKER))
    ).scalar()
    clients = db.session.execute(
        sa.select(sa.func.count()).select_from(Client).where(in_scope(Client.id, scope))
    ).scalar()
    return DeskTotals(
        realized=money(realized),
        unrealized=money(unrealized),
        margin_used=money(margin_used),
        open_orders=int(open_orders or 0),
        prices_age=prices_age(),
        clients=int(clients or 0),
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def desk_page(scope: Scope, query: DeskQuery = DeskQuery()) -> DeskPage:
    """One page of client rows: those in scope matching the search, in the chosen order."""
    where = [in_scope(Client.id, scope)]
    if query.q:
        pattern = f"%{_escape_like(query.q.lower())}%"
        where.append(
            sa.or_(
                sa.func.lower(Client.name).like(pattern, escape="\\"),
                sa.func.lower(Client.client_code).like(pattern, escape="\\"),
            )
        )
    matching = db.session.execute(sa.select(sa.func.count()).select_from(Client).where(*where)).scalar() or 0
    pages = max(1, -(-matching // PAGE_SIZE))
    page = min(query.page, pages)
    ids = sa.select(Client.id).where(*where)
    if query.sort == "pnl":
        day = (
            sa.select(
                Position.client_id,  # the exact sums the totals show: the same order as the rows' P&L
                (money_sum(Position.realized_pnl) + money_sum(Position.unrealized_pnl)).label("day"),
            )
            .where(in_scope(Position.client_id, scope))
            .group_by(Position.client_id)
            .subquery()
        )
        ids = ids.outerjoin(day, day.c.client_id == Client.id).order_by(
            sa.func.coalesce(day.c.day, 0).asc(), Client.name, Client.id
        )
    else:
        ids = ids.order_by(Client.name, Client.id)
    page_ids = list(db.session.execute(ids.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars())
    by_id = {r.client.id: r for r in client_rows(page_ids, scope)}
    return DeskPage([by_id[i] for i in page_ids if i in by_id], DeskQuery(query.q, query.sort, page), matching, pages)


def client_rows(client_ids: Collection[int], scope: Scope) -> list[ClientRow]:
    """The figures of these clients (a page's worth) that are in scope, by name."""
    if not client_ids:
        return []
    clients = (
        db.session.execute(
            sa.select(Client)
            .where(Client.id.in_(list(client_ids)), in_scope(Client.id, scope))
            .order_by(Client.name, Client.id)
        )
        .scalars()
        .all()
    )
    ids = [c.id for c in clients]
    if not ids:
        return []
    pnl = _grouped(
        sa.select(
            Position.client_id,
            money_sum(Position.realized_pnl),
            money_sum(Position.unrealized_pnl),
            sa.func.sum(sa.case((Position.quantity != 0, 1), else_=0)),
        )
        .where(Position.client_id.in_(ids))
        .group_by(Position.client_id)
    )
    funds = {
        f.client_id: f
        for f in db.session.execute(sa.select(FundsSnapshot).where(FundsSnapshot.client_id.in_(ids))).scalars()
    }
    orders = _grouped(
        sa.select(Order.client_id, sa.func.count())
        .where(Order.client_id.in_(ids), Order.status.in_(states.AT_BROKER))
        .group_by(Order.client_id)
    )
    rows = []
    for c in clients:
        realized, unrealized, positions = pnl.get(c.id, (ZERO, ZERO, 0))
        f = funds.get(c.id)
        rows.append(
            ClientRow(
                c,
                money(realized),
                money(unrealized),
                f.available_margin if f else None,
                f.margin_used if f else None,
                int(positions or 0),
                orders.get(c.id, (0,))[0],
            )
        )
    return rows


def _grouped(query) -> dict:
    return {row[0]: row[1:] for row in db.session.execute(query).all()}


def prices_age() -> float | None:
    from datetime import datetime

    redis = page_redis()
    beat = redis.get(HEARTBEAT_KEY) if redis is not None else None  # Redis away: no live prices
    return None if beat is None else (utcnow() - datetime.fromisoformat(beat)).total_seconds()
