"""Missing Python packages: the first step of the init sequence (issue 3).

EXTRA_PIP_PACKAGES (requirement specifiers) and PIP_REQUIREMENTS (a requirements
file) name what the application needs besides the image's own packages, for
example a database driver (``pymysql``) or a storage SDK.  Each requirement is
checked against the distributions that are installed, by name and version
specifier (``packaging`` and ``importlib.metadata``), never by trying an
import: an import name need not match its package name (``cos-python-sdk-v5``
is imported as ``qcloud_cos``), and importing runs the package's code.

Only what is missing or at the wrong version is installed, with pip, into
``target`` (DEPS_TARGET, by default a folder on the data volume): the image's
venv stays read-only, and an application container can put the same folder on
its PYTHONPATH.  A second run finds everything there and installs nothing.

This module reads no environment variables: ``config`` does, and the caller
passes the values in.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.machinery import PathFinder
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion

from . import report
from .errors import ConfigError, DependencyInstallFailed
from .url import ASYNC_DRIVERS

_log = logging.getLogger("migrate_init.deps")

#: Lines of pip's output kept in the error message.
ERROR_TAIL_LINES = 20


@dataclass(frozen=True)
class Wanted:
    """One requirement, where it came from, and what the installed set says about it."""

    text: str
    source: str
    requirement: Requirement | None  # None: a path or URL whose name can't be known up front
    args: tuple[str, ...] = ()  # how to ask pip for it; (text,) when empty

    @property
    def pip_args(self) -> tuple[str, ...]:
        return self.args or (self.text,)


@dataclass
class RequirementsFile:
    """What a requirements file (and the files it includes with -r) asks for."""

    wanted: list[Wanted] = field(default_factory=list)
    #: pip options found in the files (-i, -f, --no-index, -c, ...), relative paths resolved
    options: list[str] = field(default_factory=list)
    has_hashes: bool = False


def ensure(
    requirements: Sequence[str],
    requirements_file: str | None,
    target: str,
    *,
    find_links: str | None = None,
    no_index: bool = False,
) -> list[str]:
    """Install the requirements that are missing or at the wrong version into ``target``.

    ``requirements`` are specifiers as in EXTRA_PIP_PACKAGES; ``requirements_file`` is
    a pip requirements file (PIP_REQUIREMENTS).  ``find_links`` (whitespace-separated
    folders or URLs) and ``no_index`` are passed to pip.  Returns what was installed
    (the requirement texts), an empty list when everything was already there.
    Raises DependencyInstallFailed with the tail of pip's output when pip fails.
    """
    wanted = [_parse_specifier(text) for text in requirements]
    file = RequirementsFile()
    if requirements_file:
        _read_requirements_file(Path(requirements_file), file)
    file_wanted = file.wanted

    search_path = _search_path(target)
    missing = [w for w in wanted if not _satisfied(w, search_path)]
    file_missing = [w for w in file_wanted if not _satisfied(w, search_path)]
    if not missing and not file_missing:
        names = ", ".join(w.text for w in [*wanted, *file_wanted]) or "nothing"
        report.event("deps_satisfied", f"Python packages already installed: {names}; nothing to install.")
        return []

    common: list[str] = []
    for link in (find_links or "").split():
        common += ["--find-links", link]
    if no_index:
        common.append("--no-index")
    # Only the missing requirements go to pip: with --target pip ignores what is
    # installed, so a satisfied one (sqlalchemy, say) would be downloaded again, and
    # an offline wheelhouse need not hold it.  The file's own options come along.
    # A file with --hash lines is the exception: pip gets it whole, with
    # --require-hashes, because the dependencies of a missing package must be
    # hashed too and their lines may be among the satisfied ones; EXTRA_PIP_PACKAGES
    # (which carry no hashes) then go to a pip run of their own.
    runs: list[list[str]] = []
    if missing:
        runs.append([*common, *(arg for w in missing for arg in w.pip_args)])
    if file_missing and file.has_hashes:
        runs.append([*common, "--requirement", str(requirements_file), "--require-hashes"])
    elif file_missing:
        runs.append([*common, *file.options, *(arg for w in file_missing for arg in w.pip_args)])
    installing = [w.text for w in [*missing, *file_missing]]

    _prepare_target(target)
    report.event(
        "deps_installing",
        f"Installing {', '.join(installing)} into {target} with pip.",
        packages=installing,
        target=target,
    )
    started = time.monotonic()
    for pip_args in runs:
        before = _dist_info_dirs(target)
        _run_pip(pip_args, target, installing)
        _remove_replaced(target, before)
    importlib.invalidate_caches()

    # paths and URLs without a name (requirement None) can't be checked; pip said yes
    still = [
        w.text
        for w in [*missing, *file_missing]
        if w.requirement is not None and not _satisfied(w, _search_path(target))
    ]
    if still:
        raise DependencyInstallFailed(
            f"pip finished, but {', '.join(still)} is still not installed in {target} "
            "at a matching version. Check the specifiers in EXTRA_PIP_PACKAGES / PIP_REQUIREMENTS."
        )
    _log.debug("pip installed %s in %.1fs", ", ".join(installing), time.monotonic() - started)
    return installing


def async_driver_requirements(driver: str, target: str) -> list[str]:
    """What an async DATABASE_URL needs and is missing: the driver's package and greenlet (issue 22).

    An async env.py (``alembic init -t async``) builds its engine from the
    app's async URL; the image ships neither the async drivers nor greenlet,
    so the dependency step installs them, like EXTRA_PIP_PACKAGES, when
    neither the image nor ``target`` has them.  A cheap look-up by module
    name (each package here is imported under its own name), nothing imported.
    """

    known = ASYNC_DRIVERS.get(driver.lower())
    if known is None:
        return []
    search = [*sys.path, target]
    importlib.invalidate_caches()  # a target that did not exist when last looked at may hold them now
    return [name for name in (known[0], "greenlet") if PathFinder.find_spec(name, search) is None]


# --- what is wanted ----------------------------------------------------------


def _parse_specifier(text: str) -> Wanted:
    try:
        return Wanted(text, "EXTRA_PIP_PACKAGES", Requirement(text))
    except InvalidRequirement as exc:
        raise ConfigError(
            f"EXTRA_PIP_PACKAGES holds {text!r}, which is not a requirement specifier "
            f"({str(exc).splitlines()[0]}). Use forms like 'pymysql' or 'cos-python-sdk-v5==1.9.30', "
            "separated by spaces."
        ) from None


def _read_requirements_file(path: Path, into: RequirementsFile, seen: set[Path] | None = None) -> None:
    """Add what the requirements file ``path`` asks for (following -r) to ``into``."""
    seen = set() if seen is None else seen
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"PIP_REQUIREMENTS names {path}, which does not exist.") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"PIP_REQUIREMENTS names {path}, which cannot be read: {exc}.") from None
    seen.add(path.resolve())

    for number, line in _logical_lines(text):
        # split on whitespace as pip does (not shlex: markers hold quotes)
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{number}"
        if tokens[0].startswith("-"):
            _read_option_line(path, tokens, where, into, seen)
            continue
        # pip's rule: the requirement is the words before the first option (--hash=...)
        words = []
        for token in tokens:
            if token.startswith("-"):
                break
            words.append(token)
        options = tokens[len(words) :]
        if any(o == "--hash" or o.startswith("--hash=") for o in options):
            into.has_hashes = True
        into.wanted.append(_parse_file_requirement(" ".join(words), where))


def _read_option_line(path: Path, tokens: list[str], where: str, into: RequirementsFile, seen: set[Path]) -> None:
    option, value = tokens[0], None
    if "=" in option and option.startswith("--"):
        option, value = option.split("=", 1)
    elif len(option) > 2 and not option.startswith("--"):
        option, value = option[:2], option[2:]  # -rfile, -fURL
    elif len(tokens) > 1:
        value = tokens[1]
    if option in ("-r", "--requirement") and value:
        nested = Path(value) if os.path.isabs(value) else path.parent / value
        if nested.resolve() not in seen:
            _read_requirements_file(nested, into, seen)
    elif option in ("-e", "--editable") and value:
        # an editable install can't be checked by name: always hand it to pip
        into.wanted.append(Wanted(" ".join(tokens), where, None, args=("--editable", value)))
    elif option in ("-f", "--find-links", "-c", "--constraint") and value:
        # pip reads these relative to the requirements file
        local = path.parent / value
        if not os.path.isabs(value) and "://" not in value and local.exists():
            value = str(local)
        into.options += [option, value]
    elif value is not None and option in _OPTIONS_WITH_VALUE:
        into.options += [option, value]
    elif option == "--require-hashes":
        into.has_hashes = True
    elif option in _FLAGS:
        into.options.append(option)
    else:
        raise ConfigError(
            f"PIP_REQUIREMENTS line {where} has the option {tokens[0]!r}, which migrate-init "
            "does not pass on. Remove it, or set it in pip's own configuration (PIP_* variables)."
        )


_OPTIONS_WITH_VALUE = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "--trusted-host",
    "--only-binary",
    "--no-binary",
    "--config-settings",
}
_FLAGS = {"--no-index", "--pre", "--prefer-binary"}


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines with comments removed and backslash continuations joined, as pip reads them."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if line.lstrip().startswith("#"):
            line = ""
        elif " #" in line or "\t#" in line:
            line = line[: min(i for i in (line.find(" #"), line.find("\t#")) if i >= 0)]
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, (pending + line).strip()
        pending = ""
    if pending.strip():
        yield start, pending.strip()


def _parse_file_requirement(text: str, where: str) -> Wanted:
    try:
        return Wanted(text, where, Requirement(text))
    except InvalidRequirement:
        pass
    # a local wheel: its file name carries the name and the version
    name = os.path.basename(text.split("#", 1)[0])
    if name.endswith(".whl"):
        try:
            project, version, _, _ = parse_wheel_filename(name)
            return Wanted(text, where, Requirement(f"{project}=={version}"))
        except (InvalidWheelFilename, InvalidRequirement):
            pass
    if text.startswith((".", "/", "file:", "http:", "https:", "git+", "hg+", "svn+", "bzr+")):
        # an sdist or a URL without a name: pip is the only one who can tell
        return Wanted(text, where, None)
    raise ConfigError(
        f"PIP_REQUIREMENTS line {where} holds {text!r}, which is not a requirement. "
        "Fix the line (see pip's requirements file format)."
    )


# --- what is installed -------------------------------------------------------


def _search_path(target: str) -> list[str]:
    """Where the application will look: ``target`` first (it is put in front of
    sys.path and PYTHONPATH), then this interpreter's own path."""
    paths = [target]
    for entry in sys.path:
        if entry and entry not in paths and os.path.isdir(entry):
            paths.append(entry)
    return paths


