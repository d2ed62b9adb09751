"""Alembic, owned: the engine, the folder's config and graph, and the user's env.py run on our connection.

migrate-init does not hope that ``env.py`` cooperates (issue 11).  A user's
``env.py`` runs in an ``EnvironmentContext`` of migrate-init's own
(:func:`owned_environment`), whose ``configure()`` (:func:`owned_context`)
is the one ``env.py`` reaches through ``alembic.context``: whatever
connection or URL ``env.py`` passes, the migrations run on the connection
migrate-init controls, one transaction per migration, with migrate-init's ``on_version_apply`` callback
added to the user's.  A connection that ``env.py`` opens itself is made
read-only, and one to another database is refused before anything runs.  The
steps themselves come from migrate-init's own ``fn`` (the same recipe as
``alembic.command.upgrade``), so progress is known from the source, never
from log records, and the revision that failed is the one whose step had
begun and not been applied.
"""

from __future__ import annotations

import configparser
import contextlib
import functools
import importlib.util
import inspect
import io
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy
from alembic import command as alembic_command
from alembic.config import CommandLine
from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspection
from sqlalchemy.engine import Engine

from . import engines, report
from . import progress as progress_record
from .errors import (
    AccessDenied,
    ConfigError,
    InconsistentVersionTable,
    MigrateInitError,
    MigrationFailed,
    PreviewRefused,
    ScriptError,
    classify,
    missing_driver_error,
    undone,
)
from .preview import ReadOnlyGuard, poisoned, refusal
from .url import ASYNC_DRIVERS

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationInfo, RevisionStep
    from alembic.script import Script
    from sqlalchemy.engine import Connection

    from .effects import EffectGuard
    from .url import Url

#: The ini handed to Alembic when the migrations folder has none, so that an
#: ``env.py`` written by ``alembic init`` finds ``config.config_file_name``.
DEFAULT_INI = Path(__file__).with_name("alembic-default.ini")


# -- the engine -----------------------------------------------------------------


def is_async(database: Url) -> bool:
    """Whether DATABASE_URL names an async driver migrate-init knows (:data:`url.ASYNC_DRIVERS`)."""
    return database.driver.lower() in ASYNC_DRIVERS


def sqlalchemy_url(database: Url, *, as_given: bool = False) -> sqlalchemy.engine.URL:
    """The one parsed DATABASE_URL (:mod:`migrate_init.url`) as SQLAlchemy's URL; SQLAlchemy never parses the text.

    The driver is the one migrate-init's own engine uses: an async driver
    becomes the sync driver of the same server (:data:`url.ASYNC_DRIVERS`).
    ``as_given`` keeps an async driver, for the async env.py that builds its
    own engine from ``sqlalchemy.url``.
    """
    drivername = database.drivername
    if is_async(database):
        sync = ASYNC_DRIVERS[database.driver.lower()][1]
        # postgres+asyncpg:// too: SQLAlchemy knows the scheme only as postgresql.
        scheme = "postgresql" if database.backend == "postgresql" else database.drivername.partition("+")[0].lower()
        drivername = f"{scheme}+{database.driver}" if as_given else scheme + (f"+{sync}" if sync else "")
    elif database.backend == "postgresql":
        driver = database.driver
        if not driver and importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
            # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the image ships psycopg2.
            driver = "psycopg2"
        drivername = "postgresql" + (f"+{driver}" if driver else "")
    elif database.backend == "mysql" and not database.driver and importlib.util.find_spec("MySQLdb") is None:
        # SQLAlchemy maps plain mysql:// and mariadb:// to mysqlclient; the image ships PyMySQL.
        drivername = database.drivername.partition("+")[0].lower() + "+pymysql"
    query: dict[str, Any] = {}
    for key, value in database.query:
        query.setdefault(key, []).append(value)
    return sqlalchemy.engine.URL.create(
        drivername,
        username=database.username,
        password=database.password,
        host=database.host,
        port=database.port,
        database=database.database,
        query={k: v[0] if len(v) == 1 else tuple(v) for k, v in query.items()},
    )


