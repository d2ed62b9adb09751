"""The fast path: a run that finds the database at its target, without SQLAlchemy or Alembic.

An init container runs at every pod start and almost always has nothing to
do; importing SQLAlchemy and Alembic alone costs several times the rest of
such a run (issue 7).  So, before any heavy import, ``run`` and ``wait`` ask
this module.  It answers from the manifest (:mod:`migrate_init.manifest`)
and the bare driver (stdlib ``sqlite3``, or ``psycopg2``), and it answers
only when the full sequence would have found the database at its target:

- the manifest exists, is for these MODELS, and its content hash matches the
  scripts and models on disk now (an edited or added migration is stale);
- the version table holds exactly the scripts' heads, one row each (not a
  missing table, not an unknown revision, not several branch rows);
- every table and column of the models exists;
- MIGRATION_TARGET, when set, is a revision of these scripts (the goal is
  every head either way: MIGRATION_TARGET only orders the layers; an unknown
  one gets the full path, which warns about it).

Then it logs the same lines as the full path (verification, row counts) and
fills the summary.  In every other case (no manifest, an unusual
DATABASE_URL, a database that does not answer at the first try, dependencies
to install, FAST_PATH=false, anything unexpected) it declines, logs why at
DEBUG level, and the caller runs the full sequence, which behaves exactly as
if this module did not exist.

Replicas that start together (``run`` only): when the database is not at its
target, the first runner takes a light "first" lock and goes on to the full
path, holding it until it exits; the others wait for that lock with the bare
driver, then look again, and answer "nothing to do" without ever loading
SQLAlchemy.  Only when the database is still not at its target do they take
the full path themselves.  The migration lock (lock.py) still guards every
change; the first lock only spares the waiters their imports.

Read-only: the only thing it may create is the first lock's file, beside the
migration lock's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

from . import manifest as manifest_module
from . import report
from .config import Config
from .db import split_url
from .lock import advisory_key

_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_POSTGRESQL_DRIVERS = ("postgresql", "postgresql+psycopg2", "postgres", "postgres+psycopg2")
# Query keys that make the URL's host or port something other than what it says.
_POSTGRESQL_REROUTING = {"host", "hostaddr", "port", "service", "dbname", "user", "password"}

#: Open handles whose locks this process holds until it exits (the first lock).
_held: list = []


class _Decline(Exception):
    """Why the fast path cannot answer; the full path runs."""


class _Stopped(Exception):
    """SIGTERM or SIGINT while waiting for the first migrator."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _NotAtTarget(_Decline):
    """The database answered and has migrations pending: work for the first runner."""


@dataclass(frozen=True)
class _Findings:
    database: str  # the URL as the full path prints it, password masked
    current: tuple[str, ...]
    tables: int
    row_counts: dict[str, int]


def try_run(cfg: Config, summary: report.Summary, command: str) -> bool:
    """Fill ``summary`` and return True when this module answered; False: run the full path.

    It answers when the database is at its target (exit 0), and when SIGTERM
    or SIGINT stopped it while it waited for the first migrator (exit 143 or
    130).  ``command`` is ``run`` or ``wait``.  Never raises: every doubt is a False.
    """
    started = time.monotonic()
    after_lock = False
    try:
        reader, manifest = _prepare(cfg, command)
        try:
            try:
                findings = _read(reader, manifest)
            except _NotAtTarget as exc:
                if command != "run":
                    raise
                _debug("fast_path_behind", f"Fast path: {exc}.", reason=str(exc))
                findings = _after_the_first(cfg, reader, manifest)
                after_lock = True
        finally:
            reader.close()
    except _Decline as exc:
        _debug("fast_path_declined", f"Fast path not taken: {exc}; running the full sequence.",
               reason=str(exc))
        return False
    except _Stopped as exc:
        import signal

        # Exit 130 or 143, like a stopped full run; this one had changed nothing.
        summary.outcome, summary.exit_code = "interrupted", 128 + exc.signum
        summary.message = (f"Stopped by {signal.Signals(exc.signum).name} while waiting for the "
                           "migrator that started first; nothing was changed.")
        return True
    except Exception as exc:  # the full path will meet (and explain) the same problem
        _debug("fast_path_declined", f"Fast path not taken: {type(exc).__name__}; running the "
               "full sequence.", reason=type(exc).__name__)
        return False
    revisions = ", ".join(findings.current)
    _debug("fast_path", f"Fast path: the database is at {revisions}, the heads of the manifest; "
           "SQLAlchemy and Alembic were not loaded.", revisions=list(findings.current))
    summary.database = findings.database
    summary.from_revisions = list(findings.current)
    summary.to_revisions = list(findings.current)
    summary.row_counts = findings.row_counts
    summary.timed("check", started)
    report.verified(findings.tables, findings.row_counts)
    report.at_target(summary, revisions, command=command, after_lock=after_lock)
    return True


