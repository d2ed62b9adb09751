"""Support for the robustness and concurrency tests (issue 4).

Fixture migration folders are copies of the shipped ``migrations/`` with extra
revisions after ``merge_heads_final``; ``MIGRATIONS_DIR`` points at the copy
and ``MODELS=models:Base`` resolves inside it.  Everything here drives real
processes, real SQLite files and the real PostgreSQL test server.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

import pytest
from sqlalchemy.engine import make_url

from helpers import MIGRATE, REPO, child_env, pg_query, sqlite_path, sqlite_query

if str(REPO) not in sys.path:  # the tests read the product's lock key and lock path
    sys.path.insert(0, str(REPO))

from migrate_init.lock import advisory_key, lock_path  # noqa: E402

SHIPPED = REPO / "migrations"
TARGET = "merge_heads_final"
#: The revisions the shipped scripts apply to an empty database.
SHIPPED_REVISIONS = (
    "7e5b5dc7342b", "ca81bd47c050", "9b4c5d8e2f10", "5c8d3e1f4a27", "4e2a7b9c1d36",
    "70c7b727736e", "abc123def456", "ef6fab585ac1", "24e8f9a7b1c2", "merge_heads_final",
)
SLOW_ROWS = 500
HOLDER_STARTED = "2001-02-03T04:05:06+00:00"


# --- fixture migration folders ------------------------------------------------

_HEADER = '''"""{name}: a fixture revision of tests/robust_support.py (issue 4)

