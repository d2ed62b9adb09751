"""Editable copies of the shipped migrations/ folder, and the revisions tests add to them.

``Chain(dest)`` copies migrations/ (env.py, models.py, versions/; never a
stale ``.manifest.marshal``) and can add, rewrite or remove revisions and edit
the models; ``MIGRATIONS_DIR`` then points at the copy and ``MODELS=models:Base``
resolves inside it (``Chain.env()``).  ``build_chain()`` chains the fixture
revisions below (slow, alter_user, parent_child, batch) after the head.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

from . import REPO

SHIPPED = REPO / "migrations"
#: The shipped head: the named merge revision that joins the branches.
TARGET = "merge_heads_final"

#: The shipped revisions in the order a fresh run applies them: (revision, from, name),
#: the name being the one in Alembic's "Running upgrade <from> -> <revision>, <name>" line.
REVISIONS = (
    ("7e5b5dc7342b", "base", "init"),
    ("ca81bd47c050", "7e5b5dc7342b", "add_config_table"),
    ("9b4c5d8e2f10", "ca81bd47c050", "add_flux_tables"),
    ("5c8d3e1f4a27", "9b4c5d8e2f10", "add_generation_task_tables"),
    ("4e2a7b9c1d36", "5c8d3e1f4a27", "add_credit_tables"),
    ("70c7b727736e", "4e2a7b9c1d36", "add_tool_access_control_column"),
    ("abc123def456", "70c7b727736e", "add_cloud_urls_to_all_tasks"),
    ("ef6fab585ac1", "70c7b727736e", "add_user_phone_column"),
    ("24e8f9a7b1c2", "ef6fab585ac1", "add_flux_model_credits_column"),
    (TARGET, "24e8f9a7b1c2, abc123def456", "merge_heads_final"),
)

_REVISION = '''"""{name}

Revision ID: {revision}
Revises: {down}
"""

import os
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from migrate_init import ops

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
{idempotent}

def upgrade() -> None:
{body}


def downgrade() -> None:
    ops.no_downgrade(revision)
'''

_UPGRADE = re.compile(r"def upgrade\(\) -> None:\n.*?(?=\n\n\ndef downgrade)", re.S)


def _indented(body: str) -> str:
    return textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")


class Chain:
    """A copy of the shipped migrations/ to edit; revisions added chain after the head."""

    def __init__(self, dest: Path):
        self.path = Path(dest)
        shutil.copytree(SHIPPED, self.path, ignore=shutil.ignore_patterns("__pycache__", ".manifest.marshal"))
        #: What the next ``add()`` revises unless it is told ``down``.
        self.last = TARGET

    @property
    def versions(self) -> Path:
        return self.path / "versions"

    def env(self) -> dict[str, str]:
        """MIGRATIONS_DIR and MODELS for a run on this copy."""
        return {"MIGRATIONS_DIR": str(self.path), "MODELS": "models:Base"}

    def file_of(self, revision: str) -> Path:
        found = [
            p
            for p in self.versions.glob("*.py")
            if re.search(rf"^revision = ['\"]{re.escape(revision)}['\"]$", p.read_text(), re.M)
        ]
        assert len(found) == 1, f"{revision}: {found}"
        return found[0]

    def add(
        self, revision: str, body: str, *, down: str | None = None, name: str | None = None, idempotent: bool = False
    ) -> Path:
        """Write ``revision`` whose upgrade() runs ``body``; returns its file.

        It revises ``down``, by default the revision added last (at first the
        head).  ``name`` is what Alembic's "Running upgrade" line shows.  The
        body sees ``sa``, ``op``, ``ops``, ``os``, ``time`` and ``Path``.
        ``idempotent`` writes ``idempotent = True`` into the module: on
        MySQL/MariaDB an interrupted run of it is then run again (see
        migrate_init/progress.py); without it the next run stops and names
        ``migrate.py resolve``.
        """
        name = name or f"test_{revision}"
        down = self.last if down is None else down
        path = self.versions / f"{revision}_{name}.py"
        flag = "idempotent = True\n" if idempotent else ""
        path.write_text(
            _REVISION.format(name=name, revision=revision, down=down, body=_indented(body), idempotent=flag)
        )
        self.last = revision
        return path

    def replace_upgrade(self, revision: str, body: str) -> None:
        """Give an existing revision a new upgrade() body (sa, op and ops are imported)."""
        path = self.file_of(revision)
        text = path.read_text()
        new = "def upgrade() -> None:\n" + _indented(body)
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


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of ``path`` that holds ``needle`` (exactly one)."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} in {path}: lines {hits}"
    return hits[0]


# --- fixture revisions for kills, signals, timeouts and races ------------------------

#: How many rows the slow revision inserts into its table.
SLOW_ROWS = 500

# Creates a table named after the revision, fills it, writes ROBUST_MARKER,
# then waits ROBUST_SLOW_SECONDS: PostgreSQL in pg_sleep, MySQL/MariaDB in
# SLEEP(), SQLite in Python's time.sleep after its DDL, or
# (ROBUST_SLOW_MODE=statement) in a recursive CTE that runs for minutes unless
# it is interrupted.  Deliberately not idempotent: had a killed run left it
# half-applied, the next run would fail on it (on MySQL/MariaDB, whose DDL
# commits at once, the next run stops and names ``migrate.py resolve``).
_SLOW = f"""
table = op.create_table(
    revision,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("note", sa.String(40), nullable=False),
)
op.bulk_insert(table, [{{"id": i, "note": f"row {{i}}"}} for i in range({SLOW_ROWS})])
bind = op.get_bind()
marker = os.environ.get("ROBUST_MARKER")
if marker:
    Path(marker + ".tmp").write_text(revision)
    os.replace(marker + ".tmp", marker)
