"""What the scripts and the models expect, worked out once and trusted only while its files are unchanged.

A run with nothing to do must not import SQLAlchemy or Alembic (issue 7), so
the scripts' heads and the models' tables and columns are kept in a manifest:

- the scripts' heads and every revision id, from Alembic's revision graph;
- the version table env.py asked for;
- the models' tables and columns and the tables whose rows are counted;
- each revision's checksum (:mod:`checksum`), compared with the history's;
- the list of every file that loading the scripts and MODELS read from
  outside site-packages and the standard library (a ``models.py`` that
  imports a sibling, or MODELS as a package) and the folder's alembic.ini,
  and a SHA-256 of their content together with the names under every
  version location (``versions/``, or the ini's ``version_locations``).

A manifest is used only when that hash, computed again now, matches: an
edited, added or removed migration, or an edited model file anywhere it was
read from, sends the run down the full path.  The hash reads content, not
mtimes: image layers normalise them.  Reading every file on every run made a
no-op grow with the chain (2.2x the floor at 1,000 revisions, issue 27), so
once the content matched, a cheap key (:func:`stat_key`: names, sizes, mtimes,
ctimes, inodes) is recorded in the cache, and the next run on the same
filesystem reads no content at all.

Where it lives: ``<MIGRATIONS_DIR>/.manifest.marshal`` when written by
``migrate.py manifest`` (an image build), else the cache that the first full
run writes: ``<DATA_DIR>/.migrate-init/`` when that is writable, or beside
the folder.  So every migrations folder, mounted or baked, gets the fast path
with no build step (issue 11).

The file is written with :mod:`marshal`, not JSON: marshal is built into the
interpreter, while ``json`` costs a run with nothing to do some 4 ms of imports
(issue 14).  It holds only dicts, lists, strings and numbers; a file that does
not load as such (another Python, damage) is no manifest, and the full path
runs and writes a new one.

The module's top level imports only the standard library, and only what a
run with nothing to do needs: paths are plain strings.
"""

from __future__ import annotations

import marshal
import os
import sys

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha256
    from typing import Any

    from alembic.script import ScriptDirectory
    from sqlalchemy import MetaData
else:
    # The same SHA-256, without the OpenSSL that hashlib maps in first: ~2 ms of a run with nothing to do (issue 14).
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython 3.12 and later
        except ImportError:
            from hashlib import sha256

FILENAME = ".manifest.marshal"
#: Bump when the manifest's fields, its encoding or the hash's recipe change; an older manifest is then ignored.
FORMAT = 5
CACHE_FOLDER = ".migrate-init"


def baked_path(migrations_dir: str | os.PathLike[str]) -> str:
    return os.path.join(migrations_dir, FILENAME)


def cache_path(data_dir: str | os.PathLike[str], migrations_dir: str | os.PathLike[str], models: str | None) -> str:
    key = sha256(f"{os.path.abspath(migrations_dir)}\0{models}".encode()).hexdigest()[:16]
    return os.path.join(data_dir, CACHE_FOLDER, f"manifest-{key}.marshal")


def version_dirs(script: ScriptDirectory) -> list[str]:
    """Every folder Alembic reads revisions from: ``version_locations`` of the ini (``%(here)s`` resolved), else versions/."""
    from alembic.util import coerce_resource_to_filename  # ``package:path`` locations, as Alembic reads them

    return sorted(
        {os.path.abspath(coerce_resource_to_filename(p)) for p in script.version_locations}
        if script.version_locations
        else {os.path.abspath(script.versions)}
    )


def _portable(path: str, root: str) -> str:
    """``path`` relative to the migrations folder when it is inside it, else absolute.

    A baked folder copied elsewhere (another image path, a volume) then checks
    its own files, not the original's, which may still be there unchanged
    (issue 25 N18).
    """
    path, root = os.path.abspath(path), os.path.abspath(root)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


def _resolved(name: str, root: str) -> str:
    """The file a manifest's name means for the migrations folder at ``root`` now."""
    return name if os.path.isabs(name) else os.path.join(root, name)


def _walk(folders: list[str]) -> list[str]:
    """Every file under ``folders``, but bytecode, which Python writes next to the scripts whenever it imports them."""
    found: list[str] = []
    for top in folders:
        for folder, subfolders, filenames in os.walk(top):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            inside = os.path.join(folder, "")
            found.extend(inside + n for n in filenames)
    return found


