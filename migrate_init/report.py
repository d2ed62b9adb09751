"""Log lines and the final summary.

One line per event, each starting with its time (ISO 8601, UTC, milliseconds:
``2026-11-29T10:41:02.123Z``).  Text by default, ``LOG_FORMAT=json`` gives one
JSON object per line with the same fields (the time as ``"time"``).  Alembic's
own records (``Running upgrade <from> -> <to>, <name>``) go through the same
handler, so operators see the lines they know.

Nothing leaves this module unmasked: every configured secret, in every form
it could be printed in (:func:`migrate_init.url.secret_forms`), is replaced by
``***``, and every text also goes through :func:`migrate_init.url.redact`, so
a password in a URL that nobody configured (a user's env.py, a driver's
message) is masked too.  Masking never raises and never drops a line.
"""

from __future__ import annotations

import os
import sys
import time

from . import url

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable
    from typing import Any

LOGGER = "migrate_init"

#: logging's level numbers and names, fixed by its API.  logging itself is imported only once
#: something needs it (:func:`use_logging`): a run with nothing to do writes its few lines without
#: it, through the same mask, format and writer, about 5 ms sooner (issue 14).
NOTSET, DEBUG, INFO, WARNING, ERROR, CRITICAL = 0, 10, 20, 30, 40, 50
_LEVEL_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR", CRITICAL: "CRITICAL"}
_LEVELS = {name: number for number, name in _LEVEL_NAMES.items()}

#: Shorter secret forms are not masked: replacing every "ab" in the log would
#: make it unreadable.  url.redact still masks such a password inside a URL.
_MIN_MASK = 3
_MASKED = "***"


class _Masker:
    """The configured secrets, in every printable form, longest first."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            forms.update(url.secret_forms(secret))
        # Longest first, so that a password's encoded form is replaced before its raw prefix.
        self.forms = sorted((f for f in forms if len(f) >= _MIN_MASK), key=len, reverse=True)

    def text(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, _MASKED)
        return url.redact(text)

    def value(self, value: Any) -> Any:
        """``value`` with every string in it masked; what JSON cannot hold becomes masked text."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v) for v in value]
        try:
            text = str(value)
        except Exception:  # an object that cannot say what it is: withhold it, keep the rest
            return _WITHHELD
        return self.text(text)


_masker = _Masker()


def mask(text: str) -> str:
    """``text`` with every configured secret and every URL password masked.  Never raises."""
    try:
        return _masker.text(text)
    except Exception:  # a mask that fails must not let the text through
        return _WITHHELD


_WITHHELD = "(text withheld: it could not be checked for passwords)"


def _mask_value(value: Any) -> Any:
    try:
        return _masker.value(value)
    except Exception:  # see mask()
        return _WITHHELD


class _MaskSecrets:
    """Masks each record's message and fields before any handler formats it; never drops one.

    A plain class: logging takes any object with a ``filter`` method as a filter, and the lines
    written without logging (:class:`_Line`) go through it too.
    """

    def filter(self, record: Any) -> bool:
        try:
            try:
                message = record.getMessage()
            except Exception:  # a record whose arguments do not fit its format
                message = str(record.msg)
            record.msg, record.args = mask(message), None
            fields = getattr(record, "fields", None)
            if fields:
                setattr(record, "fields", _mask_value(fields))  # noqa: B010 - not a LogRecord attribute to mypy
        except Exception:  # keep the line, withhold its text
            record.msg, record.args = _WITHHELD, None
            setattr(record, "fields", {})  # noqa: B010
        return True


class _QuietAlembic:
    """Drop Alembic's set-up chatter; keep its "Running upgrade" lines."""

    _NOISE = ("Context impl", "Will assume", "setup plugin", "setting up")

    def filter(self, record: Any) -> bool:
        return not (
            record.name.startswith("alembic") and isinstance(record.msg, str) and record.msg.startswith(self._NOISE)
        )


def timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as ISO 8601 UTC with milliseconds: 2026-11-29T10:41:02.123Z."""
    seconds = int(created)
    millis = min(int((created - seconds) * 1000), 999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


_TEXT_FORMAT = "%(asctime)s %(levelname)-5s [%(name)s] %(message)s"


def _text(record: Any, formatted: Callable[[Any], str]) -> str:
    """The text line: ``formatted(record)``, masked as a whole."""
    try:
        # The whole line again: a traceback (LOG_LEVEL=DEBUG) was not masked by the filter.
        return mask(formatted(record))
    except Exception:  # one line, whatever went wrong
        return f"{timestamp(record.created)} {record.levelname:<5} [{record.name}] {_WITHHELD}"


def _plain_text(record: Any) -> str:
    """``_TEXT_FORMAT`` as logging's Formatter fills it in for a record without a traceback (a :class:`_Line`)."""
    return f"{timestamp(record.created)} {record.levelname:<5} [{record.name}] {record.getMessage()}"


def _json(record: Any, exception: Callable[[Any], str]) -> str:
    """The JSON line; ``exception`` formats the record's ``exc_info``, when it has one."""
    import json  # only for LOG_FORMAT=json: a text run with nothing to do does not import it (issue 14)

    try:
        payload: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", "alembic" if record.name.startswith("alembic") else "log"),
            "message": record.getMessage(),
        }
        # A field never replaces the line's own keys: the summary's "message"
        # would otherwise hide the "FAILED (exit N): ..." that the text line shows.
        fields = getattr(record, "fields", None) or {}
        payload.update({k: v for k, v in fields.items() if k not in payload})
        if record.exc_info:
            payload["traceback"] = exception(record.exc_info)
        # Masked as values, never as JSON text: a mask cannot break the line's syntax.
        return json.dumps(_mask_value(payload), default=str)
    except Exception:  # one parseable line, whatever went wrong
        return json.dumps(
            {
                "time": timestamp(record.created),
                "level": record.levelname,
                "logger": record.name,
                "event": str(getattr(record, "event", "log")),
                "message": _WITHHELD,
            }
        )


def _put(text: str) -> None:
    """Write one line to fd 2, and give up on it once the run must stop.

    A stalled log reader (a full pipe) blocks ``write()``; a signal then only
    interrupts it for Python to retry it.  So the line is written with
    ``select()`` in short waits, and once :func:`setup`'s ``stopping`` says so (a
    SIGTERM or MIGRATION_TIMEOUT was recorded), the rest of the line is
    dropped after a short grace: the stop is honoured, never stuck behind a
    log line (issue 12).  Never raises.
    """
    global _last_line
    _last_line = time.monotonic()
    stream = sys.stderr
    try:
        fd = stream.fileno()
        stream.flush()
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture): write to it
        try:
            stream.write(text)
            stream.flush()
        except Exception:
            pass
        return
    _write(fd, text.encode("utf-8", "replace"))


_last_line = time.monotonic()


def last_line() -> float:
    """When the last line was written (``time.monotonic()``; the start, before any)."""
    return _last_line


def heartbeat(message: str, /, **fields: Any) -> None:
    """A heartbeat line, from the watchdog's thread: never through logging, never blocking.

    That thread cancels statements when the run must stop, so it must never
    wait: not for logging's locks (the main thread may hold them, stuck on a
    stalled reader) and not for stderr.  The line is written only when fd 2
    takes it at once (a pipe that select() calls writable takes a line of this
    size whole), else dropped.  Never raises.
    """
    try:
        if INFO < _LEVELS.get(_level, INFO):
            return
        record = _Line(INFO, message, "heartbeat", fields)
        _MaskSecrets().filter(record)
        text = (_json(record, str) if _format == "json" else _text(record, _plain_text)) + "\n"
        import select

        fd = sys.stderr.fileno()
        if select.select([], [fd], [], 0)[1]:
            os.write(fd, text.encode("utf-8", "replace")[:4096])
    except Exception:  # a heartbeat that cannot be written is only a heartbeat
        pass


class _Line:
    """One of our events as logging would record it, for a line written without logging."""

    __slots__ = ("args", "created", "event", "exc_info", "fields", "levelname", "levelno", "msg", "name")

    def __init__(self, level: int, message: str, event: str, fields: dict[str, Any]) -> None:
        self.created = time.time()
        self.levelno, self.levelname = level, _LEVEL_NAMES.get(level, f"Level {level}")
        self.name, self.msg, self.args = LOGGER, message, None
        self.event, self.fields, self.exc_info = event, fields, None

    def getMessage(self) -> str:  # LogRecord's name: _MaskSecrets and the formats call it
        return str(self.msg)


