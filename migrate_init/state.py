"""The data of a run: what the scripts and MODELS expect, where the database stands, what was verified.

:class:`Expected` comes from the manifest when it is fresh (no SQLAlchemy,
no Alembic), else from :class:`Loaded` scripts and models; :class:`Standing`
is one reading of the database (:func:`standing_of`, through the one reader
of :mod:`probe`) against it.  Every path that asks where the database stands
(the no-op check, the check under the lock, verification, ``wait``,
``status``) asks here (issue 10: one reader), and :mod:`run`,
:mod:`upgrade`, :mod:`empty` and :mod:`commands` share these without
importing each other (issue 21).  Imported on the fast path: stdlib only at
the top.
"""

from __future__ import annotations

import os
import sys

from . import manifest, report
from .errors import ConfigError, UnknownRevision, VerificationFailed
from .probe import REMOVED_CHECKSUM, Reader, Snapshot, describe_missing, format_counts

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .config import Config
    from .watchdog import Watchdog


VERSION_TABLE = "alembic_version"


class Expected:
    """What the scripts and MODELS expect: from a fresh manifest, or from loading them."""

    __slots__ = ("checksums", "counted", "heads", "loaded", "revisions", "schema", "seeds", "version_table")

    def __init__(
        self,
        heads: list[str],
        revisions: set[str],
        schema: dict[str, list[str]],
        counted: list[str],
        version_table: str,
        loaded: Loaded | None = None,
    ) -> None:
        self.heads = tuple(sorted(heads))
        self.revisions = revisions
        self.schema = schema
        self.counted = counted
        self.version_table = version_table
        #: The scripts and models themselves, when they were imported.
        self.loaded = loaded
        #: The files in SEED_DIR, by name.
        self.seeds: tuple[str, ...] = ()
        #: ``{revision: checksum}`` of the scripts as they are now (:mod:`checksum`).
        self.checksums: dict[str, str] = {}

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Expected:
        expected = cls(
            data["heads"],
            set(data["revisions"]),
            data["schema"],
            data["counted_tables"],
            data.get("version_table") or VERSION_TABLE,
        )
        expected.checksums = data["checksums"]
        return expected


class Loaded:
    """The heavy half: Alembic's config and graph, and the models' MetaData."""

    def __init__(self, cfg: Config) -> None:
        # The heavy-import boundary: SQLAlchemy and Alembic load here, and only here.  They,
        # env.py and the models may log through logging: from here on, so do our lines.
        report.use_logging()
        from pathlib import Path

        from . import libraries

        # Before either is imported: a derived image's own pins outside the range migrate-init runs
        # on are exit 2 naming both versions, not an odd failure halfway through a chain.
        libraries.check()
        from . import alembic_glue as glue
        from . import schema

        before = set(sys.modules)
        self.glue = glue
        self.schema = schema
        self.config = glue.alembic_config(Path(cfg.migrations_dir), cfg.database, models=cfg.models)
        self.script = glue.load_script(self.config)
        self.metadata = schema.load(cfg.models, [Path(cfg.migrations_dir)]) if cfg.models else None
        self.files = manifest.local_files(
            cfg.migrations_dir, before, manifest.version_dirs(self.script), self.config.config_file_name, cfg.models
        )
        self.version_table = glue.asked_version_table(self.config, self.script) or VERSION_TABLE
        self.seeds = _seed_names(cfg)
        self._checksums: dict[str, str] | None = None
        #: A fresh manifest's checksums of these very files (see :func:`load`).
        self.known_checksums: dict[str, str] | None = None
        # What the imports made (modules, classes, the models: about half a million objects)
        # lives until the process ends.  The collector need not walk it again in every full
        # collection of the run, nor in the three of the interpreter's teardown: 0.1 s of a
        # fresh chain (issue 14).  Garbage the run itself makes is collected as before.
        import gc

        gc.freeze()

    def expected(self) -> Expected:
        from . import schema

        metadata = self.metadata
        expected = Expected(
            list(self.script.get_heads()),
            {rev.revision for rev in self.script.walk_revisions()},
            {t: sorted(c) for t, c in schema.expected_schema(metadata).items()} if metadata is not None else {},
            schema.counted_tables(metadata) if metadata is not None else [],
            self.version_table,
            loaded=self,
        )
        expected.seeds = self.seeds
        if self._checksums is None and self.known_checksums and set(self.known_checksums) == expected.revisions:
            self._checksums = dict(self.known_checksums)
        expected.checksums = self.checksums
        return expected

    @property
    def checksums(self) -> dict[str, str]:
        if self._checksums is None:
            from . import checksum

            self._checksums = checksum.of_script(self.script)
        return self._checksums


