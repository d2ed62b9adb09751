"""The fast path's manifest: what the scripts and the models say, worked out once.

``migrate.py manifest`` (run by the Dockerfile, since the image's root
filesystem is read-only) writes ``<MIGRATIONS_DIR>/.manifest.json``:

- the scripts' heads and every revision id, from Alembic's revision graph;
- the models' tables and columns and the tables whose rows the summary counts;
- the MODELS spec they came from;
- a SHA-256 of the content all that was computed from: every file under
  ``versions/`` (``__pycache__`` aside), ``env.py`` and the MODELS module's file.

At run time :mod:`migrate_init.fastpath` recomputes that hash (a few small
files read) and trusts the manifest only when it matches, so an edited or
added migration, or edited models, can never be answered from a stale
manifest: the run takes the full path instead.  The manifest holds nothing
that depends on the database or on MIGRATION_TARGET.

The module's top level imports only the standard library; :func:`build` alone
loads Alembic and SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from .errors import ConfigError

FILENAME = ".manifest.json"
#: Bump when the manifest's fields or the hash's recipe change; an older manifest is then ignored.
FORMAT = 1
VERSION_TABLE = "alembic_version"


def path_for(migrations_dir: Path) -> Path:
    return Path(migrations_dir) / FILENAME


def content_hash(migrations_dir: Path, models_file: str | None) -> str | None:
    """SHA-256 of the scripts and models; None when a file it needs is missing.

    ``models_file`` is relative to ``migrations_dir`` when it lies inside it,
    else absolute (what :func:`build` records).  Read-only.
    """
    root = os.fspath(migrations_dir)
    files: list[tuple[str, str]] = [("env.py", os.path.join(root, "env.py"))]
    versions = os.path.join(root, "versions")
    for folder, subfolders, names in os.walk(versions):
        # Bytecode is written next to the scripts whenever Python imports them.
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in names:
            path = os.path.join(folder, name)
            files.append((os.path.relpath(path, root), path))
    if models_file is not None:
        files.append(("models:" + models_file, os.path.join(root, models_file)))
    digest = hashlib.sha256(f"migrate-init manifest {FORMAT}\0".encode())
    for name, path in sorted(files):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def load(migrations_dir: Path) -> dict | None:
    """The manifest in ``migrations_dir``, or None when missing, unreadable or of another format."""
    try:
        with open(path_for(migrations_dir), "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def build(cfg) -> tuple[Path, dict]:
    """Compute the manifest for cfg.migrations_dir and cfg.models, and write it there.

    Reads the scripts and imports the models; never touches the database.
    """
    from . import db, scripts
    from . import metadata as metadata_module

    if cfg.models is None:
        raise ConfigError(
            f"The manifest needs MODELS (the fast path verifies the models' tables), and "
            f"MODELS is not set for MIGRATIONS_DIR={cfg.migrations_dir}. Set MODELS."
        )
    migrations_dir = Path(cfg.migrations_dir)
    acfg = scripts.alembic_config(migrations_dir, db.parse(cfg.database_url), models=cfg.models)
    script = scripts.load(acfg)
    metadata = metadata_module.load(cfg.models, [migrations_dir])
    models_file = _models_file(cfg.models, migrations_dir)
    digest = content_hash(migrations_dir, models_file)
    env_text = (migrations_dir / "env.py").read_text(encoding="utf-8", errors="replace")
    manifest = {
        "format": FORMAT,
        "models": cfg.models,
        "models_file": models_file,
        "content_hash": digest,
        "heads": sorted(script.get_heads()),
        "revisions": sorted(rev.revision for rev in script.walk_revisions()),
        # The fast path reads Alembic's default version table.  An env.py that
        # names another one is left to the full path (which runs that env.py).
        "version_table": None if "version_table" in env_text else VERSION_TABLE,
        "schema": {table: sorted(columns)
                   for table, columns in metadata_module.expected_schema(metadata).items()},
        "counted_tables": metadata_module.counted_tables(metadata),
    }
    path = path_for(migrations_dir)
    temporary = path.with_name(f"{FILENAME}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(
            f"Cannot write the manifest {path}: {exc.strerror}. Run `migrate.py manifest` "
            "where MIGRATIONS_DIR is writable (the image does so at build time)."
        ) from None
    return path, manifest


def _models_file(spec: str, migrations_dir: Path) -> str:
    module = sys.modules.get(spec.partition(":")[0])
    filename = getattr(module, "__file__", None)
    if not filename:
        raise ConfigError(f"MODELS={spec!r} names a module without a source file; "
                          "the manifest cannot hash it.")
    path = Path(filename).resolve()
    try:
        return str(path.relative_to(migrations_dir.resolve()))
    except ValueError:
        return str(path)