def _logging_handler() -> logging.Handler:
    """Our handler, for logging: the same mask, formats and writer as the lines written without it."""
    import logging

    class _TextFormatter(logging.Formatter):
        def __init__(self) -> None:
            super().__init__(_TEXT_FORMAT)

        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            # logging's own asctime has a comma before the milliseconds and the local zone.
            return timestamp(record.created)

        def format(self, record: logging.LogRecord) -> str:
            return _text(record, super().format)

    class _JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return _json(record, self.formatException)

    class _Stderr(logging.Handler):
        """Each line to fd 2 (:func:`_put`).  No exception ever leaves ``emit()``."""

        def emit(self, record: logging.LogRecord) -> None:
            try:
                text = self.format(record) + "\n"
            except Exception:  # a line that cannot be formatted is dropped, never raised
                return
            _put(text)

        def handleError(self, record: logging.LogRecord) -> None:
            return None

    handler = _Stderr()
    handler.setFormatter(_JsonFormatter() if _format == "json" else _TextFormatter())
    handler.addFilter(_MaskSecrets())
    if _level != "DEBUG":
        handler.addFilter(_QuietAlembic())
    handler.setLevel(_level)
    return handler


#: Whether the run has been told to stop (then a stalled stderr is not waited for): :func:`setup`'s ``stopping``.
_stopping: Callable[[], bool] | None = None
#: How long a line may wait for a stalled reader once the run must stop.
_STOP_GRACE = 0.5
_stalled = False


def _write(fd: int, data: bytes) -> None:
    import select

    global _stalled
    view = memoryview(data)
    give_up: float | None = None
    while view:
        stopping = _stopping is not None and _stopping()
        if stopping and give_up is None:
            # Once one line was given up on, the reader is stalled: the next ones get no grace.
            give_up = time.monotonic() + (0.0 if _stalled else _STOP_GRACE)
        if give_up is not None and time.monotonic() >= give_up:
            _stalled = True
            return
        try:
            _, writable, _ = select.select([], [fd], [], 0.05)
            if not writable:
                continue
            # A pipe that select() calls writable takes this much without blocking.
            written = os.write(fd, view[:1024])
        except InterruptedError:
            continue
        except BlockingIOError:
            continue
        except OSError:
            return  # stderr closed: nothing to write to
        view = view[written:]


_dry_run = False
_handler: logging.Handler | None = None
_level = "INFO"
_format = "text"
#: Set up, and nothing has needed logging yet: our lines are written without it (issue 14).
_light = False


def setup(
    *,
    log_format: str = "text",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stopping: Callable[[], bool] | None = None,
) -> None:
    """Send our records and Alembic's to stderr in the chosen format, with ``secrets`` masked.

    ``stopping`` tells whether the run must stop: a line then waits for a stalled stderr
    at most half a second, and not at all once one was given up on.

    When nothing has imported logging yet, our own lines are written without it, through the
    same mask, format and writer, until :func:`use_logging` hands them to logging.
    """
    global _masker, _handler, _level, _format, _light, _stopping
    _masker = _Masker(secrets)
    _stopping = stopping
    _level, _format = level, log_format
    _handler = None
    _light = "logging" not in sys.modules
    if not _light:
        _install()


def only_ours() -> bool:
    """Whether our lines are still written without logging: nothing but migrate-init's own code has run.

    Everything else (the scripts, MODELS, Alembic, pip, any verb but ``run``) is
    loaded only after :func:`use_logging`.
    """
    return _light


def use_logging() -> None:
    """From now on, every line goes through logging, our handler on our loggers and Alembic's.

    Called before anything that may log through logging itself: the scripts, MODELS and
    Alembic, pip, any verb but ``run``.
    """
    global _light
    if _light:
        _light = False
        _install()


def _install() -> None:
    global _handler
    _handler = _logging_handler()
    reclaim()


