"""Configuration: the only module that reads the environment.

Everything else receives a frozen :class:`Config`.  Variables that may carry a
secret (DATABASE_URL, DATABASE_PASSWORD) also accept a ``<NAME>_FILE`` twin
(docker-library's ``file_env``): setting both is an error, the file must
exist and be non-empty, exactly one trailing newline is stripped, and any
other control character left in it is an error.  An empty variable counts as
unset, except DATABASE_URL, whose empty value is refused so that an unset
compose interpolation never silently migrates the default SQLite database
instead of the intended server.

DATABASE_URL is parsed here, once (:func:`migrate_init.url.parse`): a URL that
cannot serve an init container (in memory, a bad port...) stops the run at
load time with exit 2, before anything is touched.

Paths are plain strings, as the environment gives them: ``pathlib`` (with the
``urllib.parse`` and ``ipaddress`` it imports) costs a run with nothing to do
some 3 ms (issue 14); the heavy half wraps them in ``Path`` where it needs one.
"""

from __future__ import annotations

import os

from .errors import ConfigError
from .url import Url, first_control, parse

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    from collections.abc import Mapping

#: The repository (or, in the image, /app): migrations/ and data/ live here.
HOME = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
SHIPPED_MIGRATIONS = os.path.join(HOME, "migrations")
#: A pip-installed package has no migrate.py, migrations/ or data/ beside it (HOME is
#: site-packages): its `migrate-init` command takes both folders from where it is run (issue 24).
INSTALLED = not os.path.isfile(os.path.join(HOME, "migrate.py"))


def _home() -> str:
    """Where the default migrations/ and data/ folders are: HOME, or the current folder when installed."""
    return os.getcwd() if INSTALLED else HOME


SHIPPED_MODELS = "models:Base"
DEFAULT_TARGET = "merge_heads_final"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: Variables that can carry a secret and so have a _FILE twin.
SECRET_VARIABLES = ("DATABASE_URL", "DATABASE_PASSWORD")

#: No wait is longer than this: a typo such as 1e10 must not reach the server.
MAX_SECONDS = 31 * 24 * 3600
#: PostgreSQL's lock_timeout counts milliseconds: less than one rounds to 0, which means no limit.
_MIN_DDL_LOCK_TIMEOUT = 0.001
#: REPORT_FILE values that turn the report file off (report._report_path).
_REPORT_OFF = ("-", "none", "off")


#: Config's fields, in the order of its constructor, its repr and its equality.
_FIELDS = (
    "database_url",
    "database",
    "data_dir",
    "enable_auto_migration",
    "migration_timeout",
    "enable_fallback_create",
    "migration_target",
    "migration_target_set",
    "migrations_dir",
    "models",
    "db_wait_timeout",
    "lock_timeout",
    "ddl_lock_timeout",
    "ddl_lock_retries",
    "sqlite_allow_network_fs",
    "log_level",
    "log_format",
    "report_file",
    "extra_pip_packages",
    "pip_requirements",
    "deps_target",
    "pip_find_links",
    "pip_no_index",
    "allow_destructive",
    "allow_destructive_revisions",
    "backup_dir",
    "backup_keep",
    "seed_dir",
    "repair_missing_columns",
    "fast_path",
    "empty_database",
    "baseline_on_migrate",
    "on_edited_revision",
    "image_revision",
    "secrets",
    "heartbeat_interval",
)


