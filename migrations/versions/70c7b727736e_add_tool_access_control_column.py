"""add_tool_access_control_column

Revision ID: 70c7b727736e
Revises: 4e2a7b9c1d36
Create Date: 2025-04-02 11:08:47
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "70c7b727736e"
down_revision = "4e2a7b9c1d36"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    ops.add_column_if_missing("tool", sa.Column("access_control", sa.Text, nullable=True))


def downgrade() -> None:
    ops.no_downgrade(revision)