Revision ID: {rev}
Revises: {down}
"""

import os
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def downgrade() -> None:
    raise NotImplementedError(revision)
'''

# Creates a table named after the revision, fills it, writes ROBUST_MARKER,
# then waits ROBUST_SLOW_SECONDS: PostgreSQL in pg_sleep, SQLite in Python's
# time.sleep after its DDL, or (ROBUST_SLOW_MODE=statement) in a recursive CTE
# that runs for minutes unless it is interrupted.  Deliberately not idempotent:
# had a killed run left it half-applied, the next run would fail on it.
_SLOW_BODY = '''
ROWS = {rows}


def upgrade() -> None:
    table = op.create_table(
        revision,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.String(40), nullable=False),
    )
    op.bulk_insert(table, [{{"id": i, "note": f"row {{i}}"}} for i in range(ROWS)])
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
    elif os.environ.get("ROBUST_SLOW_MODE") == "statement":
        bind.exec_driver_sql(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000000000) "
            "SELECT count(*) FROM c"
        )
    else:
        time.sleep(seconds)
'''

_ALTER_USER_BODY = '''

def upgrade() -> None:
    # ALTER TABLE needs ACCESS EXCLUSIVE on "user": it queues behind any open
    # application transaction that has read the table.
    op.add_column("user", sa.Column("robust_nick", sa.String(50), nullable=True))
'''

_PARENT_CHILD_BODY = '''

def upgrade() -> None:
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
'''

_BATCH_BODY = '''

def upgrade() -> None:
    # A full table rebuild: copy to a new table, DROP the old one, rename.
    # With PRAGMA foreign_keys=ON the DROP would cascade into robust_child.
    with op.batch_alter_table("robust_parent", recreate="always") as batch:
        batch.add_column(sa.Column("rebuilt", sa.Boolean, nullable=True))
'''

_BODIES = {
    "slow": _SLOW_BODY,
    "alter_user": _ALTER_USER_BODY,
    "parent_child": _PARENT_CHILD_BODY,
    "batch": _BATCH_BODY,
}


def build_migrations(dest: Path, *revisions: tuple[str, str], drop_merge: bool = False) -> Path:
    """Copy the shipped migrations to ``dest`` and chain ``(revision, kind)`` after the merge.

    ``kind`` is one of slow, alter_user, parent_child, batch.  With
    ``drop_merge`` the merge revision is removed, leaving two heads.
    """
    shutil.copytree(SHIPPED, dest, ignore=shutil.ignore_patterns("__pycache__"))
    down = TARGET
    if drop_merge:
        (dest / "versions" / "merge_heads_final_merge_heads.py").unlink()
    for rev, kind in revisions:
        text = _HEADER.format(name=kind, rev=rev, down=down) + _BODIES[kind].format(rows=SLOW_ROWS)
        (dest / "versions" / f"{rev}.py").write_text(text)
        down = rev
    return dest


def migrate_env(url: str, migrations: Path | None = None, **extra: object) -> dict[str, str]:
    """The environment of one migrate.py run; keyword arguments add variables."""
    env = {"DATABASE_URL": url, "REPORT_FILE": "-", "DB_WAIT_TIMEOUT": "10"}
    if migrations is not None:
        env.update(MIGRATIONS_DIR=str(migrations), MODELS="models:Base")
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --- processes ----------------------------------------------------------------

class Runner:
    """One migrate.py process, its output in a file (safe to kill at any moment)."""

    #: Every runner started, so that a failed test leaves none behind (kill_all).
    started: list[Runner] = []

    def __init__(self, env: Mapping[str, str | None], log: Path, *args: str, argv_prefix=()):
        self.log = log
        with open(log, "w", encoding="utf-8") as out:
            self.proc = subprocess.Popen(
                [*argv_prefix, sys.executable, str(MIGRATE), *args],
                env=child_env(env), cwd=REPO, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        Runner.started.append(self)

    @classmethod
    def kill_all(cls) -> None:
        while cls.started:
            cls.started.pop().kill()

    @property
    def out(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"migrate.py did not finish within {timeout}s:\n{self.out}") from None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the run's process group; nothing once it was reaped (its id may be reused)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               runner: Runner | None = None, interval: float = 0.05):
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if runner is not None and not runner.alive():
            raise AssertionError(f"migrate.py exited ({runner.proc.returncode}) before {what}:\n{runner.out}")
        if time.monotonic() >= deadline:
            detail = f"\n{runner.out}" if runner is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def marker_says(marker: Path, revision: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return marker.read_text() == revision
        except OSError:
            return False
    return check


# --- database state ---------------------------------------------------------------

def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def versions(url: str) -> list[str] | None:
    """The rows of alembic_version, sorted; None when the table does not exist."""
    if is_sqlite(url):
        if not sqlite_path(url).exists():
            return None
        if not sqlite_query(url, "SELECT name FROM sqlite_master WHERE name = 'alembic_version'"):
            return None
        return sorted(r[0] for r in sqlite_query(url, "SELECT version_num FROM alembic_version"))
    if not pg_query(url, "SELECT to_regclass('public.alembic_version')")[0][0]:
        return None
    return sorted(r[0] for r in pg_query(url, "SELECT version_num FROM alembic_version"))


def live_schema(url: str) -> dict[str, set[str]]:
    """``{table: {column}}`` of the live database (public schema on PostgreSQL)."""
    schema: dict[str, set[str]] = {}
    if is_sqlite(url):
        for (table,) in sqlite_query(url, "SELECT name FROM sqlite_master WHERE type = 'table'"):
            schema[table] = {r[1] for r in sqlite_query(url, f'PRAGMA table_info("{table}")')}
        return schema
    rows = pg_query(url, "SELECT table_name, column_name FROM information_schema.columns "
                         "WHERE table_schema = 'public'")
    for table, column in rows:
        schema.setdefault(table, set()).add(column)
    return schema


def model_schema() -> dict[str, set[str]]:
    """What the shipped models define: every table and its columns."""
    spec = importlib.util.spec_from_file_location("robust_shipped_models", SHIPPED / "models.py")
    module = importlib.util.module_from_spec(spec)
    # Registered first: SQLAlchemy resolves the Mapped[...] annotations through it.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return {t.name: {c.name for c in t.columns} for t in module.Base.metadata.sorted_tables}


def count(url: str, table: str) -> int:
    sql = f'SELECT count(*) FROM "{table}"'
    rows = sqlite_query(url, sql) if is_sqlite(url) else pg_query(url, sql)
    return rows[0][0]


def table_count(url: str, table: str) -> int:
    """How many tables named ``table`` exist (0 or 1; more would be a bug)."""
    if is_sqlite(url):
        sql, params = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        return sqlite_query(url, sql, params)[0][0]
    sql = "SELECT count(*) FROM pg_class WHERE relname = %s AND relkind = 'r'"
    return pg_query(url, sql, (table,))[0][0]


def integrity(url: str) -> list[tuple]:
    return sqlite_query(url, "PRAGMA integrity_check")


def assert_at_head(url: str, heads: list[str], slow_tables: tuple[str, ...] = ()) -> None:
    """Version, schema and data agree: the version is ``heads``, every model
    table and column exists, each slow table exists once with all its rows,
    and a SQLite file passes PRAGMA integrity_check."""
    assert versions(url) == sorted(heads)
    live = live_schema(url)
    for table, columns in model_schema().items():
        assert table in live, f"table {table} missing"
        assert columns <= live[table], f"{table} lacks {columns - live[table]}"
    for table in slow_tables:
        assert table_count(url, table) == 1
        assert count(url, table) == SLOW_ROWS
    if is_sqlite(url):
        assert integrity(url) == [("ok",)]


def fingerprint(url: str) -> tuple:
    """Everything a run could change: version, schema and row counts."""
    schema = live_schema(url)
    rows = {table: count(url, table) for table in schema}
    return versions(url), {t: sorted(c) for t, c in schema.items()}, rows


# --- locks ------------------------------------------------------------------------

def dbname(url: str) -> str:
    return make_url(url).database


def key_parts(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def advisory_locks(url: str) -> int:
    """Advisory locks held on the migration key of this database, by anyone."""
    hi, lo = key_parts(advisory_key(dbname(url), "alembic_version"))
    return pg_query(
        url,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s AND objid = %s",
        (hi, lo),
    )[0][0]


def migrator_backends(url: str) -> int:
    """Server sessions of migrate-init still connected to this database."""
    return pg_query(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND application_name = 'migrate-init'")[0][0]


def flock_free(db: Path) -> bool:
    """Whether the SQLite migration lock file can be locked right now."""
    import fcntl

    path = lock_path(db)
    if not path.exists():
        return True
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


def pg_session(url: str, application_name: str, autocommit: bool = False):
    """A psycopg2 connection of our own, named in pg_stat_activity."""
    import psycopg2

    u = make_url(url)
    conn = psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                            dbname=u.database, application_name=application_name, connect_timeout=10)
    conn.autocommit = autocommit
    return conn


@contextlib.contextmanager
def pg_lock_held(url: str, application_name: str = "robust-lock-holder"):
    """Hold the migration advisory lock from a session of our own; yield its backend pid."""
    conn = pg_session(url, application_name, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (advisory_key(dbname(url), "alembic_version"),))
        yield conn.get_backend_pid()
    finally:
        conn.close()


_SQLITE_HOLDER = f"""
import fcntl, json, os, socket, sys, time
from pathlib import Path
from migrate_init.lock import lock_path
path = lock_path(Path(sys.argv[1]))
path.parent.mkdir(parents=True, exist_ok=True)
handle = open(path, "a+", encoding="utf-8")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
handle.seek(0)
handle.truncate()
handle.write(json.dumps({{"host": socket.gethostname(), "pid": os.getpid(),
                         "started": "{HOLDER_STARTED}"}}) + "\\n")
