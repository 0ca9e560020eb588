"""history: candles of other intervals

Stored candles carry their interval in minutes (the feed's own are 1); one row per (instrument,
interval, start) instead of per (instrument, start).

Revision ID: 0012_history
Revises: 0011_day_end
Create Date: 2026-12-05 05:50:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_history"
down_revision = "0011_day_end"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("candles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("interval", sa.Integer(), server_default="1", nullable=False))
        batch_op.drop_constraint("uq_candles_instrument_start", type_="unique")
        batch_op.create_unique_constraint(
            "uq_candles_instrument_interval_start", ["instrument_id", "interval", "start"]
        )


def downgrade():
    candles = sa.table("candles", sa.column("interval", sa.Integer()))
    op.execute(candles.delete().where(candles.c.interval != 1))  # the old key holds one bar per minute
    with op.batch_alter_table("candles", schema=None) as batch_op:
        batch_op.drop_constraint("uq_candles_instrument_interval_start", type_="unique")
        batch_op.create_unique_constraint("uq_candles_instrument_start", ["instrument_id", "start"])
        batch_op.drop_column("interval")
