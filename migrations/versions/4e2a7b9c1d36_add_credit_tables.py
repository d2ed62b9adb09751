"""add_credit_tables

Revision ID: 4e2a7b9c1d36
Revises: 5c8d3e1f4a27
Create Date: 2025-03-11 16:20:04
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "4e2a7b9c1d36"
down_revision = "5c8d3e1f4a27"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    ops.create_table_if_missing(
        "credit",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("credit", sa.Numeric(24, 12)),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
    )
    ops.create_index_if_missing("ix_credit_user_id", "credit", ["user_id"])
    ops.create_table_if_missing(
        "payment",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("amount", sa.Numeric(24, 12)),
        sa.Column("status", sa.String(64)),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
    )


def downgrade() -> None:
    ops.no_downgrade(revision)
