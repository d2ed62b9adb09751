"""init

Revision ID: 7e5b5dc7342b
Revises:
Create Date: 2024-06-24 13:15:33
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "7e5b5dc7342b"
down_revision = None
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    ops.create_table_if_missing(
        "user",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255)),
        sa.Column("email", sa.String(255)),
        sa.Column("role", sa.String(255)),
        sa.Column("profile_image_url", sa.Text),
        sa.Column("last_active_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("api_key", sa.String(255)),
        sa.Column("settings", sa.Text),
        sa.Column("info", sa.Text),
        sa.Column("oauth_sub", sa.Text),
    )
    ops.create_table_if_missing(
        "chat",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("title", sa.Text),
        sa.Column("chat", sa.Text),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
        sa.Column("share_id", sa.Text),
        sa.Column("archived", sa.Boolean),
    )
    ops.create_index_if_missing("ix_chat_user_id", "chat", ["user_id"])
    ops.create_table_if_missing(
        "tool",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("name", sa.Text),
        sa.Column("content", sa.Text),
        sa.Column("specs", sa.Text),
        sa.Column("meta", sa.Text),
        sa.Column("valves", sa.Text),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger),
    )


def downgrade() -> None:
    ops.no_downgrade(revision)
