"""day end: the intraday square-off's day, holdings the day-end rolled in

The desk state remembers the IST day its intraday square-off last ran (once per day across restarts);
a holding remembers the IST day whose delivery buys the desk's day-end rolled into it, so the broker
sync leaves it alone until the broker's own overnight roll shows them.

Revision ID: 0011_day_end
Revises: 0010_automation
Create Date: 2026-12-05 05:50:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011_day_end"
down_revision = "0010_automation"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("desk_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_squareoff_day", sa.Date(), nullable=True))
    with op.batch_alter_table("holdings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rolled_day", sa.Date(), nullable=True))


def downgrade():
    with op.batch_alter_table("holdings", schema=None) as batch_op:
        batch_op.drop_column("rolled_day")
    with op.batch_alter_table("desk_state", schema=None) as batch_op:
        batch_op.drop_column("last_squareoff_day")