seconds = float(os.environ.get("ROBUST_SLOW_SECONDS") or 0)
if seconds <= 0:
    return
if bind.dialect.name == "postgresql":
    bind.exec_driver_sql(f"SELECT pg_sleep({{seconds}})")
elif bind.dialect.name in ("mysql", "mariadb"):
    bind.exec_driver_sql(f"SELECT SLEEP({{seconds}})")
elif os.environ.get("ROBUST_SLOW_MODE") == "statement":
    bind.exec_driver_sql(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000000000) "
        "SELECT count(*) FROM c"
    )
else:
    time.sleep(seconds)
"""

# The slow revision made safe to run again (its module says idempotent = True,
# see build_chain): the table only when missing, the rows only into an empty
# table.  On MySQL/MariaDB, whose DDL commits at once, a run killed inside it
# leaves the table behind and the next run runs it again.
_SLOW_IDEMPOTENT = f"""
ops.create_table_if_missing(
    revision,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("note", sa.String(40), nullable=False),
)
table = sa.table(revision, sa.column("id", sa.Integer), sa.column("note", sa.String))
bind = op.get_bind()
if not bind.execute(sa.select(sa.func.count()).select_from(table)).scalar():
    op.bulk_insert(table, [{{"id": i, "note": f"row {{i}}"}} for i in range({SLOW_ROWS})])
marker = os.environ.get("ROBUST_MARKER")
if marker:
    Path(marker + ".tmp").write_text(revision)
    os.replace(marker + ".tmp", marker)
seconds = float(os.environ.get("ROBUST_SLOW_SECONDS") or 0)
if seconds <= 0:
    return
if bind.dialect.name == "postgresql":
    bind.exec_driver_sql(f"SELECT pg_sleep({{seconds}})")
elif bind.dialect.name in ("mysql", "mariadb"):
    bind.exec_driver_sql(f"SELECT SLEEP({{seconds}})")
else:
    time.sleep(seconds)
"""

_ALTER_USER = """
# ALTER TABLE needs ACCESS EXCLUSIVE on "user": it queues behind any open
# application transaction that has read the table.
op.add_column("user", sa.Column("robust_nick", sa.String(50), nullable=True))
"""

_PARENT_CHILD = """
op.create_table(
    "robust_parent",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(40)),
)
op.create_table(
    "robust_child",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("parent_id", sa.Integer,
              sa.ForeignKey("robust_parent.id", ondelete="CASCADE"), nullable=False),
)
"""

_BATCH = """
# A full table rebuild: copy to a new table, DROP the old one, rename.
# With PRAGMA foreign_keys=ON the DROP would cascade into robust_child.
with op.batch_alter_table("robust_parent", recreate="always") as batch:
    batch.add_column(sa.Column("rebuilt", sa.Boolean, nullable=True))
"""

#: The bodies ``build_chain()`` knows, by kind.
BODIES = {
    "slow": _SLOW,
    "slow_idempotent": _SLOW_IDEMPOTENT,
    "alter_user": _ALTER_USER,
    "parent_child": _PARENT_CHILD,
    "batch": _BATCH,
}
#: The kinds whose module declares ``idempotent = True`` (safe to run again on MySQL/MariaDB).
IDEMPOTENT_KINDS = frozenset({"slow_idempotent"})


def build_chain(dest: Path, *revisions: tuple[str, str]) -> Path:
    """A Chain at ``dest`` with ``(revision, kind)`` chained after the head; returns its folder."""
    chain = Chain(dest)
    for revision, kind in revisions:
        chain.add(revision, BODIES[kind], name=kind, idempotent=kind in IDEMPOTENT_KINDS)
    return chain.path


def marker_says(marker: Path, revision: str) -> Callable[[], bool]:
    """Whether the slow revision ``revision`` wrote ROBUST_MARKER (it is then waiting)."""

    def check() -> bool:
        try:
            return marker.read_text() == revision
        except OSError:
            return False

    return check
