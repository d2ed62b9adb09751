"""The documented release facts and the Kubernetes validation commands, as written.

- Every ``migrate-init:X.Y.Z`` tag that the README, docs/, deploy/, the Dockerfile and
  CONTRIBUTING.md show is the version in migrate_init/__init__.py, and CHANGELOG.md has an
  entry for it: a version bump that forgets one of them fails here.
- The commands under "Validating the manifests" in deploy/kubernetes/README.md run exactly
  as written, from the repository root, and pass (tests/run.sh installs their tools).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from migrate_init import __version__
from tests.support import REPO

KUBERNETES_README = REPO / "deploy" / "kubernetes" / "README.md"
VERSIONED_FILES = sorted(
    [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "Dockerfile", KUBERNETES_README,
     *(REPO / "docs").glob("*.md"), *(REPO / "deploy").rglob("*.yaml")],
)
TAG = re.compile(r"\bmigrate-init:(\d+\.\d+\.\d+)\b")


def _section_commands(path, heading: str) -> list[str]:
    """The lines of the ```sh blocks under ``## heading``, up to the next ``## ``."""
    text = path.read_text()
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", VERSIONED_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_documented_image_tag_is_the_package_version(path):
    tags = set(TAG.findall(path.read_text()))
    assert tags <= {__version__}, f"{path.name} shows migrate-init:{tags - {__version__}}; the release is {__version__}"


def test_the_documents_do_show_the_release_tag():
    # Guards the test above against passing because nothing matched.
    shown = [path for path in VERSIONED_FILES if f"migrate-init:{__version__}" in path.read_text()]
    assert REPO / "Dockerfile" in shown and KUBERNETES_README in shown, shown


def test_the_changelog_has_an_entry_for_the_release():
    changelog = (REPO / "CHANGELOG.md").read_text()
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, flags=re.MULTILINE)
    assert entries and entries[0] == __version__, f"CHANGELOG.md's newest entry is {entries[:1]}, not {__version__}"


KUBERNETES_COMMANDS = _section_commands(KUBERNETES_README, "Validating the manifests")


def test_the_kubernetes_readme_shows_validation_commands():
    assert len(KUBERNETES_COMMANDS) >= 3, KUBERNETES_COMMANDS


@pytest.mark.parametrize("command", KUBERNETES_COMMANDS,
                         ids=[f"{i}-{c.split('|')[-1].split()[0].rsplit('/', 1)[-1]}"
                              for i, c in enumerate(KUBERNETES_COMMANDS, 1)])
def test_kubernetes_validation_command_passes_as_written(command):
    # pipefail: a kubectl that fails must not hide behind a validator that read nothing
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