class Standing:
    """Where the database stands: the answer every path gives from the same reads."""

    __slots__ = (
        "at_heads",
        "current",
        "edited",
        "interrupted",
        "missing_columns",
        "missing_tables",
        "owed",
        "snapshot",
        "unknown",
        "unrecorded",
        "vanished",
    )

    def __init__(self, snapshot: Snapshot, expected: Expected) -> None:
        self.snapshot = snapshot
        self.current = snapshot.versions or ()
        self.unknown = tuple(r for r in self.current if r not in expected.revisions)
        self.at_heads = not self.unknown and self.current == expected.heads
        self.missing_tables, self.missing_columns = snapshot.missing(expected.schema)
        #: Seed files a database migrate-init created has not had yet (an interrupted run's).
        seeded = snapshot.seeded
        self.owed = [n for n in expected.seeds if n not in seeded] if seeded is not None else []
        #: Revisions of these scripts an earlier run began and never finished (MySQL/MariaDB).  One
        #: these scripts do not know belongs to a newer image: like "schema ahead of code", it is
        #: left to that image, and does not keep this one from answering.
        self.interrupted = tuple(r for r in snapshot.in_progress or () if r in expected.revisions)
        #: Applied revisions whose script changed since (:mod:`history`), and ones whose script is gone
        #: (a run lets the latter pass while the database is ahead of these scripts: a newer image's).
        recorded = snapshot.checksums or {}
        self.edited = tuple(
            sorted(r for r, c in recorded.items() if r in expected.checksums and expected.checksums[r] != c)
        )
        self.vanished = tuple(
            sorted(r for r, c in recorded.items() if r not in expected.revisions and c != REMOVED_CHECKSUM)
        )
        #: A migrated database without the history table: the first run records what it has (a baseline).
        self.unrecorded = snapshot.versions is not None and snapshot.checksums is None

    @property
    def complete(self) -> bool:
        return not self.missing_tables and not self.missing_columns

    @property
    def reached(self) -> bool:
        """At the target: what ``wait`` waits for."""
        # A revision recorded as interrupted (MySQL) is never "nothing to do": the full path decides.
        return self.at_heads and self.complete and not self.owed and not self.interrupted

    @property
    def done(self) -> bool:
        """Nothing left for a run: at the target, and the history kept (a first run records its baseline)."""
        return self.reached and not self.unrecorded


def standing_of(reader: Reader, expected: Expected) -> Standing:
    return Standing(reader.snapshot(expected.version_table), expected)


def revs(revisions: Any) -> str:
    revisions = list(revisions)
    return ", ".join(revisions) if revisions else "base (empty)"


def expected_for(cfg: Config, *, why_not: str = "") -> Expected:
    """From a fresh manifest (no SQLAlchemy, no Alembic) when nothing says otherwise; else load them.

    ``why_not``: the caller's reason to load them anyway (``upgrade REV``, dependencies to install).
    """
    if not why_not and not cfg.fast_path:
        why_not = "FAST_PATH=false"
    if not why_not:
        data, why_not = manifest.load_fresh(_manifest_places(cfg), cfg.migrations_dir, cfg.models)
        if data is not None:
            expected = Expected.from_manifest(data)
            expected.seeds = _seed_names(cfg)
            return expected
    return load(cfg, why_not)


