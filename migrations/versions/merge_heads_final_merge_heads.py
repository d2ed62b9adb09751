"""merge_heads_final

Revision ID: merge_heads_final
Revises: 24e8f9a7b1c2, abc123def456
Create Date: 2025-06-10 08:00:00

Joins the two branches into the single revision that MIGRATION_TARGET names
by default.  It changes no schema.
"""

revision = "merge_heads_final"
down_revision = ("24e8f9a7b1c2", "abc123def456")
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
