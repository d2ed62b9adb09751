"""Wait for the database to accept connections, with a declared backoff policy.

Refused connections, DNS failures, time-outs and a server that is starting up
are retried until DB_WAIT_TIMEOUT; a refused password or permission is final
at once, since retrying cannot fix it.
"""

from __future__ import annotations

import os
import random
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from . import report
from .db import Target
from .errors import AccessDenied, ConfigError, DatabaseUnreachable, MigrateInitError


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
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    if target.sqlite_path is not None:
        prepare_sqlite(target.sqlite_path)
    probe = "PRAGMA schema_version" if target.is_sqlite else "SELECT 1"
    deadline = time.monotonic() + timeout
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
                raise MigrateInitError(
                    f"The SQLite file {target.sqlite_path} is not a usable database: "
                    f"{reason}. Restore it from a backup, or move it aside to start fresh."
                ) from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DatabaseUnreachable(
                f"The database at {target.safe} did not accept connections within "
                f"DB_WAIT_TIMEOUT={timeout:g}s after {attempt} attempts (last error: "
                f"{reason}). Check the host, port and database name in DATABASE_URL, "
                "or raise DB_WAIT_TIMEOUT."
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


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    # libpq prefixes the useful line with "FATAL:"; keep the most telling one.
    for line in lines:
        if line.startswith("FATAL:"):
            return line
    return lines[0] if lines else type(orig).__name__