def reclaim() -> None:
    """Put our handler back on our loggers and Alembic's.

    A user's env.py may call ``logging.config.fileConfig``, which disables the
    loggers it does not name and may give Alembic's its own handlers; the
    next line must still go through the mask, once.
    """
    if _light:
        use_logging()  # which reclaims
        return
    if _handler is None:
        return
    import logging

    for name in (LOGGER, "alembic"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [_handler]
        logger.disabled = False
        # Loggers stay at INFO even when LOG_LEVEL is higher: the runner
        # follows Alembic's "Running upgrade" records to know which
        # revision is in progress; the handler does the filtering.
        logger.setLevel(min(logging.getLevelName(_level), logging.INFO))
        logger.propagate = False
    for name, child in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(child, logging.Logger) and name.startswith((LOGGER + ".", "alembic.")):
            child.disabled = False
            child.handlers[:] = []  # their records reach our handler through their parent
            child.propagate = True


def quiet() -> _Quiet:
    """Show only warnings and errors for the body of the ``with`` block."""
    return _Quiet()


class _Quiet:
    """:func:`quiet`'s context manager (a class: contextlib is not imported on the fast path, issue 14)."""

    def __enter__(self) -> None:
        use_logging()
        self.handler = _handler
        self.previous = self.handler.level if self.handler is not None else NOTSET
        if self.handler is not None:
            self.handler.setLevel(max(self.previous, WARNING))

    def __exit__(self, *exc_info: object) -> None:
        if self.handler is not None:
            self.handler.setLevel(self.previous)


def set_dry_run(on: bool) -> None:
    """While on, every event says it happened in a transaction that is rolled back."""
    global _dry_run
    _dry_run = on


def event(name: str, message: str, /, *, level: int = INFO, **fields: Any) -> None:
    """Log one event: ``message`` for people, ``fields`` for machines."""
    if _dry_run:
        message, fields = f"[dry run, rolled back] {message}", {**fields, "dry_run": True}
    _emit(level, message, name, fields)


def warning(name: str, message: str, /, **fields: Any) -> None:
    event(name, message, level=WARNING, **fields)


def error(name: str, message: str, /, **fields: Any) -> None:
    event(name, message, level=ERROR, **fields)


def _emit(level: int, message: str, name: str, fields: dict[str, Any]) -> None:
    """One line of ours: through logging, or, while nothing needs logging, as its handler would write it."""
    if _light and "logging" in sys.modules:
        use_logging()  # imported meanwhile: its records and ours go through one handler
    if not _light:
        import logging

        logger = logging.getLogger(LOGGER)
        if logger.disabled or logger.handlers != [_handler]:
            # A user's env.py called logging.config.fileConfig() (a stock one does), which disables
            # every logger it does not name: our lines, the summary included, would vanish (issue 24).
            reclaim()
        logger.log(level, message, extra={"event": name, "fields": fields})
        return
    # The handler's level decides (reclaim): our logger lets everything from INFO, or DEBUG, through.
    if level < _LEVELS.get(_level, INFO):
        return
    record = _Line(level, message, name, fields)
    _MaskSecrets().filter(record)
    try:
        text = (_json(record, str) if _format == "json" else _text(record, _plain_text)) + "\n"
    except Exception:  # a line that cannot be formatted is dropped, never raised
        return
    _put(text)


def at_target(summary: Summary, revisions: str, *, command: str = "run", after_lock: bool = False) -> None:
    """Mark ``summary`` as a run that found the database at its target."""
    summary.outcome = "at_target"
    if command == "wait":
        summary.message = f"Database reached its target {revisions}."
        return
    who = " (another migrator finished while this one waited for the lock)" if after_lock else ""
    summary.message = f"Database is at its target {revisions}; nothing to do{who}."


#: Summary's fields, in the order of its constructor, its repr and its report.
_SUMMARY_FIELDS = (
    "command",
    "outcome",
    "exit_code",
    "message",
    "database",
    "from_revisions",
    "to_revisions",
    "applied",
    "layers_tried",
    "fallback_used",
    "failed_revision",
    "backup",
    "seeded",
    "branches",
    "merge_command",
    "row_counts",
    "warnings",
    "durations",
    "started",
)


class Summary:
    """What one run did; logged as the last line and written to REPORT_FILE.

    A plain class, not a dataclass: ``dataclasses`` brings ``inspect``, ``ast``
    and ``dis``, about 5 ms of a run with nothing to do (issue 14).  It builds,
    compares, prints and turns into a dict as the dataclass did; a list or dict
    left out starts empty, ``started`` at ``time.monotonic()``.
    """

    def __init__(
        self,
        command: str = "run",
        outcome: str = "ok",
        exit_code: int = 0,
        message: str = "",
        database: str = "",
        from_revisions: list[str] | None = None,
        to_revisions: list[str] | None = None,
        applied: list[str] | None = None,
        layers_tried: list[str] | None = None,
        fallback_used: bool = False,
        failed_revision: str | None = None,
        backup: str | None = None,
        seeded: list[str] | None = None,
        branches: list[str] | None = None,
        merge_command: str | None = None,
        row_counts: dict[str, int] | None = None,
        warnings: list[str] | None = None,
        durations: dict[str, float] | None = None,
        started: float | None = None,
    ) -> None:
        self.command = command
        self.outcome = outcome
        self.exit_code = exit_code
        self.message = message
        self.database = database
        self.from_revisions: list[str] = [] if from_revisions is None else from_revisions
        self.to_revisions: list[str] | None = [] if to_revisions is None else to_revisions
        self.applied: list[str] = [] if applied is None else applied
        self.layers_tried: list[str] = [] if layers_tried is None else layers_tried
        self.fallback_used = fallback_used
        self.failed_revision = failed_revision
        self.backup = backup
        self.seeded: list[str] = [] if seeded is None else seeded
        self.branches: list[str] = [] if branches is None else branches
        self.merge_command = merge_command
        self.row_counts: dict[str, int] = {} if row_counts is None else row_counts
        self.warnings: list[str] = [] if warnings is None else warnings
        self.durations: dict[str, float] = {} if durations is None else durations
        self.started = time.monotonic() if started is None else started

    def timed(self, phase: str, since: float) -> None:
        self.durations[phase] = round(time.monotonic() - since, 4)

    def as_dict(self) -> dict[str, Any]:
        # Copies all the way down, as dataclasses.asdict: the report's durations["total"] is not the summary's.
        data = {name: _copied(getattr(self, name)) for name in _SUMMARY_FIELDS if name != "started"}
        data["durations"]["total"] = round(time.monotonic() - self.started, 4)
        return data

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _SUMMARY_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable, as the dataclass

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SUMMARY_FIELDS if name != "started")
        return f"{type(self).__qualname__}({shown})"


