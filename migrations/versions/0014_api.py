"""api: keys, idempotent replies, webhooks

API keys (hashed, scoped, with an IP allowlist and an expiry), the replies kept for Idempotency-Key,
and the TradingView / Chartink hooks with their alerts (stored before acknowledged) and dedupe windows.

Revision ID: 0014_api
Revises: 0013_backtests
Create Date: 2026-12-05 08:38:25.376037

"""

import sqlalchemy as sa
from alembic import op

import webapp.models.base

# revision identifiers, used by Alembic.
revision = "0014_api"
down_revision = "0013_backtests"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_idempotent_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("created_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_idempotent_replies_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_idempotent_replies")),
        sa.UniqueConstraint("user_id", "key", name="uq_api_idempotent_replies_user_key"),
    )
    with op.batch_alter_table("api_idempotent_replies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_idempotent_replies_created_at"), ["created_at"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=32), nullable=False),
        sa.Column("allowed_ips", sa.String(length=1024), nullable=False),
        sa.Column("expires_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_ip", sa.String(length=45), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_api_keys_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_prefix", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=4), nullable=True),
        sa.Column("product", sa.String(length=8), nullable=False),
        sa.Column("order_type", sa.String(length=8), nullable=False),
        sa.Column("limit_offset", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("quantities", sa.JSON(), nullable=False),
        sa.Column("sizing", sa.String(length=16), nullable=False),
        sa.Column("sizing_value", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("client_ids", sa.JSON(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_seconds", sa.Integer(), nullable=False),
        sa.Column("last_alert_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_hooks_deployment_id_deployments"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"], name=op.f("fk_hooks_instrument_id_instruments")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_hooks_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hooks")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_hooks_secret_hash")),
    )
    with op.batch_alter_table("hooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hooks_user_id"), ["user_id"], unique=False)

    op.create_table(
        "hook_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("received_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("signal_id", sa.Integer(), nullable=True),
        sa.Column("processed_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_hook_alerts_batch_id_batches"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["hook_alerts.id"],
            name=op.f("fk_hook_alerts_duplicate_of_id_hook_alerts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"], ["hooks.id"], name=op.f("fk_hook_alerts_hook_id_hooks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_hook_alerts_signal_id_signals"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hook_alerts")),
    )
    with op.batch_alter_table("hook_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_hook_alerts_hook_received", ["hook_id", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_hook_alerts_status"), ["status"], unique=False)

    op.create_table(
        "hook_windows",
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("opened_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["hook_alerts.id"], name=op.f("fk_hook_windows_alert_id_hook_alerts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"], ["hooks.id"], name=op.f("fk_hook_windows_hook_id_hooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("hook_id", "fingerprint", name=op.f("pk_hook_windows")),
    )


def downgrade():
    op.drop_table("hook_windows")
    with op.batch_alter_table("hook_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hook_alerts_status"))
        batch_op.drop_index("ix_hook_alerts_hook_received")

    op.drop_table("hook_alerts")
    with op.batch_alter_table("hooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hooks_user_id"))

    op.drop_table("hooks")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("api_idempotent_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_idempotent_replies_created_at"))

    op.drop_table("api_idempotent_replies")