def _debug(name: str, message: str, **fields) -> None:
    report.event(name, message, level=logging.DEBUG, **fields)


def _prepare(cfg: Config, command: str):
    """Check the configuration and the manifest; return a reader and the manifest."""
    if not cfg.fast_path:
        raise _Decline("FAST_PATH=false")
    if command == "run" and (cfg.extra_pip_packages or cfg.pip_requirements):
        # Dependencies are installed on every run, at target or not: an app
        # container may rely on DEPS_TARGET.  That needs pip, and the full path.
        raise _Decline("EXTRA_PIP_PACKAGES or PIP_REQUIREMENTS is set")
    if cfg.models is None:
        raise _Decline("MODELS is not set")
    manifest = manifest_module.load(cfg.migrations_dir)
    if manifest is None:
        raise _Decline(f"no manifest {manifest_module.path_for(cfg.migrations_dir)} "
                       "(`migrate.py manifest` writes it)")
    if manifest.get("models") != cfg.models:
        raise _Decline(f"the manifest is for MODELS={manifest.get('models')}, not {cfg.models}")
    if manifest.get("version_table") != manifest_module.VERSION_TABLE:
        raise _Decline("env.py names its own version table")
    if cfg.migration_target_set and cfg.migration_target not in set(manifest["revisions"]):
        raise _Decline(f"MIGRATION_TARGET={cfg.migration_target} is not a revision in the manifest")
    digest = manifest_module.content_hash(cfg.migrations_dir, manifest.get("models_file"))
    if digest is None or digest != manifest.get("content_hash"):
        raise _Decline("the manifest is stale: the migration scripts or the models changed "
                       "since `migrate.py manifest` wrote it")

    parts = split_url(cfg.database_url)
    if parts is None:
        raise _Decline("DATABASE_URL does not parse")
    if parts.drivername in _SQLITE_DRIVERS:
        return _SqliteReader(cfg, parts), manifest
    if parts.drivername in _POSTGRESQL_DRIVERS:
        return _PostgresqlReader(cfg, parts), manifest
    raise _Decline(f"the fast path reads SQLite and PostgreSQL, not {parts.drivername}")


def _read(reader, manifest: dict) -> _Findings:
    """Compare the database with the manifest, in one read transaction."""
    version_table = manifest_module.VERSION_TABLE
    expected: dict[str, list[str]] = manifest["schema"]
    heads = sorted(manifest["heads"])
    with reader.transaction():
        live = reader.columns()
        if version_table not in live:
            raise _NotAtTarget(f"the database has no {version_table} table")
        current = sorted(reader.versions(version_table))
        if current != heads:
            where = (f"the version table holds {', '.join(current) or 'no row'}, "
                     f"not the heads {', '.join(heads)}")
            if set(current) - set(manifest["revisions"]):
                raise _Decline(where + " (a revision the manifest does not know)")
            raise _NotAtTarget(where)
        # At the heads, yet short of the models: the full path explains (or repairs) it.
        for table, columns in expected.items():
            if table not in live:
                raise _Decline(f"table '{table}' is missing")
            if set(columns) - live[table]:
                raise _Decline(f"table '{table}' lacks columns")
        counts = {table: reader.count(table) for table in manifest["counted_tables"]}
    return _Findings(database=reader.safe_url, current=tuple(current),
                     tables=len(expected), row_counts=counts)


def _after_the_first(cfg: Config, reader, manifest: dict) -> _Findings:
    """The database is behind: lead (decline, holding the first lock), or wait and look again."""
    if not cfg.enable_auto_migration:
        # Every runner only verifies then, in parallel: nobody to wait for.
        raise _Decline("ENABLE_AUTO_MIGRATION=false")
    if reader.take_first():
        raise _Decline("this runner is the first, and migrates")
    with _signals() as received:
        report.event("lock_waiting", f"Waiting for the migrator that started first ({reader.first_name}).",
                     lock=reader.first_name)
        return _wait_for_the_first(cfg, reader, manifest, received)


