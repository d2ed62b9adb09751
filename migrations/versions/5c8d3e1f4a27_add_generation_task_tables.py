"""add_generation_task_tables

Revision ID: 5c8d3e1f4a27
Revises: 9b4c5d8e2f10
Create Date: 2025-02-03 09:40:52
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "5c8d3e1f4a27"
down_revision = "9b4c5d8e2f10"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    for table in ("midjourney_task", "kling_task", "jimeng_task"):
        ops.create_table_if_missing(
            table,
            sa.Column("id", sa.String(255), primary_key=True),
            sa.Column("user_id", sa.String(255)),
            sa.Column("prompt", sa.Text),
            sa.Column("status", sa.String(64)),
            sa.Column("result_url", sa.Text),
            sa.Column("credits", sa.Integer),
            sa.Column("created_at", sa.BigInteger),
            sa.Column("updated_at", sa.BigInteger),
        )


def downgrade() -> None:
    ops.no_downgrade(revision)
