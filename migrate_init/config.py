"""Configuration: the only module that reads the environment.

Everything else receives a frozen :class:`Config`.  Variables that may carry a
secret also accept a ``<NAME>_FILE`` twin (docker-library style): setting both
is an error, the file must exist and be non-empty, and one trailing newline is
stripped.  An empty variable counts as unset, except DATABASE_URL, whose empty
value is refused so that an unset compose interpolation never silently
migrates the default SQLite database instead of the intended server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

#: The repository (or, in the image, /app): migrations/ and data/ live here.
HOME = Path(__file__).resolve().parent.parent
SHIPPED_MIGRATIONS = HOME / "migrations"
SHIPPED_MODELS = "models:Base"
DEFAULT_TARGET = "merge_heads_final"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: Variables that can carry a secret and so have a _FILE twin.
SECRET_VARIABLES = ("DATABASE_URL",)


@dataclass(frozen=True)
class Config:
    database_url: str
    data_dir: Path
    enable_auto_migration: bool = True
    migration_timeout: float = 30.0
    enable_fallback_create: bool = True
    migration_target: str = DEFAULT_TARGET
    migration_target_set: bool = False
    migrations_dir: Path = SHIPPED_MIGRATIONS
    models: str | None = SHIPPED_MODELS
    db_wait_timeout: float = 60.0
    lock_timeout: float = 120.0
    ddl_lock_timeout: float = 5.0
    ddl_lock_retries: int = 5
    sqlite_allow_network_fs: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    report_file: str | None = None
    extra_pip_packages: tuple[str, ...] = ()
    pip_requirements: str | None = None
    deps_target: Path | None = None
    pip_find_links: str | None = None
    pip_no_index: bool = False
    allow_destructive: bool = False
    backup_dir: Path | None = None
    backup_keep: int = 3
    seed_dir: Path = Path("/docker-entrypoint-initdb.d")
    repair_missing_columns: bool = False
    #: FAST_PATH=false always runs the full sequence (fastpath.py, issue 7).
    fast_path: bool = True
    #: Raw secret values, so that the log filter can mask them wherever they appear.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def shipped_migrations(self) -> bool:
        return self.migrations_dir.resolve() == SHIPPED_MIGRATIONS.resolve()


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from ``environ`` (default: ``os.environ``)."""
    env = _Env(os.environ if environ is None else environ)

    data_dir = Path(env.get("DATA_DIR") or (HOME / "data"))
    database_url = env.secret("DATABASE_URL")
    if database_url is None:
        database_url = f"sqlite:///{data_dir / 'webui.db'}"

    migrations_dir = Path(env.get("MIGRATIONS_DIR") or SHIPPED_MIGRATIONS)
    models = env.get("MODELS")
    if models is None and migrations_dir.resolve() == SHIPPED_MIGRATIONS.resolve():
        models = SHIPPED_MODELS
    if models is not None and ":" not in models:
        raise ConfigError(
            f"MODELS={models!r} is not of the form 'module:attribute' "
            "(for example 'myapp.models:Base')."
        )

    log_format = (env.get("LOG_FORMAT") or "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT={log_format!r} is not 'text' or 'json'.")
    log_level = (env.get("LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"LOG_LEVEL={log_level!r} is not one of DEBUG, INFO, WARNING, ERROR."
        )

    target = env.get("MIGRATION_TARGET")
    backup_dir = env.get("BACKUP_DIR")
    deps_target = env.get("DEPS_TARGET")

    return Config(
        database_url=database_url,
        data_dir=data_dir,
        enable_auto_migration=env.boolean("ENABLE_AUTO_MIGRATION", True),
        migration_timeout=env.seconds("MIGRATION_TIMEOUT", 30.0),
        enable_fallback_create=env.boolean("ENABLE_FALLBACK_CREATE", True),
        migration_target=target or DEFAULT_TARGET,
        migration_target_set=target is not None,
        migrations_dir=migrations_dir,
        models=models,
        db_wait_timeout=env.seconds("DB_WAIT_TIMEOUT", 60.0),
        lock_timeout=env.seconds("LOCK_TIMEOUT", 120.0),
        ddl_lock_timeout=env.seconds("DDL_LOCK_TIMEOUT", 5.0),
        ddl_lock_retries=int(env.seconds("DDL_LOCK_RETRIES", 5, whole=True)),
        sqlite_allow_network_fs=env.boolean("SQLITE_ALLOW_NETWORK_FS", False),
        log_level=log_level,
        log_format=log_format,
        report_file=env.get("REPORT_FILE"),
        extra_pip_packages=tuple((env.get("EXTRA_PIP_PACKAGES") or "").split()),
        pip_requirements=env.get("PIP_REQUIREMENTS"),
        deps_target=Path(deps_target) if deps_target else data_dir / "python-deps",
        pip_find_links=env.get("PIP_FIND_LINKS"),
        pip_no_index=env.boolean("PIP_NO_INDEX", False),
        allow_destructive=env.boolean("ALLOW_DESTRUCTIVE", False),
        backup_dir=Path(backup_dir) if backup_dir else None,
        backup_keep=int(env.seconds("BACKUP_KEEP", 3, whole=True)),
        seed_dir=Path(env.get("SEED_DIR") or "/docker-entrypoint-initdb.d"),
        repair_missing_columns=env.boolean("REPAIR_MISSING_COLUMNS", False),
        fast_path=env.boolean("FAST_PATH", True),
        secrets=tuple(env.secret_values),
    )


def reporting(environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """LOG_FORMAT and REPORT_FILE, read leniently: how to report a configuration that did not load."""
    env = os.environ if environ is None else environ
    log_format = (env.get("LOG_FORMAT") or "").strip().lower()
    return (log_format if log_format in ("text", "json") else "text"), (env.get("REPORT_FILE") or None)


class _Env:
    """Typed reads of one environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ
        self.secret_values: list[str] = []

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        return value if value else None

    def secret(self, name: str) -> str | None:
        direct = self._environ.get(name)
        path = self._environ.get(f"{name}_FILE")
        if direct is not None and path is not None:
            raise ConfigError(
                f"Both {name} and {name}_FILE are set; they are exclusive. "
                f"Unset one of them."
            )
        if path is not None:
            value = _read_secret_file(f"{name}_FILE", path)
        elif direct is not None:
            if direct == "":
                raise ConfigError(
                    f"{name} is set but empty. Unset it to use the default, "
                    f"or give a value (or {name}_FILE)."
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

    def seconds(self, name: str, default: float, *, whole: bool = False) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw) if whole else float(raw)
        except ValueError:
            kind = "a whole number" if whole else "a number of seconds"
            raise ConfigError(f"{name}={raw!r} is not {kind}.") from None
        if value < 0 or value != value or value == float("inf"):
            raise ConfigError(f"{name}={raw!r} must be zero or a positive number.")
        return value


def _read_secret_file(variable: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{variable} names {path}, which does not exist.") from None
    except IsADirectoryError:
        raise ConfigError(f"{variable} names {path}, which is a folder, not a file.") from None
    except PermissionError:
        raise ConfigError(
            f"{variable} names {path}, which user {os.getuid()} cannot read."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{variable} names {path}, which is not UTF-8 text.") from None
    # Exactly one trailing newline is what `echo` and most editors add.
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value.strip():
        raise ConfigError(f"{variable} names {path}, which is empty.")
    return value
