"""The guard that runs each migration and judges it by its effects: what it did to the catalog, and
whether the values of what it took away are gone (issue 13).

:mod:`catalog` reads and compares the schema; this module runs a migration
under a savepoint, reads the catalog again (incrementally), asks
:mod:`values` what a candidate loss held before and after, and refuses the
migration (rolled back) when values would be lost.  Where DDL is not
transactional (MySQL/MariaDB), each statement is judged before it runs
(:mod:`statements`).  ``plan``, ``lint`` and ``run`` all act on this one
judgement (issue 21).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import statements, values
from .catalog import (
    VERSION_TABLE,
    Finding,
    Loss,
    Snapshot,
    _engine,
    _same_or_widened,
    _text,
    engine_family,
    losses,
    open_transaction,
    query_rows,
    snapshot,
)
from .errors import ConfigError, DestructiveOperation
from .values import qualified

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Config


class EffectGuard:
    """Refuse a migration that loses values: judged by its effect on the catalog, then by the data.

    Call :meth:`begin` once the migration context is configured and before the
    first migration runs.  On SQLite and PostgreSQL, run each migration's
    function through :meth:`step` (inside the migration's transaction): it
    sets a savepoint, runs the function, compares the catalog with the one
    before, and when that finds candidate losses it rolls back to the
    savepoint, reads what exactly those tables and columns held, and runs the
    function a second time if nothing would be lost (:mod:`values`).  Then
    call :meth:`check` from an ``on_version_apply`` callback (also inside the
    transaction): it takes the judged state as the start of the next
    migration, or, for a migration not run through :meth:`step`, judges the
    catalog alone.  On MySQL/MariaDB, :meth:`before_statement` judges each
    statement before it runs.

    A revision is allowed when ``allow`` (ALLOW_DESTRUCTIVE=true), when it is
    in ``allow_revisions`` (ALLOW_DESTRUCTIVE=rev1,rev2) or when its module
    declares ``allow_destructive = True`` (``reviewed``).  Its losses, and
    with ``record`` (a dry run such as ``plan``) every loss, are appended to
    :attr:`findings` instead of raised.  A column made NOT NULL loses no value
    (SQLite and PostgreSQL refuse it while the column holds NULLs): it is
    appended to :attr:`hints`, never refused, except on MySQL/MariaDB, where a
    non-strict sql_mode turns those NULLs into zeros and empty strings.
    """

    def __init__(
        self,
        allow: bool,
        *,
        record: bool = False,
        version_table: str = VERSION_TABLE,
        schema: str | None = None,
        allow_revisions: tuple[str, ...] = (),
        judge_values: bool = True,
    ) -> None:
        self.allow = allow
        #: False (lint): every catalog candidate is recorded, without reading any values.
        self.judge_values = judge_values
        self.allow_revisions = allow_revisions
        self.record = record
        self.version_table = version_table
        self.schema = schema
        self.findings: list[Finding] = []
        self.hints: list[Finding] = []
        self._before: Snapshot | None = None
        #: The last snapshot read, the cache of the next (:func:`snapshot`'s ``previous``).
        self._latest: Snapshot | None = None
        self._judged: tuple[str, Snapshot] | None = None
        #: MySQL/MariaDB: candidates :meth:`before_statement` found lossless, for :meth:`check`.
        self._accepted: set[tuple[str, str, str | None]] = set()
        self._off = False

    def allowed(self, revision: str, reviewed: bool = False) -> bool:
        """Whether ``revision``'s losses are let through (ALLOW_DESTRUCTIVE or its module)."""
        return self.allow or reviewed or revision in self.allow_revisions

    def begin(self, connection: Any, dialect: str) -> None:
        """Take the snapshot the first migration is judged against."""
        try:
            engine_family(dialect)
        except ConfigError:
            if self.allow:  # nothing to protect: run blind, as asked
                self._off = True
                return
            raise
        self._off = False
        self._latest = None
        self._before = self._snapshot(connection, dialect)

    def step(
        self,
        connection: Any,
        dialect: str,
        revision: str,
        path: str,
        run: Callable[[], None],
        *,
        reviewed: bool = False,
        rerun: Callable[[], None] | None = None,
        commit_follows: bool = False,
    ) -> None:
        """Run one migration's function under the guard (SQLite, PostgreSQL); see the class.

        ``rerun`` is called before the function runs a second time (a dry run
        stops capturing its SQL).  ``commit_follows``: the migration's own
        transaction ends right after its bookkeeping (Alembic's
        transaction_per_migration), and that COMMIT or ROLLBACK ends the guard's
        savepoint too, so it is not released here: one round trip less per
        migration (issue 27).  Raises DestructiveOperation when values would
        be lost; the caller's transaction then rolls the migration back.
        """
        before = self._before
        family = None if self._off or before is None else engine_family(dialect)
        if (
            before is None
            or family is None
            or not _engine(family).transactional_ddl  # judged before each statement (before_statement)
            or self.allowed(revision, reviewed)
            or not self.judge_values
        ):
            run()
            return
        watch = _CommitWatch(connection, family, _SAVEPOINT)
        try:
            run()
        finally:
            watch.stop()
        after = self._snapshot(connection, dialect)
        found = losses(before, after)
        # SQLite and PostgreSQL refuse NOT NULL while NULLs are there: never a loss of values.
        hints = [f for f in found if f.kind == "set not null"]
        found = [f for f in found if f.kind != "set not null"]
        self._judged = (revision, after)
        if watch.committed(after):
            # The savepoint went with the commit: there is nothing to go back to and read.
            self._refuse(revision, path, found, committed=True)
            self._hint(revision, path, hints)
            return
        if not found:
            if not commit_follows:
                _exec(connection, f"RELEASE SAVEPOINT {_SAVEPOINT}")
            self._hint(revision, path, hints)
            return

        post = values.read(connection, after, _wanted_after(found, before, after))
        _exec(connection, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        self._latest = before  # the catalog is back to what it read: the next read starts from there
        pre = values.read(connection, before, _wanted_before(found, before))
        lost, _ = judge(found, pre, post, family)
        self._refuse(revision, path, lost)
        # Nothing would be lost (or, in a dry run, it is recorded): the same function again, for real.
        if rerun is not None:
            rerun()
        run()
        again = self._snapshot(connection, dialect)
        found_again = [f for f in losses(before, again) if f.kind != "set not null"]
        if {f.key for f in found_again} != {f.key for f in found} or values.read(
            connection, again, _wanted_after(found_again, before, again)
        ) != post:
            raise DestructiveOperation(
                f"Migration {revision} ({path}) changed the schema differently when the destructive guard ran "
                "it a second time (the guard reads what the tables held before a change it cannot judge from "
                "the catalog alone, and then runs the migration again). It was rolled back and the database "
                f"stays at the revision before it. Make it deterministic, or {_allow_text(revision)}."
            )
        if not commit_follows:
            _exec(connection, f"RELEASE SAVEPOINT {_SAVEPOINT}")
        self._hint(revision, path, hints)
        self._judged = (revision, again)

    def check(self, connection: Any, dialect: str, revision: str, path: str, *, reviewed: bool = False) -> None:
        """Inside the migration's transaction, before it commits: the state the next migration starts from.

        A migration that ran through :meth:`step` was judged there.  Any
        other is judged by the catalog alone (every candidate counts, since
        the values before it are gone), and an allowed one is recorded.
        """
        if self._off:
            return
        if self._before is None:
            raise RuntimeError("EffectGuard.check() was called before begin()")
        judged = self._judged[1] if self._judged is not None and self._judged[0] == revision else None
        # The snapshot step() judged carries them when its read did (no statement of ours ran since).
        deferred = judged.deferred if judged is not None else None
        if deferred is None:
            deferred = _engine(engine_family(dialect)).deferred_constraints(connection)
        if deferred:
            # A deferred trigger (on the version table, say) would change the schema at COMMIT, after
            # this look (issue 25 N5): run the deferred ones now, inside the transaction, and judge that.
            if judged is not None:
                judged = self._fire_deferred(connection, dialect, revision, path, reviewed, judged, deferred)
            else:
                _exec(connection, f"SET CONSTRAINTS {deferred} IMMEDIATE")
        if judged is not None:
            self._before, self._judged = judged, None
            return
        after = self._snapshot(connection, dialect)
        # A column copied through a table rebuild is judged by its values, which only step() reads.
        found = [f for f in losses(self._before, after) if not (f.kind == "replace column" and f.recreated)]
        family = engine_family(dialect)
        # Where DDL is not transactional, each statement was judged before it ran, by the values it touched.
        per_statement = not _engine(family).transactional_ddl
        hints = [f for f in found if f.kind == "set not null" and not per_statement]
        found = [f for f in found if f not in hints]
        if per_statement:
            found = [f for f in found if f.key not in self._accepted]
        self._accepted = set()
        if not found:
            pass
        elif self.allowed(revision, reviewed):
            if not per_statement:  # there, before_statement recorded them as they ran
                self.findings.append(Finding(revision, path, tuple(found)))
        elif per_statement or open_transaction(connection) is False:
            self._before = after  # nothing left to roll back: the change is in the database
            self._refuse(revision, path, found, committed=True)
        else:
            self._refuse(revision, path, found)
        self._hint(revision, path, hints)
        self._before = after

    def _fire_deferred(
        self, connection: Any, dialect: str, revision: str, path: str, reviewed: bool, base: Snapshot, deferred: str
    ) -> Snapshot:
        """PostgreSQL: run the ``deferred`` triggers now and judge what they did against ``base``; the state after."""

        _exec(connection, f"SAVEPOINT {_DEFERRED}")
        _exec(connection, f"SET CONSTRAINTS {deferred} IMMEDIATE")
        fired = self._snapshot(connection, dialect)
        found = [f for f in losses(base, fired) if f.kind != "set not null"]
        if found and self.allowed(revision, reviewed):
            self.findings.append(Finding(revision, path, tuple(found)))
        elif found:
            post = values.read(connection, fired, _wanted_after(found, base, fired))
            # Rolled back to the savepoint, the triggers are pending again and the values are as they were.
            _exec(connection, f"ROLLBACK TO SAVEPOINT {_DEFERRED}")
            self._latest = base  # as in step(): a read taken before a rollback is no previous of the next
            pre = values.read(connection, base, _wanted_before(found, base))
            lost, _ = judge(found, pre, post, engine_family(dialect))
            self._refuse(revision, path, lost, late=True)
            _exec(connection, f"SET CONSTRAINTS {deferred} IMMEDIATE")
            fired = self._snapshot(connection, dialect)
        _exec(connection, f"RELEASE SAVEPOINT {_DEFERRED}")
        return fired

    def _refuse(
        self, revision: str, path: str, found: list[Loss], *, committed: bool = False, late: bool = False
    ) -> None:
        """Raise DestructiveOperation for ``found`` (or record it, in a dry run)."""
        if not found:
            return
        if self.record:
            self.findings.append(Finding(revision, path, tuple(found)))
            return
        advice = (
            f"Make the change additive (add a new column or table and copy the data over), or, "
            f"after a backup, {_allow_text(revision)}."
        )
        if committed:
            what = "; ".join(loss.describe(done=True) for loss in found)
            raise DestructiveOperation(
                f"Migration {revision} ({path}) may have lost data: {what}. It committed by itself (an "
                "autocommit_block, a COMMIT in its SQL, or an engine that commits DDL at once), so the "
                "change stayed in the database and could not be rolled back; the guard could not read what "
                "those tables held before it. Restore the backup taken before this run if that data "
                f"mattered. {advice}"
            )
        what = "; ".join(loss.describe() for loss in found)
        if late:
            what += (
                " (by a deferred trigger that runs at COMMIT, after the migration: the guard ran the deferred "
                "triggers first, with SET CONSTRAINTS ... IMMEDIATE, to see what they do)"
            )
        moved = any("filled" in loss.held for loss in found)
        raise DestructiveOperation(
            f"Migration {revision} ({path}) would lose data: {what}."
            + (
                " It copies values and then drops their source: if that copy is complete, the values "
                "live on and the revision can be allowed."
                if moved
                else ""
            )
            + f" It was rolled back and the database stays at the revision before it. {advice}"
        )

    def _hint(self, revision: str, path: str, found: list[Loss]) -> None:
        if found:
            self.hints.append(Finding(revision, path, tuple(found)))

    def before_statement(
        self, connection: Any, dialect: str, statement: str, revision: str, path: str, *, reviewed: bool = False
    ) -> None:
        """MySQL/MariaDB: refuse a statement that would lose data, before it runs.

        Those engines commit DDL at once, so :meth:`check` comes too late to
        roll anything back.  ``connection`` is the DBAPI connection (the
        catalog is read on a cursor of its own, outside SQLAlchemy's
        statement in progress).  A candidate is judged by what the live
        tables hold: a table without rows or a column holding only NULLs
        loses nothing.  See :mod:`migrate_init.statements`.
        """

        if self._off or self._before is None or _engine(engine_family(dialect)).transactional_ddl:
            return  # a transaction's statements are judged together, after the migration (check)
        if not statements.worth_judging(statement):
            return
        # Read as the server will read it: quoting depends on the session's sql_mode (N8).
        sql_mode = _text(query_rows(connection, "SELECT @@SESSION.sql_mode")[0][0])
        if statements.only_adds(statement, sql_mode):
            return
        allowed = self.allowed(revision, reviewed)
        shown = " ".join(statement.split())
        shown = shown if len(shown) <= 160 else shown[:157] + "..."
        live = self._snapshot(connection, dialect)
        try:
            predicted, extra = statements.predict(live, statement, sql_mode)
        except statements.Unjudged as exc:
            if allowed or self.record:
                return
            raise DestructiveOperation(
                f"Migration {revision} ({path}) runs a statement the destructive guard cannot judge: "
                f"{exc}. MySQL/MariaDB commit DDL at once, so the guard decides before a statement "
                f"runs, and it does not guess. The statement: {shown}. It was not run; statements "
                "before it in this migration are applied. Rewrite it in a form the guard reads "
                f"(one ALTER TABLE per change), or, once you have checked it, {_allow_text(revision)}."
            ) from None
        # Judged against the migration's start; what an earlier statement was let through for stays so.
        found = [f for f in extra + losses(self._before, predicted) if f.key not in self._accepted]
        if not found:
            return
        if allowed:
            self.findings.append(Finding(revision, path, tuple(found)))
            return
        # Judged on the live tables: the values are there until the statement runs.
        pre = values.read(connection, live, _wanted_before(found, live))
        lost, _ = judge(found, pre, _replacements(connection, live, found), engine_family(dialect))
        lost = [loss for loss in lost if not _charset_fits(connection, live, predicted, loss)]
        self._accepted.update(f.key for f in found if f.key not in {g.key for g in lost})
        found = lost
        if not found:
            return
        if self.record:
            self.findings.append(Finding(revision, path, tuple(found)))
            return
        what = "; ".join(loss.describe() for loss in found)
        raise DestructiveOperation(
            f"Migration {revision} ({path}) would lose data: {what}. The statement was refused "
            f"before it ran ({shown}); MySQL/MariaDB commit DDL at once, so statements before it "
            "in this migration are applied. Make the change additive (add a new column or table "
            f"and copy the data over), or, after a backup, {_allow_text(revision)}."
        )

    def _snapshot(self, connection: Any, dialect: str) -> Snapshot:
        # Each read starts from the last one: only the tables whose mark changed are read again.
        self._latest = snapshot(
            connection, dialect, self.schema, version_table=self.version_table, previous=self._latest
        )
        return self._latest


def _allow_text(revision: str) -> str:
    """The exact setting that lets ``revision`` through, and nothing more."""
    return (
        f"allow this revision alone: set ALLOW_DESTRUCTIVE={revision} (add it to the list if you "
        "have one), or declare allow_destructive = True in its module once reviewed"
    )


_SAVEPOINT = "migrate_init_guard"
_DEFERRED = "migrate_init_deferred"


def _exec(connection: Any, sql: str) -> None:
    exec_driver_sql = getattr(connection, "exec_driver_sql", None)
    if exec_driver_sql is not None:
        exec_driver_sql(sql)
        return
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


class _CommitWatch:
    """Whether a migration committed by itself: through SQLAlchemy (autocommit_block) or in its SQL."""

    def __init__(self, connection: Any, family: str, savepoint: str) -> None:
        """Sets ``savepoint`` and reads the transaction's id: in one round trip where the driver takes both."""
        self.connection = connection
        self.family = family
        self.seen = False
        self._listening = False
        engine = _engine(family)
        if engine.transaction_id_sql and not engine.one_statement_per_call:
            self._xid = query_rows(connection, f"SAVEPOINT {savepoint}; {engine.transaction_id_sql}")[0][0]
        else:
            self._xid = self._transaction_id()
            _exec(connection, f"SAVEPOINT {savepoint}")
        if hasattr(connection, "exec_driver_sql"):
            from sqlalchemy import event

            event.listen(connection, "commit", self._commit)
            self._listening = True

    def _commit(self, _connection: Any) -> None:
        self.seen = True

    def _transaction_id(self) -> object:
        return _engine(self.family).transaction_id(self.connection)

    def stop(self) -> None:
        if self._listening:
            from sqlalchemy import event

            event.remove(self.connection, "commit", self._commit)
            self._listening = False

    def committed(self, after: Snapshot | None = None) -> bool:
        """``after``: a snapshot read since the migration ran, whose read may carry the transaction's id."""
        if self.seen or open_transaction(self.connection) is False:
            return True
        if self._xid is None:
            return False
        # The id this transaction was given at the start: another one (or none) means a new transaction.
        now = after.transaction[0] if after is not None and after.transaction is not None else self._transaction_id()
        return bool(now != self._xid)


def _replacements(connection: Any, live: Snapshot, found: list[Loss]) -> dict[str, Any]:
    """MySQL: what a table renamed onto another's name holds, under the name it takes (N9).

    ``RENAME TABLE account TO account_old, account_new TO account`` keeps
    ``account``'s values only if ``account_new`` already holds them (the
    online schema change idiom: copy, then swap); both are read before the
    statement runs.
    """

    post: dict[str, Any] = {}
    for loss in found:
        if loss.replaced_by is not None:
            columns = {name: True for name in live.tables.get(loss.table, {})}
            held = values.read(connection, live, {loss.replaced_by: columns})
            if loss.replaced_by in held:
                post[loss.table] = held[loss.replaced_by]
    return post


def _charset_fits(connection: Any, live: Snapshot, predicted: Snapshot, loss: Loss) -> bool:
    """MySQL: whether a change of character set alone keeps every value the column holds (N10).

    Each value is converted to the new character set and back, before the
    statement runs; a character the new set lacks comes back as ``?``.  Only
    a change of the character set is proven so: any other change of the
    type stays judged as one.
    """

    if loss.kind != "change type" or loss.column is None:
        return False
    old = live.tables.get(loss.table, {}).get(loss.column)
    new = predicted.tables.get(loss.table, {}).get(loss.column)
    if old is None or new is None or old.charset is None or new.charset is None:
        return False
    if not _same_or_widened(live.dialect, old.type, new.type) or not re.fullmatch(r"\w+", old.charset + new.charset):
        return False
    column = "`" + loss.column.replace("`", "``") + "`"
    changed = query_rows(
        connection,
        f"SELECT COUNT(*) FROM {qualified(live, loss.table)} WHERE {column} IS NOT NULL AND "
        f"BINARY CONVERT(CONVERT({column} USING {new.charset}) USING {old.charset}) "
        f"<> BINARY {column}",
    )[0][0]
    return int(changed) == 0


def _wanted_before(found: list[Loss], before: Snapshot) -> dict[str, dict[str, bool]]:
    """What to read of the state before the migration: ``table -> column -> digest?``."""
    wanted: dict[str, dict[str, bool]] = {}
    for loss in found:
        columns = wanted.setdefault(loss.table, {})
        if loss.kind == "drop table" and loss.recreated:
            columns.update({name: True for name in before.tables.get(loss.table, {})})
        elif loss.kind == "drop column" or (loss.kind == "set not null" and not loss.added):
            columns.setdefault(loss.column or "", False)
        elif loss.kind in ("replace column", "change type"):
            columns[loss.column or ""] = True
    return wanted


def _wanted_after(found: list[Loss], before: Snapshot, after: Snapshot) -> dict[str, dict[str, bool]]:
    """What to read of the state the migration left: the new values, and where dropped ones may have gone."""
    wanted: dict[str, dict[str, bool]] = {}
    for loss in found:
        if loss.kind == "drop table" and loss.recreated:
            wanted.setdefault(loss.table, {}).update({name: True for name in before.tables.get(loss.table, {})})
        elif loss.kind in ("replace column", "change type"):
            wanted.setdefault(loss.table, {})[loss.column or ""] = True
        elif loss.kind == "drop column" and loss.table in after.tables:
            old = before.tables.get(loss.table, {})
            columns = wanted.setdefault(loss.table, {})
            columns.update({name: False for name in after.tables[loss.table] if name not in old})
    return wanted


def judge(found: list[Loss], pre: dict[str, Any], post: dict[str, Any], family: str) -> tuple[list[Loss], list[Loss]]:
    """``(losses, hints)``: the candidates of ``found`` that lose values, and the NOT NULL ones to mention.

    ``pre`` and ``post`` are :func:`values.read` answers for the states
    before and after.  A candidate loses nothing when what it held is empty
    (no rows, only NULLs) or reads the same afterwards.
    """

    lost: list[Loss] = []
    hints: list[Loss] = []
    for loss in found:
        held = pre.get(loss.table)
        if loss.kind == "set not null":
            nulls = held.rows - held.count(loss.column or "") if held is not None and not loss.added else 0
            if _engine(family).coerces_nulls and nulls:
                lost.append(replace(loss, held=f"{nulls} NULL value(s) a non-strict sql_mode would overwrite"))
            else:
                hints.append(loss)
            continue
        if held is None:  # nothing was read: judged by the catalog alone
            lost.append(loss)
            continue
        if loss.kind == "change engine" or (loss.kind == "drop table" and not loss.recreated):
            if held.rows:
                lost.append(replace(loss, held=f"{held.rows} row(s)"))
            continue
        if loss.kind == "drop table":
            now = post.get(loss.table)
            gone = [c for c, v in held.columns.items() if v[0] and (now is None or now.columns.get(c) != v)]
            fewer = held.rows - (now.rows if now is not None else 0)
            if gone or fewer > 0:
                parts = [f"{held.rows} row(s)"] + ([f"{fewer} of them not in the new table"] if fewer > 0 else [])
                parts += [f"the values of {', '.join(gone)} not kept"] if gone else []
                lost.append(replace(loss, held="; ".join(parts)))
            continue
        count = held.count(loss.column or "")
        if not count:
            continue
        if loss.kind == "drop column":
            now_table = post.get(loss.table)
            filled = (
                [
                    f"{loss.table}.{c} with {v[0]}"
                    for c, v in now_table.columns.items()
                    if v[0] >= count and c not in held.columns
                ]
                if now_table is not None
                else []
            )
            text = f"{count} non-NULL value(s)"
            if filled:
                text += f" (this revision filled {', '.join(filled)} before dropping it)"
            lost.append(replace(loss, held=text))
            continue
        now_held = post.get(loss.table)
        after = now_held.columns.get(loss.column or "") if now_held is not None else None
        if after != held.columns.get(loss.column or ""):
            left = after[0] if after is not None else 0
            how = "a different set of values" if left == count else f"{left} after"
            lost.append(replace(loss, held=f"{count} non-NULL value(s) before, {how}"))
    return lost, hints


def allowed_revisions_known(cfg: Config, script: Any) -> None:
    """Exit 2 when ALLOW_DESTRUCTIVE names a revision these scripts do not have (a typo allows nothing)."""
    if not cfg.allow_destructive_revisions:
        return
    known = {found.revision for found in script.walk_revisions()}
    for name in cfg.allow_destructive_revisions:
        if name not in known:
            raise ConfigError(
                f"ALLOW_DESTRUCTIVE names {name}, which is not a revision of the scripts in "
                f"{cfg.migrations_dir}. Use the exact revision ids `migrate.py history` lists "
                "(comma-separated), true, or false."
            )


def effect_guard(cfg: Config, version_table: str, script: Any, *, record: bool = False) -> Any:
    """The destructive guard, with the revisions ALLOW_DESTRUCTIVE names checked against ``script``."""

    allowed_revisions_known(cfg, script)
    return EffectGuard(
        cfg.allow_destructive,
        record=record,
        version_table=version_table,
        allow_revisions=cfg.allow_destructive_revisions,
    )
