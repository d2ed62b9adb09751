"""create note

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    note = op.create_table(
        "note",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
    )
    op.bulk_insert(note, [{"id": 1, "title": "written by the first migration"}])


def downgrade() -> None:
    op.drop_table("note")
