"""The project's exceptions: one subclass per exit code.

Only ``cli`` turns these into exit codes; everything else raises them.
Every message is a full sentence that tells the user what to do next.
"""

from __future__ import annotations


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


class BackupFailed(MigrateInitError):
    """The SQLite backup could not be taken; no migration ran (exit 1)."""

    exit_code = 1
    outcome = "backup_failed"


class SeedFailed(MigrateInitError):
    """A file in SEED_DIR failed; the seeding was rolled back (exit 1)."""

    exit_code = 1
    outcome = "seed_failed"


class DiskFull(MigrateInitError):
    """The disk that holds the database (or its journal or lock file) is full;
    the migration was rolled back and the fallback is not tried (exit 1)."""

    exit_code = 1
    outcome = "disk_full"


class CorruptDatabase(MigrateInitError):
    """The SQLite file is not a usable database; it is left untouched (exit 1)."""

    exit_code = 1
    outcome = "corrupt_database"


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


class AccessDenied(MigrateInitError):
    """Authentication or permission refused; never retried (exit 4)."""

    exit_code = 4
    outcome = "access_denied"


class LockTimeout(MigrateInitError):
    """Another runner held the migration lock past LOCK_TIMEOUT (exit 5)."""

    exit_code = 5
    outcome = "lock_timeout"


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


class MigrationTimeout(MigrateInitError):
    """MIGRATION_TIMEOUT ran out; the running migration was rolled back (exit 10)."""

    exit_code = 10
    outcome = "timeout"


class Interrupted(MigrateInitError):
    """SIGTERM (exit 143) or SIGINT (exit 130); the running migration was rolled back."""

    outcome = "interrupted"

    def __init__(self, signum: int):
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"Stopped by {name}; the running migration was rolled back.")
        self.signum = signum
        self.exit_code = 128 + signum
