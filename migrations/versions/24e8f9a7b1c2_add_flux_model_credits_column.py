"""add_flux_model_credits_column

Revision ID: 24e8f9a7b1c2
Revises: ef6fab585ac1
Create Date: 2025-06-07 09:12:55
"""

import sqlalchemy as sa

from migrate_init import ops

revision = "24e8f9a7b1c2"
down_revision = "ef6fab585ac1"
branch_labels = None
depends_on = None
# Every step is a migrate_init.ops helper that checks first: safe to run again after an
# interruption on MySQL/MariaDB, whose DDL is not transactional (see migrate_init/progress.py).
idempotent = True


def upgrade() -> None:
    # Credits charged per Flux model, as JSON: {"flux-pro": 10, "flux-dev": 4}.
    ops.add_column_if_missing("flux_config", sa.Column("model_credits", sa.Text, nullable=True))


def downgrade() -> None:
    ops.no_downgrade(revision)
