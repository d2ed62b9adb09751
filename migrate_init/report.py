"""Log lines and the final summary.

One line per event.  Text by default, ``LOG_FORMAT=json`` gives one JSON
object per line with the same fields.  Alembic's own records (``Running
upgrade <from> -> <to>, <name>``) go through the same handler, so operators
see the lines they know.  A filter masks every configured secret, wherever it
appears, as a last line of defence behind :func:`migrate_init.db.redact`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import quote, quote_plus

LOGGER = "migrate_init"
_log = logging.getLogger(LOGGER)
_mask: "_MaskSecrets | None" = None


class _MaskSecrets(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        masks: set[str] = set()
        for secret in secrets:
            masks.update(_secret_forms(secret))
        # Longest first so a password inside a URL is masked with the URL.
        self._masks = sorted((m for m in masks if len(m) >= 3), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._masks:
            return True
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = json.loads(self.mask(json.dumps(fields)))
        return True

    def mask(self, text: str) -> str:
        for secret in self._masks:
            text = text.replace(secret, "***")
        return text


def _secret_forms(secret: str) -> set[str]:
    """The secret itself and, for a URL, its password in the forms it may be printed."""
    # SQLAlchemy's URL grammar without importing SQLAlchemy: the fast path
    # (issue 7) sets up logging too, and must stay light.
    from .db import split_url

    forms = {secret}
    parts = split_url(secret)  # None when not a URL: mask the raw value only
    if parts is not None and parts.password:
        password = parts.password
        forms.update({password, parts.raw_password, quote(password, safe=""), quote_plus(password)})
    return forms


class _QuietAlembic(logging.Filter):
    """Drop Alembic's set-up chatter; keep its "Running upgrade" lines."""

    _NOISE = ("Context impl", "Will assume", "setup plugin", "setting up")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("alembic") and isinstance(record.msg, str)
                    and record.msg.startswith(self._NOISE))


class _TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(levelname)-5.5s [%(name)s] %(message)s")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", "alembic" if record.name.startswith("alembic") else "log"),
            "message": record.getMessage(),
        }
        # A field never replaces the line's own keys: the summary's "message"
        # would otherwise hide the "FAILED (exit N): ..." that the text line shows.
        fields = getattr(record, "fields", None) or {}
        payload.update({k: v for k, v in fields.items() if k not in payload})
        return json.dumps(payload, default=str)


