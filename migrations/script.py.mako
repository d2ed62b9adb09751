"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Additive only: build it from migrate_init.ops (idempotent helpers), add
nullable columns, never drop or retype.
"""

import sqlalchemy as sa

from migrate_init import ops

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}
# MySQL/MariaDB commit DDL at once: set idempotent = True only when every step checks before it
# acts (migrate_init.ops does), so that a run interrupted half-way can simply run it again.
idempotent = False


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ops.no_downgrade(revision)
