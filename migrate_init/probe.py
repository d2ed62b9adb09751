"""The one reader: version rows, live columns and row counts, through the bare driver.

Every path that asks "where does the database stand?" reads through this
module: the no-op fast path, the full path's first check and its check once
the lock is held, the verification after an upgrade, ``wait``, ``status``,
``current`` and ``verify``.  So they cannot give different answers (issue
10).  It imports no SQLAlchemy: stdlib ``sqlite3``, ``psycopg2`` or ``pymysql``.
This module holds the protocol (:class:`Reader`, :class:`Snapshot`) and what
the engines' readers share; each engine's reader lives in its module
(:mod:`migrate_init.engines`).

Read-only means opened read-only: SQLite through ``mode=ro`` (nothing is
created, and it works on a read-only mount), PostgreSQL and MySQL in ``READ ONLY``
transactions.  Every read is bounded: PostgreSQL reads run under
``statement_timeout`` and ``lock_timeout``; SQLite's busy wait is short and
retried here, with the caller's checkpoint between tries.  Row counts are
information, not a reason to wait: a count that cannot be had in time is
reported as unknown.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any


#: migrate-init's own bookkeeping of seeds (:mod:`seed`).
SEED_TABLE = "migrate_init_seed"
#: Revisions started and not yet finished, on engines whose DDL is not transactional (:mod:`progress`).
PROGRESS_TABLE = "migrate_init_progress"
#: A run with nothing to do counts a table's rows only below this estimate; above, it reports the
#: engine's estimate ("about 1.0M"): a COUNT(*) grows with the table (issue 27).
ESTIMATE_ABOVE = 10_000
#: One row per revision applied, stamped, refused... with its checksum (:mod:`history`).
HISTORY_TABLE = "migrate_init_history"
#: The checksum ``accept`` records for a revision whose script is gone: none can match it, and none is owed.
REMOVED_CHECKSUM = "removed"
#: The checksum each revision was last recorded with: folded into the version rows' query, so the
#: fast path learns of an edited revision without a query of its own (issue 26).
RECORDED_CHECKSUMS = (
    f"SELECT 'h', revision, checksum FROM {HISTORY_TABLE} WHERE id IN (SELECT MAX(id) FROM {HISTORY_TABLE} "
    "WHERE checksum IS NOT NULL AND kind IN ('applied', 'stamped', 'baseline', 'accepted') GROUP BY revision)"
)
#: How long one row count may wait for a table lock before it is reported unknown.
COUNT_LOCK_WAIT = 1.0


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def version_source(
    version_table: str, live: Mapping[str, object], quote: Callable[[str], str], exists: Callable[[str, str], bool]
) -> str | None:
    """The quoted version table to read, or None when the database has none.

    ``version_table`` is ``schema.table`` when env.py passes version_table_schema
    (issue 25 N15): that table is not among the default schema's ``live`` ones,
    so ``exists(schema, table)`` asks the engine.
    """
    schema, dot, table = version_table.partition(".")
    if not dot:
        return quote(version_table) if version_table in live else None
    return qualified(version_table, quote) if exists(schema, table) else None


def qualified(version_table: str, quote: Callable[[str], str]) -> str:
    """``version_table`` quoted, with its schema when it has one (``schema.table``)."""
    return ".".join(quote(part) for part in version_table.split(".", 1))


class Snapshot:
    """What one read transaction saw."""

    __slots__ = ("checksums", "columns", "in_progress", "seeded", "versions")

    def __init__(
        self,
        versions: tuple[str, ...] | None,
        columns: dict[str, set[str]],
        seeded: frozenset[str] | None = None,
        in_progress: tuple[str, ...] | None = None,
        checksums: dict[str, str] | None = None,
    ) -> None:
        #: The version table's rows, sorted; None when there is no version table.
        self.versions = versions
        #: ``{table: {column, ...}}`` of every table in the default schema.
        self.columns = columns
        #: Seed files recorded as done (:mod:`seed`); None when the database is owed no seeds.
        self.seeded = seeded
        #: Revisions recorded as started and never finished (MySQL, :mod:`progress`); None without the table.
        self.in_progress = in_progress
        #: ``{revision: checksum}`` as the history recorded them (:mod:`history`); None without the table.
        self.checksums = checksums

    @property
    def empty(self) -> bool:
        return not self.columns

    def missing(self, expected: Mapping[str, Iterable[str]]) -> tuple[list[str], dict[str, list[str]]]:
        """Tables, and columns of existing tables, that ``expected`` has and the database lacks."""
        tables = sorted(t for t in expected if t not in self.columns)
        columns = {
            t: sorted(set(c) - self.columns[t])
            for t, c in sorted(expected.items())
            if t in self.columns and set(c) - self.columns[t]
        }
        return tables, columns


class Reader:
    """A bare-driver connection that reads.  Opened by the engine's :meth:`~migrate_init.engines.Engine.reader`."""

    backend = ""
    safe_url = ""
    #: The driver's connection (sqlite3, psycopg2, PyMySQL); the migration lock may share it.
    connection: Any = None

    def snapshot(self, version_table: str) -> Snapshot:
        raise NotImplementedError

    def counts(self, tables: Iterable[str]) -> dict[str, int | None]:
        raise NotImplementedError

    def estimates(self, tables: Iterable[str]) -> dict[str, int]:
        """The tables among ``tables`` the engine's own figures put at ESTIMATE_ABOVE rows or more, with
        those figures: what a run with nothing to do reports instead of counting them (issue 27).

        A table left out (small, unknown, not a plain table) is counted exactly by the caller.
        """
        return {}

    #: How long one read waits for another process's write lock before it gives up (seconds; SQLite's
    #: readers wait for a writer, a server's reads are bounded by their statement timeout instead).
    busy_timeout = 30.0

    def quick_check(self) -> str | None:
        """A quick look at the file's integrity: None when sound, else the first complaint (SQLite only)."""
        return None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one SELECT of migrate-init's own tables, in a read-only transaction (:mod:`history`)."""
        raise NotImplementedError

    def versions(self, version_table: str) -> tuple[str, ...] | None:
        """The version table's rows alone, sorted (None without the table): a cheap "anything new?"."""
        return self.snapshot(version_table).versions

    #: The snapshot the database answered the wait with (:func:`wait.connect`), until it is used.
    _answered: tuple[str, Snapshot] | None = None

    def answered(self, version_table: str, snapshot: Snapshot) -> None:
        """Keep the wait's snapshot for the check that follows it at once (:meth:`first_snapshot`)."""
        self._answered = (version_table, snapshot)

    def first_snapshot(self, version_table: str) -> Snapshot:
        """The wait's snapshot, once, when it read this version table; otherwise a new one.

        The run's first check follows the wait directly: the same read twice
        would only cost a transaction (issue 14).  Every later check reads anew.
        """
        answered, self._answered = self._answered, None
        if answered is not None and answered[0] == version_table:
            return answered[1]
        return self.snapshot(version_table)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def versions_and_checksums(
    fetch: Callable[[str], Any], live: Mapping[str, object], version_table: str | None
) -> tuple[tuple[str, ...] | None, dict[str, str] | None]:
    """The version rows and the recorded checksums, in one statement: one round trip, as before (issue 26).

    ``version_table`` is quoted, or None when the database has none.
    """
    parts = [f"SELECT 'v', version_num, NULL FROM {version_table}"] if version_table is not None else []
    if HISTORY_TABLE in live:
        parts.append(RECORDED_CHECKSUMS)
    if not parts:
        return None, None
    rows = fetch(" UNION ALL ".join(parts))
    if not all(type(value) is str for row in rows for value in row if value is not None):
        rows = [tuple(None if value is None else text_of(value) for value in row) for row in rows]
    # Every value is text now (SQLite and psycopg2 give text already): one pass over 1,000 rows, not 4,000 calls.
    versions = tuple(sorted(r[1] for r in rows if r[0] == "v")) if version_table is not None else None
    checksums = {r[1]: r[2] for r in rows if r[0] == "h"} if HISTORY_TABLE in live else None
    return versions, checksums


