"""The project's exceptions (one subclass per exit code), and what a driver's error means.

Only ``cli`` turns these into exit codes; everything else raises them.
Every message is a full sentence that tells the user what to do next.

:func:`classify` is the one reading of database errors (psycopg2, sqlite3,
PyMySQL, OS errors, and SQLAlchemy's wrappers of them) for the whole package
(:func:`migrate_init.report.first_line` says one in words).  This module
imports nothing but the standard library, and nothing of the package: the
fast path loads it too, and every module may import it.
"""

from __future__ import annotations

import errno
import sys


class MigrateInitError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1
    outcome = "failed"


class MigrationFailed(MigrateInitError):
    """A migration raised and no fallback rescued the database (exit 1)."""

    exit_code = 1
    outcome = "migration_failed"

    def __init__(self, message: str, revision: str | None = None):
        super().__init__(message)
        self.revision = revision
        #: The revision's table stayed locked by another transaction through every DDL_LOCK_RETRIES retry.
        self.retries_refused = False


class MigrationInterrupted(MigrateInitError):
    """A revision recorded as started was never finished, on a database whose DDL commits
    statement by statement (MySQL/MariaDB), and its steps are not declared idempotent (exit 1)."""

    exit_code = 1
    outcome = "migration_interrupted"

    def __init__(self, message: str, revision: str | None = None):
        super().__init__(message)
        self.revision = revision


class PreviewRefused(MigrateInitError):
    """``plan`` or ``lint`` met a revision it cannot run without ending its transaction (exit 1).

    A dry run proves it commits nothing by refusing, before it reaches the
    database, whatever would end or reshape its one transaction (issue 25 N1, N23).
    """

    exit_code = 1
    outcome = "preview_refused"

    def __init__(self, message: str, revision: str | None = None, why: str = ""):
        super().__init__(message)
        self.revision = revision
        #: What the revision does that a dry run cannot run, in a few words.
        self.why = why


class BackupFailed(MigrateInitError):
    """The SQLite backup could not be taken; no migration ran (exit 1)."""

    exit_code = 1
    outcome = "backup_failed"


class SeedFailed(MigrateInitError):
    """A file in SEED_DIR failed; its seeding was rolled back (exit 1).

    ``seeded``: the files that committed before it (MySQL/MariaDB seed file by file).
    """

    exit_code = 1
    outcome = "seed_failed"

    def __init__(self, message: str, seeded: list[str] | None = None) -> None:
        super().__init__(message)
        self.seeded = seeded or []


class DiskFull(MigrateInitError):
    """The disk that holds the database (or its journal or lock file) is full;
    the migration was rolled back and the fallback is not tried (exit 1)."""

    exit_code = 1
    outcome = "disk_full"


class CorruptDatabase(MigrateInitError):
    """The SQLite file is not a usable database; it is left untouched (exit 1)."""

    exit_code = 1
    outcome = "corrupt_database"


class ScriptError(MigrateInitError):
    """env.py or a migration script could not be loaded, or failed before any
    migration started; the fallback is not tried, since no revision failed (exit 1)."""

    exit_code = 1
    outcome = "script_error"


class InconsistentVersionTable(MigrateInitError):
    """The version table holds revisions that contradict each other (exit 1)."""

    exit_code = 1
    outcome = "inconsistent_version_table"


class ConfigError(MigrateInitError):
    """A bad variable, URL, folder or command (exit 2)."""

    exit_code = 2
    outcome = "config_error"


class DatabaseUnreachable(MigrateInitError):
    """The database did not accept connections within DB_WAIT_TIMEOUT (exit 3)."""

    exit_code = 3
    outcome = "unreachable"


class DatabaseMissing(DatabaseUnreachable):
    """The database does not exist: a SQLite file that a read-only command
    would not create, or a PostgreSQL database not created yet (exit 3)."""

    exit_code = 3
    outcome = "database_missing"


class AccessDenied(MigrateInitError):
    """Authentication or permission refused; never retried (exit 4)."""

    exit_code = 4
    outcome = "access_denied"


class LockTimeout(MigrateInitError):
    """Another runner held the migration lock past LOCK_TIMEOUT (exit 5)."""

    exit_code = 5
    outcome = "lock_timeout"


class LockLost(MigrateInitError):
    """The migration lock went away while this run held it: its file was deleted, or its session let it go (exit 5)."""

    exit_code = 5
    outcome = "lock_lost"


class LockSessionEnded(DatabaseUnreachable, LockLost):
    """The server ended the session that held the migration lock: a lost connection, so exit 3 (issue 25 N35)."""

    exit_code = 3
    outcome = "unreachable"


