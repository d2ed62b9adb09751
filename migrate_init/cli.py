"""The command line: parse arguments, run one verb, print what it returned, map the outcome to an exit code.

This is the only module that calls ``sys.exit`` and the only one that turns
outcomes into exit codes.  Verbs take the frozen Config and the Watchdog and
return data (:class:`report.Summary` or :class:`commands.Listing`), or raise
the project's exceptions (one subclass per exit code, :mod:`errors`).  The
watchdog's recorded stop (SIGTERM, SIGINT, MIGRATION_TIMEOUT) is honoured
last, whatever the verb did: a signal is never turned into exit 0.
"""

from __future__ import annotations

import sys

from . import __version__, report
from . import config as config_module
from .errors import ConfigError, MigrateInitError, MigrationFailed

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any, NoReturn

    from .config import Config
    from .watchdog import Watchdog

#: The name usage text gives: the script's, or the command's when pip installed it as migrate-init.
PROG = "migrate-init" if sys.argv and sys.argv[0].rsplit("/", 1)[-1] == "migrate-init" else "migrate.py"

#: Listing outcomes -> exit codes (Summary outcomes are 0; failures are exceptions).
_LISTING_CODES = {
    "ok": 0,
    "pending": 1,
    "drift": 1,
    "findings": 1,
    "unknown_revision": 6,
    "destructive": 8,
    "preview_refused": 1,
}

