"""Wait for the database to accept connections, with a declared backoff policy.

Refused connections, DNS failures, time-outs and a server that is starting up
are retried until DB_WAIT_TIMEOUT; a refused password or permission is final
at once, since retrying cannot fix it.
"""

from __future__ import annotations

import errno
import math
import os
import random
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from . import report
from .db import Target
from .errors import AccessDenied, ConfigError, CorruptDatabase, DatabaseUnreachable, DiskFull, MigrateInitError


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped."""

    initial: float = 0.1
    maximum: float = 2.0
    multiplier: float = 2.0

    def delays(self):
        delay = self.initial
        while True:
            yield random.uniform(delay / 2, delay)
            delay = min(delay * self.multiplier, self.maximum)


# SQLSTATEs and libpq/driver phrases, lower-cased.  Authentication and
# authorisation failures are final; everything listed as transient is retried.
_FINAL_SQLSTATES = {"28000", "28P01", "42501"}
_FINAL_PHRASES = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects",
    "role \"",  # role "x" does not exist
    "permission denied",
    "authentication failed",
    "access denied",
    "fe_sendauth: no password supplied",
    "attempt to write a readonly database",
    "readonly database",
)
_SQLITE_CORRUPT = ("file is not a database", "database disk image is malformed")
# SQLITE_FULL, PostgreSQL's disk_full class, and the OS's own words for it.
_DISK_FULL_PHRASES = ("database or disk is full", "no space left on device", "disk quota exceeded")
_DISK_FULL_SQLSTATES = {"53100"}
_MISSING_DATABASE = re.compile(r'database "(?P<name>[^"]*)" does not exist')


def classify(exc: BaseException) -> str:
    """'final' for authentication/permission errors, 'corrupt', or 'retry'."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    text = str(orig).lower()
    if code in _FINAL_SQLSTATES or any(p in text for p in _FINAL_PHRASES):
        if "does not exist" in text and "role" not in text:
            return "retry"
        return "final"
    if any(p in text for p in _SQLITE_CORRUPT):
        return "corrupt"
    return "retry"


