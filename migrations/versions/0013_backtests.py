"""backtests: runs and parameter sweeps

A backtest run (strategy, parameters, instrument, interval, IST day range, settings; its state,
progress, error, metrics, and its trades and equity curve stored compressed) and the sweep that groups
the runs of a parameter grid (or of a deployment's clients, each with its own capital and sizing).

Revision ID: 0013_backtests
Revises: 0012_history
Create Date: 2026-12-05 05:50:00

"""

import sqlalchemy as sa
from alembic import op

import webapp.models.base

# revision identifiers, used by Alembic.
revision = "0013_backtests"
down_revision = "0012_history"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "backtest_sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("strategy", sa.String(length=40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("combinations", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_backtest_sweeps_created_by_id_users")),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_backtest_sweeps_deployment_id_deployments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_backtest_sweeps_instrument_id_instruments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_sweeps")),
    )
    with op.batch_alter_table("backtest_sweeps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backtest_sweeps_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_backtest_sweeps_created_by_id"), ["created_by_id"], unique=False)

    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("sweep_id", sa.Integer(), nullable=True),
        sa.Column("strategy", sa.String(length=40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("bars", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("trades_blob", sa.LargeBinary(), nullable=True),
        sa.Column("curve_blob", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", webapp.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", webapp.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_backtest_runs_created_by_id_users")),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instruments.id"], name=op.f("fk_backtest_runs_instrument_id_instruments")
        ),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["backtest_sweeps.id"],
            name=op.f("fk_backtest_runs_sweep_id_backtest_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_runs")),
    )
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backtest_runs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_backtest_runs_created_by_id"), ["created_by_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_backtest_runs_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_backtest_runs_sweep_id"), ["sweep_id"], unique=False)


def downgrade():
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backtest_runs_sweep_id"))
        batch_op.drop_index(batch_op.f("ix_backtest_runs_state"))
        batch_op.drop_index(batch_op.f("ix_backtest_runs_created_by_id"))
        batch_op.drop_index(batch_op.f("ix_backtest_runs_created_at"))
    op.drop_table("backtest_runs")
    with op.batch_alter_table("backtest_sweeps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backtest_sweeps_created_by_id"))
        batch_op.drop_index(batch_op.f("ix_backtest_sweeps_created_at"))
    op.drop_table("backtest_sweeps")