def setup(*, log_format: str = "text", level: str = "INFO", secrets=()) -> None:
    """Send our records and Alembic's to stderr in the chosen format."""
    global _mask, _handler
    _mask = _MaskSecrets(list(secrets))
    handler = _handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    handler.addFilter(_mask)
    if level != "DEBUG":
        handler.addFilter(_QuietAlembic())
    handler.setLevel(level)
    for name in (LOGGER, "alembic"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        # Loggers stay at INFO even when LOG_LEVEL is higher: the runner
        # follows Alembic's "Running upgrade" records to know which
        # revision is in progress; the handler does the filtering.
        logger.setLevel(min(logging.getLevelName(level), logging.INFO))
        logger.propagate = False


_dry_run = False
_handler: logging.Handler | None = None


@contextlib.contextmanager
def quiet():
    """Show only warnings and errors for the body of the ``with`` block."""
    previous = _handler.level if _handler is not None else None
    if _handler is not None:
        _handler.setLevel(max(previous, logging.WARNING))
    try:
        yield
    finally:
        if _handler is not None:
            _handler.setLevel(previous)


def set_dry_run(on: bool) -> None:
    """While on, every event says it happened in a transaction that is rolled back."""
    global _dry_run
    _dry_run = on


def event(name: str, message: str, /, *, level: int = logging.INFO, **fields) -> None:
    """Log one event: ``message`` for people, ``fields`` for machines."""
    if _dry_run:
        message, fields = f"[dry run, rolled back] {message}", {**fields, "dry_run": True}
    _log.log(level, message, extra={"event": name, "fields": fields})


def warning(name: str, message: str, /, **fields) -> None:
    event(name, message, level=logging.WARNING, **fields)


def error(name: str, message: str, /, **fields) -> None:
    event(name, message, level=logging.ERROR, **fields)


def verified(tables: int, row_counts: dict[str, int]) -> None:
    """The integrity check's lines, the same from the full path and the fast path."""
    event("verified", f"Verified {tables} tables and their columns against MODELS.", tables=tables)
    if row_counts:
        event("row_counts", "Existing rows: " + ", ".join(f"{t}={n}" for t, n in row_counts.items()),
              rows=row_counts)


def at_target(summary: "Summary", revisions: str, *, command: str = "run", after_lock: bool = False) -> None:
    """Mark ``summary`` as a run that found the database at its target."""
    summary.outcome = "at_target"
    if command == "wait":
        summary.message = f"Database reached its target {revisions}."
        return
    who = " (another migrator finished while this one waited for the lock)" if after_lock else ""
    summary.message = f"Database is at its target {revisions}; nothing to do{who}."


@dataclass
class Summary:
    """What one run did; logged as the last line and written to REPORT_FILE."""

    command: str = "run"
    outcome: str = "ok"
    exit_code: int = 0
    message: str = ""
    database: str = ""
    from_revisions: list[str] = field(default_factory=list)
    to_revisions: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    layers_tried: list[str] = field(default_factory=list)
    fallback_used: bool = False
    failed_revision: str | None = None
    backup: str | None = None
    seeded: list[str] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)
    merge_command: str | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic, repr=False)

    def timed(self, phase: str, since: float) -> None:
        self.durations[phase] = round(time.monotonic() - since, 4)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("started")
        data["durations"]["total"] = round(time.monotonic() - self.started, 4)
        return data


def finish(summary: Summary, report_file: str | None) -> None:
    """Log the one-line summary and write the JSON report where asked."""
    data = summary.as_dict()
    level = logging.INFO if summary.exit_code == 0 else logging.ERROR
    word = "OK" if summary.exit_code == 0 else "FAILED"
    text = f"{word} (exit {summary.exit_code}): {summary.message}"
    if summary.backup:  # issue 5: the summary names the backup, which a failed run may need to restore
        text += f" Backup: {summary.backup}."
    _log.log(level, text, extra={"event": "summary", "fields": data})
    path = _report_path(report_file)
    if path is None:
        return
    text = _fit(data, _TERMINATION_LOG_LIMIT if path == _TERMINATION_LOG else None)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        if report_file:  # asked for explicitly: say why it could not be written
            warning("report_unwritable", f"REPORT_FILE={path} could not be written: {exc}.")


_TERMINATION_LOG = "/dev/termination-log"
# The kubelet cuts a termination message at 4096 bytes; cut JSON would not parse.
_TERMINATION_LOG_LIMIT = 4000
# Dropped first, then shortened, when the summary is too long for the limit.
_EXPENDABLE = ("applied", "row_counts", "durations", "layers_tried", "seeded", "warnings")


def _fit(data: dict, limit: int | None) -> str:
    """The masked JSON summary, shrunk to ``limit`` bytes when one is given."""
    def render(d: dict) -> str:
        text = json.dumps(d, default=str)
        return _mask.mask(text) if _mask is not None else text

    text = render(data)
    if limit is None or len(text.encode()) <= limit:
        return text
    data = dict(data)
    for key in _EXPENDABLE:
        data.pop(key, None)
        data["truncated"] = True
        text = render(data)
        if len(text.encode()) <= limit:
            return text
    data["message"] = data.get("message", "")[:1000]
    return render(data)[:limit] if len(render(data).encode()) > limit else render(data)


def _report_path(report_file: str | None) -> str | None:
    if report_file:
        return None if report_file.lower() in ("-", "none", "off") else report_file
    # Kubernetes shows this file in `kubectl describe pod` when a container fails.
    if os.path.exists(_TERMINATION_LOG) and os.access(_TERMINATION_LOG, os.W_OK):
        return _TERMINATION_LOG
    return None