def load(cfg: Config, why: str, manifested: Expected | None = None) -> Expected:
    """The heavy half, saying why the fast path could not answer.

    ``manifested``: what a fresh manifest said, this run (its files unchanged since): its
    checksums are the scripts' own, so they are not parsed again (issue 27: ``ast`` on every
    revision of a fresh chain, about 1 ms each).
    """
    report.event(
        "fast_path_declined", f"Fast path not taken: {why}; loading the scripts and models.", level=10, reason=why
    )
    loaded = Loaded(cfg)
    if manifested is not None and manifested.loaded is None:
        loaded.known_checksums = manifested.checksums
    return loaded.expected()


def fast_path_taken(expected: Expected, standing: Standing) -> None:
    if expected.loaded is None:
        where = (
            "revisions the manifest does not know (schema ahead of code)"
            if standing.unknown
            else "the heads of the manifest"
        )
        report.event(
            "fast_path",
            f"Fast path: the database is at {revs(standing.current)}, {where}; SQLAlchemy and Alembic were not loaded.",
            level=10,
            revisions=list(standing.current),
        )


def why_loaded(standing: Standing, expected: Expected) -> str:
    if not standing.at_heads:
        return f"the database is at {revs(standing.current)}, not the heads of the manifest ({revs(expected.heads)})"
    if standing.owed:
        return f"the database owes the seed file(s) {', '.join(standing.owed)}"
    if standing.unrecorded:
        return "the database has no migrate_init_history yet (this run records what it has)"
    return (
        "the database lacks tables or columns of MODELS, and REPAIR_MISSING_COLUMNS or EMPTY_DATABASE=models adds them"
    )


def _seed_names(cfg: Config) -> tuple[str, ...]:
    if not os.path.isdir(cfg.seed_dir):
        return ()  # what seed.files() answers, without importing seed (runpy, typing) on every run (issue 14)
    from pathlib import Path

    from . import seed

    return tuple(p.name for p in seed.files(Path(cfg.seed_dir)))


def _manifest_places(cfg: Config) -> list[str]:
    """The baked manifest, then the caches: beside a SQLite database (the shared volume), DATA_DIR, the folder."""
    folders = [os.path.dirname(cfg.database.sqlite_path)] if cfg.database.sqlite_path else []
    folders += [cfg.data_dir, cfg.migrations_dir]
    places = [manifest.baked_path(cfg.migrations_dir)]
    for folder in folders:
        path = manifest.cache_path(folder, cfg.migrations_dir, cfg.models)
        if path not in places:
            places.append(path)
    return places


def manifest_of(cfg: Config, loaded: Loaded) -> dict[str, Any]:
    """What the loaded scripts and models expect, as the manifest records it (:func:`manifest.build`)."""
    data: dict[str, Any] = manifest.build(
        loaded.script,
        loaded.metadata,
        models=cfg.models,
        version_table=loaded.version_table,
        migrations_dir=cfg.migrations_dir,
        files=loaded.files,
        checksums=loaded.checksums,
    )
    return data


def cache_manifest(cfg: Config, loaded: Loaded) -> None:
    """The first full run leaves the manifest behind, so the next run with nothing to do needs no imports."""
    if not cfg.fast_path:
        return
    data = manifest_of(cfg, loaded)
    for path in _manifest_places(cfg)[1:]:
        if manifest.write(path, data, required=False):
            report.event(
                "manifest_cached", f"Cached the manifest in {path} for the fast path.", level=10, path=str(path)
            )
            return


def verified(
    summary: report.Summary,
    reader: Reader,
    expected: Expected,
    standing: Standing,
    *,
    after: str,
    estimate: bool = False,
) -> None:
    """The integrity check's verdict and lines, the same on every path.

    ``estimate``: a run with nothing to do takes the engine's estimate for a large table instead of
    counting it, so that its cost does not grow with the data (issue 27); the line says "about".
    """
    if not standing.complete:
        raise VerificationFailed(
            f"Verification failed after {after}: "
            f"{describe_missing(standing.missing_tables, standing.missing_columns)}. Fix the migration "
            "that should create them, or set REPAIR_MISSING_COLUMNS=true to add missing columns as nullable."
        )
    if not expected.schema:
        return
    report.event(
        "verified",
        f"Verified {len(expected.schema)} tables and their columns against MODELS.",
        tables=len(expected.schema),
    )
    large = reader.estimates(expected.counted) if estimate else {}
    exact = reader.counts([t for t in expected.counted if t not in large])
    counts = {t: large[t] if t in large else exact[t] for t in expected.counted if t in large or t in exact}
    summary.row_counts = {t: n for t, n in counts.items() if n is not None}
    if counts:
        report.event(
            "row_counts", "Existing rows: " + format_counts(counts, large), rows=counts, estimated=sorted(large)
        )