def _installed_version(name: str, search_path: list[str]) -> str | None:
    """The version of the first distribution called ``name`` on ``search_path``: the one
    an import would find."""
    key = canonicalize_name(name)
    for dist in importlib.metadata.distributions(path=search_path):
        dist_name = dist.metadata["Name"] if dist.metadata else None
        if dist_name and canonicalize_name(dist_name) == key:
            return dist.version
    return None


def _satisfied(wanted: Wanted, search_path: list[str]) -> bool:
    req = wanted.requirement
    if req is None:
        return False
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return True  # not for this interpreter or platform
    version = _installed_version(req.name, search_path)
    if version is None:
        return False
    if req.url:
        return True  # a direct reference pins a file, not a version: its name is enough
    try:
        return req.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return False


# --- installing --------------------------------------------------------------


def _prepare_target(target: str) -> None:
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        raise DependencyInstallFailed(
            f"Cannot create the package folder DEPS_TARGET={target}: {exc.strerror}. "
            "Point DEPS_TARGET at a writable folder, such as one on the data volume."
        ) from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise DependencyInstallFailed(
            f"The package folder DEPS_TARGET={target} is not writable by this user "
            f"(uid {os.getuid()}). Point DEPS_TARGET at a writable folder, or fix its owner."
        )


def pip_command() -> list[str]:
    """How to run pip: this interpreter's, else the base interpreter's.

    The image's venv is built --without-pip (see the Dockerfile): it saves the
    image about 15 MB, and the base image (python:3.12-slim, or the Debian stand-in)
    ships pip for the very same interpreter.  With ``--target`` that pip installs
    for this Python version, whichever site-packages it lives in.
    """
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        os.path.join(sys.base_prefix, "bin", version),
        os.path.join(sys.base_prefix, "bin", "python3"),
        getattr(sys, "_base_executable", "") or "",
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate, "-m", "pip"]
    raise DependencyInstallFailed(
        f"pip is not available to {sys.executable} nor to the base interpreter in "
        f"{sys.base_prefix}. Use an image whose base ships pip, or install the packages "
        "into DEPS_TARGET beforehand."
    )