class UnknownRevision(MigrateInitError):
    """The database is at a revision these scripts do not know (exit 6)."""

    exit_code = 6
    outcome = "unknown_revision"


class VerificationFailed(MigrateInitError):
    """Tables or columns the models define are missing (exit 7)."""

    exit_code = 7
    outcome = "verification_failed"


class DestructiveOperation(MigrateInitError):
    """A migration tried a destructive operation without ALLOW_DESTRUCTIVE (exit 8)."""

    exit_code = 8
    outcome = "destructive_refused"


class DependencyInstallFailed(MigrateInitError):
    """pip could not install EXTRA_PIP_PACKAGES / PIP_REQUIREMENTS (exit 9)."""

    exit_code = 9
    outcome = "dependency_install_failed"


class EditedRevision(MigrateInitError):
    """An applied revision's script changed since it ran, or is gone from the scripts (exit 12).

    Its own code, not verification's 7: nothing is missing from the schema, and
    the remedy differs (review the change, then ``migrate.py accept REV``).
    """

    exit_code = 12
    outcome = "edited_revision"


class MigrationTimeout(MigrateInitError):
    """MIGRATION_TIMEOUT (or another deadline) ran out (exit 10).

    The default message says only what ran out and while doing what: whether
    anything was rolled back is for the caller to say, who knows.
    """

    exit_code = 10
    outcome = "timeout"

    def __init__(
        self,
        message: str | None = None,
        *,
        timeout: float | None = None,
        variable: str = "MIGRATION_TIMEOUT",
        phase: str | None = None,
    ) -> None:
        if message is None:
            limit = f"{variable}={timeout:g}s" if timeout is not None else variable
            zero = " (0 is no limit)" if variable == "MIGRATION_TIMEOUT" else ""
            message = (
                f"{limit} ran out{_phase(phase)}. Raise {variable}{zero}, "
                "or find what made the run slow, and run again."
            )
        super().__init__(message)
        self.phase = phase


class ReadOnlyStandby(MigrateInitError):
    """DATABASE_URL reaches a read-only standby (a server in recovery), and the command would write (exit 11).

    Not exit 4: nothing is wrong with the credentials, and not exit 3: the
    server answers; the URL names the wrong server of a replicated pair.
    """

    exit_code = 11
    outcome = "read_only_standby"


#: The signals a container is stopped with; anything else is named by number.
#: A table, not ``signal.Signals(signum)``: building this error must not fail.
_SIGNAL_NAMES = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    6: "SIGABRT",
    9: "SIGKILL",
    10: "SIGUSR1",
    12: "SIGUSR2",
    14: "SIGALRM",
    15: "SIGTERM",
}


class Interrupted(MigrateInitError):
    """SIGTERM (exit 143) or SIGINT (exit 130) stopped the run.

    ``phase`` names what was running ("while waiting for the lock", or a bare
    "applying 7e5b5dc7342b", which reads "while applying ..."); the default
    message claims no rollback, the caller passes ``message`` when it knows.
    """

    outcome = "interrupted"

    def __init__(self, signum: int, phase: str | None = None, message: str | None = None) -> None:
        name = _SIGNAL_NAMES.get(signum, f"signal {signum}")
        if message is None:
            message = f"Stopped by {name}{_phase(phase)}. Run again to finish the job."
        super().__init__(message)
        self.signum = signum
        self.signal_name = name
        self.phase = phase
        self.exit_code = 128 + signum


_PREPOSITIONS = ("while ", "during ", "before ", "after ", "in ", "at ", "when ", "on ", "for ")


def _phase(phase: str | None) -> str:
    """' while <phase>' (or ' <phase>' when it starts with its own preposition); '' for none."""
    phase = (phase or "").strip()
    if not phase:
        return ""
    return f" {phase}" if phase.lower().startswith(_PREPOSITIONS) else f" while {phase}"


# -- what a driver's error means ----------------------------------------------------------
#
# One reading of database errors for the whole package (wait, lock, runner,
# migrator, cli): a SQLSTATE when the driver gives one, SQLite's and MySQL's
# numeric codes, the OS errno, and only then the words, which differ between
# server versions and locales.

#: Kinds :func:`classify` returns.
KINDS = (
    "access",
    "corrupt",
    "disk_full",
    "lock_not_available",
    "busy",
    "missing_database",
    "query_canceled",
    "unreachable",
    "other",
)

