"""Shared by the operator tests (issue 5): environments, migration variants, database snapshots.

Every helper reads or builds real things: a copy of migrations/ with extra
revisions written after ``merge_heads_final``, and the live schema of a real
SQLite file or PostgreSQL database.  Nothing here runs migrate.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from helpers import MIGRATE, REPO, Result, child_env, sqlite_path

SHIPPED = REPO / "migrations"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEAD = "merge_heads_final"

#: The shipped revisions in the order a fresh run applies them: (revision, from, name).
SHIPPED_STEPS = (
    ("7e5b5dc7342b", "base", "init"),
    ("ca81bd47c050", "7e5b5dc7342b", "add_config_table"),
    ("9b4c5d8e2f10", "ca81bd47c050", "add_flux_tables"),
    ("5c8d3e1f4a27", "9b4c5d8e2f10", "add_generation_task_tables"),
    ("4e2a7b9c1d36", "5c8d3e1f4a27", "add_credit_tables"),
    ("70c7b727736e", "4e2a7b9c1d36", "add_tool_access_control_column"),
    ("abc123def456", "70c7b727736e", "add_cloud_urls_to_all_tasks"),
    ("ef6fab585ac1", "70c7b727736e", "add_user_phone_column"),
    ("24e8f9a7b1c2", "ef6fab585ac1", "add_flux_model_credits_column"),
    ("merge_heads_final", "24e8f9a7b1c2, abc123def456", "merge_heads_final"),
)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def env_for(url: str, tmp_path: Path, **extra: object) -> dict[str, str]:
    """DATABASE_URL, short waits, an empty SEED_DIR and no REPORT_FILE unless given."""
    seeds = tmp_path / "no-seeds"
    seeds.mkdir(exist_ok=True)
    env = {"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "5", "SEED_DIR": str(seeds)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_split(*args: object, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """Run migrate.py; return (exit code, stdout, stderr) kept apart."""
    proc = subprocess.run(
        [sys.executable, str(MIGRATE), *map(str, args)],
        env=child_env(env), cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, encoding="utf-8", errors="replace", timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def report_of(path: Path) -> dict:
    """The JSON summary migrate.py wrote to REPORT_FILE."""
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 1, f"REPORT_FILE should hold one JSON line:\n{text}"
    return json.loads(text)


def summary_line(result: Result) -> str:
    lines = [line for line in result.out.splitlines() if "(exit " in line]
    assert lines, f"no summary line in:\n{result.out}"
    return lines[-1]


# --- Migration folders ------------------------------------------------------

_REVISION = '''"""{name}

Revision ID: {revision}
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

from migrate_init import ops

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


class Variant:
    """A copy of the shipped migrations/ plus revisions written after ``merge_heads_final``."""

    def __init__(self, folder: Path):
        self.path = Path(folder)
        shutil.copytree(SHIPPED, self.path, ignore=shutil.ignore_patterns("__pycache__"))
        self.last = HEAD

    def add(self, revision: str, body: str, *, name: str | None = None, down=None) -> Path:
        """Write ``revision`` revising the previous one added (or ``down``); returns its file."""
        name = name or f"operator_{revision}"
        down = self.last if down is None else down
        path = self.path / "versions" / f"{revision}_{name}.py"
        path.write_text(_REVISION.format(
            name=name, revision=revision, down=down,
            body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")))
        self.last = revision
        return path

    def remove(self, filename: str) -> None:
        (self.path / "versions" / filename).unlink()

    def env(self) -> dict[str, str]:
        return {"MIGRATIONS_DIR": str(self.path), "MODELS": "models:Base"}


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of ``path`` that holds ``needle`` (exactly one)."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} in {path}: lines {hits}"
    return hits[0]


# --- Reading a database -----------------------------------------------------

def _engine(url: str):
    if is_sqlite(url) and not sqlite_path(url).exists():
        raise FileNotFoundError(f"SQLite database {sqlite_path(url)} does not exist")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return sa.create_engine(url, poolclass=NullPool)


def sql(url: str, statement: str, params: dict | None = None) -> list[tuple]:
    """Run one statement and commit; return its rows, if any."""
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(statement), params or {})
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def snapshot(url: str) -> dict:
    """Everything a dry run must not change: tables, columns with types, indexes, versions."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            tables = {}
            for table in sorted(inspector.get_table_names()):
                tables[table] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                    "indexes": sorted(ix["name"] or "" for ix in inspector.get_indexes(table)),
                }
            version = []
            if "alembic_version" in tables:
                version = sorted(r[0] for r in connection.execute(sa.text("SELECT version_num FROM alembic_version")))
            return {"tables": tables, "versions": version}
    finally:
        engine.dispose()


def columns(url: str, table: str) -> set[str]:
    return {c[0] for c in snapshot(url)["tables"][table]["columns"]}


def versions(url: str) -> list[str]:
    return snapshot(url)["versions"]


def count(url: str, table: str, where: str = "") -> int:
    return sql(url, f'SELECT COUNT(*) FROM "{table}" {where}')[0][0]


def add_users(url: str, *ids: str) -> None:
    for user_id in ids:
        sql(url, 'INSERT INTO "user" (id, name, email, role) VALUES (:id, :id, :email, \'user\')',
            {"id": user_id, "email": f"{user_id}@example.com"})


def drop_user_phone(url: str) -> None:
    """Remove user.phone by hand, keeping the rows (SQLite 3.35+ and PostgreSQL both DROP COLUMN)."""
    sql(url, 'ALTER TABLE "user" DROP COLUMN phone')