def _copied(value: Any) -> Any:
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copied(v) for v in value)
    if isinstance(value, dict):
        return {_copied(k): _copied(v) for k, v in value.items()}
    return value


def finish(summary: Summary, report_file: str | None) -> None:
    """Log the one-line summary and write the JSON report where asked."""
    data = summary.as_dict()
    level = INFO if summary.exit_code == 0 else ERROR
    word = "OK" if summary.exit_code == 0 else "FAILED"
    text = f"{word} (exit {summary.exit_code}): {summary.message}"
    if summary.backup:  # issue 5: the summary names the backup, which a failed run may need to restore
        text += f" Backup: {summary.backup}."
    _emit(level, text, "summary", data)
    path = _report_path(report_file)
    if path is None:
        return
    # The trailing newline counts too: the kubelet reads at most 4096 bytes.
    text = _fit(data, _TERMINATION_LOG_LIMIT - 1 if path == _TERMINATION_LOG else None)
    # Checked again here: what REPORT_FILE names may have changed since the configuration was read.
    refusal = overwrite_refusal(path) if report_file else None
    if refusal is not None:
        warning("report_unwritable", f"REPORT_FILE={path} was not written: it is {refusal}.")
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        if report_file:  # asked for explicitly: say why it could not be written
            warning("report_unwritable", f"REPORT_FILE={path} could not be written: {exc}.")


_TERMINATION_LOG = "/dev/termination-log"
# The kubelet cuts a termination message at 4096 bytes; cut JSON would not parse.
_TERMINATION_LOG_LIMIT = 4000
# Dropped first, one by one, when the summary is too long for the limit.
_EXPENDABLE = ("applied", "row_counts", "durations", "layers_tried", "seeded", "warnings")
# Then these, when even a shortened message does not fit beside them.
_SECONDARY = ("branches", "merge_command", "from_revisions", "to_revisions", "database", "failed_revision", "backup")
# The message keeps at least this many characters while secondary fields can still go.
_MESSAGE_FLOOR = 300
_ELLIPSIS = "…"