_SQLSTATES = {
    "42501": "access",  # insufficient_privilege
    "3D000": "missing_database",  # invalid_catalog_name
    "53100": "disk_full",
    "53300": "unreachable",  # too_many_connections: a server that will have room again
    "55P03": "lock_not_available",
    "57014": "query_canceled",
    "57P01": "unreachable",  # admin_shutdown
    "57P02": "unreachable",  # crash_shutdown
    "57P03": "unreachable",  # cannot_connect_now: starting up
}
_SQLSTATE_CLASSES = {"28": "access", "08": "unreachable"}

# SQLite primary result codes (sqlite_errorcode & 0xFF).
_SQLITE_CODES = {
    3: "access",  # SQLITE_PERM
    5: "busy",  # SQLITE_BUSY
    6: "busy",  # SQLITE_LOCKED
    8: "access",  # SQLITE_READONLY
    9: "query_canceled",  # SQLITE_INTERRUPT: Connection.interrupt()
    11: "corrupt",  # SQLITE_CORRUPT
    13: "disk_full",  # SQLITE_FULL
    14: "unreachable",  # SQLITE_CANTOPEN
    23: "access",  # SQLITE_AUTH
    26: "corrupt",  # SQLITE_NOTADB
}

# MySQL / MariaDB server and client error numbers (PyMySQL: exc.args[0]).
_MYSQL_CODES = {
    1044: "access",
    1045: "access",
    1142: "access",
    1143: "access",
    1227: "access",
    1370: "access",
    1698: "access",
    1049: "missing_database",
    1021: "disk_full",
    1114: "disk_full",
    1040: "unreachable",
    2002: "unreachable",
    2003: "unreachable",
    2005: "unreachable",
    2006: "unreachable",
    2013: "unreachable",
    1205: "lock_not_available",
    1317: "query_canceled",
    3024: "query_canceled",
    1969: "query_canceled",
}
_MYSQL_MODULES = ("pymysql", "MySQLdb", "mysql", "mariadb")

# errno values, for OSError only (a MySQL driver's .errno is a MySQL number).
_ERRNOS = {
    "ENOSPC": "disk_full",
    "EDQUOT": "disk_full",
    "EACCES": "access",
    "EPERM": "access",
    "EROFS": "access",
    "ECONNREFUSED": "unreachable",
    "ECONNRESET": "unreachable",
    "ECONNABORTED": "unreachable",
    "EHOSTUNREACH": "unreachable",
    "ENETUNREACH": "unreachable",
    "ETIMEDOUT": "unreachable",
    "EHOSTDOWN": "unreachable",
    "ENETDOWN": "unreachable",
    "EPIPE": "unreachable",
}

# Lower-cased phrases, in the order they are tried: the specific before the general.
_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "disk_full",
        ("database or disk is full", "no space left on device", "disk quota exceeded", "could not extend file"),
    ),
    ("corrupt", ("file is not a database", "database disk image is malformed")),
    (
        "access",
        (
            "password authentication failed",
            "no pg_hba.conf entry",
            "pg_hba.conf rejects",
            "permission denied",
            "authentication failed",
            "access denied",
            "no password supplied",
            "attempt to write a readonly database",
            "readonly database",
            "must be owner of",
            "read-only file system",
        ),
    ),
    (
        "lock_not_available",
        ("canceling statement due to lock timeout", "could not obtain lock", "lock wait timeout exceeded"),
    ),
    (
        "query_canceled",
        (
            "canceling statement due to user request",
            "canceling statement due to statement timeout",
            "query execution was interrupted",
        ),
    ),
    ("busy", ("database is locked", "database table is locked")),
    (
        "unreachable",
        (
            "connection refused",
            "could not connect to server",
            "could not translate host name",
            "name or service not known",
            "temporary failure in name resolution",
            "nodename nor servname",
            "no route to host",
            "network is unreachable",
            "timeout expired",
            "timed out",
            "the database system is starting up",
            "the database system is shutting down",
            "the database system is in recovery",
            "server closed the connection unexpectedly",
            "connection reset",
            "could not receive data from server",
            "could not send data to server",
            "terminating connection due to administrator command",
            "connection already closed",
            "unable to open database file",
            "can't connect to mysql server",
            "lost connection to mysql server",
            "mysql server has gone away",
            "too many clients already",
        ),
    ),
)
# Compiled when first used (re caches them): a run with nothing to do classifies no error (issue 14).
_MISSING_DATABASE = r'database "[^"]*" does not exist|unknown database'
_MISSING_ROLE = r'role "[^"]*" does not exist'


