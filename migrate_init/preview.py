"""The dry run of ``plan`` and ``lint`` cannot commit: it proves it, it does not hope (issue 25 N1, N23).

A dry run runs every pending migration inside ONE transaction and rolls it
back (:func:`alembic_glue.dry_run`).  A migration that ends that transaction
(``op.execute("COMMIT")``, the old recipe for ``ALTER TYPE ... ADD VALUE``;
``autocommit_block()``; ``connection.commit()``) would commit everything that
ran before it, and the "rollback" at the end would undo nothing.  So, while a
dry run runs, :class:`ReadOnlyGuard` stands on its connection:

- every statement sent through SQLAlchemy is read (every statement of a
  multi-statement string, comments and strings skipped) before it reaches the
  database, and one that would end, begin or reshape the transaction
  (``COMMIT``, ``END``, ``ABORT``, ``ROLLBACK`` other than to a savepoint,
  ``BEGIN``, ``START TRANSACTION``, ``SET TRANSACTION``, ``SET SESSION
  CHARACTERISTICS``, ``PREPARE TRANSACTION``, ``VACUUM``) is refused;
- ``commit()`` and ``rollback()`` on the connection are refused (SQLAlchemy's
  events come before the driver is called);
- ``autocommit_block()`` of the migration context is refused;
- on SQLite, an authorizer refuses every transaction statement the engine
  itself is asked to prepare, which covers what bypasses SQLAlchemy
  (``executescript``, the driver's ``commit()``);
- on PostgreSQL, a deferred constraint trigger armed in ``pg_temp`` makes
  the server itself fail any COMMIT of the dry run's transaction, which
  covers the bare driver's ``commit()`` (libpq sends it with no hook);
- before each statement, the guard checks that the transaction it began is
  still the one open (psycopg2's transaction status, sqlite3's
  ``in_transaction``), and says so when it is not.

A refusal is :class:`~migrate_init.errors.PreviewRefused`, naming the
revision (or env.py) and why; the dry run rolls everything back.
MySQL/MariaDB commit each DDL statement at once, so no dry run runs there at
all (``plan`` lists the pending revisions; ``lint`` runs on a SQLite file).
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from . import engines
from .errors import PreviewRefused

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: First words that end, begin or reshape the transaction, and what they do, in the words of a refusal.
_ENDING = {
    "COMMIT": "commits the transaction",
    "END": "commits the transaction",
    "ABORT": "rolls the transaction back",
    "ROLLBACK": "rolls the transaction back",
    "BEGIN": "begins a transaction of its own",
    "START": "begins a transaction of its own",
    "VACUUM": "cannot run inside a transaction",
}
_WORD = re.compile(r"[A-Za-z_]+")
#: The name of the PostgreSQL trigger (and its table and function, in pg_temp) that fails a dry run's COMMIT.
POISON = "migrate_init_no_commit"
_COMMENTS = re.compile(r"(/\*.*?\*/|--[^\n]*(\n|$)|\s)+", re.S)


def ending(statement: str, dialect: str) -> str | None:
    """What ``statement`` would do to the transaction it runs in, or None when it leaves it open."""
    for words in _heads(statement, dialect):
        if not words:
            continue
        first = words[0]
        if first == "ROLLBACK" and "TO" in words[1:4]:
            continue  # ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] x: the transaction stays
        if first in _ENDING:
            return f"{first}, which {_ENDING[first]}"
        if first == "PREPARE" and words[1:2] == ["TRANSACTION"]:
            return "PREPARE TRANSACTION, which ends the transaction (two-phase commit)"
        if first == "SET" and (
            words[1:2] == ["TRANSACTION"]
            or words[1:3] in (["SESSION", "CHARACTERISTICS"], ["SESSION", "TRANSACTION"])
            or words[1:2] == ["AUTOCOMMIT"]
        ):
            return f"{' '.join(words[:3])}, which changes how the transaction runs"
    return None


def _heads(statement: str, dialect: str) -> list[list[str]]:
    """The first few words of each statement in ``statement`` (upper case), strings and comments skipped.

    sqlite3 runs one statement per call, so only the first counts there (and a
    ``CREATE TRIGGER`` body, whose ``END`` follows a semicolon, is not cut).
    """
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import SqlglotError

    try:
        tokens = Dialect.get_or_raise(engines.of(dialect).sqlglot_dialect).tokenize(statement)
    except SqlglotError:
        # Not readable as SQL: its first words are still what the server reads first.
        return [[w.upper() for w in _WORD.findall(_COMMENTS.sub(" ", statement))[:4]]]
    heads: list[list[str]] = [[]]
    depth = 0
    atomic = 0  # inside a PostgreSQL 14+ function body, BEGIN ATOMIC ... END, whose statements end in ';'
    previous = ""
    for token in tokens:
        kind, word = token.token_type.name, token.text.upper()
        if kind == "SEMICOLON" and depth == 0 and atomic == 0:
            if engines.of(dialect).one_statement_per_call:
                break
            heads.append([])
            previous = ""
            continue
        depth += {"L_PAREN": 1, "R_PAREN": -1}.get(kind, 0)
        if (word == "ATOMIC" and previous == "BEGIN" and len(heads[-1]) > 1) or (atomic and word == "CASE"):
            atomic += 1
        elif atomic and word == "END":
            atomic -= 1
        if previous == "PREPARE" and heads[-1] == ["PREPARE"]:
            # sqlglot keeps the rest of a command it does not parse as one string: PREPARE TRANSACTION 'x'.
            heads[-1].extend(w.upper() for w in _WORD.findall(token.text)[:1])
        elif len(heads[-1]) < 4:
            heads[-1].append("" if kind in ("STRING", "NATIONAL_STRING", "HEREDOC_STRING") else word)
        previous = word
    return heads


class ReadOnlyGuard:
    """Stands on a dry run's connection while it runs; see the module docstring.

    ``running`` tells which revision is under way (None: env.py, outside any
    migration).  :meth:`finish` lets the dry run's own rollback through.
    """

    def __init__(self, connection: Connection, running: Any) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.running = running
        self._raw: Any = connection.connection.driver_connection
        self._xid: object = None
        self._finishing = False
        #: What the SQLite authorizer refused, for the error a driver raises without saying why.
        self.denied: str | None = None
        #: PostgreSQL: the server itself fails any COMMIT of this transaction (:meth:`_arm`).
        self.armed = False

    def install(self) -> None:
        engine = engines.of(self.dialect)
        if not engine.transactional_ddl:
            raise PreviewRefused(
                "A dry run cannot run on MySQL/MariaDB: each DDL statement commits at once there, so nothing "
                "could be rolled back. `plan` lists the pending revisions instead, and `lint` runs the chain on "
                "a throw-away SQLite file."
            )
        self._xid = engine.transaction_id(self.connection)
        self.armed = engine.forbid_commit(self.connection, POISON)
        event.listen(self.connection, "before_cursor_execute", self.before_statement)
        event.listen(self.connection, "commit", self._commit)
        event.listen(self.connection, "rollback", self._rollback)
        if isinstance(self._raw, sqlite3.Connection):
            self._raw.set_authorizer(self._authorize)

    def finish(self) -> None:
        """The dry run's own rollback comes next: let it through, and stand down."""

        self._finishing = True
        if isinstance(self._raw, sqlite3.Connection):
            self._raw.set_authorizer(None)
        for name, listener in (
            ("before_cursor_execute", self.before_statement),
            ("commit", self._commit),
            ("rollback", self._rollback),
        ):
            if event.contains(self.connection, name, listener):
                event.remove(self.connection, name, listener)

    def ended(self) -> bool:
        """Whether the transaction the dry run began is no longer the one open."""
        if isinstance(self._raw, sqlite3.Connection):
            return not self._raw.in_transaction
        status = getattr(getattr(self._raw, "info", None), "transaction_status", None)
        return status == 0  # libpq's PQTRANS_IDLE: no transaction at all

    def check_open(self) -> None:
        """Raise when something ended the dry run's transaction behind SQLAlchemy's back."""
        if not self.ended():
            return
        why = (
            "ended the dry run's transaction through the database driver itself (its commit() or rollback(), "
            "or a statement sent around SQLAlchemy)"
        )
        if self.armed:  # the server failed any commit of it: it was rolled back
            self.refuse(
                why + "; the server refused to commit it (a dry run arms a trigger that fails any "
                "commit), so it was rolled back",
                by_server=True,
            )
        self.refuse(why, ended=True)

    def before_statement(
        self, _conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _executemany: bool
    ) -> None:
        self.check_open()
        why = ending(statement, self.dialect)
        if why is not None:
            self.refuse(f"sends {why}")

    def _commit(self, _conn: Any) -> None:
        if not self._finishing:
            self.refuse("commits the transaction (connection.commit())")

    def _rollback(self, _conn: Any) -> None:
        if not self._finishing:
            self.refuse("rolls the transaction back (connection.rollback())")

    def _authorize(self, action: int, arg1: str | None, *_args: Any) -> int:
        if action == sqlite3.SQLITE_TRANSACTION and not self._finishing:
            self.denied = f"sends {arg1} to SQLite around SQLAlchemy (executescript, or the driver's own commit())"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def refuse(self, why: str, *, ended: bool = False, by_server: bool = False) -> None:
        raise refusal(self.running(), why, ended=ended, by_server=by_server)


