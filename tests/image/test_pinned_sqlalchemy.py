"""A project pinned to another SQLAlchemy, in a derived image: docs/image.md's recipe, built and run (issue 22).

meltano 4.4.1 declares ``sqlalchemy<2.1``; the image ships 2.1.9. docs/image.md ("A project pinned
to another SQLAlchemy") shows a requirements.txt (meltano --no-deps, SQLAlchemy 2.0.58 and what
meltano's migrations import) and a Dockerfile FROM the image. This test takes both from the
document as written, downloads their wheels on the host for the image's Python (containers reach
no index here, as tests/image/setup.sh says), builds the Dockerfile on the image under test with no
network at all, and runs meltano's own chain from the installed package, its env.py as shipped, on
a fresh SQLite database with the defaults (no ALLOW_DESTRUCTIVE).

What a pin outside the range migrate-init runs on does (exit 2 naming both versions) is proved in
tests/integration/test_supported_libraries.py, on real venvs.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.test_image import DATA, data_dir, docker, docker_env, engine, image
from tests.integration.third_party import MELTANO
from tests.support import REPO
from tests.support.dbstate import integrity, sqlite_url, tables, versions
from tests.unit.test_docs_commands import blocks

__all__ = ["data_dir", "docker_env", "engine", "image"]  # fixtures, imported for their use here

DOCUMENT = REPO / "docs" / "image.md"
SECTION = "## A project pinned to another SQLAlchemy"
DATABASE_URL = f"sqlite:///{DATA}/meltano.db"
#: Tables meltano's chain leaves (5b43800443d1 renames job to runs; 6828cc5b1a4f makes state).
MELTANO_TABLES = {"runs", "state", "plugin_settings"}


def recipe() -> tuple[str, str]:
    """(requirements.txt, Dockerfile), exactly as the section of docs/image.md shows them."""
    lines = DOCUMENT.read_text().splitlines()
    first = lines.index(SECTION) + 1
    last = next((n for n in range(first, len(lines)) if lines[n].startswith("## ")), len(lines)) + 1
    inside = [b for b in blocks(DOCUMENT) if first < b.line < last]
    requirements = [b for b in inside if b.language == "text" and b.lines[0].startswith("# requirements.txt")]
    dockerfiles = [b for b in inside if b.language == "dockerfile"]
    assert len(requirements) == 1 and len(dockerfiles) == 1, (requirements, dockerfiles)
    return "\n".join(requirements[0].lines) + "\n", "\n".join(dockerfiles[0].lines) + "\n"


def download_wheels(requirements: Path, dest: Path, python: str) -> None:
    """Binary wheels of ``requirements`` (each line, --no-deps) for ``python`` on this architecture,
    with the platform tags tests/image/setup.sh asks for: manylinux2014 up to bookworm's glibc."""
    arch = platform.machine()
    platforms = [f"manylinux2014_{arch}", *(f"manylinux_2_{minor}_{arch}" for minor in range(17, 37))]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            *(arg for tag in platforms for arg in ("--platform", tag)),
            "--dest",
            str(dest),
            "--requirement",
            str(requirements),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"pip download failed:\n{result.stdout[-4000:]}"


@pytest.fixture(scope="module")
def derived(image, docker_env, tmp_path_factory) -> Iterator[str]:
    """docs/image.md's Dockerfile, built FROM the image under test with no network: its tag."""
    requirements, dockerfile = recipe()
    context = tmp_path_factory.mktemp("pinned-sqlalchemy")
    (context / "requirements.txt").write_text(requirements)
    (context / "Dockerfile").write_text(dockerfile)
    python = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python",
        image.tag,
        "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
        env=docker_env,
        check=True,
    ).out.strip()
    download_wheels(context / "requirements.txt", context / "wheels", python)
    tag = f"migrate-init-pinned-sqlalchemy:{uuid.uuid4().hex[:12]}"
    try:
        build = docker(
            "build",
            "--network",
            "none",
            "--build-arg",
            f"MIGRATE_INIT_IMAGE={image.tag}",
            "--tag",
            tag,
            str(context),
            env=docker_env,
            timeout=900,
        )
        assert build.code == 0, f"the derived image of docs/image.md did not build:\n{build.out}"
        yield tag
    finally:
        docker("rmi", "--force", tag, env=docker_env)


def test_meltano_pinned_to_sqlalchemy_2_0_migrates_from_the_documented_derived_image_built_offline(
    derived, docker_env, data_dir
):
    # The image's SQLAlchemy 2.1.9 (bytecode compiled unchecked) is gone, and Alembic reads
    # meltano's head from the installed package.
    inside = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python",
        derived,
        "-c",
        "import os, sqlalchemy; from alembic.script import ScriptDirectory; "
        "print(sqlalchemy.__version__, *ScriptDirectory(os.environ['MIGRATIONS_DIR']).get_heads())",
        env=docker_env,
        check=True,
    )
    assert inside.out.split() == ["2.0.58", MELTANO.head], inside.out  # and no warning: nothing is missing
    run = (
        "run",
        "--rm",
        "--network",
        "none",
        "--env",
        f"DATABASE_URL={DATABASE_URL}",
        "--volume",
        f"{data_dir}:{DATA}",
        derived,
    )

    first = docker(*run, env=docker_env, timeout=300)

    assert first.code == 0, first.out
    assert f"OK (exit 0): Upgraded base (empty) -> {MELTANO.head}" in first.out, first.out
    assert "FALLBACK USED" not in first.out, first.out
    database = sqlite_url(data_dir / "meltano.db")
    assert versions(database) == [MELTANO.head]
    assert MELTANO_TABLES <= tables(database), tables(database)
    assert "job" not in tables(database)
    assert integrity(database) == [("ok",)]

    # The manifest the Dockerfile's build step wrote: nothing to do, nothing imported.
    second = docker(*run, env=docker_env, timeout=300)

    assert second.code == 0, second.out
    assert f"Database is at its target {MELTANO.head}; nothing to do." in second.out, second.out
    assert versions(database) == [MELTANO.head]
