"""Load the models named by MODELS and describe the schema they expect."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from .errors import ConfigError


def load(spec: str, search_path: list[Path]):
    """Import ``module:attribute`` and return its SQLAlchemy MetaData.

    The attribute may be a MetaData or a declarative Base (anything with a
    ``.metadata``).  ``search_path`` (the migrations folder) is put on
    sys.path first, the way Alembic's ``prepend_sys_path`` does.
    """
    from sqlalchemy import MetaData

    for folder in reversed(search_path):
        entry = str(folder)
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_name, _, attribute = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"MODELS={spec!r}: cannot import module '{module_name}' ({exc}). "
            "Put it on PYTHONPATH or in MIGRATIONS_DIR."
        ) from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"MODELS={spec!r}: module '{module_name}' has no attribute '{attribute}'."
            ) from None
    metadata = obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise ConfigError(
            f"MODELS={spec!r} is neither a MetaData nor a declarative Base."
        )
    return metadata


def expected_schema(metadata) -> dict[str, set[str]]:
    """``{table: {column, ...}}`` for every table the models define."""
    return {table.name: {column.name for column in table.columns} for table in metadata.sorted_tables}


def counted_tables(metadata) -> list[str]:
    """The tables whose row counts the summary reports.

    Tables marked ``info={"count_rows": True}``; when none is marked, all.
    """
    marked = [t.name for t in metadata.sorted_tables if t.info.get("count_rows")]
    return marked or [t.name for t in metadata.sorted_tables]
