"""The SQLAlchemy and Alembic releases migrate-init runs on, checked before either is imported.

The image ships requirements.txt's pins.  A derived image that installs a project's own pins
(docs/image.md, "A project pinned to another SQLAlchemy") replaces them, and may leave the range
migrate-init is tested on: SQLAlchemy 1.4, or a 2.2 nobody has run it with, would fail somewhere
inside a migration, far from the cause.  So the heavy-import boundary (``state.Loaded``, and the
``alembic`` verb) asks first, and a release outside the range is exit 2 naming both versions.

The versions come from the installed distributions' metadata (``importlib.metadata``, which
Alembic imports anyway), not from importing the libraries, and are compared by their release
numbers: ``packaging`` would cost the run its import (about 10 ms), which it never needs otherwise.
"""

from __future__ import annotations

import importlib.metadata
import sys

from . import __version__
from .errors import ConfigError

#: (lowest, first refused) release of each, as the tests run them: the image's pins, and SQLAlchemy
#: 2.0.50 (open-webui) and 2.0.58 (meltano, in tests/integration/third_party.py's venvs and in the
#: derived image of tests/image/test_pinned_sqlalchemy.py).
SUPPORTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "SQLAlchemy": ((2, 0, 50), (2, 2)),
    "Alembic": ((1, 20), (2,)),
}


def supported_range(name: str) -> str:
    """``>=2.0.50,<2.2``: the range of :data:`SUPPORTED` as pip writes a specifier."""
    lowest, refused = SUPPORTED[name]
    return f">={'.'.join(map(str, lowest))},<{'.'.join(map(str, refused))}"


def release(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version: ``2.1.0b1`` -> (2, 1, 0), ``2.0rc1`` -> (2, 0)."""
    numbers: list[int] = []
    for piece in version.split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(piece):  # a suffix (b1, rc2, +local) ends the release
            break
    return tuple(numbers)


def check() -> None:
    """Raise ConfigError (exit 2) when the SQLAlchemy or Alembic an import would load is outside SUPPORTED.

    The distribution found first on ``sys.path`` (DEPS_TARGET is on it by then) is the one an
    import loads.
    """
    for name, (lowest, refused) in SUPPORTED.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(
                f"{name} is not installed for {sys.executable}; migrate-init {__version__} needs {name} "
                f"{supported_range(name)}. Install a release in that range (requirements.txt pins the image's)."
            ) from None
        found = release(installed)
        if not found or not lowest <= found < refused:
            raise ConfigError(
                f"{name} {installed} is installed, but migrate-init {__version__} runs on {name} "
                f"{supported_range(name)} only. Pin a release in that range in your derived image "
                '(docs/image.md, "A project pinned to another SQLAlchemy"), or use a migrate-init release '
                f"that supports {name} {installed}."
            )