#: This package's errors that already say what kind of failure they are.
_OWN_KINDS: dict[type, str] = {
    DatabaseMissing: "missing_database",
    AccessDenied: "access",
    CorruptDatabase: "corrupt",
    DiskFull: "disk_full",
    DatabaseUnreachable: "unreachable",
}


def causes(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and what led to it (``__cause__``, else ``__context__``), outermost first; cycle-safe."""
    chain: list[BaseException] = []
    while exc is not None and not any(exc is seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def classify(exc: BaseException) -> str:
    """What a database error means, as one of :data:`KINDS`.

    Reads ``exc`` and its causes, outermost first, each through the driver's
    own error (``.orig``) when SQLAlchemy wrapped it; the first that says
    something other than "other" decides.  This package's own errors that
    carry a kind (DiskFull, AccessDenied...) say it directly; the others are
    skipped, since their words are ours, not the database's.
    """
    for link in causes(exc):
        if isinstance(link, MigrateInitError):
            kind = next((_OWN_KINDS[cls] for cls in type(link).__mro__ if cls in _OWN_KINDS), None)
            if kind is not None:
                return kind
            continue
        orig = getattr(link, "orig", None)
        for candidate in (orig, link) if isinstance(orig, BaseException) else (link,):
            kind = _classify_one(candidate)
            if kind != "other":
                return kind
    return "other"


def _classify_one(exc: BaseException) -> str:
    code = _sqlstate(exc)
    if code:
        kind = _SQLSTATES.get(code) or _SQLSTATE_CLASSES.get(code[:2])
        if kind:
            return kind
    sqlite_code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int) and (sqlite_code & 0xFF) in _SQLITE_CODES:
        return _SQLITE_CODES[sqlite_code & 0xFF]
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0)
        if name in _ERRNOS:
            return _ERRNOS[name]
        socket = sys.modules.get("socket")  # no socket module loaded: no gaierror to meet
        if isinstance(exc, TimeoutError) or (socket is not None and isinstance(exc, socket.gaierror)):
            return "unreachable"
    elif _is_mysql(exc):
        kind = _MYSQL_CODES.get(exc.args[0])
        if kind:
            return kind
    import re

    text = str(exc).lower()
    if re.search(_MISSING_DATABASE, text) and not re.search(_MISSING_ROLE, text):
        # Not "access": a server's init scripts or an operator may create it soon.
        return "missing_database"
    for kind, phrases in _PHRASES:
        if any(phrase in text for phrase in phrases):
            return kind
    if re.search(_MISSING_ROLE, text):
        return "access"
    if (
        not code
        and type(exc).__name__ == "OperationalError"
        and type(exc).__module__.split(".")[0] in ("psycopg2", "psycopg")
    ):
        # libpq's connection-level failures carry no SQLSTATE; statement errors do.
        return "unreachable"
    return "other"


def _sqlstate(exc: BaseException) -> str | None:
    for value in (
        getattr(exc, "pgcode", None),
        getattr(exc, "sqlstate", None),
        getattr(getattr(exc, "diag", None), "sqlstate", None),
    ):
        if isinstance(value, str) and len(value) == 5:
            return value
    return None


def _is_mysql(exc: BaseException) -> bool:
    args = exc.args
    return bool(args) and type(args[0]) is int and type(exc).__module__.split(".")[0] in _MYSQL_MODULES


# Python module of a DBAPI -> the pip requirement that provides it.
_DRIVER_PACKAGES = {
    "pymysql": "pymysql",
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python",
    "mariadb": "mariadb",
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "asyncpg": "asyncpg",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
    "oracledb": "oracledb",
    "cx_Oracle": "cx_Oracle",
}


def undone(transactional_ddl: bool, subject: str = "It") -> str:
    """What stays of a migration that failed or was stopped: nothing, where DDL is transactional."""
    if not transactional_ddl:
        return (
            f"{subject} may be partly applied: MySQL/MariaDB commit each DDL statement at once. It "
            "is recorded as interrupted; the next run runs it again if its module declares "
            "idempotent = True, and otherwise stops and says how to resolve it"
        )
    return f"{subject} was rolled back"


def missing_driver_error(drivername: str, exc: BaseException) -> ConfigError:
    """Explain which package to add when the URL's DBAPI is not installed."""
    module = getattr(exc, "name", None) or str(exc)
    package = _DRIVER_PACKAGES.get(module.split(".")[0], module)
    return ConfigError(
        f"DATABASE_URL uses the driver '{drivername}', whose Python module "
        f"'{module}' is not installed. Add '{package}' to EXTRA_PIP_PACKAGES."
    )
