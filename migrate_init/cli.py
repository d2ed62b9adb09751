"""The command line: parse arguments, run one verb, map the outcome to an exit code.

This is the only module that calls ``sys.exit``.  Verbs take the frozen
Config and raise the project's exceptions (see ``errors``).
"""

from __future__ import annotations

import sys
import time

from . import config as config_module
from . import report
from .errors import ConfigError, MigrateInitError, MigrationFailed, UnknownRevision, VerificationFailed

COMMANDS = ("run", "upgrade", "status", "history", "heads", "current", "wait",
            "plan", "check", "verify", "lint", "manifest")


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="migrate.py",
        description="Get the database ready before the application starts.",
        epilog="Configuration comes from the environment; see README.md.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="the full init sequence (the default)")
    upgrade = sub.add_parser("upgrade", help="upgrade to REV, with the same safety")
    upgrade.add_argument("revision", metavar="REV")
    sub.add_parser("status", help="current revisions, heads, pending; exit 1 when pending")
    sub.add_parser("history", help="the revision history")
    sub.add_parser("heads", help="the heads of the scripts")
    sub.add_parser("current", help="the database's current revision(s)")
    sub.add_parser("wait", help="wait until another migrator brought the database to its target")
    sub.add_parser("plan", help="pending migrations and the SQL they would run; changes nothing")
    sub.add_parser("check", help="compare the database with the models; exit 1 on drift")
    sub.add_parser("verify", help="the integrity check alone, with row counts")
    sub.add_parser("lint", help="find destructive or non-idempotent migrations; exit 1 on findings")
    sub.add_parser("manifest", help="write MIGRATIONS_DIR/.manifest.json for the fast path (image build)")
    return parser


def main(argv: list[str] | None = None) -> None:
    # No arguments is the init container's every start: no parser, no argparse import (issue 7).
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv) if argv else None
    command = getattr(args, "command", None) or "run"
    try:
        cfg = config_module.load()
    except ConfigError as exc:
        log_format, report_file = config_module.reporting()
        report.setup(log_format=log_format)
        # The same one-line summary (and REPORT_FILE or termination log) as every other outcome.
        report.finish(report.Summary(command=command, outcome=exc.outcome,
                                     exit_code=exc.exit_code, message=str(exc)), report_file)
        sys.exit(exc.exit_code)
    report.setup(log_format=cfg.log_format, level=cfg.log_level, secrets=cfg.secrets)
    summary = report.Summary(command=command)
    if command in ("run", "wait"):
        # A database at its target is answered without SQLAlchemy or Alembic (issue 7).
        from . import fastpath

        if fastpath.try_run(cfg, summary, command):
            report.finish(summary, cfg.report_file)
            sys.exit(summary.exit_code)
    from .watchdog import Watchdog

    watchdog = Watchdog()
    try:
        if command == "manifest":
            sys.exit(_write_manifest(cfg))
        if command in ("history", "heads"):
            code = _print_scripts(cfg, command)
            sys.exit(code)
        from . import migrator

        if command == "status":
            sys.exit(migrator.status(cfg, watchdog))
        if command == "current":
            sys.exit(migrator.current(cfg, watchdog))
        if command in ("plan", "check"):
            sys.exit(getattr(migrator, command)(cfg, watchdog))
        if command == "lint":
            sys.exit(migrator.lint(cfg))
        if command == "verify":
            migrator.verify_only(cfg, summary, watchdog)
        elif command == "wait":
            migrator.wait_for_target(cfg, summary, watchdog)
        else:
            migrator.run(cfg, summary, watchdog, revision=getattr(args, "revision", None))
    except MigrateInitError as exc:
        summary.outcome = exc.outcome
        summary.exit_code = exc.exit_code
        summary.message = str(exc)
        if isinstance(exc, MigrationFailed) and exc.revision:
            summary.failed_revision = exc.revision
    except KeyboardInterrupt:
        summary.outcome, summary.exit_code = "interrupted", 130
        summary.message = "Stopped by SIGINT."
    except Exception as exc:  # an error no verb anticipated: still one summary and exit 1
        error = _unexpected(exc, cfg)
        summary.outcome, summary.exit_code, summary.message = error.outcome, error.exit_code, str(error)
    finally:
        watchdog.close()
    report.finish(summary, cfg.report_file)
    sys.exit(summary.exit_code)


def _unexpected(exc: BaseException, cfg) -> MigrateInitError:
    """Name a database error in words; keep the traceback for LOG_LEVEL=DEBUG."""
    import logging

    from . import db
    from .errors import CorruptDatabase
    from .wait import classify

    logging.getLogger(report.LOGGER).debug("Traceback of the unexpected error", exc_info=exc)
    orig = getattr(exc, "orig", exc)
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if classify(exc) == "corrupt":
        return CorruptDatabase(
            f"The database is damaged ({first}); it was left as it is. Restore it from a "
            "backup (BACKUP_DIR), or check it with PRAGMA integrity_check."
        )
    return MigrateInitError(
        f"Unexpected {type(exc).__name__}: {db.redact(first)}. Nothing more was attempted; "
        "run with LOG_LEVEL=DEBUG for the traceback and report it if it looks like a bug."
    )


def _print_scripts(cfg, command: str) -> int:
    """``history`` and ``heads`` read the scripts only; the database is not touched."""
    from alembic import command as alembic_command

    from . import db, scripts

    target = db.parse(cfg.database_url)
    acfg = scripts.alembic_config(cfg.migrations_dir, target, models=cfg.models)
    scripts.load(acfg)
    if command == "history":
        alembic_command.history(acfg, verbose=False)
    else:
        alembic_command.heads(acfg, verbose=False)
    return 0


def _write_manifest(cfg) -> int:
    """``manifest``: reads the scripts and models, writes the fast path's manifest; no database."""
    from . import manifest

    path, data = manifest.build(cfg)
    report.event("manifest", f"Wrote {path}: heads {', '.join(data['heads'])}, "
                 f"{len(data['schema'])} tables.", path=str(path), heads=data["heads"])
    return 0


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 4)


__all__ = ["main", "COMMANDS", "UnknownRevision", "VerificationFailed"]
