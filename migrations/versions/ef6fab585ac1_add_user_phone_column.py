"""add_user_phone_column

Revision ID: ef6fab585ac1
Revises: 70c7b727736e
Create Date: 2025-05-19 14:31:09
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "ef6fab585ac1"
down_revision = "70c7b727736e"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    ops.add_column_if_missing("user", sa.Column("phone", sa.String(32), nullable=True))


def downgrade() -> None:
    ops.no_downgrade(revision)