def _named(what: str, root: str, versions: list[str] | None) -> Any:
    """A SHA-256 begun with ``what``, the format and the file names under every version location (sorted).

    ``versions``: the folders of :func:`version_dirs`; by default ``versions/``.
    """
    folders = [_resolved(v, root) for v in versions] if versions else [os.path.join(root, "versions")]
    # A path under root is root's spelling, a separator and the name: cut, not os.path.relpath, which
    # costs 30 us a file (30 ms at 1,000 revisions on the way to "nothing to do", issue 27).
    inside = os.path.join(root, "")
    cut = len(inside)
    names = {path[cut:] if path.startswith(inside) else os.path.relpath(path, root) for path in _walk(folders)}
    digest = sha256(f"migrate-init {what} {FORMAT}\0".encode())
    digest.update("".join([f"name\0{name}\0" for name in sorted(names)]).encode())  # one update: the same digest
    return digest


def stat_key(migrations_dir: str | os.PathLike[str], files: list[str], versions: list[str] | None = None) -> str | None:
    """A digest of the file names under every version location and of every listed file's size, mtime, ctime and inode.

    What is cheap to read (one ``stat`` a file, no content): it vouches for files whose content
    hash was checked once on this filesystem.  The ctime cannot be set back by a tool (unlike the
    mtime, which ``touch -r``, tar or a reproducible build can restore), so an edit always changes
    the key; a copy, a new image layer or a new container filesystem changes it too, and the
    content is hashed again, once (issue 27).  None when a file is missing.
    """
    root = os.fspath(migrations_dir)
    digest = _named("stat", root, versions)
    inside = os.path.join(root, "")
    parts: list[str] = []
    for path in sorted(set(files)):
        try:
            st = os.stat(path if path.startswith(os.sep) else inside + path)  # _resolved, inlined: 1,000 calls
        except OSError:
            return None
        parts.append(f"file\0{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_dev}\0")
    digest.update("".join(parts).encode())  # one update of the whole: the same digest as one a file
    hexdigest: str = digest.hexdigest()
    return hexdigest


