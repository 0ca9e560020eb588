"""watchlists: numbered lists (1-5) with an order, like Kite's market watch

A watchlist item gains its list number and its position in that list; existing rows go to list 1 in the
order they were added. One instrument may now sit on several lists, once per list.

Revision ID: 0015_watchlists
Revises: 0014_api
Create Date: 2026-12-05 12:05:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015_watchlists"
down_revision = "0014_api"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("watchlist_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("list_no", sa.SmallInteger(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("position", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_watchlist_user_instrument", type_="unique")
        batch_op.create_unique_constraint("uq_watchlist_user_list_instrument", ["user_id", "list_no", "instrument_id"])
    # existing rows: list 1, positioned in the order they were added
    items = sa.table(
        "watchlist_items",
        sa.column("id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("position", sa.Integer),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(items.c.id, items.c.user_id).order_by(items.c.user_id, items.c.id)).all()
    counters: dict[int, int] = {}
    for item_id, user_id in rows:
        counters[user_id] = counters.get(user_id, 0) + 1
        bind.execute(items.update().where(items.c.id == item_id).values(position=counters[user_id]))


def downgrade():
    # one row per (user, instrument) again: the lowest list's row is kept
    items = sa.table(
        "watchlist_items",
        sa.column("id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("instrument_id", sa.Integer),
        sa.column("list_no", sa.SmallInteger),
    )
    bind = op.get_bind()
    seen: set[tuple[int, int]] = set()
    rows = bind.execute(
        sa.select(items.c.id, items.c.user_id, items.c.instrument_id).order_by(items.c.list_no, items.c.id)
    ).all()
    for item_id, user_id, instrument_id in rows:
        if (user_id, instrument_id) in seen:
            bind.execute(items.delete().where(items.c.id == item_id))
        seen.add((user_id, instrument_id))
    with op.batch_alter_table("watchlist_items", schema=None) as batch_op:
        batch_op.drop_constraint("uq_watchlist_user_list_instrument", type_="unique")
        batch_op.create_unique_constraint("uq_watchlist_user_instrument", ["user_id", "instrument_id"])
        batch_op.drop_column("position")
        batch_op.drop_column("list_no")
