"""add_config_table

Revision ID: ca81bd47c050
Revises: 7e5b5dc7342b
Create Date: 2024-08-25 15:26:35
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "ca81bd47c050"
down_revision = "7e5b5dc7342b"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    ops.create_table_if_missing(
        "config",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("data", sa.Text),
        sa.Column("version", sa.Integer),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
    )


def downgrade() -> None:
    ops.no_downgrade(revision)
