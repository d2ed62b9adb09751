"""Alembic environment for the shipped migrations; the logic lives in migrate_init."""

from alembic import context

from migrate_init import alembic_env

alembic_env.run(context)
