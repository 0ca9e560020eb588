"""users: session_version, so ending a user's sessions is one UPDATE

Each login session carries the user's session_version; the user loader refuses a session whose
version is not the row's. Logout, a password change or reset, deactivation, reactivation and a
change of role or grants bump it, which ends every session (and remember-me cookie) issued before.

Revision ID: 0009_user_session_version
Revises: 0008_orders_client_created
Create Date: 2026-12-05 02:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009_user_session_version"
down_revision = "0008_orders_client_created"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