#: verb -> (help, takes REV, prints a summary line)
VERBS: dict[str, tuple[str, bool, bool]] = {
    "run": ("the full init sequence (the default)", False, True),
    "upgrade": ("upgrade to REV, with the same lock, guard and verification", True, True),
    "status": ("current revisions, heads, pending; exit 1 when pending", False, False),
    "current": ("the database's current revision(s)", False, False),
    "history": (
        "what was applied, newest first (date, duration, kind, outcome, checksum), then what is pending; "
        "--json; --graph for the scripts' graph only",
        False,
        False,
    ),
    "graph": ("the revision graph as Mermaid (or --format dot), current and pending revisions marked", False, False),
    "heads": ("the heads of the scripts (scripts only)", False, False),
    "wait": ("wait until another migrator brought the database to its target; never migrates", False, True),
    "verify": ("the integrity check alone, with row counts", False, True),
    "check": ("compare the database with the models, in words; exit 1 on drift", False, False),
    "plan": (
        "pending migrations and the SQL they run, rolled back; changes nothing; exits as run would "
        "(8: run would refuse)",
        False,
        False,
    ),
    "lint": ("find destructive or non-idempotent migrations; exit 1 on findings", False, False),
    "stamp": ("adopt an existing database: verify it against MODELS, then record REV", True, True),
    "accept": ("record REV's edited (or removed) script as reviewed, so verify and runs stop naming it", True, True),
    "resolve": ("MySQL/MariaDB: forget that REV was interrupted, once its partial changes are undone", True, True),
    "manifest": ("write MIGRATIONS_DIR/.manifest.marshal for the fast path (image builds)", False, True),
    "alembic": (
        "run the plain alembic CLI on MIGRATIONS_DIR and DATABASE_URL: migrate.py alembic ARGS...",
        False,
        False,
    ),
}
COMMANDS = (*VERBS, "help")


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Get the database ready before the application starts: wait for it, lock, run the "
        "layered Alembic upgrade (or the create_all fallback), verify, exit with a code that "
        "says what went wrong.",
        epilog="Configuration comes from the environment (DATABASE_URL, MIGRATIONS_DIR, MODELS, ...). Exit "
        "codes: 0 ok, 1 migration failed, 2 configuration, 3 unreachable, 4 access denied, 5 lock "
        "timeout, 6 unknown revision, 7 verification failed, 8 destructive refused, 9 dependency "
        "install failed, 10 timeout, 11 read-only standby, 12 an applied revision was edited, "
        "130/143 stopped by a signal. The repository's README and docs/ describe each variable.",
    )
    parser.add_argument("--version", action="version", version=f"migrate-init {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, takes_rev, _) in VERBS.items():
        verb = sub.add_parser(name, help=text, description=text)
        if takes_rev:
            verb.add_argument("revision", metavar="REV")
        if name == "plan":
            verb.add_argument(
                "--sql",
                metavar="FILE",
                help="also write the plan to FILE: SQL that sqlite3 or psql can run, every other line a comment",
            )
        if name == "alembic":
            verb.add_argument("arguments", nargs=argparse.REMAINDER, metavar="ARGS")
        if name == "history":
            verb.add_argument("--json", action="store_true", help="one JSON document, for machines")
            verb.add_argument("--graph", action="store_true", help="the scripts' graph as Alembic prints it")
        if name == "graph":
            verb.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    sub.add_parser("help", help="show this help")
    return parser


def main(argv: list[str] | None = None) -> None:
    # No arguments is the init container's every start: no argparse import (issue 7).
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["alembic"]:
        # Everything after `alembic` is Alembic's, its global options too (-x k=v, --raiseerr, -q):
        # argparse's REMAINDER would take them for ours and refuse them (issue 25, N29).
        import argparse

        args: Any = argparse.Namespace(command="alembic", arguments=argv[1:])
    else:
        args = _parser().parse_args(argv) if argv else None
    command = getattr(args, "command", None) or "run"
    if command == "help":
        _parser().print_help()
        sys.exit(0)
    from .watchdog import Watchdog

    # Before anything else: a signal from the first instruction on is recorded, never lost.
    watchdog = Watchdog()
    try:
        cfg = config_module.load()
    except ConfigError as exc:
        log_format, report_file = config_module.reporting()
        report.setup(log_format=log_format, stopping=lambda: watchdog.stopped)
        report.finish(
            report.Summary(command=command, outcome=exc.outcome, exit_code=exc.exit_code, message=str(exc)), report_file
        )
        _exit(_honour(watchdog, exc.exit_code))
    # A stalled stderr never holds a stop back.
    report.setup(log_format=cfg.log_format, level=cfg.log_level, secrets=cfg.secrets, stopping=lambda: watchdog.stopped)
    watchdog.on_hard_exit = lambda stop, grace: report.finish(
        report.Summary(
            command=command,
            database=cfg.database.safe,
            outcome=stop.outcome,
            exit_code=stop.exit_code,
            message=f"{stop} The run did not end within {grace:g}s of it (a database server that no longer "
            "answers cannot be cancelled), so the process ended itself. The server rolls back what "
            "was not committed when it sees the connection gone; run again once it answers.",
        ),
        cfg.report_file,
    )
    watchdog.heartbeat(cfg.heartbeat_interval)
    if command in ("plan", "stamp", "resolve", "accept"):
        bound_run(cfg, watchdog)
    summary: report.Summary | None = None
    # What run/upgrade did, kept here: a failure reports it with its own message (issue 21: not on the exception).
    record = report.Summary(command=command, database=cfg.database.safe) if command in ("run", "upgrade") else None
    try:
        watchdog.checkpoint()  # a stop that came before the watchdog (issue 25 N32): nothing is touched
        if command != "current":  # the one verb that needs no scripts
            config_module.check_migrations_dir(cfg.migrations_dir)
        try:
            result = _dispatch(command, args, cfg, watchdog, record)
        except SystemExit as exc:
            # Only ours may end the process: an env.py, a migration or MODELS that calls sys.exit()
            # (open-webui's env.py without WEBUI_SECRET_KEY) is a failure to report (issue 24).
            raise _exited(exc, watchdog) from exc
        # A stop recorded meanwhile still wins: honoured below, with what the verb did kept.
        if isinstance(result, report.Summary):
            summary = result
        else:
            code = _LISTING_CODES[result.outcome]
            try:
                for line in result.lines:
                    print(line)
                sys.stdout.flush()
            except BrokenPipeError:
                # `migrate.py history | head`: the reader left; that is not an error of ours.
                import os

                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            watchdog.close()
            _exit(_honour(watchdog, code))
    except MigrateInitError as exc:
        summary = _failure(command, cfg, exc, record)
    except KeyboardInterrupt:
        summary = report.Summary(
            command=command,
            database=cfg.database.safe,
            outcome="interrupted",
            exit_code=130,
            message="Stopped by SIGINT.",
        )
    except Exception as exc:  # an error no verb anticipated: still one summary and exit 1
        summary = _failure(command, cfg, _unexpected(exc, watchdog, cfg), record)
    finally:
        watchdog.close()
    stop = watchdog.reason
    if stop is not None and summary.exit_code != stop.exit_code:
        # Honour the recorded stop last: what the run did stays in the summary, the exit is the signal's.
        summary.outcome, summary.exit_code = stop.outcome, stop.exit_code
        summary.message = f"{stop} {summary.message}".strip()
    report.finish(summary, cfg.report_file)
    _exit(summary.exit_code)


def _exit(code: int) -> NoReturn:
    """Exit with ``code``, settled: a stop signal from here on cannot turn it into a kill (-15)."""
    from .watchdog import block_stop_signals

    block_stop_signals()
    if report.only_ours():
        # Only migrate-init's own code ran (no scripts, models, Alembic, pip: they hand our lines to
        # logging first), and it closed every file and connection it opened.  The interpreter's
        # teardown of its modules would only cost time: 2 ms, a seventh of a run with nothing to
        # do (issue 14).  What is buffered is written first.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # the reader left, or the stream is closed: nothing to keep
                pass
        import os

        os._exit(code)
    sys.exit(code)


def _dispatch(command: str, args: Any, cfg: Config, watchdog: Watchdog, record: report.Summary | None) -> Any:
    revision = getattr(args, "revision", None)
    if command in ("run", "upgrade"):
        # The init container's every start: nothing else is imported (issue 14).
        from . import run

        assert record is not None
        return run.run(cfg, watchdog, record, revision=revision)
    report.use_logging()  # the other verbs load Alembic, whose records go through our handler
    from . import commands

    table: dict[str, Callable[[], Any]] = {
        "status": lambda: commands.status(cfg, watchdog),
        "current": lambda: commands.current(cfg, watchdog),
        "history": lambda: (
            commands.history(cfg, "history")
            if getattr(args, "graph", False)
            else commands.history_of(cfg, watchdog, as_json=getattr(args, "json", False))
        ),
        "graph": lambda: commands.graph(cfg, watchdog, getattr(args, "format", "mermaid")),
        "accept": lambda: commands.accept(cfg, watchdog, str(revision)),
        "heads": lambda: commands.history(cfg, "heads"),
        "wait": lambda: commands.wait_for_target(cfg, watchdog),
        "verify": lambda: commands.verify(cfg, watchdog),
        "check": lambda: commands.check(cfg, watchdog),
        "plan": lambda: commands.plan(cfg, watchdog, getattr(args, "sql", None)),
        "lint": lambda: commands.lint(cfg, watchdog),
        "stamp": lambda: commands.stamp(cfg, watchdog, str(revision)),
        "resolve": lambda: commands.resolve(cfg, watchdog, str(revision)),
        "manifest": lambda: commands.write_manifest(cfg),
        "alembic": lambda: commands.alembic(cfg, watchdog, list(getattr(args, "arguments", []) or [])),
    }
    return table[command]()


def bound_run(cfg: Config, watchdog: Watchdog) -> None:
    """The whole run's bound: DB_WAIT_TIMEOUT + LOCK_TIMEOUT + MIGRATION_TIMEOUT + 30 s (none if any is 0)."""
    limits = (cfg.db_wait_timeout, cfg.lock_timeout, cfg.migration_timeout)
    if all(limits):
        watchdog.bound_run(sum(limits) + 30, "DB_WAIT_TIMEOUT + LOCK_TIMEOUT + MIGRATION_TIMEOUT + 30")


def _failure(command: str, cfg: Config, exc: MigrateInitError, record: report.Summary | None) -> report.Summary:
    summary = record or report.Summary(command=command, database=cfg.database.safe)
    summary.outcome, summary.exit_code, summary.message = exc.outcome, exc.exit_code, str(exc)
    if isinstance(exc, MigrationFailed) and exc.revision:
        summary.failed_revision = exc.revision
    return summary


def _honour(watchdog: Watchdog, code: int) -> int:
    stop = watchdog.reason
    watchdog.close()
    return stop.exit_code if stop is not None else code


def _unexpected(exc: BaseException, watchdog: Watchdog, cfg: Config) -> MigrateInitError:
    """Name a database error in words; keep the traceback for LOG_LEVEL=DEBUG."""
    import logging

    from .errors import AccessDenied, CorruptDatabase, DatabaseMissing, DatabaseUnreachable, classify

    stop = watchdog.reason
    if stop is not None:
        return stop
    report.use_logging()
    logging.getLogger(report.LOGGER).debug("Traceback of the unexpected error", exc_info=exc)
    kind = classify(exc)
    if kind == "corrupt":
        where = cfg.database.sqlite_path or cfg.database.safe
        return CorruptDatabase(
            f"The database {where} is damaged ({report.first_line(exc)}); it was left as it is. "
            "Restore it from a backup (BACKUP_DIR), or check it with PRAGMA integrity_check."
        )
    # A connection that code we do not own opened (`migrate.py alembic`, a user's env.py) is read
    # like ours: a refused password is exit 4 there too, a server that is not there exit 3 (issue 24).
    if kind == "access":
        return AccessDenied(
            f"The database at {cfg.database.safe} refused access: {report.first_line(exc)}. Check the user "
            "and password in DATABASE_URL (or DATABASE_PASSWORD / their _FILE variants) and the "
            "database's grants."
        )
    if kind in ("unreachable", "missing_database"):
        error = DatabaseMissing if kind == "missing_database" else DatabaseUnreachable
        return error(
            f"The database at {cfg.database.safe} did not answer: {report.first_line(exc)}. Check the host, "
            "port and database name in DATABASE_URL, and that the server is up."
        )
    return MigrateInitError(
        f"Unexpected {type(exc).__name__}: {report.first_line(exc)}. Nothing more was attempted; run "
        "with LOG_LEVEL=DEBUG for the traceback and report it if it looks like a bug."
    )


def _exited(exc: SystemExit, watchdog: Watchdog) -> MigrateInitError:
    """A ``sys.exit()`` in code migrate-init runs (env.py, a migration, MODELS), as a ScriptError with its code."""
    from .errors import ScriptError

    stop = watchdog.reason
    if stop is not None:
        return stop
    code = exc.code
    said = f"SystemExit({code!r})" if not isinstance(code, str) else f"SystemExit: {report.first_line(exc)}"
    where = _caller_of(exc)
    error = ScriptError(
        f"{where or 'env.py, a migration script or MODELS'} called sys.exit() while {watchdog.phase}: {said}. "
        "migrate-init stopped there; fix what it asks for (often an environment variable the app's env.py "
        "needs) and run again."
    )
    return error


def _caller_of(exc: BaseException) -> str | None:
    """``file:line`` of the last frame outside Python's own and installed libraries that raised ``exc``."""
    import os

    tb, found = exc.__traceback__, None
    package = os.path.dirname(os.path.abspath(__file__))
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(("<", package, os.path.dirname(os.__file__))) and "site-packages" not in filename:
            found = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


__all__ = ["COMMANDS", "VERBS", "main"]