def create_engine(
    database: Url,
    *,
    busy_timeout: float,
    connect_timeout: float = 10.0,
    read_only: bool = False,
    checkpoint: Callable[[], None] | None = None,
) -> Engine:
    """An engine with the settings a migration needs.

    SQLite follows SQLAlchemy's documented pysqlite recipe for transactional
    DDL: the driver's own transaction handling is off and the engine emits
    BEGIN itself (IMMEDIATE with ``write``, so the write lock is taken up
    front), so a failed or killed migration leaves nothing half-applied.
    SQLite's busy handler cannot be interrupted, so it waits in short slices
    and the BEGIN is retried here until ``busy_timeout``, honouring
    ``checkpoint`` (SIGTERM, MIGRATION_TIMEOUT) between slices.  Foreign keys
    are off: a batch rebuild with foreign_keys=ON deletes child rows that have
    ON DELETE CASCADE.
    https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    """
    # A small pool: one run opens the same few connections again and again.
    chosen = database.engine
    kwargs: dict[str, Any] = {"pool_size": 2, "max_overflow": 2}
    kwargs.update(
        chosen.engine_options(database, busy_timeout=busy_timeout, connect_timeout=connect_timeout, read_only=read_only)
    )
    try:
        engine = sqlalchemy.create_engine(sqlalchemy_url(database), **kwargs)
    except ModuleNotFoundError as exc:
        raise missing_driver_error(database.drivername, exc) from None
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError(
            f"DATABASE_URL={database.safe} names the dialect '{database.drivername}', which "
            "SQLAlchemy does not know. Check the scheme, or add the dialect's package to "
            "EXTRA_PIP_PACKAGES."
        ) from None
    if engine.dialect.is_async:
        engine.dispose()
        raise ConfigError(
            f"DATABASE_URL={database.safe} names the async driver '{database.driver}', and migrate-init "
            "does not know the sync driver of the same server (it runs its own connections, the lock and "
            f"the guard on a sync driver). Use one of {', '.join(sorted(ASYNC_DRIVERS))}, or the sync driver of "
            "the same server in DATABASE_URL."
        )
    if checkpoint is not None:
        # Before every statement: a stop recorded meanwhile ends a migration that sends many
        # short statements, which no single cancel() would.
        event.listen(engine, "before_cursor_execute", lambda *_args: checkpoint())
    chosen.configure_engine(engine, read_only=read_only, busy_timeout=busy_timeout, checkpoint=checkpoint)
    return engine


# -- the folder ----------------------------------------------------------------


def find_ini(migrations_dir: Path) -> Path | None:
    """The folder's own alembic.ini: inside it, or beside it with a script_location that names it."""
    inside = migrations_dir / "alembic.ini"
    if inside.is_file():
        return inside
    beside = migrations_dir.parent / "alembic.ini"
    if beside.is_file():
        parser = configparser.ConfigParser(defaults={"here": str(beside.parent)})
        try:
            parser.read(beside, encoding="utf-8")
            location = parser.get("alembic", "script_location", fallback="")
        except (configparser.Error, UnicodeDecodeError):
            return None
        if location and (beside.parent / location).resolve() == migrations_dir.resolve():
            return beside
    return None


def alembic_config(migrations_dir: Path, database: Url, *, models: str | None) -> AlembicConfig:
    """An Alembic Config for ``migrations_dir`` with a real ini file behind it.

    The folder's own alembic.ini when it has one (its logging sections, its
    options), else :data:`DEFAULT_INI`: an ``env.py`` that calls
    ``fileConfig(config.config_file_name)`` must find a file.  The URL is set
    for an ``env.py`` that builds its own engine from ``sqlalchemy.url``
    (escaped for the ini parser); that engine is then only read from.
    """
    config = AlembicConfig(str(find_ini(migrations_dir) or DEFAULT_INI))
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("prepend_sys_path", str(migrations_dir))
    # The driver resolved as migrate-init's own engine resolves it (postgresql:// -> psycopg2),
    # except an async one: an async env.py builds an async engine from it.
    resolved = sqlalchemy_url(database, as_given=True).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", resolved.replace("%", "%%"))
    config.attributes["models"] = models
    return config


def load_script(config: AlembicConfig) -> ScriptDirectory:
    """The ScriptDirectory, with its revision graph loaded.

    An empty folder is a ConfigError: Alembic alone would exit 0 and do
    nothing.  A script that cannot be loaded is a ScriptError (exit 1, no
    fallback: nothing named failed), with its file and line.
    """
    folder = Path(config.get_main_option("script_location") or ".")
    try:
        script = ScriptDirectory.from_config(config)
        heads = script.get_heads()
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        # Not the script's fault: a package it imports is missing from this image (a derived image
        # without its project's pins, or a package the app installs and migrate-init does not).
        raise ScriptError(
            f"Alembic could not load the migration scripts in {folder}: {where(exc, folder)}. The package "
            f"{exc.name or 'it imports'!r} is not installed here: name it in EXTRA_PIP_PACKAGES or "
            "PIP_REQUIREMENTS, or install it in an image derived from this one (docs/image.md)."
        ) from exc
    except Exception as exc:
        raise ScriptError(
            f"Alembic could not load the migration scripts in {folder}: {where(exc, folder)}. Fix the script it names."
        ) from exc
    if not heads:
        from .manifest import version_dirs

        searched = ", ".join(version_dirs(script))
        raise ConfigError(
            f"MIGRATIONS_DIR={folder} holds no migration scripts: Alembic found none in {searched}. "
            "Alembic alone would do nothing and succeed. Add your revisions, or point MIGRATIONS_DIR "
            "at the right folder; revisions kept in subfolders (versions/sqlite, versions/postgresql) "
            "are found when alembic.ini's version_locations names them (%(here)s is the ini's folder)."
        )
    return script