@contextlib.contextmanager
def _signals():
    """Note SIGTERM and SIGINT while waiting (the full path has its Watchdog for that).

    The handler only records the signal: raising from it could land inside a
    logging call, which would swallow the exception.
    """
    import signal

    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_the_first(cfg: Config, reader, manifest: dict, received: list[int]) -> _Findings:
    import random

    deadline = time.monotonic() + cfg.lock_timeout
    delay = 0.01
    while True:
        if received:
            raise _Stopped(received[0])
        if reader.first_done():
            try:
                return _read(reader, manifest)
            except _NotAtTarget:
                # It did not get there (it failed, or was killed): lead, or go on waiting.
                if reader.take_first():
                    raise _Decline("the first migrator did not finish the job; this one "
                                   "takes over") from None
        if time.monotonic() >= deadline:
            raise _Decline(f"the first migrator still runs after LOCK_TIMEOUT={cfg.lock_timeout:g}s")
        time.sleep(random.uniform(delay / 2, delay))
        delay = min(delay * 2, 0.2)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class _SqliteReader:
    """Read transactions on an existing SQLite file, opened as the full path would."""

    def __init__(self, cfg: Config, parts):
        if parts.username or parts.password or parts.host or parts.port or parts.query:
            raise _Decline("a SQLite URL with credentials, a host or query options")
        database = parts.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise _Decline("an in-memory or URI-style SQLite database")
        self.path = os.path.abspath(database)
        self.folder = os.path.dirname(self.path)
        self.safe_url = parts.render_safe()
        self.timeout = max(cfg.lock_timeout, 1.0)
        self.allow_network_fs = cfg.sqlite_allow_network_fs
        self.network_fs: bool | None = None
        # Beside lock.py's migration lock file (lock.lock_path), on the same volume.
        self.first_name = self.path + ".migrate.first"
        self._first = None
        self.connection = None

    def transaction(self):
        return self

    def __enter__(self):
        import sqlite3
        from pathlib import Path

        # Exactly the conditions under which the full path goes on: lock.check_filesystem
        # (no network filesystem unless allowed), then wait.prepare_sqlite.
        if self.network_fs is None:
            from .errors import ConfigError
            from .lock import check_filesystem

            try:
                check_filesystem(Path(self.path), self.allow_network_fs)
                self.network_fs = False
            except ConfigError:
                self.network_fs = True
        if self.network_fs:
            raise _Decline("the SQLite file is on a network filesystem (SQLITE_ALLOW_NETWORK_FS)")
        if not os.path.isdir(self.folder) or not os.access(self.folder, os.W_OK | os.X_OK):
            raise _Decline(f"the folder {self.folder} is missing or not writable")
        if not os.path.isfile(self.path):
            raise _NotAtTarget(f"the SQLite file {self.path} does not exist yet")
        if not os.access(self.path, os.R_OK | os.W_OK):
            raise _Decline(f"the SQLite file {self.path} is not writable")
        # mode=rw: never create the file.  isolation_level=None: the
        # transaction below is ours, begun and ended explicitly, and short:
        # an open read transaction would hold a migrator's commit back.
        uri = Path(self.path).as_uri() + "?mode=rw"
        self.connection = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        self.connection.execute("BEGIN")
        return self

    def __exit__(self, *exc_info):
        if self.connection is not None:
            self.connection.close()  # ends the read transaction; nothing was written
            self.connection = None

    def close(self) -> None:
        self.__exit__()
        if self._first is not None and self._first not in _held:
            self._first.close()

    def columns(self) -> dict[str, set[str]]:
        rows = self.connection.execute(
            "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
            "WHERE m.type = 'table'"
        ).fetchall()
        live: dict[str, set[str]] = {}
        for table, column in rows:
            live.setdefault(table, set()).add(column)
        return live

    def versions(self, table: str) -> list[str]:
        return [row[0] for row in self.connection.execute(f"SELECT version_num FROM {_quote(table)}")]

    def count(self, table: str) -> int:
        return self.connection.execute(f"SELECT COUNT(*) FROM {_quote(table)}").fetchone()[0]

    # -- the first lock: flock, dropped by the kernel when the holder exits --

    def _open_first(self):
        if self._first is None:
            try:
                self._first = open(self.first_name, "a+b")
            except PermissionError:
                # Left by another UID (OpenShift): flock needs only a read descriptor.
                try:
                    self._first = open(self.first_name, "rb")
                except OSError as exc:
                    raise _Decline(f"cannot open {self.first_name} ({exc.strerror})") from None
            except OSError as exc:
                raise _Decline(f"cannot open {self.first_name} ({exc.strerror})") from None
        return self._first

    def take_first(self) -> bool:
        import fcntl

        handle = self._open_first()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        _held.append(handle)  # held until this process exits, through the full path
        return True

    def first_done(self) -> bool:
        """True when nobody holds the first lock (shared-locked for a moment to know)."""
        import fcntl

        handle = self._open_first()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


