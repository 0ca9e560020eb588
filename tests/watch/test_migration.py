"""Migration 0015_watchlists on data: existing watch rows go to list 1 in the order they were added,
one instrument may then sit on several lists, and the downgrade keeps one row per (user, instrument).
On SQLite, and on PostgreSQL when the suite runs there (a scratch database of its own)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from tests.conftest import make_app
from webapp.extensions import db

LISTED = "INSERT INTO watchlist_items (id, user_id, instrument_id, list_no, position)"


def _value(column: sa.Column, n: int):
    """Something a NOT NULL column without a default accepts."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return n
    if isinstance(kind, sa.Numeric):
        return Decimal("1.00")
    if isinstance(kind, sa.DateTime) or "DateTime" in type(kind).__name__:
        return datetime(2026, 12, 1, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return date(2026, 12, 1)
    return f"{column.name}-{n}"[: getattr(kind, "length", None) or 64]


def insert(connection, name: str, n: int, **values) -> None:
    table = sa.Table(name, sa.MetaData(), autoload_with=connection)
    row = {
        c.name: _value(c, n)
        for c in table.columns
        if not c.nullable and c.server_default is None and not c.primary_key and c.name not in values
    }
    connection.execute(table.insert().values(id=n, **row, **values))


@pytest.fixture
def database_url(tmp_path):
    """A fresh, empty database: a SQLite file, or a scratch PostgreSQL database beside the suite's."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'watch-migration.db'}"
        return
    from webapp.config import database_url as normalise

    server = sa.make_url(normalise(url))
    name = f"fanout_mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_existing_rows_go_to_list_one_in_order_and_come_back_one_per_instrument(services, encryption_key, database_url):
    app = make_app(services, encryption_key, SQLALCHEMY_DATABASE_URI=database_url)
    with app.app_context():
        upgrade(revision="0014_api")
        with db.engine.begin() as c:
            for n in (1, 2):
                insert(c, "users", n, username=f"user{n}", role="trader")
            for n in (1, 2, 3):
                insert(c, "instruments", n, instrument_token=1000 + n, tradingsymbol=f"S{n}", exchange="NSE")
            # rows added in the order (id) 10, 11, 12 for user 1; 13 for user 2
            for item_id, user_id, instrument_id in [(12, 1, 1), (10, 1, 3), (11, 1, 2), (13, 2, 3)]:
                c.execute(
                    sa.text("INSERT INTO watchlist_items (id, user_id, instrument_id) VALUES (:i, :u, :n)"),
                    {"i": item_id, "u": user_id, "n": instrument_id},
                )
        upgrade(revision="0015_watchlists")
        with db.engine.begin() as c:
            got = c.execute(sa.text("SELECT id, user_id, list_no, position FROM watchlist_items ORDER BY id")).all()
            assert [tuple(r) for r in got] == [(10, 1, 1, 1), (11, 1, 1, 2), (12, 1, 1, 3), (13, 2, 1, 1)]
            # now the same instrument on list 2 is allowed, twice on one list is not
            c.execute(sa.text(f"{LISTED} VALUES (14, 1, 3, 2, 1)"))
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as c:
            c.execute(sa.text(f"{LISTED} VALUES (15, 1, 3, 2, 2)"))
        downgrade(revision="0014_api")
        with db.engine.begin() as c:
            got = c.execute(sa.text("SELECT id, user_id, instrument_id FROM watchlist_items ORDER BY id")).all()
            assert [tuple(r) for r in got] == [(10, 1, 3), (11, 1, 2), (12, 1, 1), (13, 2, 3)]  # list 2's copy went
            columns = {c["name"] for c in sa.inspect(c).get_columns("watchlist_items")}
            assert "list_no" not in columns and "position" not in columns
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as c:  # one per (user, instrument) again
            c.execute(sa.text("INSERT INTO watchlist_items (id, user_id, instrument_id) VALUES (16, 1, 3)"))
        db.engine.dispose()