def where(exc: BaseException, folder: Path) -> str:
    """``file:line: Type: first line`` of the innermost frame inside ``folder``, or the error alone."""
    text = f"{type(exc).__name__}: {report.first_line(exc)}"
    root = str(folder.resolve())
    place = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename).startswith(root + os.sep):
            place = f"{frame.filename}:{frame.lineno}"
    if place is None and isinstance(exc, SyntaxError) and exc.filename:
        place = f"{exc.filename}:{exc.lineno}"
    return f"{place}: {text}" if place else text


# -- where the database stands ---------------------------------------------------


class State:
    """Where the database stands against the scripts."""

    __slots__ = ("current", "heads", "pending", "target_exists", "unknown")

    def __init__(
        self,
        current: tuple[str, ...],
        heads: tuple[str, ...],
        unknown: tuple[str, ...],
        pending: tuple[str, ...],
        target_exists: bool,
    ) -> None:
        self.current = current
        self.heads = heads
        self.unknown = unknown
        self.pending = pending  # oldest first
        self.target_exists = target_exists

    @property
    def at_target(self) -> bool:
        return not self.unknown and set(self.current) == set(self.heads)


def state(
    script: ScriptDirectory, current: tuple[str, ...], target_name: str, version_table: str = "alembic_version"
) -> State:
    """Compare the version table's rows (read by :mod:`probe`) with the scripts.  No I/O."""
    heads = tuple(sorted(script.get_heads()))
    known = script.revision_map
    unknown = tuple(rev for rev in current if lookup(script, rev) is None)
    pending: tuple[str, ...] = ()
    if not unknown:
        try:
            pending = pending_revisions(script, current, heads)
        except Exception as exc:  # alembic.script.revision.RevisionError and kin
            raise InconsistentVersionTable(
                f"The version table {version_table} holds {', '.join(current)}, which these "
                f"scripts cannot place ({exc}); one is probably an ancestor of another. Nothing "
                "was changed. Fix it with `migrate.py alembic stamp --purge <revision>` after checking which "
                "revision the schema is really at (`migrate.py check`)."
            ) from None
    del known
    return State(current, heads, unknown, pending, lookup(script, target_name) is not None)


def pending_revisions(
    script: ScriptDirectory, current: tuple[str, ...], destination: tuple[str, ...] | list[str]
) -> tuple[str, ...]:
    """Revisions an upgrade from ``current`` to ``destination`` applies, oldest first."""
    revisions = script.revision_map.iterate_revisions(tuple(destination), tuple(current) or None, implicit_base=True)
    return tuple(reversed([r.revision for r in revisions if r.revision not in current]))


def lookup(script: ScriptDirectory, revision: str) -> Script | None:
    try:
        found = script.revision_map.get_revision(revision)
    except Exception:  # unknown, ambiguous or malformed identifiers alike
        return None
    return found  # type: ignore[return-value]


def describe(script: ScriptDirectory, revision: str) -> str:
    rev = lookup(script, revision)
    return f"{revision} ({rev.doc})" if rev is not None and rev.doc else revision


def resolve_destination(script: ScriptDirectory, revision: str) -> str:
    """An explicit ``upgrade REV`` against the graph: a revision of these scripts, or exit 2.

    Relative forms and ranges were refused before (:func:`run.refuse_odd_revision`).
    """
    try:
        found = script.revision_map.get_revisions(revision)
    except Exception:
        found = ()
    if not found and revision not in ("heads", "head"):
        raise ConfigError(
            f"upgrade {revision}: no such revision in {script.dir}. Run `migrate.py history --graph` to list them."
        )
    return revision


# -- running env.py on our connection --------------------------------------------