def _dumps(data: Any) -> str:
    """Compact-enough JSON, UTF-8 where it can be (more of the message fits in the limit)."""
    import json  # only for REPORT_FILE and the termination log (issue 14)

    text = json.dumps(data, default=str, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (an undecodable file name): escape everything
        text = json.dumps(data, default=str)
    return text


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _fit(data: dict[str, Any], limit: int | None) -> str:
    """The masked JSON summary; with a ``limit``, at most that many UTF-8 bytes, and still valid JSON.

    Masks first, then cuts, so a cut can never expose part of a secret.
    Drops the expendable fields first, then shortens the message (on a
    character boundary, ending in "…"), then drops the secondary fields;
    ``"truncated": true`` says that something is missing.
    """
    masked = _mask_value(data)
    if not isinstance(masked, dict):
        masked = {"message": _WITHHELD}
    text = _dumps(masked)
    if limit is None or _size(text) <= limit:
        return text
    cut: dict[str, Any] = {**masked, "truncated": True}
    for key in _EXPENDABLE:
        if cut.pop(key, None) is not None:
            text = _dumps(cut)
            if _size(text) <= limit:
                return text
    for secondary in (None, *_SECONDARY):
        if secondary is not None:
            cut.pop(secondary, None)
        shortened = _shorten(cut, limit, floor=_MESSAGE_FLOOR)
        if shortened is not None:
            return shortened
    core: dict[str, Any] = {k: cut[k] for k in ("command", "outcome", "exit_code", "message", "truncated") if k in cut}
    shortened = _shorten(core, limit, floor=0)
    if shortened is not None:
        return shortened
    core.pop("message", None)
    text = _dumps(core)
    return text if _size(text) <= limit else "{}"


def _shorten(data: dict[str, Any], limit: int, *, floor: int) -> str | None:
    """``data`` with its message cut to the longest prefix that fits ``limit``; None below ``floor`` characters."""
    message = str(data.get("message") or "")

    def render(keep: int) -> str:
        text = message if keep >= len(message) else message[:keep] + _ELLIPSIS
        return _dumps({**data, "message": text})

    if _size(render(len(message))) <= limit:
        return render(len(message))
    if not message:
        return None
    low, high = 0, len(message) - 1  # the answer is in [low, high], if low fits at all
    if _size(render(min(floor, high))) > limit:
        return None
    low = min(floor, high)
    while low < high:
        middle = (low + high + 1) // 2
        if _size(render(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return render(low)


#: How every report this module writes begins (``_SUMMARY_FIELDS`` starts with "command").
_REPORT_START = b'{"command": '
#: A report is a few kilobytes; a longer file is not one.
_REPORT_MAX = 1 << 20


def overwrite_refusal(path: str) -> str | None:
    """What the existing file at ``path`` is, when REPORT_FILE must not overwrite it; None when it may.

    May: no file yet, an empty file, a previous report, a character device or a
    pipe (/dev/stdout).  Anything else would be destroyed by the report: a
    user's env.py, a data file, a hard link of the database (issue 25, N12).
    """
    import stat

    try:
        info = os.stat(path)
    except OSError:  # nothing there (or nothing readable): writing it says why it cannot
        return None
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode) or stat.S_ISDIR(info.st_mode):
        return None  # nothing to destroy (a folder cannot be opened for writing: the warning says so)
    if not stat.S_ISREG(info.st_mode):
        return "an existing file that is not a regular file"
    if info.st_size == 0:
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(_REPORT_MAX + 1)
    except OSError:
        return None
    if _is_report(head):
        return None
    return "an existing file that is not a previous migrate-init report (delete it first if it may go)"


def _is_report(data: bytes) -> bool:
    """Whether ``data`` is a report this module wrote (even one cut short), or any summary with an exit code."""
    if len(data) > _REPORT_MAX:
        return False
    if data.startswith(_REPORT_START):
        return True
    import json

    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "exit_code" in parsed and "outcome" in parsed


def _report_path(report_file: str | None) -> str | None:
    if report_file:
        return None if report_file.lower() in ("-", "none", "off") else report_file
    # Kubernetes shows this file in `kubectl describe pod` when a container fails.
    if os.path.exists(_TERMINATION_LOG) and os.access(_TERMINATION_LOG, os.W_OK):
        return _TERMINATION_LOG
    return None


def first_line(exc: BaseException) -> str:
    """The most telling line of ``exc``, redacted, never empty.

    The driver's own error (``.orig``) rather than SQLAlchemy's wrapper with
    its SQL and its link to the FAQ; of libpq's lines, the one with
    ``FATAL:``; else the first non-blank line; else the type's name.
    """
    orig = getattr(exc, "orig", None)
    target = orig if isinstance(orig, BaseException) else exc
    try:
        text = str(target)
    except Exception:  # a broken __str__ must not hide the error it describes
        text = ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = next((line for line in lines if "FATAL:" in line), lines[0] if lines else "")
    return url.redact(line) or type(target).__name__