class Config:
    """The run's configuration, read once by :func:`load`; frozen, as a ``dataclass(frozen=True)`` is.

    A plain class with ``__slots__``, not a dataclass: ``dataclasses`` brings
    ``inspect``, ``ast`` and ``dis``, about 5 ms of a run with nothing to do
    (issue 14).  Assigning or deleting a field raises
    ``dataclasses.FrozenInstanceError``; equality, hash and repr are the
    dataclass's (``secrets`` is left out of the repr).
    """

    __slots__ = _FIELDS

    #: DATABASE_URL as the drivers get it (with DATABASE_PASSWORD in it, when set).
    database_url: str
    #: The same URL, parsed once; ``database.safe`` is what messages show.
    database: Url
    data_dir: str
    enable_auto_migration: bool
    #: Seconds for the whole upgrade; 0 is no limit.
    migration_timeout: float
    enable_fallback_create: bool
    migration_target: str
    migration_target_set: bool
    migrations_dir: str
    models: str | None
    db_wait_timeout: float
    lock_timeout: float
    #: PostgreSQL lock_timeout for DDL, in seconds; 0 is no limit, else at least 0.001.
    ddl_lock_timeout: float
    ddl_lock_retries: int
    sqlite_allow_network_fs: bool
    log_level: str
    log_format: str
    report_file: str | None
    extra_pip_packages: tuple[str, ...]
    pip_requirements: str | None
    deps_target: str | None
    pip_find_links: str | None
    pip_no_index: bool
    allow_destructive: bool
    #: ALLOW_DESTRUCTIVE=rev1,rev2: the revisions allowed to lose data (checked against the scripts once loaded).
    allow_destructive_revisions: tuple[str, ...]
    backup_dir: str | None
    backup_keep: int
    seed_dir: str
    repair_missing_columns: bool
    #: FAST_PATH=false always runs the full sequence (state.expected_for, issue 7).
    fast_path: bool
    #: ON_EDITED_REVISION: "warn" or "fail" when an applied revision's script changed (:mod:`history`).
    on_edited_revision: str
    #: IMAGE_REVISION (the image's org.opencontainers.image.revision), written into each history row.
    image_revision: str | None
    #: How an empty database is built (:mod:`empty`): "replay", "models", or "initial:module:attribute".
    empty_database: str
    #: BASELINE_ON_MIGRATE: the revision a database with tables and no version row is stamped at first.
    baseline_on_migrate: str | None
    #: Raw secret values, so that the log filter can mask them wherever they appear.
    secrets: tuple[str, ...]
    #: Seconds without a line after which a long wait or migration says what it is doing (0: never).
    heartbeat_interval: float

    def __init__(
        self,
        database_url: str,
        database: Url,
        data_dir: str,
        enable_auto_migration: bool = True,
        migration_timeout: float = 600.0,
        enable_fallback_create: bool = True,
        migration_target: str = DEFAULT_TARGET,
        migration_target_set: bool = False,
        migrations_dir: str = SHIPPED_MIGRATIONS,
        models: str | None = SHIPPED_MODELS,
        db_wait_timeout: float = 60.0,
        lock_timeout: float = 660.0,
        ddl_lock_timeout: float = 5.0,
        ddl_lock_retries: int = 5,
        sqlite_allow_network_fs: bool = False,
        log_level: str = "INFO",
        log_format: str = "text",
        report_file: str | None = None,
        extra_pip_packages: tuple[str, ...] = (),
        pip_requirements: str | None = None,
        deps_target: str | None = None,
        pip_find_links: str | None = None,
        pip_no_index: bool = False,
        allow_destructive: bool = False,
        allow_destructive_revisions: tuple[str, ...] = (),
        backup_dir: str | None = None,
        backup_keep: int = 3,
        seed_dir: str = "/docker-entrypoint-initdb.d",
        repair_missing_columns: bool = False,
        fast_path: bool = True,
        empty_database: str = "replay",
        baseline_on_migrate: str | None = None,
        on_edited_revision: str = "warn",
        image_revision: str | None = None,
        secrets: tuple[str, ...] = (),
        heartbeat_interval: float = 5.0,
    ) -> None:
        values = locals()
        for name in _FIELDS:
            object.__setattr__(self, name, values[name])

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Config)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS if name != "secrets")
        return f"{type(self).__qualname__}({shown})"

    @property
    def shipped_migrations(self) -> bool:
        return os.path.realpath(self.migrations_dir) == os.path.realpath(SHIPPED_MIGRATIONS)


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from ``environ`` (default: ``os.environ``).  Reads nothing else but secret files."""
    env = _Env(os.environ if environ is None else environ)

    data_dir = env.get("DATA_DIR") or os.path.join(_home(), "data")
    database, database_url = _database(env, data_dir)

    migrations_dir = env.get("MIGRATIONS_DIR") or os.path.join(_home(), "migrations")
    models = env.get("MODELS")
    if models is None and os.path.realpath(migrations_dir) == os.path.realpath(SHIPPED_MIGRATIONS):
        models = SHIPPED_MODELS
    if models is not None:
        _check_models(models)

    log_format = (env.get("LOG_FORMAT") or "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT={log_format!r} is not 'text' or 'json'.")
    log_level = (env.get("LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL={log_level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.")

    on_edited_revision = (env.get("ON_EDITED_REVISION") or "warn").lower()
    if on_edited_revision not in ("warn", "fail"):
        raise ConfigError(f"ON_EDITED_REVISION={on_edited_revision!r} is not 'warn' or 'fail'.")

    allow_destructive = _allow_destructive(env)
    target = env.get("MIGRATION_TARGET")
    backup_dir = env.get("BACKUP_DIR")
    deps_target = env.get("DEPS_TARGET")
    report_file = env.get("REPORT_FILE")
    if report_file is not None:
        conflict = _report_file_conflict(report_file, database.sqlite_path, backup_dir)
        if conflict is not None:
            raise ConfigError(conflict)

    return Config(
        database_url=database_url,
        database=database,
        data_dir=data_dir,
        enable_auto_migration=env.boolean("ENABLE_AUTO_MIGRATION", True),
        migration_timeout=env.seconds("MIGRATION_TIMEOUT", 600.0, zero="no limit"),
        enable_fallback_create=env.boolean("ENABLE_FALLBACK_CREATE", True),
        migration_target=target or DEFAULT_TARGET,
        migration_target_set=target is not None,
        migrations_dir=migrations_dir,
        models=models,
        db_wait_timeout=env.seconds("DB_WAIT_TIMEOUT", 60.0),
        lock_timeout=env.seconds("LOCK_TIMEOUT", 660.0),
        ddl_lock_timeout=env.seconds("DDL_LOCK_TIMEOUT", 5.0, zero="no limit", minimum=_MIN_DDL_LOCK_TIMEOUT),
        ddl_lock_retries=env.count("DDL_LOCK_RETRIES", 5),
        sqlite_allow_network_fs=env.boolean("SQLITE_ALLOW_NETWORK_FS", False),
        log_level=log_level,
        log_format=log_format,
        report_file=report_file,
        extra_pip_packages=tuple((env.get("EXTRA_PIP_PACKAGES") or "").split()),
        pip_requirements=env.get("PIP_REQUIREMENTS"),
        deps_target=deps_target or os.path.join(data_dir, "python-deps"),
        pip_find_links=env.get("PIP_FIND_LINKS"),
        pip_no_index=env.boolean("PIP_NO_INDEX", False),
        allow_destructive=allow_destructive is True,
        allow_destructive_revisions=() if isinstance(allow_destructive, bool) else allow_destructive,
        backup_dir=backup_dir or None,
        backup_keep=env.count("BACKUP_KEEP", 3),
        seed_dir=env.get("SEED_DIR") or "/docker-entrypoint-initdb.d",
        repair_missing_columns=env.boolean("REPAIR_MISSING_COLUMNS", False),
        fast_path=env.boolean("FAST_PATH", True),
        on_edited_revision=on_edited_revision,
        image_revision=env.get("IMAGE_REVISION") or None,
        heartbeat_interval=env.seconds("HEARTBEAT_INTERVAL", 5.0, zero="no heartbeat"),
        empty_database=_empty_database(env.get("EMPTY_DATABASE"), models),
        baseline_on_migrate=env.get("BASELINE_ON_MIGRATE"),
        secrets=tuple(env.secret_values),
    )


#: The characters of an Alembic revision id (e.g. f1e2d3c4b5a6, v2.4.0.a); not `re`, which a no-op run skips.
_REVISION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _allow_destructive(env: _Env) -> bool | tuple[str, ...]:
    """ALLOW_DESTRUCTIVE: true, false, or the comma-separated revisions allowed to lose data."""
    raw = env.get("ALLOW_DESTRUCTIVE")
    if raw is None or raw.strip().lower() in _FALSE:
        return False
    if raw.strip().lower() in _TRUE:
        return True
    names = [part.strip() for part in raw.split(",")]
    bad = [name for name in names if not name or name[0] in ".-" or not _REVISION_CHARS.issuperset(name)]
    if bad:
        raise ConfigError(
            f"ALLOW_DESTRUCTIVE={raw!r} is neither true/false nor a comma-separated list of revision ids "
            f"({', '.join(repr(name) for name in bad)} is not one). Use true, false, or e.g. "
            "ALLOW_DESTRUCTIVE=f1e2d3c4b5a6,v2.4.0.a to allow exactly those revisions to lose data."
        )
    return tuple(dict.fromkeys(names))


def reporting(environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """LOG_FORMAT and REPORT_FILE, read leniently: how to report a configuration that did not load.

    Never raises.  A REPORT_FILE that names the SQLite database, one of its
    side files or the backup folder is dropped here too (None): the report of
    the error that refused it must not overwrite the database either.
    """
    env = os.environ if environ is None else environ
    log_format = (env.get("LOG_FORMAT") or "").strip().lower()
    report_file = env.get("REPORT_FILE") or None
    if report_file is not None:
        try:
            sqlite_path = _lenient_sqlite_path(env)
            if _report_file_conflict(report_file, sqlite_path, env.get("BACKUP_DIR") or None):
                report_file = None
        except Exception:  # whatever is wrong, the error report must still be made
            report_file = None
    return (log_format if log_format in ("text", "json") else "text"), report_file


def _database(env: _Env, data_dir: str) -> tuple[Url, str]:
    """DATABASE_URL (or its default) parsed, with DATABASE_PASSWORD put in; and the URL text for drivers."""
    raw = env.secret("DATABASE_URL", empty_is_unset=False)
    if raw is None:
        # Built, not parsed: a '?', '#' or '%' in DATA_DIR is part of the path, not URL syntax.
        database = Url("sqlite", database=os.path.join(data_dir, "webui.db"))
        raw = database.render(hide_password=False)
        source = "DATABASE_URL (unset: the default SQLite database under DATA_DIR)"
    else:
        source = env.source("DATABASE_URL")
        database = parse(raw, source)
    password = env.secret("DATABASE_PASSWORD", empty_is_unset=True)
    if password is None:
        return database, raw
    password_source = env.source("DATABASE_PASSWORD")
    password_variable = env.variable("DATABASE_PASSWORD")
    if database.engine.file_based:
        raise ConfigError(
            f"{password_source} is set, but {source} names a SQLite database "
            f"({database.safe}), which has no password. Unset {password_variable}."
        )
    if database.password is not None:
        raise ConfigError(
            f"{source} already holds a password and {password_source} gives another one. "
            f"Keep one of them: remove the password from the URL, or unset {password_variable}."
        )
    if not database.username:
        raise ConfigError(
            f"{password_source} is set, but {source} ({database.safe}) names no user for it. "
            "Put the user name in the URL: postgresql://USER@host:5432/dbname."
        )
    database = database.with_password(password)
    database_url = database.render(hide_password=False)
    env.secret_values.append(database_url)
    return database, database_url


def _check_models(models: str) -> None:
    module, colon, attribute = models.partition(":")
    if not colon or not _dotted(module) or not _dotted(attribute):
        raise ConfigError(
            f"MODELS={models!r} is not of the form 'module:attribute' (for example "
            "'myapp.models:Base'): both parts must be dotted Python names."
        )


def _empty_database(value: str | None, models: str | None) -> str:
    """EMPTY_DATABASE: ``replay`` (the default), ``models``, or ``initial:module:attribute``."""
    if value is None or value.strip().lower() == "replay":
        return "replay"
    value = value.strip()
    if value.lower() == "models":
        if models is None:
            raise ConfigError(
                "EMPTY_DATABASE=models builds an empty database from MODELS, and MODELS is not "
                "set: set MODELS (module:attribute of your MetaData or Base), or unset "
                "EMPTY_DATABASE to replay the migrations."
            )
        return "models"
    kind, colon, spec = value.partition(":")
    if kind.lower() == "initial" and colon:
        module, colon, attribute = spec.partition(":")
        if colon and _dotted(module) and _dotted(attribute):
            return f"initial:{spec}"
    raise ConfigError(
        f"EMPTY_DATABASE={value!r} is not 'replay' (run every migration), 'models' (create_all from MODELS, "
        "then stamp the heads) or 'initial:module:attribute' (create_all from that MetaData or Base, then "
        "run every migration; e.g. 'initial:myapp.initial_models:Base')."
    )


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _report_file_conflict(report_file: str, sqlite_path: str | None, backup_dir: str | None) -> str | None:
    """Why REPORT_FILE must not be written where it points, or None when it may."""
    if report_file.lower() in _REPORT_OFF:
        return None
    target = os.path.realpath(report_file)
    what = _sqlite_conflict(target, sqlite_path, backup_dir) if sqlite_path is not None else None
    if what is None:
        from .report import overwrite_refusal

        what = overwrite_refusal(report_file)
    if what is None:
        return None
    return (
        f"REPORT_FILE={report_file} is {what} ({target}); writing the report there would "
        "destroy it. Point REPORT_FILE at a file of its own, such as /tmp/migrate-report.json, "
        "or unset it."
    )


def _sqlite_conflict(target: str, sqlite_path: str, backup_dir: str | None) -> str | None:
    """What of the SQLite database's ``target`` is: by name, or by device and inode (a hard link, a bind mount)."""
    database = os.path.realpath(sqlite_path)
    files = (
        ("", "the SQLite database itself"),
        ("-journal", "the SQLite database's rollback journal"),
        ("-wal", "the SQLite database's write-ahead log"),
        ("-shm", "the SQLite database's shared-memory file"),
        (".migrate.lock", "the migration lock file"),
    )
    what = next((what for suffix, what in files if target == database + suffix), None)
    if what is None:
        what = _same_file(target, database, files)
    if what is None:
        folder = os.path.realpath(backup_dir or os.path.join(os.path.dirname(database), "backups"))
        if target == folder or target.startswith(folder + os.sep):
            what = f"inside the backup folder {folder} (BACKUP_DIR)"
    return what


