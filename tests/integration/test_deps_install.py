"""migrate_init.deps with real pip, tiny wheels built here, and no index (issue 3).

What deps decides before pip runs (satisfied, skipped, refused) is in tests/unit/test_deps.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import packaging
import pytest

from migrate_init import deps
from migrate_init.errors import DependencyInstallFailed
from tests.support import REPO
from tests.support.process import child_env, operator_env, run_split
from tests.support.wheelhouse import build_wheel, ensure, sha256, snapshot, tiny_wheelhouse


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    return tiny_wheelhouse(tmp_path / "wheelhouse")


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "data" / "python-deps"


def imported_version(target: Path, module: str) -> str:
    """Import ``module`` in a fresh interpreter with ``target`` in front, as an app would."""
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.VERSION, {module}.__file__)"],
        env=child_env({"PYTHONPATH": str(target)}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[1].startswith(str(target)), out
    return out[0]


def test_missing_package_is_installed_from_a_wheelhouse_with_no_index(wheelhouse, target):
    installed = ensure(["tinydep==1.0"], target, wheelhouse)

    assert installed == ["tinydep==1.0"]
    assert imported_version(target, "tinydep") == "1.0"


def test_second_run_installs_nothing(wheelhouse, target):
    ensure(["tinydep==1.0"], target, wheelhouse)
    before = snapshot(target)

    assert ensure(["tinydep==1.0"], target, wheelhouse) == []
    assert snapshot(target) == before


def test_wrong_version_in_target_is_replaced(wheelhouse, target):
    ensure(["tinydep==1.0"], target, wheelhouse)

    assert ensure(["tinydep>=2"], target, wheelhouse) == ["tinydep>=2"]
    assert imported_version(target, "tinydep") == "2.0"
    assert sorted(p.name for p in target.glob("tinydep-*.dist-info")) == ["tinydep-2.0.dist-info"]


def test_dependencies_of_a_missing_package_come_along(wheelhouse, target):
    assert ensure(["tinyapp"], target, wheelhouse) == ["tinyapp"]
    assert imported_version(target, "tinyapp") == "1.0"
    assert imported_version(target, "tinydep") == "2.0"


def test_requirements_file_with_comments_and_nested_file(wheelhouse, target, tmp_path):
    (tmp_path / "more.txt").write_text("tinydep==2.0  # pinned for tinyapp\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# the application's extras\n-r more.txt\ntinyapp \\\n  ==1.0\nsqlalchemy>=2\n")

    installed = ensure([], target, wheelhouse, requirements_file=str(requirements))

    assert installed == ["tinydep==2.0", "tinyapp ==1.0"]
    assert imported_version(target, "tinyapp") == "1.0"
    assert ensure([], target, wheelhouse, requirements_file=str(requirements)) == []


def test_requirements_file_with_hashes_installs_when_they_match(wheelhouse, target, tmp_path):
    wheel = wheelhouse / "tinydep-1.0-py3-none-any.whl"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"tinydep==1.0 \\\n    --hash=sha256:{sha256(wheel)}\n")

    assert ensure([], target, wheelhouse, requirements_file=str(requirements)) == ["tinydep==1.0"]
    assert imported_version(target, "tinydep") == "1.0"


def test_requirements_file_with_a_wrong_hash_fails_and_installs_nothing(wheelhouse, target, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"tinydep==1.0 --hash=sha256:{'0' * 64}\n")

    with pytest.raises(DependencyInstallFailed) as failed:
        ensure([], target, wheelhouse, requirements_file=str(requirements))

    assert failed.value.exit_code == 9
    assert "DO NOT MATCH THE HASHES" in str(failed.value)
    assert not list(target.glob("tinydep*"))


def test_requirements_file_options_are_passed_on_and_satisfied_lines_are_not_reinstalled(target, tmp_path):
    # the wheelhouse is named in the file itself, relative to it, and holds only tinydep:
    # sqlalchemy (satisfied by the image) must not be asked of pip
    build_wheel(tmp_path / "reqs" / "wheels", "tinydep", "1.0")
    requirements = tmp_path / "reqs" / "requirements.txt"
    requirements.write_text("--no-index\n--find-links wheels\nsqlalchemy>=2\ntinydep==1.0\n")

    installed = deps.ensure([], str(requirements), str(target), find_links=None, no_index=False)

    assert installed == ["tinydep==1.0"]
    assert imported_version(target, "tinydep") == "1.0"
    assert not list(target.glob("sqlalchemy*"))


def test_extra_packages_and_a_hashed_requirements_file_together(wheelhouse, target, tmp_path):
    wheel = wheelhouse / "tinydep-2.0-py3-none-any.whl"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"tinydep==2.0 --hash=sha256:{sha256(wheel)}\n")
    build_wheel(wheelhouse, "tinyextra", "1.0")

    installed = ensure(["tinyextra"], target, wheelhouse, requirements_file=str(requirements))

    assert installed == ["tinyextra", "tinydep==2.0"]
    assert imported_version(target, "tinyextra") == "1.0"
    assert imported_version(target, "tinydep") == "2.0"


def test_local_wheel_path_in_requirements_file_is_checked_by_its_file_name(wheelhouse, target, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{wheelhouse / 'tinydep-1.0-py3-none-any.whl'}\n")

    assert ensure([], target, wheelhouse, requirements_file=str(requirements)) == [
        str(wheelhouse / "tinydep-1.0-py3-none-any.whl")
    ]
    assert imported_version(target, "tinydep") == "1.0"
    assert ensure([], target, wheelhouse, requirements_file=str(requirements)) == []


def test_hashes_are_required_for_every_requirement_once_one_has_them(wheelhouse, target, tmp_path):
    wheel = wheelhouse / "tinydep-2.0-py3-none-any.whl"
    requirements = tmp_path / "requirements.txt"
    # tinyapp has no hash: --require-hashes semantics refuse the whole file
    requirements.write_text(f"tinydep==2.0 --hash=sha256:{sha256(wheel)}\ntinyapp==1.0\n")

    with pytest.raises(DependencyInstallFailed, match=r"(?i)hash"):
        ensure([], target, wheelhouse, requirements_file=str(requirements))
    assert not list(target.glob("tiny*"))


def test_failing_install_raises_with_the_tail_of_pips_error(wheelhouse, target):
    with pytest.raises(DependencyInstallFailed) as failed:
        ensure(["tinydep==1.0", "no-such-package-anywhere==9.9"], target, wheelhouse)

    message = str(failed.value)
    assert failed.value.exit_code == 9
    assert "no-such-package-anywhere==9.9" in message
    assert "No matching distribution found for no-such-package-anywhere==9.9" in message
    assert "PIP_FIND_LINKS" in message


def test_venv_without_pip_installs_with_the_base_interpreters_pip(wheelhouse, tmp_path):
    """The image's venv has no pip (Dockerfile): the base interpreter's pip does the work."""
    if not _base_python_has_pip():
        pytest.fail(f"the base interpreter {sys.base_prefix} has no pip; this test needs one")
    env_dir = tmp_path / "venv-without-pip"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # packaging only (not pip) next to the repository, as in the image
    libs = tmp_path / "libs"
    shutil.copytree(Path(packaging.__file__).parent, libs / "packaging")
    target = tmp_path / "deps"
    script = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('pip') is None, 'this venv must not have pip'\n"
        "from migrate_init import deps\n"
        "print(deps.pip_command()[0])\n"
        f"print(deps.ensure(['tinydep==2.0'], None, {str(target)!r}, "
        f"find_links={str(wheelhouse)!r}, no_index=True))\n"
    )
    result = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, env=child_env({"PYTHONPATH": f"{REPO}:{libs}"})
    )

    assert result.returncode == 0, result.stdout + result.stderr
    pip_python, installed = result.stdout.splitlines()[-2:]
    assert not pip_python.startswith(str(env_dir))
    assert installed == "['tinydep==2.0']"
    assert imported_version(target, "tinydep") == "2.0"


def _base_python_has_pip() -> bool:
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return subprocess.run([str(base), "-c", "import pip"], capture_output=True).returncode == 0


# --- credentials in requirement URLs (issue 25, N27) ------------------------------------------

_TOKENS = ("ghpTOKENone4711", "glpatTOKENtwo4712", "userTOKENthree4713", "fileTOKENfour4714")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_token_in_a_requirement_url_is_never_printed_nor_written_to_the_report(
    wheelhouse, tmp_path, sqlite_url, log_format
):
    """``pkg @ git+https://TOKEN@host/...`` and ``https://user:TOKEN@host/...``: pip fails to fetch them
    (nothing answers on 127.0.0.1:9), and neither stderr, stdout nor REPORT_FILE holds a token."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"tinyapp @ https://{_TOKENS[2]}:{_TOKENS[2]}x@127.0.0.1:9/tinyapp-1.0-py3-none-any.whl\n"
        f"file://{_TOKENS[3]}@localhost{wheelhouse}/tinydep-1.0-py3-none-any.whl\n"
    )
    report = tmp_path / "report.json"
    env = operator_env(
        sqlite_url,
        tmp_path,
        REPORT_FILE=report,
        LOG_LEVEL="DEBUG",
        LOG_FORMAT=log_format,
        EXTRA_PIP_PACKAGES=(
            f"tinydep@git+https://{_TOKENS[0]}@127.0.0.1:9/org/tinydep.git "
            f"tinyother@https://oauth2:{_TOKENS[1]}@127.0.0.1:9/tinyother-1.0.tar.gz"
        ),
        PIP_REQUIREMENTS=requirements,
        PIP_FIND_LINKS=wheelhouse,
        PIP_NO_INDEX="true",
        DEPS_TARGET=tmp_path / "deps",
        PIP_RETRIES="0",
        PIP_TIMEOUT="2",
    )
    code, stdout, stderr = run_split(env=env, timeout=180)

    assert code == 9, stderr  # pip could not fetch them: DependencyInstallFailed
    assert "127.0.0.1:9" in stderr  # the host stays readable
    written = report.read_text(encoding="utf-8")
    for token in _TOKENS:
        assert token not in stderr
        assert token not in stdout
        assert token not in written