handle.flush()
print("held", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def sqlite_lock_held(db: Path):
    """A helper process holds the flock on the lock file and records itself; yield its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SQLITE_HOLDER, str(db)], env=child_env(), cwd=REPO,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "held", f"lock holder failed: {line}{proc.stdout.read()}"
        yield proc.pid
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()


# --- filesystems --------------------------------------------------------------

def _mount_unavailable(reason: str) -> None:
    """Without a mount the test cannot prove anything: fail in CI, skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must be able to mount (it runs as root).")
    pytest.skip(reason)


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """Mount a tmpfs of ``size`` at ``path`` (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        _mount_unavailable("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        _mount_unavailable(f"mount -t tmpfs failed: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def dead_network_mount(path: Path, fstype: str = "fuse.sshfs"):
    """Mount a FUSE filesystem whose type reads ``fstype`` and whose server is gone.

    This is what a dropped sshfs looks like: /proc/self/mounts lists it and
    every access fails with ENOTCONN.  The connection is aborted at once by
    closing /dev/fuse, so nothing can hang on it.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        _mount_unavailable("a FUSE mount needs root and /dev/fuse")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/dev/fuse", os.O_RDWR)
    try:
        options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
        if libc.mount(b"robust", str(path).encode(), fstype.encode(), 0, options) != 0:
            _mount_unavailable(f"mount -t {fstype} failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path) -> None:
    """Write to ``folder`` until its filesystem has no space left."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)


# --- network --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LateServer:
    """A TCP forwarder to PostgreSQL that only starts listening after ``delay`` seconds.

    Until then its port refuses connections, as a database that is still
    starting does.
    """

    def __init__(self, target_host: str, target_port: int, delay: float):
        self.port = free_port()
        self._target = (target_host, target_port)
        self._delay = delay
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self.listening = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        if self._stop.wait(self._delay):
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._sockets.append(listener)
        self.listening.set()
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

