"""positions: when the mark's price was observed, and whether it is stale

Repricing marks a position from the feed's cached tick; without a fresh one, from a broker's quote
API, else the last known price or the master's close. price_at is when that price was observed
(UTC); price_stale says it was not a fresh tick, so pages show "stale 3m" next to the LTP. Neither
is indexed, so repricing's UPDATEs stay HOT (0006).

Revision ID: 0007_position_price_age
Revises: 0006_positions_fillfactor
Create Date: 2026-11-21 09:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

import webapp.models.base

# revision identifiers, used by Alembic.
revision = "0007_position_price_age"
down_revision = "0006_positions_fillfactor"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("price_stale", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_column("price_stale")
        batch_op.drop_column("price_at")
