"""The package installs with pip, offline, and says the version written in migrate_init/__init__.py.

A copy of what pyproject.toml packages is installed into a fresh venv with
``--no-build-isolation --no-index``: the build uses the setuptools and wheel
of the interpreter running the tests, so no package index is needed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.process import child_env

#: What pyproject.toml needs to build the distribution.
SOURCES = ("pyproject.toml", "README.md", "requirements.txt")


def source_version() -> str:
    """``__version__`` as written in migrate_init/__init__.py (read, not imported)."""
    tree = ast.parse((REPO / "migrate_init" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return node.value.value
    raise AssertionError("migrate_init/__init__.py assigns no __version__")


def pinned_requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.replace(" ", "") for line in lines if line.strip() and not line.lstrip().startswith("#")]


def run(*argv: object, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # PIP_CONFIG_FILE: this machine's pip configuration (an index, find-links) stays out.
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env({"PIP_CONFIG_FILE": os.devnull, **(env_extra or {})}),
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with migrate-init installed from a copy of the sources; its folder."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "migrate_init", source / "migrate_init", ignore=shutil.ignore_patterns("__pycache__"))
    folder = root / "venv"
    made = run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", folder, cwd=root)
    assert made.returncode == 0, made.stdout + made.stderr
    python = folder / "bin" / "python"
    # The test interpreter's packages behind the venv's own: pip, setuptools and wheel to
    # build with, and the runtime dependencies that --no-deps leaves out.
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root)
    assert purelib.returncode == 0, purelib.stderr
    (Path(purelib.stdout.strip()) / "_test_interpreter.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(
        python,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        source,
        cwd=root,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return folder


def assert_says_version(result: subprocess.CompletedProcess) -> None:
    version = source_version()
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"(?<![\w.]){re.escape(version)}(?![\w.])", result.stdout), (version, result.stdout)


def test_console_script_prints_the_version_from_migrate_init(venv, tmp_path):
    assert_says_version(run(venv / "bin" / "migrate-init", "--version", cwd=tmp_path))


def test_python_dash_m_migrate_init_prints_the_same_version(venv, tmp_path):
    assert_says_version(run(venv / "bin" / "python", "-m", "migrate_init", "--version", cwd=tmp_path))


def test_installed_distribution_has_the_version_and_the_pins_of_requirements_txt(venv, tmp_path):
    code = (
        "import importlib.metadata as m, json, migrate_init\n"
        "d = m.distribution('migrate-init')\n"
        "print(json.dumps([d.version, d.requires or [], migrate_init.__file__]))\n"
    )
    result = run(venv / "bin" / "python", "-c", code, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    version, requires, module = json.loads(result.stdout)
    assert version == source_version()
    assert sorted(r.replace(" ", "") for r in requires) == sorted(pinned_requirements())
    assert Path(module).is_relative_to(venv), f"imported {module}, not the installed copy"
