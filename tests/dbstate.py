"""What a database holds, read back for assertions; and editable copies of migrations/.

The core tests run migrate.py as a real process (helpers.run_migrate) and then
look at the real database with these functions: its tables and columns, its
alembic_version rows and its data.  Nothing here migrates anything.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import sys
import textwrap
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from helpers import REPO, sqlite_path

SHIPPED_MIGRATIONS = REPO / "migrations"
TARGET = "merge_heads_final"

#: The shipped revisions, oldest first, as (revision, the name in its "Running upgrade" line).
REVISIONS = (
    ("7e5b5dc7342b", "init"),
    ("ca81bd47c050", "add_config_table"),
    ("9b4c5d8e2f10", "add_flux_tables"),
    ("5c8d3e1f4a27", "add_generation_task_tables"),
    ("4e2a7b9c1d36", "add_credit_tables"),
    ("70c7b727736e", "add_tool_access_control_column"),
    ("abc123def456", "add_cloud_urls_to_all_tasks"),
    ("ef6fab585ac1", "add_user_phone_column"),
    ("24e8f9a7b1c2", "add_flux_model_credits_column"),
    ("merge_heads_final", "merge_heads_final"),
)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _engine_url(url: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the venv has psycopg2.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


@contextlib.contextmanager
def connect(url: str):
    """A connection to an existing database (a SQLite file is never created here)."""
    if is_sqlite(url) and not sqlite_path(url).exists():
        raise FileNotFoundError(f"SQLite database {sqlite_path(url)} does not exist")
    engine = sa.create_engine(_engine_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def schema(url: str) -> dict[str, set[str]]:
    """``{table: {column, ...}}`` of the live database, without alembic_version."""
    with connect(url) as connection:
        inspector = sa.inspect(connection)
        return {
            table: {c["name"] for c in inspector.get_columns(table)}
            for table in inspector.get_table_names()
            if table != "alembic_version"
        }


def tables(url: str) -> set[str]:
    """Every table, alembic_version included."""
    with connect(url) as connection:
        return set(sa.inspect(connection).get_table_names())


def versions(url: str) -> list[str]:
    """The rows of alembic_version, sorted; [] when the table does not exist."""
    with connect(url) as connection:
        if "alembic_version" not in sa.inspect(connection).get_table_names():
            return []
        rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        return sorted(r[0] for r in rows)


def query(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    """Run one statement and commit; return its rows (if it returns any)."""
    with connect(url) as connection:
        result = connection.execute(sa.text(sql), params or {})
        rows = [tuple(r) for r in result] if result.returns_rows else []
        connection.commit()
        return rows


def insert_many(url: str, table: str, rows: list[dict]) -> None:
    """A bulk insert (executemany) into ``table``, in one transaction."""
    with connect(url) as connection:
        target = sa.Table(table, sa.MetaData(), autoload_with=connection)
        connection.execute(target.insert(), rows)
        connection.commit()


def all_rows(url: str, table: str) -> list[dict]:
    """Every row of ``table`` in primary-key order, as ``{column: value}``."""
    with connect(url) as connection:
        target = sa.Table(table, sa.MetaData(), autoload_with=connection)
        order = list(target.primary_key.columns) or list(target.columns)
        return [dict(r._mapping) for r in connection.execute(sa.select(target).order_by(*order))]


def load_models(folder: Path = SHIPPED_MIGRATIONS):
    """The MetaData of ``folder``/models.py, imported under a name of its own."""
    name = f"_core_models_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, folder / "models.py")
    module = importlib.util.module_from_spec(spec)
    # Registered first: the models' string annotations resolve through sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Base.metadata


def models_schema(folder: Path = SHIPPED_MIGRATIONS) -> dict[str, set[str]]:
    """``{table: {column, ...}}`` that ``folder``/models.py defines."""
    return {t.name: {c.name for c in t.columns} for t in load_models(folder).sorted_tables}


def running_upgrade_lines(out: str) -> list[str]:
    """Alembic's own "Running upgrade <from> -> <to>, <name>" lines."""
    return [line for line in out.splitlines() if "Running upgrade " in line]


def upgrade_count(out: str, revision: str, name: str) -> int:
    """How often ``Running upgrade ... -> revision, name`` was logged."""
    pattern = re.compile(rf"Running upgrade .*-> {re.escape(revision)}, {re.escape(name)}$")
    return sum(1 for line in running_upgrade_lines(out) if pattern.search(line))


_REVISION_TEMPLATE = '''"""{doc}

Revision ID: {revision}
Revises: {down_revision}
"""

import sqlalchemy as sa
from alembic import op

from migrate_init import ops

revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    ops.no_downgrade(revision)
'''

_UPGRADE = re.compile(r"def upgrade\(\) -> None:\n.*?(?=\n\n\ndef downgrade)", re.S)


class MigrationsCopy:
    """A copy of the shipped migrations/ (env.py, models.py, versions/) to edit."""

    def __init__(self, dest: Path):
        self.path = Path(dest)
        shutil.copytree(SHIPPED_MIGRATIONS, self.path,
                        ignore=shutil.ignore_patterns("__pycache__"))

    @property
    def versions(self) -> Path:
        return self.path / "versions"

    def file_of(self, revision: str) -> Path:
        found = [p for p in self.versions.glob("*.py")
                 if re.search(rf"^revision = ['\"]{re.escape(revision)}['\"]$", p.read_text(), re.M)]
        assert len(found) == 1, f"{revision}: {found}"
        return found[0]

    def add_revision(self, revision: str, down_revision, body: str, doc: str | None = None) -> Path:
        """Write a new revision whose upgrade() runs ``body`` (sa, op and ops are imported)."""
        doc = doc or f"core_test_{revision}"
        path = self.versions / f"{revision}_{doc}.py"
        path.write_text(_REVISION_TEMPLATE.format(
            doc=doc, revision=revision, down_revision=down_revision,
            body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")))
        return path

    def replace_upgrade(self, revision: str, body: str) -> None:
        """Give an existing revision a new upgrade() body (sa, op and ops are imported)."""
        path = self.file_of(revision)
        text = path.read_text()
        new = "def upgrade() -> None:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        text, count = _UPGRADE.subn(lambda _m: new, text)
        assert count == 1, f"no upgrade() found in {path}"
        # After the docstring, which Alembic shows as the revision's name.
        imports = "\nfrom alembic import op\nimport sqlalchemy as sa\nfrom migrate_init import ops\n"
        text, count = re.subn(r'\A(""".*?"""\n)', lambda m: m.group(1) + imports, text, count=1, flags=re.S)
        assert count == 1, f"{path} does not start with a docstring"
        path.write_text(text)

    def remove(self, revision: str) -> None:
        self.file_of(revision).unlink()

    def edit_models(self, old: str, new: str) -> None:
        path = self.path / "models.py"
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
        path.write_text(text.replace(old, new))

    def append_models(self, code: str) -> None:
        path = self.path / "models.py"
        path.write_text(path.read_text() + "\n\n" + textwrap.dedent(code))
