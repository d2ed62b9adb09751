"""What env.py does on migrate-init's connection outside any migration is judged too (issue 25 N11).

The destructive guard judges each migration inside its transaction
(:class:`effects.EffectGuard`).  An ``env.py`` that takes
``config.attributes["connection"]`` can also run statements on it before
``run_migrations()`` or after it (``connection.execute(text("DROP TABLE
account"))``), and those were committed unjudged.  :class:`OutsideJudge`
stands on the connection while env.py runs and judges each such statement
the way the guard judges a migration:

- SQLite, PostgreSQL: a ``SAVEPOINT`` and a catalog snapshot before the
  statement, a snapshot after it.  Candidates are judged by the values before
  and after (rolled back to the savepoint to read "before"); a loss is refused
  (exit 8) and rolled back, and a statement that loses nothing is run again,
  for real.  A statement that cannot run inside a savepoint (the connection is
  in autocommit) cannot be judged, and is refused.
- MySQL/MariaDB: DDL commits at once, so each statement is judged before it
  runs, as the guard judges a migration's statements there.

Reads (``SELECT``, ``SHOW``, ``SET``, ``PRAGMA`` ...) and row writes
(``INSERT``, ``UPDATE``, ``DELETE``, which the guard does not judge in a
migration either) are not judged.  Statements sent around SQLAlchemy (the
driver's own cursor) are not seen; docs/how-it-works.md says so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from . import engines
from .catalog import Finding, engine_family, losses
from .effects import _allow_text, _exec, _wanted_after, _wanted_before, judge
from .errors import DestructiveOperation

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .catalog import Snapshot
    from .effects import EffectGuard

#: First words of statements that change no table or column (the guard judges schema changes, not rows).
_NOT_JUDGED = {
    "SELECT",
    "SHOW",
    "EXPLAIN",
    "SET",
    "RESET",
    "SAVEPOINT",
    "RELEASE",
    "ROLLBACK",
    "COMMIT",
    "BEGIN",
    "START",
    "END",
    "VALUES",
    "INSERT",
    "UPDATE",
    "DELETE",
    "WITH",
    "LOCK",
    "ANALYZE",
    "PRAGMA",
    "COPY",
}
_FIRST = re.compile(r"(?:\s|/\*.*?\*/|--[^\n]*(?:\n|$)|\()*([A-Za-z_]+)", re.S)
_SAVEPOINT = "migrate_init_env"


def judged(statement: str) -> bool:
    """Whether ``statement`` could change a table or a column (PRAGMA writable_schema can)."""
    match = _FIRST.match(statement)
    if match is None:
        return True
    word = match.group(1).upper()
    return word not in _NOT_JUDGED or (word == "PRAGMA" and "writable_schema" in statement.lower())


class OutsideJudge:
    """Judges env.py's statements on ``connection`` while no migration runs (``progress.running`` is None)."""

    def __init__(self, connection: Connection, progress: Any, guard: EffectGuard, env_py: str) -> None:
        self.connection = connection
        self.progress = progress
        self.guard = guard
        self.env_py = env_py
        self.family = engine_family(connection.dialect.name)
        self._busy = False
        self._before: Snapshot | None = None
        #: The revisions committed so far (a commit on the connection ends their transactions).
        self.committed: list[str] = []

    def install(self) -> None:
        event.listen(self.connection, "before_cursor_execute", self.before)
        event.listen(self.connection, "after_cursor_execute", self.after)
        event.listen(self.connection, "commit", self._commit)

    def remove(self) -> None:
        for name, listener in (
            ("before_cursor_execute", self.before),
            ("after_cursor_execute", self.after),
            ("commit", self._commit),
        ):
            if event.contains(self.connection, name, listener):
                event.remove(self.connection, name, listener)

    def _commit(self, _conn: Any) -> None:
        self.committed = list(self.progress.applied)

    def _skip(self, statement: str) -> bool:
        return self._busy or self.progress.running is not None or self.guard.allow or not judged(statement)

    def _raw(self) -> Any:
        return self.connection.connection.driver_connection

    def before(
        self, _conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _executemany: bool
    ) -> None:
        if self._skip(statement):
            return
        self._busy = True
        try:
            raw = self._raw()
            if not engines.of(self.family).transactional_ddl:  # judged before it runs
                self._before_mysql(raw, statement)
                return
            try:
                _exec(raw, f"SAVEPOINT {_SAVEPOINT}")
            except Exception as exc:
                self._refuse(
                    statement,
                    f"it could not be judged: a savepoint, which judging needs, failed "
                    f"({type(exc).__name__}: {str(exc).strip().splitlines()[0]})",
                )
            self._before = self.guard._snapshot(raw, self.family)
        finally:
            self._busy = False

    def after(self, _conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        before, self._before = self._before, None
        if before is None or self._busy:
            return
        self._busy = True
        try:
            raw = self._raw()
            after = self.guard._snapshot(raw, self.family)
            found = [f for f in losses(before, after) if f.kind != "set not null"]
            if not found:
                _exec(raw, f"RELEASE SAVEPOINT {_SAVEPOINT}")
                return
            from . import values

            post = values.read(raw, after, _wanted_after(found, before, after))
            _exec(raw, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            pre = values.read(raw, before, _wanted_before(found, before))
            lost, _ = judge(found, pre, post, self.family)
            if lost:
                self._lost(statement, lost)
            # Nothing would be lost (or, in a dry run, it is recorded): the statement again, for real.
            (cursor.executemany if executemany else cursor.execute)(statement, parameters)
            _exec(raw, f"RELEASE SAVEPOINT {_SAVEPOINT}")
        finally:
            self._busy = False

    def _before_mysql(self, raw: Any, statement: str) -> None:
        if self.guard._before is None:
            self.guard.begin(raw, self.family)
        # Recorded, not raised: the refusal below is env.py's, not a revision's.
        marks, record = len(self.guard.findings), self.guard.record
        self.guard.record = True
        try:
            self.guard.before_statement(raw, self.family, statement, "env.py", self.env_py)
        finally:
            self.guard.record = record
        found = [loss for finding in self.guard.findings[marks:] for loss in finding.losses]
        if found and not record:
            del self.guard.findings[marks:]
            self._refuse(statement, "; ".join(loss.describe() for loss in found), judged_loss=True)

    def _lost(self, statement: str, lost: list[Any]) -> None:
        if self.guard.record:
            self.guard.findings.append(Finding("env.py", self.env_py, tuple(lost)))
            return
        self._refuse(statement, "; ".join(loss.describe() for loss in lost), judged_loss=True)

    def _refuse(self, statement: str, what: str, *, judged_loss: bool = False) -> None:
        shown = " ".join(statement.split())
        shown = shown if len(shown) <= 160 else shown[:157] + "..."
        stayed = (
            f"The migrations committed before it stay applied ({', '.join(self.committed)}); anything of this "
            "run after them was rolled back with it"
            if self.committed and not self.progress.dry_run
            else "Nothing of this run was committed: it was all rolled back with it"
        )
        if not engines.of(self.family).transactional_ddl:
            stayed = (
                "It was not run (MySQL/MariaDB commit DDL at once, so it was judged before it ran); what ran "
                "before it stays"
            )
        reason = f"would lose data: {what}" if judged_loss else what
        raise DestructiveOperation(
            f"env.py ({self.env_py}) ran a statement on migrate-init's connection outside any migration, and it "
            f"{reason}. The statement: {shown}. {stayed}. Move that change into a migration, where the destructive "
            f"guard judges it and it can be allowed by name ({_allow_text('<revision>')}); or, after a backup, "
            "set ALLOW_DESTRUCTIVE=true."
        )