def at_target(
    summary: report.Summary,
    reader: Reader,
    expected: Expected,
    standing: Standing,
    *,
    after: str,
    after_lock: bool = False,
    command: str = "run",
) -> report.Summary:
    summary.to_revisions = list(standing.current)
    verified(summary, reader, expected, standing, after=after, estimate=True)
    report.at_target(summary, revs(standing.current), command=command, after_lock=after_lock)
    return summary


def schema_ahead(
    cfg: Config, summary: report.Summary, reader: Reader, expected: Expected, standing: Standing
) -> report.Summary:
    """A revision these scripts do not know: exit 0 when the models' schema is all there, else 6."""
    unknown = revs(standing.unknown)
    summary.to_revisions = list(standing.current)
    if cfg.models is None:
        raise UnknownRevision(
            f"The database is at revision {unknown}, which these migration scripts do not know, and "
            "MODELS is not set, so the schema cannot be checked. Deploy the image that has that "
            "revision, or set MODELS."
        )
    if not standing.complete:
        raise UnknownRevision(
            f"The database is at revision {unknown}, which these migration scripts do not know, and the "
            f"models' schema is not all there ({describe_missing(standing.missing_tables, standing.missing_columns)}). "
            "Deploy the image that has that revision; nothing was changed."
        )
    verified(summary, reader, expected, standing, after="the check")
    fast_path_taken(expected, standing)
    warning = (
        f"Schema ahead of code: the database is at revision {unknown}, unknown to these scripts, "
        "and every table and column the models define exists. Nothing was changed; no fallback, "
        "no downgrade."
    )
    summary.warnings.append(warning)
    report.warning("schema_ahead", warning, revisions=list(standing.unknown))
    summary.outcome = "schema_ahead"
    summary.message = warning
    return summary


def refuse_odd_revision(revision: str) -> None:
    """``upgrade REV``: relative forms and ranges are refused (exit 2), not guessed at."""
    if (
        ":" in revision
        or revision.startswith(("+", "-"))
        or "@+" in revision
        or "@-" in revision
        or any(c.isspace() for c in revision)
        or not revision
    ):
        raise ConfigError(
            f"upgrade {revision}: relative revisions and ranges are not accepted; name a revision id, "
            "'heads', or a branch head such as 'mybranch@head'. Run `migrate.py history --graph`."
        )


class Run:
    """One run of the init sequence (or ``upgrade REV``) once the database answered: what its steps share.

    Passed to the steps under the lock (:mod:`upgrade`, :mod:`empty`) instead
    of their seven arguments each (issue 21).  ``expected`` is replaced when
    the heavy half loads: the manifest's answer becomes the scripts' own.
    """

    __slots__ = ("cfg", "expected", "lock_check", "reader", "revision", "summary", "watchdog")

    def __init__(
        self,
        cfg: Config,
        watchdog: Watchdog,
        summary: report.Summary,
        reader: Reader,
        expected: Expected,
        revision: str | None,
        lock_check: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.watchdog = watchdog
        #: What the run did so far: the CLI's, reported whatever happens next.
        self.summary = summary
        #: The one reader (:mod:`probe`), in the session that holds the lock on a server.
        self.reader = reader
        self.expected = expected
        #: ``upgrade REV``'s target; None for the init sequence (every head).
        self.revision = revision
        #: Raises LockLost once the migration lock this run holds is gone (asked before each migration
        #: commits: :meth:`lock.MigrationLock.verify`); None outside the lock.
        self.lock_check = lock_check
