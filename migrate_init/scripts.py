"""The Alembic migrations folder: its config, its scripts and its revision graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .db import Target
from .errors import ConfigError, InconsistentVersionTable, MigrationFailed


def alembic_config(migrations_dir: Path, target: Target, *, models: str | None, connection=None):
    """An Alembic Config for ``migrations_dir``.

    The open connection goes through ``config.attributes`` (Alembic's
    "sharing a connection" recipe), never the URL through ini interpolation,
    where a '%' in a password breaks the run and prints the URL.  A user's
    own env.py that builds its engine from ``sqlalchemy.url`` still finds it,
    escaped for the ini parser.
    """
    from alembic.config import Config

    _check_folder(migrations_dir)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("prepend_sys_path", str(migrations_dir))
    url = target.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["models"] = models
    return config


def _check_folder(migrations_dir: Path) -> None:
    if not migrations_dir.is_dir():
        raise ConfigError(
            f"MIGRATIONS_DIR={migrations_dir} does not exist or is not a folder. "
            "Mount your Alembic migrations folder there, or unset MIGRATIONS_DIR "
            "to use the shipped one."
        )
    if not (migrations_dir / "env.py").is_file():
        raise ConfigError(
            f"MIGRATIONS_DIR={migrations_dir} has no env.py, so it is not an Alembic "
            "migrations folder. Point MIGRATIONS_DIR at the folder that holds env.py "
            "and versions/."
        )


def load(config):
    """The ScriptDirectory, with its revision graph loaded.

    An empty folder is a ConfigError: Alembic alone would exit 0 and do
    nothing.  A script that cannot be loaded (a syntax error, a broken
    import, a cycle) is a MigrationFailed, which the fallback may rescue.
    """
    from alembic.script import ScriptDirectory

    folder = config.get_main_option("script_location")
    try:
        script = ScriptDirectory.from_config(config)
        heads = script.get_heads()
    except ConfigError:
        raise
    except Exception as exc:
        raise MigrationFailed(
            f"Alembic could not load the migration scripts in {folder}: "
            f"{type(exc).__name__}: {exc}. Fix the script it names."
        ) from exc
    if not heads:
        raise ConfigError(
            f"MIGRATIONS_DIR={folder} holds no migration scripts (versions/ is empty "
            "or missing). Alembic alone would do nothing and succeed; add your "
            "revisions, or point MIGRATIONS_DIR at the right folder."
        )
    return script


@dataclass(frozen=True)
class State:
    """Where the database stands against the scripts."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    unknown: tuple[str, ...]
    pending: tuple[str, ...]  # oldest first
    target_exists: bool

    @property
    def at_target(self) -> bool:
        return not self.unknown and set(self.current) == set(self.heads)


def current_revisions(connection) -> tuple[str, ...]:
    """The revisions in the version table.  Read-only: never creates the table."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection)
    return tuple(sorted(context.get_current_heads()))


def state(script, connection, target_name: str) -> State:
    """Compare the database with the scripts.  Read-only."""
    current = current_revisions(connection)
    heads = tuple(sorted(script.get_heads()))
    known = script.revision_map
    unknown = tuple(rev for rev in current if _lookup(known, rev) is None)
    pending: tuple[str, ...] = ()
    if not unknown:
        try:
            pending = pending_revisions(script, current, heads)
        except Exception as exc:  # alembic.script.revision.RevisionError and kin
            raise InconsistentVersionTable(
                f"The version table alembic_version holds {', '.join(current)}, which these "
                f"scripts cannot place ({exc}); one is probably an ancestor of another. Nothing "
                "was changed. Fix it with `alembic stamp --purge <revision>` after checking "
                "which revision the schema is really at (`migrate.py check`)."
            ) from None
    return State(
        current=current,
        heads=heads,
        unknown=unknown,
        pending=pending,
        target_exists=_lookup(known, target_name) is not None,
    )


def pending_revisions(script, current, destination) -> tuple[str, ...]:
    """Revisions an upgrade from ``current`` to ``destination`` applies, oldest first."""
    revisions = script.revision_map.iterate_revisions(
        tuple(destination), tuple(current) or None, implicit_base=True
    )
    return tuple(reversed([r.revision for r in revisions if r.revision not in current]))


def _lookup(revision_map, revision: str):
    try:
        return revision_map.get_revision(revision)
    except Exception:  # unknown, ambiguous or malformed identifiers alike
        return None


def describe(script, revision: str) -> str:
    rev = _lookup(script.revision_map, revision)
    return f"{revision} ({rev.doc})" if rev is not None and rev.doc else revision
