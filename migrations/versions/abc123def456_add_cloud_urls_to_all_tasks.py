"""add_cloud_urls_to_all_tasks

Revision ID: abc123def456
Revises: 70c7b727736e
Create Date: 2025-06-09 17:45:00

Written on a branch in parallel with ef6fab585ac1 and 24e8f9a7b1c2, so the
history has two heads until merge_heads_final joins them.
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "abc123def456"
down_revision = "70c7b727736e"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True

TASK_TABLES = ("flux_task", "midjourney_task", "kling_task", "jimeng_task")


def upgrade() -> None:
    for table in TASK_TABLES:
        ops.add_column_if_missing(table, sa.Column("cloud_image_url", sa.Text, nullable=True))
        ops.add_column_if_missing(table, sa.Column("cloud_video_url", sa.Text, nullable=True))


def downgrade() -> None:
    ops.no_downgrade(revision)
