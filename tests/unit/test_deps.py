"""migrate_init.deps decides before pip ever runs: what is satisfied or skipped, and what is refused.

The installs themselves, with real pip and a wheelhouse, are in
tests/integration/test_deps_install.py.
"""

from __future__ import annotations

from pathlib import Path

import packaging
import pytest

from migrate_init.errors import ConfigError, DependencyInstallFailed
from tests.support.wheelhouse import ensure, tiny_wheelhouse


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    return tiny_wheelhouse(tmp_path / "wheelhouse")


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "data" / "python-deps"


def test_packages_of_the_running_interpreter_count_as_installed(wheelhouse, target):
    # names normalised (PyYAML vs pyyaml, Typing_Extensions) and checked by version
    wanted = ["SQLAlchemy>=2", "packaging==" + packaging.__version__, "Typing_Extensions"]

    assert ensure(wanted, target, wheelhouse) == []
    assert not target.exists(), "pip must not have run at all"


def test_requirement_whose_marker_does_not_apply_is_skipped(wheelhouse, target):
    assert ensure(['tinydep==1.0; python_version < "3"'], target, wheelhouse) == []
    assert not target.exists()


def test_unknown_option_in_requirements_file_is_a_config_error(wheelhouse, target, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--use-feature=truststore\ntinydep\n")

    with pytest.raises(ConfigError, match=r"requirements.txt:1 has the option '--use-feature=truststore'"):
        ensure([], target, wheelhouse, requirements_file=str(requirements))


def test_invalid_specifier_is_a_config_error_naming_the_variable(wheelhouse, target):
    with pytest.raises(ConfigError, match="EXTRA_PIP_PACKAGES holds 'tinydep>='") as failed:
        ensure(["tinydep>="], target, wheelhouse)
    assert failed.value.exit_code == 2
    assert not target.exists()


def test_missing_requirements_file_is_a_config_error(wheelhouse, target, tmp_path):
    with pytest.raises(ConfigError, match=r"PIP_REQUIREMENTS names .*nope.txt, which does not exist"):
        ensure([], target, wheelhouse, requirements_file=str(tmp_path / "nope.txt"))


def test_unwritable_target_fails_before_pip_runs(wheelhouse, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(DependencyInstallFailed, match="DEPS_TARGET="):
        ensure(["tinydep"], blocker / "deps", wheelhouse)


def test_an_async_url_asks_for_its_driver_and_greenlet_only_where_neither_the_image_nor_the_target_has_them(target):
    # asyncmy is in no test venv; greenlet and aiosqlite are (requirements-dev.txt).
    from migrate_init.deps import async_driver_requirements

    assert async_driver_requirements("asyncmy", str(target)) == ["asyncmy"]
    (target / "asyncmy").mkdir(parents=True)
    (target / "asyncmy" / "__init__.py").write_text("")
    assert async_driver_requirements("asyncmy", str(target)) == []
    assert async_driver_requirements("aiosqlite", str(target)) == []
    assert async_driver_requirements("psycopg2", str(target)) == []  # a sync driver needs nothing more