class Progress:
    """What the run applied, known from the steps migrate-init hands Alembic and from its callback.

    ``starting`` is called by our own ``fn`` just before Alembic opens the
    step's transaction; ``applied`` by Alembic's ``on_version_apply`` inside
    that transaction, after the migration and the version row.  The version
    table read back afterwards stays the final word (see :mod:`run`).
    """

    def __init__(
        self,
        script: ScriptDirectory,
        total: int,
        *,
        guard: EffectGuard | None = None,
        dry_run: bool = False,
        checkpoint: Callable[[], None] | None = None,
        in_step: Callable[[bool], None] | None = None,
        history: Any = None,
        lock_check: Callable[[], None] | None = None,
    ) -> None:
        self.script = script
        #: Raises when the migration lock is no longer held: asked before each migration commits.
        self.lock_check = lock_check
        #: The connection whose next commit (the migration's own) was just vouched for by ``lock_check``.
        self.lock_checked_on: Any = None
        #: Writes each applied revision's history row in its own transaction (:class:`history.Recorder`).
        self.history = history
        #: Told True when a step's code starts running, False when it is done (the watchdog).
        self.in_step = in_step
        self.total = total
        self.guard = guard
        self.dry_run = dry_run
        self.checkpoint = checkpoint
        self.count = 0
        self._guard_begun = False
        self._guard_again = False
        self._capture_off = False
        self._marks = (0, 0)
        self.running: Script | None = None
        self.started = 0.0
        self.applied: list[str] = []
        #: Every step begun, in order (a plan lists them).
        self.begun: list[Script] = []
        #: The dry run's SQL, per revision, in order.
        self.statements: dict[str, list[str]] = {}

    def rolled_back(self) -> None:
        """The running migration's transaction was rolled back and it will run again (a DDL lock retry).

        Its [k/N] is counted again, and the guard reads the catalog afresh: what it read inside the
        transaction that is gone is no state to judge the next run against.
        """
        self.count -= 1
        self.running = None
        self._guard_again = self._guard_begun

    def starting(self, step: RevisionStep, connection: Connection | None) -> None:
        if self.checkpoint is not None:
            self.checkpoint()  # between migrations: the previous one has committed
        if self.guard is not None and (self._guard_again or not self._guard_begun) and connection is not None:
            # The catalog the first migration is judged against, taken on the
            # connection env.py was made to use, after configure().
            self.guard.begin(connection, connection.dialect.name)
            if progress_record.needed(connection) and not self._guard_begun:
                # DDL commits at once here: each statement is judged before it runs.
                event.listen(connection, "before_cursor_execute", self.before_statement)
            self._guard_begun, self._guard_again = True, False
        script = step.revision
        if connection is not None and not self.dry_run and progress_record.needed(connection):
            # DDL commits statement by statement here: say, committed, which revision is under way.
            progress_record.begin(connection, script.revision)
        self.count += 1
        self.running = script
        self._capture_off = False
        # Findings from here on are this step's (on MySQL/MariaDB, recorded statement by statement).
        self._marks = (len(self.guard.findings), len(self.guard.hints)) if self.guard is not None else (0, 0)
        self.started = time.monotonic()
        source = ", ".join(step.from_revisions_no_deps) or "base"
        name = script.doc or script.revision
        self.statements.setdefault(script.revision, [])
        self.begun.append(script)
        report.event(
            "applying",
            f"[{self.count}/{max(self.total, self.count)}] Applying {source} -> {script.revision} ({name})",
            index=self.count,
            total=self.total,
            revision=script.revision,
            name=name,
        )
        if self.in_step is not None:
            self.in_step(True)

    def on_version_apply(self, *, ctx: Any, step: MigrationInfo, heads: set[str], run_args: Any) -> None:
        running = self.running
        if running is None:
            return
        if self.in_step is not None:
            self.in_step(False)
        if self.guard is not None and self._guard_begun:
            self._judged(ctx.connection, running)
        if not self.dry_run and progress_record.needed(ctx.connection):
            progress_record.finish(ctx.connection, running.revision)  # commits with the version row
        elapsed = time.monotonic() - self.started
        if self.history is not None and not self.dry_run:
            self.history.applied(ctx.connection, running.revision, elapsed)  # the same commit, too
        if self.lock_check is not None and not self.dry_run:
            self.lock_check()  # last, just before the commit: a lost lock rolls this migration back
            self.lock_checked_on = ctx.connection
        self.applied.append(running.revision)
        self.running = None
        word = "Ran (dry run, rolled back at the end)" if self.dry_run else "Applied"
        report.event(
            "applied",
            f"{word} {running.revision} in {elapsed * 1000:.0f}ms",
            revision=running.revision,
            elapsed=round(elapsed, 4),
        )

    def guarded(self, step: RevisionStep, context: Any) -> Any:
        """``step``, with its migration function run under the destructive guard (:meth:`EffectGuard.step`)."""
        if self.guard is None:
            return step
        return _GuardedStep(step, self, context)

    def _judged(self, connection: Any, running: Script) -> None:
        """The guard's word on the migration that just ran, inside its transaction; warnings for what passed."""
        assert self.guard is not None
        findings, hints = self._marks
        self.guard.check(
            connection, connection.dialect.name, running.revision, running.path, reviewed=reviewed(running)
        )
        if self.dry_run:
            return
        if self.guard.allowed(running.revision, reviewed(running)):
            why = (
                "ALLOW_DESTRUCTIVE=true"
                if self.guard.allow
                else f"ALLOW_DESTRUCTIVE={running.revision}"
                if running.revision in self.guard.allow_revisions
                else "allow_destructive = True in its module"
            )
            for finding in self.guard.findings[findings:]:
                for loss in finding.losses:
                    report.warning(
                        "destructive_allowed",
                        f"{why} let {running.revision} through: {loss.describe(done=True)}.",
                        revision=running.revision,
                    )
        for finding in self.guard.hints[hints:]:
            for loss in finding.losses:
                report.warning(
                    "not_null_added",
                    f"{running.revision}: {loss.describe(done=True)}. No value was "
                    "lost (the engine refuses NOT NULL while NULLs are there), but code still running "
                    "that inserts without it now fails.",
                    revision=running.revision,
                )

    @property
    def failed_revision(self) -> str | None:
        return self.running.revision if self.running is not None else None

    @property
    def failed_path(self) -> str | None:
        return self.running.path if self.running is not None else None

    def before_statement(
        self, conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _executemany: bool
    ) -> None:
        """``before_cursor_execute`` on MySQL/MariaDB: the destructive guard, before the statement runs."""
        if self.running is None or self.guard is None:
            return
        self.guard.before_statement(
            conn.connection.driver_connection,
            conn.dialect.name,
            statement,
            self.running.revision,
            self.running.path,
            reviewed=reviewed(self.running),
        )

    def capture_paused(self) -> None:
        """The guard runs a migration a second time: its SQL is already in the plan."""
        self._capture_off = True

    def capture(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        """``before_cursor_execute`` for the dry run: the SQL of the step in progress."""
        if self.running is None or self._capture_off:
            return
        text = " ".join(statement.split())
        if text.upper().startswith(_NOT_SHOWN):
            return
        if parameters and not executemany:
            text = f"{text}  -- parameters: {parameters!r}"
        self.statements[self.running.revision].append(text)


def reviewed(script: Script) -> bool:
    """Whether the revision's module declares ``allow_destructive = True`` (reviewed: its losses are meant)."""
    return getattr(script.module, "allow_destructive", False) is True


class _GuardedStep:
    """A RevisionStep whose ``migration_fn`` runs through the destructive guard; the rest is the step's."""

    def __init__(self, step: RevisionStep, progress: Progress, context: Any) -> None:
        self._step = step
        self._progress = progress
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._step, name)

    def __str__(self) -> str:
        return str(self._step)

    @property
    def migration_fn(self) -> Callable[..., None]:
        inner = self._step.migration_fn
        progress, script = self._progress, self._step.revision

        def run(**kw: Any) -> None:
            connection = self._context.connection
            if progress.guard is None or not progress._guard_begun or connection is None:
                inner(**kw)
                return
            progress.guard.step(
                connection,
                connection.dialect.name,
                script.revision,
                script.path,
                lambda: inner(**kw),
                reviewed=reviewed(script),
                rerun=progress.capture_paused,
                commit_follows=_commit_follows(self._context),
            )

        return run


