"""Issue 22 item 2: EMPTY_DATABASE and BASELINE_ON_MIGRATE, on the shipped chain.

Real SQLite files and the real PostgreSQL server, migrate.py as a real process.
The third-party proof (jupyterhub and optuna with ``models``, mlflow with
``initial:``) is in test_third_party.py; these prove the setting's own rules.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_any_project import _made_by_create_all
from tests.support.chains import TARGET
from tests.support.dbstate import count, query, tables, versions
from tests.support.process import operator_env, run_migrate, summary_line


def test_empty_database_models_creates_the_schema_stamps_the_heads_and_runs_no_migration(db_url, tmp_path):
    result = run_migrate(env=operator_env(db_url, tmp_path, EMPTY_DATABASE="models"))

    assert result.code == 0, result.out
    line = summary_line(result.out)
    assert "EMPTY_DATABASE=models" in line and f"{TARGET} was stamped; no migration ran" in line, line
    assert "Running upgrade" not in result.out, result.out
    assert versions(db_url) == [TARGET]
    assert "payment" in tables(db_url)
    again = run_migrate(env=operator_env(db_url, tmp_path, EMPTY_DATABASE="models"))
    assert again.code == 0 and "nothing to do" in summary_line(again.out), again.out


def test_empty_database_initial_creates_that_metadata_then_replays_the_chain(sqlite_url, tmp_path):
    # The first revision of the shipped chain creates "user": an initial metadata that
    # already holds an unrelated table proves the order (created first, then the chain).
    package = tmp_path / "initial_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import sqlalchemy as sa\nmetadata = sa.MetaData()\n"
        "sa.Table('legacy_settings', metadata, sa.Column('key', sa.String(50), primary_key=True))\n"
    )
    env = operator_env(sqlite_url, tmp_path, EMPTY_DATABASE="initial:initial_pkg:metadata", PYTHONPATH=str(tmp_path))

    result = run_migrate(env=env)

    assert result.code == 0, result.out
    line = summary_line(result.out)
    assert "OK (exit 0): Built the initial schema from initial_pkg:metadata (1 table(s)" in line, line
    assert f"Upgraded base (empty) -> {TARGET}: 10 migration(s) applied" in line, line
    assert versions(sqlite_url) == [TARGET]
    assert "legacy_settings" in tables(sqlite_url)


def test_empty_database_settings_that_cannot_work_are_refused_with_exit_2(sqlite_url, tmp_path):
    for value in ("create", "initial:", "initial:no colon"):
        result = run_migrate(env=operator_env(sqlite_url, tmp_path, EMPTY_DATABASE=value))
        assert result.code == 2, result.out
        assert "EMPTY_DATABASE=" in summary_line(result.out), result.out
    chain = tmp_path / "chain"
    chain.mkdir()
    no_models = run_migrate(env=operator_env(sqlite_url, tmp_path, EMPTY_DATABASE="models", MIGRATIONS_DIR=str(chain)))
    assert no_models.code == 2 and "MODELS is not set" in summary_line(no_models.out), no_models.out
    assert not Path(sqlite_url.split("///", 1)[1]).exists()


def test_tables_without_a_version_row_are_named_with_the_ways_to_adopt_them_and_models_does_not_apply(db_url, tmp_path):
    _made_by_create_all(db_url, tmp_path)

    result = run_migrate(env=operator_env(db_url, tmp_path, EMPTY_DATABASE="models"))

    # Not empty, so not built from MODELS: replayed from the base (the shipped chain skips
    # tables that exist), after a warning that names what was found and how to adopt it.
    assert "EMPTY_DATABASE=models" not in result.out, result.out
    warning = next(line for line in result.out.splitlines() if "no version row" in line)
    assert "table(s) (chat, config, credit" in warning, warning
    assert f"migrate.py stamp {TARGET}" in warning and "BASELINE_ON_MIGRATE=REV" in warning, warning
    assert result.code == 0, result.out
    assert versions(db_url) == [TARGET]
    assert count(db_url, "user") == 1


def test_baseline_on_migrate_stamps_the_revision_under_the_lock_then_applies_what_follows(db_url, tmp_path):
    _made_by_create_all(db_url, tmp_path)

    result = run_migrate(env=operator_env(db_url, tmp_path, BASELINE_ON_MIGRATE=TARGET))

    assert result.code == 0, result.out
    line = summary_line(result.out)
    assert f"OK (exit 0): Stamped the baseline {TARGET} on 11 existing table(s)" in line, line
    assert f"then: Database is at its target {TARGET}; nothing to do" in line, line
    assert "Acquired the " in result.out.split("stamping")[0], result.out  # under the lock
    assert versions(db_url) == [TARGET]
    assert query(db_url, 'SELECT name FROM "user"') == [("Ann",)]
    unknown = run_migrate(env=operator_env(db_url, tmp_path, BASELINE_ON_MIGRATE="nope"))
    assert unknown.code == 0, unknown.out  # versioned now: the setting no longer applies


def test_baseline_on_migrate_of_an_unknown_revision_exits_2_with_nothing_written(sqlite_url, tmp_path):
    _made_by_create_all(sqlite_url, tmp_path)

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, BASELINE_ON_MIGRATE="no_such_rev"))

    assert result.code == 2, result.out
    assert "BASELINE_ON_MIGRATE=no_such_rev: no such revision" in summary_line(result.out), result.out
    assert versions(sqlite_url) == []
