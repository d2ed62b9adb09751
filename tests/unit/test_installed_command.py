"""The ``migrate-init`` command that ``pip install`` gives works from the folder it is run in (issue 24).

A pip-installed package has no migrations/ or data/ beside it (it sits in site-packages): the
command takes migrations/ and data/ from the current folder, says so when migrations/ is missing,
and its usage text names the command, not migrate.py. Same venv as test_packaging.py.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.support import FIXTURES
from tests.unit.test_packaging import run, venv

__all__ = ["venv"]  # the fixture, imported for its use here


def test_installed_command_usage_names_migrate_init(venv, tmp_path):
    result = run(venv / "bin" / "migrate-init", "--help", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("usage: migrate-init "), result.stdout
    assert "migrate.py" not in result.stdout.split("\n\n", 1)[0], result.stdout


def test_installed_command_migrates_the_migrations_folder_of_the_current_folder_into_its_data_folder(venv, tmp_path):
    shutil.copytree(FIXTURES / "docker_custom", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))

    result = run(venv / "bin" / "migrate-init", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    database = tmp_path / "data" / "webui.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("c2",)]
    assert "layer" not in result.stderr, result.stderr  # a project of its own: no shipped-chain wording


def test_installed_command_without_a_migrations_folder_exits_2_naming_migrations_dir(venv, tmp_path):
    result = run(venv / "bin" / "migrate-init", cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"MIGRATIONS_DIR={Path(tmp_path).resolve() / 'migrations'} does not exist" in result.stderr, result.stderr
    assert "migrations/ in the current folder" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()


def test_installed_command_records_a_stop_signal_before_it_imports_the_cli(venv, tmp_path):
    """Issue 25 N32, for the command pip installs: the early handler comes before the CLI's imports,
    as in migrate.py and ``python -m migrate_init`` (the import order, as Python reports it)."""
    result = run(venv / "bin" / "migrate-init", "--help", cwd=tmp_path, env_extra={"PYTHONPROFILEIMPORTTIME": "1"})

    assert result.returncode == 0, result.stdout + result.stderr
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    ]
    ours = [name for name in imported if name.startswith("migrate_init.")]
    assert "migrate_init.cli" in ours, imported
    assert ours[0] == "migrate_init.early", ours  # the first of the package's modules to finish loading