def _commit_follows(context: Any) -> bool:
    """Whether Alembic ends the transaction right after this migration (transaction_per_migration, in a
    transaction of its own): a run's migrations, not a dry run's, nor those of an env.py that opened its own."""
    return (
        getattr(context, "_transaction_per_migration", False) is True
        and getattr(context, "_in_external_transaction", True) is False
        and not getattr(context, "as_sql", True)
        and bool(getattr(getattr(context, "impl", None), "transactional_ddl", False))
    )


# Introspection and bookkeeping a reader does not need to see in a plan.
_NOT_SHOWN = ("SELECT", "PRAGMA", "SHOW", "SET ", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

_CONFIGURE = EnvironmentContext.configure
_CONFIGURE_SIGNATURE = inspect.signature(_CONFIGURE)


def owned_environment(
    config: AlembicConfig, script: ScriptDirectory, *, on_configure: Callable[..., None], **kwargs: Any
) -> EnvironmentContext:
    """Alembic's EnvironmentContext for one run of a user's env.py, whose ``configure()`` goes through
    ``on_configure`` (which calls Alembic's own with the options it keeps).

    The override is this instance's own attribute: env.py reaches it through
    ``alembic.context``, Alembic's proxy to the context in use, which calls
    ``configure`` on that instance.  Alembic's class is never patched (issue 21).
    """
    environment = EnvironmentContext(config, script, **kwargs)
    environment.configure = functools.partial(on_configure, environment)  # type: ignore[method-assign]
    return environment


class Lent:
    """The migrations' connection, lent to code that asked for a connection of its own (issue 22).

    Inside a migration, ``engine.connect()`` or ``engine.begin()`` on the
    migrations' engine (``sa.inspect(op.get_bind().engine)``, as jupyterhub's
    651f5419b74d does) would open a second connection.  On SQLite that one
    waits for the write lock the migration itself holds, until
    MIGRATION_TIMEOUT; on PostgreSQL it cannot see the migration's
    uncommitted changes, so ``plan`` (every migration in one transaction)
    failed where ``run`` passed.  Lent instead, it sees what the migration
    did, and what it writes is the migration's: one transaction, judged by
    the guard.  Its owner decides how that transaction ends: closing it
    leaves the connection open, ``commit()`` and ``rollback()`` do nothing,
    and ``begin()`` is a SAVEPOINT.  Everything else is the connection's.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def __enter__(self) -> Lent:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def connect(self) -> Lent:
        return self

    def close(self) -> None:
        return None

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None

    def begin(self) -> Any:
        if self._connection.in_transaction():
            return self._connection.begin_nested()
        return self._connection.begin()

    def execution_options(self, **options: Any) -> Lent:
        if "isolation_level" in options:
            # Raised inside the migration: the run names its revision, file and line.
            raise sqlalchemy.exc.InvalidRequestError(
                "A migration asked its engine for a connection with isolation_level="
                f"{options['isolation_level']}; inside a migration that is the migration's own connection, "
                "in its transaction. Use `with op.get_context().autocommit_block():` for statements that "
                "must run outside a transaction."
            )
        self._connection.execution_options(**options)
        return self


# sa.inspect() of a lent connection is the connection's Inspector (SQLAlchemy's own registry).
inspection._inspects(Lent)(lambda lent: sqlalchemy.inspect(lent._connection))


@contextlib.contextmanager
def lending(connection: Connection) -> Iterator[None]:
    """While env.py and its migrations run: every connection taken from ``connection``'s engine, or
    from ``connection`` itself with ``.connect()``, is ``connection``, :class:`Lent`.

    ``.connect()`` on ``config.attributes["connection"]``: many env.py files
    (jupyterhub's, the cookbook's older recipe) expect an Engine there.
    Only the thread that runs env.py borrows (an async env.py runs its
    migrations in a greenlet of that same thread); the watchdog's
    connections stay their own.
    """
    engine = connection.engine
    owner = threading.get_ident()

    def connection_class(of: Engine) -> Any:
        if threading.get_ident() == owner and not connection.closed:
            return Lent(connection)
        return sqlalchemy.engine.Connection(of)

    vars(engine)["_connection_cls"] = connection_class
    vars(connection)["connect"] = lambda: Lent(connection)
    try:
        yield
    finally:
        vars(engine).pop("_connection_cls", None)
        vars(connection).pop("connect", None)


def _options(env: EnvironmentContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a ``context.configure(...)`` call asked for, by keyword."""
    bound = _CONFIGURE_SIGNATURE.bind(env, *args, **kwargs)
    opts = {k: v for k, v in bound.arguments.items() if k not in ("self", "kw")}
    opts.update(bound.arguments.get("kw", {}))
    return opts


class _Configured(Exception):
    """env.py called configure(): all that :func:`asked_version_table` wanted to know."""


def asked_version_table(config: AlembicConfig, script: ScriptDirectory) -> str | None:
    """The ``version_table`` env.py passes to configure(), learned before any database is read (issue 25 N14).

    The probe, the fast path's manifest (``migrate.py manifest`` runs with no
    database) and the lock need the table's name before the first migration;
    learning it from the run itself came too late.  So env.py runs in offline
    mode, the way ``alembic upgrade --sql`` runs it, and stops at its
    configure() call: nothing connects (a connection attempt is refused) and
    nothing runs.  None when env.py never gets there offline (an env.py with
    no offline branch): the run then learns the table from its configure().
    """
    found: dict[str, Any] = {}

    def configure(env: EnvironmentContext, *args: Any, **kwargs: Any) -> None:
        found.update(_options(env, args, kwargs))
        raise _Configured

    def no_connection(*_args: Any) -> None:
        raise _Configured

    event.listen(Engine, "do_connect", no_connection)
    try:
        with owned_environment(
            config,
            script,
            on_configure=configure,
            fn=lambda _rev, _context: [],
            as_sql=True,
            starting_rev=None,
            destination_rev="heads",
            tag=None,
        ):
            script.run_env()
    except _Configured:
        pass
    except Exception:  # an env.py that cannot run offline; the online run says what is wrong with it
        return None
    finally:
        event.remove(Engine, "do_connect", no_connection)
        report.reclaim()
    return _version_table(found)


def _version_table(opts: dict[str, Any]) -> str | None:
    """configure()'s version table, as ``schema.table`` when it names version_table_schema (issue 25 N15)."""
    table, schema = opts.get("version_table"), opts.get("version_table_schema")
    if not table and not schema:
        return None
    return f"{schema}.{table or 'alembic_version'}" if schema else str(table)


@contextlib.contextmanager
def owned_context(connection: Connection, progress: Progress) -> Iterator[tuple[dict[str, Any], Callable[..., None]]]:
    """While the body runs a user's env.py: every migration runs on ``connection``.

    Yields a dict that records what env.py asked for (``version_table``,
    ``version_table_schema``), and the ``on_configure`` of the
    :func:`owned_environment` the body runs env.py in.  See the module docstring.
    """
    asked: dict[str, Any] = {"calls": 0}
    own_engine = connection.engine
    own_url = own_engine.url

    def configure(env: EnvironmentContext, *args: Any, **kwargs: Any) -> None:
        opts = _options(env, args, kwargs)
        asked["calls"] += 1
        if asked["calls"] > 1 or opts.get("upgrade_token", "upgrades") != "upgrades":
            # A second configure() comes after the first one's migrations committed: say so (issue 25 N16).
            done = (
                f"The first configure() had applied {', '.join(progress.applied)}, which stay committed; "
                "nothing more was applied"
                if progress.applied and not progress.dry_run
                else "Nothing was applied"
            )
            raise ConfigError(
                "This env.py configures Alembic for several databases (a multidb env.py: more than "
                "one context.configure() call, or upgrade_token). migrate-init migrates the one "
                f"database of DATABASE_URL and refused the second. {done}. Run one migrate-init per "
                "database, with an env.py that configures one."
            )
        for key in ("url", "dialect_name", "dialect_opts"):
            opts.pop(key, None)
        opts["connection"] = connection
        opts["transaction_per_migration"] = True
        if engines.known(connection.dialect.name) and engines.of_connection(connection).transactional_ddl:
            opts["transactional_ddl"] = True
        user_callbacks = opts.get("on_version_apply") or ()
        if callable(user_callbacks):
            user_callbacks = (user_callbacks,)
        opts["on_version_apply"] = (*tuple(user_callbacks), progress.on_version_apply)
        asked["version_table"] = _version_table(opts) or "alembic_version"
        asked["version_table_schema"] = opts.get("version_table_schema")
        # fileConfig() in env.py may have disabled our logger or replaced its handlers.
        report.reclaim()
        _CONFIGURE(env, **opts)
        if progress.dry_run:
            from .preview import refuse_autocommit_block

            refuse_autocommit_block(env.get_context(), lambda: progress.running)

    def foreign(conn: Connection) -> None:
        if conn.engine is own_engine:
            return
        if not _same_database(conn.engine.url, own_url):
            raise ConfigError(
                f"env.py connects to {conn.engine.url.render_as_string(hide_password=True)} "
                f"itself, which is not DATABASE_URL ({own_url.render_as_string(hide_password=True)}). "
                "migrate-init runs every migration on DATABASE_URL and refuses before anything is "
                "applied: make env.py take its URL from config.get_main_option('sqlalchemy.url') "
                "or its connection from config.attributes['connection']."
            )
        _read_only(conn)
        if not event.contains(conn.engine, "handle_error", failed_on_foreign):
            event.listen(conn.engine, "handle_error", failed_on_foreign)

    def failed_on_foreign(context: Any) -> None:
        # A statement failed on a connection env.py opened itself (made read-only above).
        asked["foreign_error"] = True

    event.listen(Engine, "engine_connect", foreign)
    try:
        yield asked, configure
    finally:
        event.remove(Engine, "engine_connect", foreign)
        report.reclaim()


def _same_database(theirs: sqlalchemy.engine.URL, ours: sqlalchemy.engine.URL) -> bool:
    if theirs.get_backend_name() != ours.get_backend_name():
        return False
    if engines.of(ours.get_backend_name()).file_based:
        return os.path.realpath(theirs.database or "") == os.path.realpath(ours.database or "")
    return (theirs.host or "", theirs.port, theirs.database) == (ours.host or "", ours.port, ours.database)


def _read_only(conn: Connection) -> None:
    """A connection env.py opened itself may read, never write: every change goes through ours.

    Through the DB-API connection SQLAlchemy holds, which for an async
    driver (an async env.py's own engine) is SQLAlchemy's sync adapter: the
    same three statements work for every driver.
    """
    if not engines.known(conn.dialect.name):
        return
    engines.of_connection(conn).make_read_only(conn.connection.dbapi_connection)


def run_env(
    config: AlembicConfig, script: ScriptDirectory, connection: Connection, destination: str, progress: Progress
) -> dict[str, Any]:
    """Run the user's env.py once, upgrading to ``destination`` on ``connection``.

    Raises MigrationFailed naming the revision when a migration failed,
    ScriptError with file and line when env.py or a script failed to load,
    and passes migrate-init's own errors (destructive, timeout, signal,
    configuration) through unchanged.
    """
    folder = Path(script.dir)

    def upgrade(rev: Any, context: Any) -> Iterator[RevisionStep]:
        for step in script._upgrade_revs(destination, rev):
            progress.starting(step, context.connection)
            yield progress.guarded(step, context)

    config.attributes["connection"] = connection
    asked: dict[str, Any] = {}
    outside = None
    if progress.guard is not None and engines.known(connection.dialect.name):
        from .outside import OutsideJudge

        # What env.py runs on this connection outside a migration is judged too (issue 25 N11).
        outside = OutsideJudge(connection, progress, progress.guard, str(folder / "env.py"))
        outside.install()
    try:
        with (
            lending(connection),
            owned_context(connection, progress) as (asked, on_configure),
            owned_environment(
                config,
                script,
                on_configure=on_configure,
                fn=upgrade,
                as_sql=False,
                starting_rev=None,
                destination_rev=destination,
                tag=None,
            ),
        ):
            script.run_env()
    except MigrateInitError:
        raise
    except Exception as exc:
        revision, path = progress.failed_revision, progress.failed_path
        if asked.get("foreign_error"):
            raise ScriptError(
                f"env.py in {folder} ran a statement on a connection it opened itself, which migrate-init "
                f"keeps read-only: {where(exc, folder)}. Every change must go through the connection "
                "env.py passes to context.configure() (migrate-init's own, one transaction per "
                "migration). Move that statement into a migration, or run it on that connection."
            ) from exc
        if classify(exc) == "access" and revision is None:
            # Before any migration: the version table itself (a role without CREATE on the schema).
            raise AccessDenied(
                f"The database refused what Alembic needs before the first migration: {report.first_line(exc)}. "
                "Nothing was applied and it is not retried; grant the user what it needs (CREATE on the "
                "schema, for the version table) and run again."
            ) from exc
        if revision is not None:
            raise MigrationFailed(
                f"Migration {revision} ({path}) failed: {where(exc, folder)}. "
                f"{undone(engines.of_connection(connection).transactional_ddl)}; fix it and run again.",
                revision=revision,
            ) from exc
        if progress.applied and classify(exc) == "disk_full":
            # A step's COMMIT found the disk full, after Alembic had reported the step applied:
            # that step was rolled back (issue 25 N22).  The caller reads back what stayed.
            raise MigrationFailed(
                f"Committing migration {progress.applied[-1]} failed: {report.first_line(exc)}. "
                f"{undone(engines.of_connection(connection).transactional_ddl)}.",
                revision=progress.applied[-1],
            ) from exc
        if progress.applied:
            # Say only what happened: the version table, read back by the caller, has the rest.
            raise ScriptError(
                f"env.py in {folder} failed after Alembic had applied {', '.join(progress.applied)}: "
                f"{where(exc, folder)}. Fix the file it names."
            ) from exc
        raise ScriptError(
            f"env.py or a migration script in {folder} failed before any migration ran: "
            f"{where(exc, folder)}. Nothing was applied; fix the file it names."
        ) from exc
    finally:
        config.attributes["connection"] = None
        if outside is not None:
            outside.remove()
    if asked["calls"] == 0:
        raise ScriptError(
            f"{folder / 'env.py'} never called context.configure(), so no migration could run. "
            "Fix env.py (see `alembic init` for the usual shape)."
        )
    return asked


def dry_run(
    config: AlembicConfig,
    script: ScriptDirectory,
    engine: Engine,
    destinations: list[str],
    progress: Progress,
    prepare: Callable[[Connection], None] | None = None,
) -> None:
    """Upgrade through ``destinations`` inside ONE transaction, capture the SQL, roll it all back.

    The shipped migrations inspect the live database, so Alembic's offline
    mode cannot render them.  A connection handed to Alembic inside a
    transaction makes it run every migration in that transaction, which is
    rolled back here whatever happens; a connection env.py opens itself is
    read-only (:func:`owned_context`), and :class:`preview.ReadOnlyGuard`
    refuses whatever would end the one transaction before it reaches the
    database (issue 25 N1).  So ``plan`` and ``lint`` change nothing: not the
    schema, not the version table.
    """

    report.set_dry_run(True)
    try:
        with engine.connect() as connection:
            event.listen(connection, "before_cursor_execute", progress.capture)
            transaction = connection.begin()
            # It proves nothing is committed: what would end this transaction is refused (issue 25 N1).
            read_only = ReadOnlyGuard(connection, lambda: progress.running)
            try:
                read_only.install()
                if prepare is not None:
                    prepare(connection)
                for destination in destinations:
                    run_env(config, script, connection, destination, progress)
                read_only.check_open()
            except Exception as exc:
                # The SQLite authorizer's refusal reaches here as the driver's "not authorized", wrapped.
                if read_only.denied is not None and not isinstance(exc, PreviewRefused):
                    raise refusal(progress.running, read_only.denied) from exc
                if read_only.armed and not isinstance(exc, PreviewRefused) and poisoned(exc):
                    raise refusal(
                        progress.running,
                        "commits the transaction through the database driver itself "
                        "(its commit()), or runs SET CONSTRAINTS ALL IMMEDIATE",
                        by_server=True,
                    ) from exc
                raise
            finally:
                read_only.finish()
                transaction.rollback()
                if read_only.ended() is False and connection.connection.driver_connection is not None:
                    # A commit() refused above leaves SQLAlchemy's transaction inactive: end the driver's here.
                    connection.connection.driver_connection.rollback()
    finally:
        report.set_dry_run(False)


def stamp(config: AlembicConfig, script: ScriptDirectory, engine: Engine, revision: str) -> None:
    """Record ``revision`` in the version table through the user's env.py, on our connection."""

    def fn(rev: Any, _context: Any) -> Any:
        return script._stamp_revs(revision, rev)

    with engine.connect() as connection:
        config.attributes["connection"] = connection
        try:
            with (
                lending(connection),
                owned_context(connection, Progress(script, 0)) as (_asked, on_configure),
                owned_environment(
                    config,
                    script,
                    on_configure=on_configure,
                    fn=fn,
                    as_sql=False,
                    starting_rev=None,
                    destination_rev=revision,
                    tag=None,
                ),
            ):
                script.run_env()
            if connection.in_transaction():
                connection.commit()
        finally:
            config.attributes["connection"] = None


def print_scripts(config: AlembicConfig, verb: str) -> list[str]:
    """Alembic's own ``history`` or ``heads`` output, as lines; the database is not touched."""
    out = io.StringIO()
    config.stdout = out
    if verb == "history":
        alembic_command.history(config, verbose=False)
    else:
        alembic_command.heads(config, verbose=False)
    return out.getvalue().splitlines()


def alembic_cli(config: AlembicConfig, arguments: list[str], *, prog: str) -> None:
    """Alembic's own command line, with migrate-init's Config (the folder, its ini, DATABASE_URL)."""
    line = CommandLine(prog=prog)
    options = line.parser.parse_args(arguments)
    if not hasattr(options, "cmd"):
        line.parser.error("too few arguments: name an alembic command, e.g. `migrate.py alembic current`")
    line.run_cmd(config, options)