def _run_pip(pip_args: list[str], target: str, installing: list[str]) -> None:
    command = [
        *pip_command(),
        "install",
        "--target",
        target,
        # replace a wrong version already in the target folder
        "--upgrade",
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        # HOME may be read-only or missing (arbitrary UID, read-only root)
        "--no-cache-dir",
        "--root-user-action=ignore",
        *pip_args,
    ]
    _log.debug("running %s", shlex.join(command))
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        raise DependencyInstallFailed(f"Cannot run pip ({command[0]}): {exc}.") from None
    for line in result.stdout.splitlines():
        _log.debug("pip: %s", line)
    if result.returncode != 0:
        tail = [line for line in result.stdout.splitlines() if line.strip()][-ERROR_TAIL_LINES:]
        raise DependencyInstallFailed(
            f"pip could not install {', '.join(installing)} into {target} "
            f"(pip exited with {result.returncode}). Check EXTRA_PIP_PACKAGES / "
            "PIP_REQUIREMENTS, and PIP_FIND_LINKS / PIP_NO_INDEX when installing from a "
            "local wheelhouse. pip said:\n" + "\n".join(tail)
        )


def _dist_info_dirs(target: str) -> set[str]:
    try:
        return {entry for entry in os.listdir(target) if entry.endswith(".dist-info")}
    except FileNotFoundError:
        return set()


def _remove_replaced(target: str, before: set[str]) -> None:
    """Remove what pip left behind of the versions it replaced.

    ``pip install --target --upgrade`` overwrites a package's files but keeps the old
    ``<name>-<old>.dist-info`` next to the new one, so the folder would claim two
    versions.  For each distribution pip just wrote, the older ones of the same name
    lose their metadata and the files that only they listed.
    """
    root = Path(target).resolve()
    after = _dist_info_dirs(target)
    dists = {entry: importlib.metadata.PathDistribution(root / entry) for entry in after}
    by_name: dict[str, list[str]] = {}
    for entry, dist in dists.items():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            by_name.setdefault(canonicalize_name(name), []).append(entry)
    for entries in by_name.values():
        fresh = [e for e in entries if e not in before]
        stale = [e for e in entries if e in before]
        if not fresh or not stale:
            continue
        keep = {str(f) for e in fresh for f in (dists[e].files or ())}
        for entry in stale:
            for file in dists[entry].files or ():
                path = (root / file).resolve()
                if str(file) not in keep and root in path.parents and path.is_file():
                    path.unlink()
            shutil.rmtree(root / entry, ignore_errors=True)
            _log.debug("removed %s, replaced by %s", entry, ", ".join(fresh))