class _PostgresqlReader:
    """Read-only REPEATABLE READ transactions, connected as db.create_engine would."""

    def __init__(self, cfg: Config, parts):
        if parts.port is not None and not parts.port.isdigit():
            raise _Decline("DATABASE_URL's port is not a number")
        keys = [key for key, _ in parts.query]
        if len(keys) != len(set(keys)) or _POSTGRESQL_REROUTING & set(keys):
            raise _Decline("DATABASE_URL has repeated or re-routing query options")
        if parts.host and "," in parts.host:
            raise _Decline("DATABASE_URL names several hosts")
        drivername = "postgresql+psycopg2"
        if parts.drivername in ("postgresql", "postgres"):
            import importlib.util

            # db.parse keeps SQLAlchemy's psycopg 3 when it is installed.
            if importlib.util.find_spec("psycopg") is not None:
                raise _Decline("psycopg 3 is installed; the full path uses it")
        self.safe_url = parts.render_safe(drivername)
        # What SQLAlchemy's psycopg2 dialect passes: translate_connect_args,
        # then the query, then db.create_engine's connect_args on top.
        self.arguments: dict = {}
        for name, value in (("host", parts.host), ("port", parts.port), ("user", parts.username),
                            ("password", parts.password), ("dbname", parts.database)):
            if value:
                self.arguments[name] = int(value) if name == "port" else value
        self.arguments.update(parts.query)
        # One attempt, no longer than the full path's own attempt; a database
        # that does not answer at once is the full path's to wait for.
        self.arguments["connect_timeout"] = max(1, min(10, int(cfg.db_wait_timeout)))
        self.arguments["application_name"] = "migrate-init"
        self.first_key = advisory_key(parts.database or "", manifest_module.VERSION_TABLE, label="first")
        self.first_name = f"advisory lock {self.first_key}"
        self.connection = None
        self.cursor = None

    def _connect(self):
        if self.connection is None:
            import psycopg2

            try:
                self.connection = psycopg2.connect(**self.arguments)
            except psycopg2.Error as exc:
                raise _Decline(f"the database did not answer at the first try "
                               f"({type(exc).__name__})") from None
            self.connection.autocommit = True
            self.cursor = self.connection.cursor()
        return self.cursor

    def transaction(self):
        return self

    def __enter__(self):
        cursor = self._connect()
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return self

    def __exit__(self, *exc_info):
        if self.connection is not None and not self.connection.closed:
            self.cursor.execute("ROLLBACK")

    def close(self) -> None:
        # The first lock lives as long as its session: keep that one open.
        if self.connection is not None and self.connection not in _held:
            self.connection.close()

    def columns(self) -> dict[str, set[str]]:
        # What SQLAlchemy's inspector lists in the default schema: tables and
        # partitioned tables (relkind r, p), live columns.
        self.cursor.execute(
            "SELECT c.relname, a.attname FROM pg_catalog.pg_class AS c "
            "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
            "JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        )
        live: dict[str, set[str]] = {}
        for table, column in self.cursor.fetchall():
            live.setdefault(table, set()).add(column)
        return live

    def versions(self, table: str) -> list[str]:
        self.cursor.execute(f"SELECT version_num FROM {_quote(table)}")
        return [row[0] for row in self.cursor.fetchall()]

    def count(self, table: str) -> int:
        self.cursor.execute(f"SELECT COUNT(*) FROM {_quote(table)}")
        return self.cursor.fetchone()[0]

    # -- the first lock: a session advisory lock, dropped with the session --

    def take_first(self) -> bool:
        cursor = self._connect()
        cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.first_key,))
        if not cursor.fetchone()[0]:
            return False
        _held.append(self.connection)  # held until this process exits, through the full path
        return True

    def first_done(self) -> bool:
        cursor = self._connect()
        cursor.execute("SELECT pg_try_advisory_lock_shared(%s)", (self.first_key,))
        if not cursor.fetchone()[0]:
            return False
        cursor.execute("SELECT pg_advisory_unlock_shared(%s)", (self.first_key,))
        return True