def poisoned(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the server refusing a commit of a dry run (:meth:`ReadOnlyGuard._arm`)."""
    seen: BaseException | None = exc
    while seen is not None:
        if POISON in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def refusal(running: Any, why: str, *, ended: bool = False, by_server: bool = False) -> PreviewRefused:
    """The error that stops a dry run at ``running`` (a Script, or None for env.py), saying why."""
    if running is not None:
        who, name = f"revision {running.revision} ({running.path})", running.revision
    else:
        who, name = "env.py, outside any migration,", "env.py"
    revision = running.revision if running is not None else None
    if ended:
        return PreviewRefused(
            f"The dry run could not preview {name}: {who} {why}. What ran before it in this dry run may have been "
            "committed: check where the database stands with `migrate.py status` and `migrate.py check` before "
            "anything else. A dry run needs every statement to go through the connection migrate-init hands "
            "env.py; `run` applies such a revision in a transaction of its own.",
            revision,
            why,
        )
    stopped = "the server refused that commit" if by_server else "it was refused before it reached the database"
    return PreviewRefused(
        f"The dry run could not preview {name}: {who} {why}. A dry run runs every pending migration in one "
        "transaction and rolls it back; this would have ended that transaction and committed what ran before it, "
        f"so {stopped}, and everything was rolled back: the database is as it "
        f"was. `run` applies {name} in a transaction of its own, without a preview: read it before you run it.",
        revision,
        why,
    )


def refuse_autocommit_block(context: Any, running: Any) -> None:
    """Make ``context.autocommit_block()`` a refusal: it would commit the dry run's transaction (issue 25 N23)."""

    def autocommit_block() -> Any:
        raise refusal(
            running(),
            "runs statements in op.get_context().autocommit_block(), which commits the transaction before them",
        )

    context.autocommit_block = autocommit_block