def prepare_sqlite(path: Path) -> None:
    """Create the database's folder and check that this user can write both."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise AccessDenied(
            f"Cannot create the folder {folder} for the SQLite database as UID "
            f"{os.getuid()}: permission denied. Create it, or mount a volume there "
            "that this user can write."
        ) from None
    except OSError as exc:
        raise AccessDenied(f"Cannot create the folder {folder}: {exc.strerror}.") from None
    if not folder.is_dir():
        raise ConfigError(f"DATABASE_URL points into {folder}, which is not a folder.")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise AccessDenied(
            f"The SQLite database {path} is not writable by UID {os.getuid()} "
            f"(GID {os.getgid()}); it is {_owner(path)}. Make it writable "
            "(chown/chmod) or run the container as its owner."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AccessDenied(
            f"The folder {folder} is not writable by UID {os.getuid()} (GID "
            f"{os.getgid()}); it is {_owner(folder)}. SQLite must create its journal "
            "there: make the folder writable or run as its owner."
        )


def _owner(path: Path) -> str:
    info = path.stat()
    return f"owned by UID {info.st_uid}, GID {info.st_gid}, mode {stat.filemode(info.st_mode)}"


def wait_for(engine, target: Target, timeout: float, backoff: Backoff = Backoff()) -> None:
    """Return once the database answers; raise DatabaseUnreachable or AccessDenied."""
    from sqlalchemy import event

    if target.sqlite_path is not None:
        prepare_sqlite(target.sqlite_path)
    deadline = time.monotonic() + timeout

    def _bound_attempt(_dialect, _record, _cargs, cparams):
        # A server that accepts TCP but never answers would hold each attempt
        # for the whole connect timeout: cap it at what DB_WAIT_TIMEOUT has left
        # (libpq's minimum is 2 s), so the wait ends when it says.
        left = math.ceil(deadline - time.monotonic())
        if "connect_timeout" in cparams:
            cparams["connect_timeout"] = max(2, min(int(cparams["connect_timeout"]), left))

    event.listen(engine, "do_connect", _bound_attempt)
    try:
        _wait(engine, target, timeout, deadline, backoff)
    finally:
        event.remove(engine, "do_connect", _bound_attempt)
    if target.sqlite_path is not None:
        share_with_group(target.sqlite_path)


def share_with_group(path: Path) -> None:
    """Let the file's group write it too, when this user owns it.

    SQLite creates files mode 0644 whatever the umask; OpenShift runs the next
    pod as another UID in group 0, which must still be able to migrate.
    """
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o060 != 0o060:
            path.chmod(stat.S_IMODE(info.st_mode) | 0o060)
    except OSError:
        pass  # not ours to change; prepare_sqlite already checked that we can write it


def _wait(engine, target: Target, timeout: float, deadline: float, backoff: Backoff) -> None:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    # Reading sqlite_master parses the schema, so a corrupt file is caught
    # here, before anything is locked or written, and not half-way through.
    probe = "SELECT count(*) FROM sqlite_master" if target.is_sqlite else "SELECT 1"
    delays = backoff.delays()
    attempt = 0
    last_reason = None
    while True:
        attempt += 1
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(probe) if target.is_sqlite else connection.execute(text(probe))
            if attempt > 1:
                report.event("db_ready", f"The database answered after {attempt} attempts.", attempts=attempt)
            return
        except sa_exc.DBAPIError as exc:
            kind = classify(exc)
            reason = _reason(exc)
            if kind == "final":
                raise AccessDenied(
                    f"The database at {target.safe} refused access: {reason}. "
                    "Check the user and password in DATABASE_URL (or DATABASE_URL_FILE) "
                    "and the database's grants; this is not retried."
                ) from None
            if kind == "corrupt":
                raise CorruptDatabase(
                    f"The SQLite file {target.sqlite_path} is not a usable database: "
                    f"{reason}. It was left untouched. Restore it from a backup, or move "
                    "it aside to start fresh."
                ) from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DatabaseUnreachable(
                f"The database at {target.safe} did not accept connections within "
                f"DB_WAIT_TIMEOUT={timeout:g}s after {attempt} attempts (last error: "
                f"{reason}). {_advice(reason)}"
            )
        if reason != last_reason:
            report.event(
                "db_waiting",
                f"Waiting for the database at {target.safe}: {reason}.",
                attempt=attempt,
                remaining=round(remaining, 1),
            )
            last_reason = reason
        time.sleep(min(next(delays), max(remaining, 0.0)))


def _advice(reason: str) -> str:
    missing = _MISSING_DATABASE.search(reason)
    if missing:
        # Retried rather than final: a server's init scripts or an operator
        # may create the database after the server accepts connections.
        return (f"The server answers, but the database '{missing['name']}' does not exist on it: "
                "create it, or fix the database name in DATABASE_URL.")
    return "Check the host, port and database name in DATABASE_URL, or raise DB_WAIT_TIMEOUT."


def storage_error(target: Target, exc: BaseException | None,
                  revision: str | None = None) -> MigrateInitError | None:
    """A clear error when ``exc`` (or what caused it) says the disk is full; else None.

    A full disk is not a broken migration: the create_all fallback would fail
    the same way, or worse leave a schema half-created, so the caller stops.
    """
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for exc in reversed(chain):  # the driver's own error first: its words are the clearest
        orig = getattr(exc, "orig", exc)
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        text = str(orig).lower()
        full = (code in _DISK_FULL_SQLSTATES or any(p in text for p in _DISK_FULL_PHRASES)
                or getattr(orig, "sqlite_errorcode", None) == 13  # SQLITE_FULL
                or getattr(orig, "errno", None) in (errno.ENOSPC, errno.EDQUOT))
        if full:
            where = f" while applying {revision}" if revision else ""
            if target.sqlite_path is not None:
                return DiskFull(
                    f"The disk that holds the SQLite database {target.sqlite_path} is full: "
                    f"SQLite could not write the database or its journal{where} "
                    f"({_reason(exc)}). The migration was rolled back and the database is "
                    "unchanged; the create_all fallback was not tried. Free space on that "
                    "volume (or grow it) and run again."
                )
            return DiskFull(
                f"The database server at {target.safe} ran out of disk space{where} "
                f"({_reason(exc)}). The migration was rolled back; the create_all fallback "
                "was not tried. Free space on the server's volume and run again."
            )
    return None


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    # libpq prefixes the useful line with "FATAL:"; keep the most telling one.
    for line in lines:
        if line.startswith("FATAL:"):
            return line
    return lines[0] if lines else type(orig).__name__
