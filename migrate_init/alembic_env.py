"""The body of the shipped ``migrations/env.py``.

Run by migrate-init, it receives the open connection through
``config.attributes["connection"]``.  Run by the plain ``alembic`` CLI, it
builds the same engine from the same configuration (DATABASE_URL or
DATABASE_URL_FILE), so both tools behave alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(context: Any) -> None:
    config = context.config
    folder = Path(config.get_main_option("script_location") or Path(__file__).parent)
    metadata = _metadata(config, folder)
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
            transactional_ddl=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_online(context, connection, metadata)
        return
    from logging.config import fileConfig

    from . import alembic_glue
    from . import config as config_module

    if config.config_file_name is not None:  # the plain alembic CLI, with alembic.ini
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    settings = config_module.load()
    database = settings.database
    if database.sqlite_path is not None:
        Path(database.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    engine = alembic_glue.create_engine(database, busy_timeout=settings.lock_timeout)
    try:
        with engine.connect() as connection:
            _run_online(context, connection, metadata)
    finally:
        engine.dispose()


def _run_online(context: Any, connection: Any, metadata: Any) -> None:
    from . import engines

    # A connection handed over outside a transaction gets one transaction per
    # migration; one inside a transaction (the dry run of `plan` and `lint`)
    # keeps everything in that transaction, which the caller rolls back.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Each migration commits with its version row, so a killed run keeps
        # what finished and rolls back only the migration in progress.
        transactional_ddl=True,
        transaction_per_migration=True,
        render_as_batch=engines.of_connection(connection).alters_by_rebuild,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _metadata(config: Any, folder: Path) -> Any:
    from . import config as config_module
    from . import schema

    spec = config.attributes.get("models", config_module.SHIPPED_MODELS)
    if spec is None:
        return None
    return schema.load(spec, [folder])
