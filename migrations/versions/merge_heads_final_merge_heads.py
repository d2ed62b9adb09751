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


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