def text_of(value: Any) -> str:
    """information_schema values come as bytes from some servers and drivers."""
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def in_thread(connect_now: Callable[[], Any], checkpoint: Callable[[], None] | None) -> Any:
    """``connect_now()`` in a helper thread, waited for in short slices with ``checkpoint`` between them.

    The drivers wait in poll() and retry it when a signal arrives, so a server
    that accepts and never answers would hold SIGTERM until the connect
    timeout.  A stop leaves the attempt behind (the process is about to exit).
    """
    import _thread  # threading's C half: no threading module on the way to a run with nothing to do

    outcome: list[Any] = []
    running = _thread.allocate_lock()
    running.acquire()

    def attempt() -> None:
        from .watchdog import block_stop_signals

        try:
            block_stop_signals()
            outcome.append(connect_now())
        except BaseException as exc:  # handed to the waiting thread
            outcome.append(exc)
        finally:
            running.release()

    _thread.start_new_thread(attempt, ())
    while not running.acquire(timeout=0.1):
        if checkpoint is not None:
            checkpoint()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def describe_missing(tables: list[str], columns: dict[str, list[str]]) -> str:
    parts = []
    if tables:
        parts.append("missing tables: " + ", ".join(tables))
    for table, names in columns.items():
        parts.append(f"table '{table}' lacks columns: " + ", ".join(names))
    return "; ".join(parts)


def format_counts(counts: dict[str, int | None], estimated: Iterable[str] = ()) -> str:
    about = set(estimated)
    return ", ".join(f"{t}={'unknown' if n is None else _about(n) if t in about else n}" for t, n in counts.items())


def _about(rows: int) -> str:
    if rows >= 1_000_000:
        return f"about {rows / 1_000_000:.1f}M"
    return f"about {rows / 1_000:.0f}K"