def _same_file(target: str, database: str, files: tuple[tuple[str, str], ...]) -> str | None:
    """Which of the database's ``files`` ``target`` is under another name (same device and inode), if any."""
    try:
        seen = os.stat(target)
    except OSError:  # nothing there yet: a new file is no other file
        return None
    for suffix, name in files:
        try:
            other = os.stat(database + suffix)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (seen.st_dev, seen.st_ino):
            return f"{name} under another name (a hard link or a bind mount of {database + suffix})"
    return None


def _lenient_sqlite_path(env: Mapping[str, str]) -> str | None:
    """The SQLite file DATABASE_URL names, guessed even from a URL that does not parse."""
    raw = env.get("DATABASE_URL")
    if raw is None and env.get("DATABASE_URL_FILE"):
        try:
            with open(env["DATABASE_URL_FILE"], encoding="utf-8") as handle:
                raw = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            return None  # the database is unknown, so is any conflict: keep the report the user asked for
    if raw is None:
        return os.path.abspath(os.path.join(env.get("DATA_DIR") or os.path.join(_home(), "data"), "webui.db"))
    try:
        return parse(raw).sqlite_path
    except ConfigError:
        scheme, sep, rest = raw.partition("://")
        if not sep or not scheme.lower().startswith("sqlite"):
            return None
        path = rest[1:].split("?", 1)[0]
        return os.path.abspath(path) if path else None