def content_hash(
    migrations_dir: str | os.PathLike[str], files: list[str], versions: list[str] | None = None
) -> str | None:
    """SHA-256 of the file names under every version location and of every file listed; None when one is missing."""
    root = os.fspath(migrations_dir)
    digest = _named("manifest", root, versions)
    for path in sorted(set(files)):
        try:
            with open(_resolved(path, root), "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        digest.update(f"file\0{path}\0{len(data)}\0".encode())
        digest.update(data)
    hexdigest: str = digest.hexdigest()
    return hexdigest


def load_fresh(
    candidates: list[str], migrations_dir: str | os.PathLike[str], models: str | None
) -> tuple[dict[str, Any] | None, str]:
    """The first candidate that is of this format, for these MODELS, and whose files are unchanged.

    Unchanged means: the files' :func:`stat_key` is the one recorded with a candidate (no content
    read), or else their :func:`content_hash` matches; then the stat key is recorded in the first
    cache (``candidates[1:]``) that can be written, so the next run reads no content.  The cost of
    a run with nothing to do is one ``stat`` a file, not one read and hash (issue 27).

    Returns ``(manifest, "")``, or ``(None, why not)`` for the log.
    """
    why = f"no manifest ({candidates[0]}, or a cache the first full run writes)"
    usable: list[tuple[str, dict[str, Any]]] = []
    for path in candidates:
        try:
            with open(path, "rb") as handle:
                data = marshal.loads(handle.read())
        except (OSError, ValueError, EOFError, TypeError):  # none, or not a marshal file of this Python
            continue
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            why = f"the manifest {path} is of another format"
        elif data.get("models") != models:
            why = f"the manifest {path} is for MODELS={data.get('models')}, not {models}"
        else:
            usable.append((path, data))
    if not usable:
        return None, why
    key = stat_key(migrations_dir, usable[0][1].get("files", []), usable[0][1].get("version_dirs"))
    for _path, data in usable:
        if key is not None and data.get("stat_key") == key and _same_files(data, usable[0][1]):
            return data, ""
    for path, data in usable:
        if content_hash(migrations_dir, data.get("files", []), data.get("version_dirs")) == data.get("content_hash"):
            if key is not None and _same_files(data, usable[0][1]):
                for cache in candidates[1:]:
                    if write(cache, {**data, "stat_key": key}, required=False):
                        break
            return data, ""
        why = f"the manifest {path} is stale: the migration scripts or the models changed since it was written"
    return None, why


def _same_files(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two manifests list the same files and version folders, so one stat key vouches for both."""
    return one.get("files") == other.get("files") and one.get("version_dirs") == other.get("version_dirs")


def local_files(
    migrations_dir: str | os.PathLike[str],
    before: set[str],
    versions: list[str] | None = None,
    ini: str | None = None,
    models: str | None = None,
) -> list[str]:
    """Source files of modules imported since ``before`` (module names) that are the user's, plus env.py,
    the ini (whose ``version_locations`` say where the revisions are) and the scripts of every version location.

    The user's: outside site-packages and the standard library, and every module of the
    package MODELS names wherever it is installed: an app installed with pip keeps its models
    in site-packages, and upgrading it changes them (issue 25 N18).
    """
    excluded = _library_roots()
    package = models.partition(":")[0].partition(".")[0] if models else None
    files = {os.path.abspath(os.path.join(migrations_dir, "env.py"))}
    if ini and not os.path.abspath(ini).startswith(excluded):  # not the image's own default ini
        files.add(os.path.abspath(ini))
    files.update(
        os.path.abspath(path)
        for path in _walk(versions or [os.path.join(os.fspath(migrations_dir), "versions")])
        if path.endswith(".py")
    )
    for name, module in list(sys.modules.items()):
        if name in before:
            continue
        filename = getattr(module, "__file__", None)
        if not filename or not filename.endswith(".py"):
            continue
        path = os.path.abspath(filename)
        if name.partition(".")[0] == package or not any(path.startswith(root) for root in excluded):
            files.add(path)
    return sorted(files)


def _library_roots() -> tuple[str, ...]:
    import sysconfig

    roots = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    # migrate-init's own package is the image's, not the user's.
    roots.add(os.path.dirname(os.path.abspath(__file__)))
    return tuple(os.path.abspath(r) + os.sep for r in roots if r)


def build(
    script: ScriptDirectory,
    metadata: MetaData | None,
    *,
    models: str | None,
    version_table: str,
    migrations_dir: str | os.PathLike[str],
    files: list[str],
    checksums: dict[str, str],
) -> dict[str, Any]:
    """The manifest for what was loaded.  No I/O but the hash.

    Every name is made a plain ``str``: marshal writes no subclass (SQLAlchemy's ``quoted_name``).
    """
    from .schema import counted_tables, expected_schema

    root = os.fspath(migrations_dir)
    versions = [_portable(v, root) for v in version_dirs(script)]
    files = [_portable(str(f), root) for f in files]
    return {
        "format": FORMAT,
        "models": None if models is None else str(models),
        "files": files,
        "version_dirs": versions,
        "content_hash": content_hash(migrations_dir, files, versions),
        "stat_key": stat_key(migrations_dir, files, versions),
        "heads": sorted(str(head) for head in script.get_heads()),
        "revisions": sorted(str(rev.revision) for rev in script.walk_revisions()),
        "version_table": str(version_table),
        "schema": {
            str(table): sorted(str(column) for column in columns)
            for table, columns in (expected_schema(metadata).items() if metadata is not None else ())
        },
        "counted_tables": [str(table) for table in counted_tables(metadata)] if metadata is not None else [],
        # What each revision does (:mod:`checksum`): an unchanged folder is compared with the history for free.
        "checksums": checksums,
    }


def write(path: str, manifest: dict[str, Any], *, required: bool) -> bool:
    """Write atomically; True when written.  ``required`` (``migrate.py manifest``) raises on failure."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(marshal.dumps(manifest))
        os.replace(temporary, path)
        return True
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if required:
            raise ConfigError(
                f"Cannot write the manifest {path}: {exc.strerror}. Run `migrate.py manifest` where "
                "MIGRATIONS_DIR is writable (in a derived image: as root, before USER)."
            ) from None
        return False
