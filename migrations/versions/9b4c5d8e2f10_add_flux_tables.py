"""add_flux_tables

Revision ID: 9b4c5d8e2f10
Revises: ca81bd47c050
Create Date: 2025-01-14 10:02:11
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "9b4c5d8e2f10"
down_revision = "ca81bd47c050"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def task_columns():
    """The columns every generation-task table had when it was created."""
    return [
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("prompt", sa.Text),
        sa.Column("status", sa.String(64)),
        sa.Column("result_url", sa.Text),
        sa.Column("credits", sa.Integer),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
    ]


def upgrade() -> None:
    ops.create_table_if_missing(
        "flux_config",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("api_key", sa.Text),
        sa.Column("base_url", sa.Text),
        sa.Column("enabled", sa.Boolean),
        sa.Column("default_model", sa.String(255)),
        sa.Column("credits_per_image", sa.Integer),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
    )
    ops.create_table_if_missing("flux_task", *task_columns())


def downgrade() -> None:
    ops.no_downgrade(revision)
