"""Tiny real wheels, built by the tests into a local wheelhouse (no index, no network).

Each wheel holds one module, ``<name>.py`` with ``VERSION = "<version>"``, and
real metadata (Requires-Dist for ``requires``), so pip installs it like any other.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{module}.py": f'VERSION = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: migrate-init-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def sha256(path: Path) -> str:
    """The hash pip's ``--hash=sha256:...`` expects for a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: equal snapshots mean nothing was written."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tiny_wheelhouse(folder: Path) -> Path:
    """A wheelhouse of tinydep 1.0 and 2.0, and tinyapp 1.0 that requires tinydep>=2."""
    build_wheel(folder, "tinydep", "1.0")
    build_wheel(folder, "tinydep", "2.0")
    build_wheel(folder, "tinyapp", "1.0", requires=("tinydep>=2",))
    return folder


# -- shared by the unit and integration tests of migrate_init.deps -------------------------


def ensure(requirements: list[str], target: Path, wheelhouse: Path, requirements_file: str | None = None) -> list[str]:
    """migrate_init.deps.ensure from ``wheelhouse`` only, with no index."""
    from migrate_init import deps

    return deps.ensure(requirements, requirements_file, str(target), find_links=str(wheelhouse), no_index=True)