class _Env:
    """Typed reads of one environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.secret_values: list[str] = []
        self._files: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        return value if value else None

    def variable(self, name: str) -> str:
        """The variable a secret was read from: ``name`` or ``name_FILE``."""
        return f"{name}_FILE" if name in self._files else name

    def source(self, name: str) -> str:
        """Where a secret was read, for messages: the variable, or the _FILE variable and its path."""
        return f"{name}_FILE ({self._files[name]})" if name in self._files else name

    def secret(self, name: str, *, empty_is_unset: bool) -> str | None:
        """``name`` or the content of ``name_FILE``; both set is an error (docker-library's file_env)."""
        direct = self._environ.get(name)
        if empty_is_unset and direct == "":
            direct = None
        path = self._environ.get(f"{name}_FILE")
        if direct is not None and path is not None:
            raise ConfigError(f"Both {name} and {name}_FILE are set; they are exclusive. Unset one of them.")
        if path is not None:
            value = _read_secret_file(f"{name}_FILE", path)
            self._files[name] = path
        elif direct is not None:
            if direct == "":
                raise ConfigError(
                    f"{name} is set but empty. Unset it to use the default, or give a value (or {name}_FILE)."
                )
            at = first_control(direct)
            if at >= 0 and name != "DATABASE_URL":  # url.parse says it for DATABASE_URL
                raise ConfigError(
                    f"{name} contains a control character (a newline, tab or the like) at "
                    f"position {at + 1}; the value is not shown. Remove it."
                )
            value = direct
        else:
            return None
        self.secret_values.append(value)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false.")

    def seconds(self, name: str, default: float, *, zero: str | None = None, minimum: float = 0.0) -> float:
        """A number of seconds, 0 to 31 days.

        ``zero`` is what 0 means, for the messages ("no limit"); ``minimum``
        is the smallest positive value that still means what it says.
        """
        raw = self.get(name)
        if raw is None:
            return default
        zero_is = f" (0 is {zero})" if zero else ""
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number of seconds{zero_is}.") from None
        if value != value or value < 0:  # NaN is the one float unequal to itself (math.isnan, without math)
            raise ConfigError(f"{name}={raw!r} must be zero or a positive number of seconds{zero_is}.")
        if value > MAX_SECONDS:
            raise ConfigError(
                f"{name}={raw!r} is more than 31 days ({MAX_SECONDS} s); give at most {MAX_SECONDS} seconds{zero_is}."
            )
        if 0 < value < minimum:
            raise ConfigError(
                f"{name}={raw!r} is below {minimum:g} s and would round to 0{zero_is}; "
                f"give at least {minimum:g}, or 0 if you mean {zero or 'zero'}."
            )
        return value

    def count(self, name: str, default: int) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number.") from None
        if value < 0:
            raise ConfigError(f"{name}={raw!r} must be zero or a positive whole number.")
        return value


def _read_secret_file(variable: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            value = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{variable} names {path}, which does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"{variable} names {path}, which is a folder, not a file.") from None
    except PermissionError:
        raise ConfigError(f"{variable} names {path}, which user {os.getuid()} cannot read.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{variable} names {path}, which is not UTF-8 text.") from None
    # Exactly one trailing newline is what `echo` and most editors add.
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value.strip():
        raise ConfigError(f"{variable} names {path}, which is empty.")
    at = first_control(value)
    if at >= 0:
        kind = "a line break" if value[at] in "\r\n" else "a control character (a tab, NUL or the like)"
        raise ConfigError(
            f"{variable} names {path}, which holds {kind} at character {at + 1}; its content is "
            "not shown. The file may end with one newline and hold nothing else but the value: "
            "write it with `printf '%s' VALUE > FILE`."
        )
    return value


def check_migrations_dir(migrations_dir: str) -> None:
    """Refuse a MIGRATIONS_DIR that is not an Alembic folder, before anything else is touched.

    Not part of :func:`load`, which stays a pure reading of the environment;
    the CLI calls it for every verb that reads the scripts.
    """
    if not os.path.isdir(migrations_dir) and INSTALLED:
        raise ConfigError(
            f"MIGRATIONS_DIR={migrations_dir} does not exist or is not a folder. Set MIGRATIONS_DIR to your "
            "Alembic migrations folder (the one that holds env.py), or run migrate-init from the folder "
            "that holds it as migrations/: unset, MIGRATIONS_DIR is migrations/ in the current folder."
        )
    if not os.path.isdir(migrations_dir):
        raise ConfigError(
            f"MIGRATIONS_DIR={migrations_dir} does not exist or is not a folder. Mount your Alembic "
            "migrations folder there, or unset MIGRATIONS_DIR to use the shipped one."
        )
    if not os.path.isfile(os.path.join(migrations_dir, "env.py")):
        raise ConfigError(
            f"MIGRATIONS_DIR={migrations_dir} has no env.py, so it is not an Alembic migrations folder. "
            "Point MIGRATIONS_DIR at the folder that holds env.py and versions/."
        )
