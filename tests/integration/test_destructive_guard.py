"""Issue 5, the destructive-operation guard, both directions, on SQLite and PostgreSQL.

The fixture migrations keep the models valid either way: ``a1...01`` adds
``user.legacy_note`` (not in the models) and ``a1...02`` drops it, so a run
allowed to drop it still passes verification.
"""

from __future__ import annotations

import re

import pytest

from tests.support.chains import Chain
from tests.support.dbstate import add_users, columns, count, query, snapshot, versions
from tests.support.process import operator_env, report_of, run_migrate

ADD, DROP = "a1b2c3d4e501", "a1b2c3d4e502"


@pytest.fixture
def drop_variant(tmp_path) -> Chain:
    variant = Chain(tmp_path / "migrations")
    variant.add(ADD, """
        ops.add_column_if_missing("user", sa.Column("legacy_note", sa.Text, nullable=True))
    """, name="add_legacy_note")
    variant.path_drop = variant.add(DROP, """
        op.create_index("ix_user_email_guard", "user", ["email"])
        op.drop_column("user", "legacy_note")
    """, name="drop_legacy_note")
    return variant


def _upgrade_to_add(url, tmp_path, variant):
    result = run_migrate("upgrade", ADD, env=operator_env(url, tmp_path, **variant.env()))
    assert result.code == 0, result.out
    add_users(url, "u1", "u2")


def test_dropping_a_column_is_refused_with_exit_8_and_nothing_of_it_applied(db_url, tmp_path, drop_variant):
    _upgrade_to_add(db_url, tmp_path, drop_variant)
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(db_url, tmp_path, REPORT_FILE=report, **drop_variant.env()))

    assert result.code == 8, result.out
    assert f"Migration {DROP} ({drop_variant.path_drop})" in result.out
    # Judged by its effect on the catalog (issue 13), named by what would be lost.
    assert re.search(r"column user\.legacy_note \((TEXT|text)\) would be dropped", result.out), result.out
    assert "ALLOW_DESTRUCTIVE=true" in result.out
    # Nothing of the refused migration: not its index (sent before the drop), not the drop, not the version.
    assert "legacy_note" in columns(db_url, "user")
    assert versions(db_url) == [ADD]
    assert count(db_url, "user") == 2
    assert "ix_user_email_guard" not in snapshot(db_url)["tables"]["user"]["indexes"]
    summary = report_of(report)
    assert (summary["outcome"], summary["exit_code"]) == ("destructive_refused", 8)
    assert summary["fallback_used"] is False


def test_dropping_a_column_is_applied_with_allow_destructive(db_url, tmp_path, drop_variant):
    _upgrade_to_add(db_url, tmp_path, drop_variant)

    result = run_migrate(env=operator_env(db_url, tmp_path, ALLOW_DESTRUCTIVE="true", **drop_variant.env()))

    assert result.code == 0, result.out
    assert "legacy_note" not in columns(db_url, "user")
    assert versions(db_url) == [DROP]
    assert count(db_url, "user") == 2


def test_raw_drop_table_sql_is_refused(db_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    variant.add("a1b2c3d4e502", """
        ops.create_table_if_missing("scratch", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO scratch (id) VALUES (1)")
    """, name="add_scratch")
    path = variant.add("a1b2c3d4e503", """
        op.execute("DROP TABLE scratch")
    """, name="raw_drop")

    result = run_migrate(env=operator_env(db_url, tmp_path, **variant.env()))

    assert result.code == 8, result.out
    assert f"({path})" in result.out and "table scratch" in result.out, result.out
    assert versions(db_url) == ["a1b2c3d4e502"]
    assert "scratch" in snapshot(db_url)["tables"]
    assert count(db_url, "scratch") == 1


def test_a_table_created_and_dropped_in_one_migration_loses_nothing_and_passes(db_url, tmp_path):
    """The guard judges what existed before the migration: a scratch table it made itself is not data."""
    variant = Chain(tmp_path / "migrations")
    variant.add("a1b2c3d4e503", """
        ops.create_table_if_missing("scratch", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("DROP TABLE scratch")
    """, name="scratch_in_and_out")

    result = run_migrate(env=operator_env(db_url, tmp_path, **variant.env()))

    assert result.code == 0, result.out
    assert versions(db_url) == ["a1b2c3d4e503"]
    assert "scratch" not in snapshot(db_url)["tables"]


def test_sqlite_batch_rebuild_that_adds_a_column_is_not_refused(sqlite_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    variant.add("a1b2c3d4e504", """
        with op.batch_alter_table("user", recreate="always") as batch:
            batch.add_column(sa.Column("nickname", sa.String(64), nullable=True))
    """, name="batch_add_nickname")
    result = run_migrate(env=operator_env(sqlite_url, tmp_path))
    assert result.code == 0, result.out
    add_users(sqlite_url, "u1", "u2", "u3")
    before = _create_sql(sqlite_url)

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, **variant.env()))

    assert result.code == 0, result.out
    # The table really was rebuilt (SQLite keeps the new CREATE statement), and was let through.
    # (ALTER TABLE ADD COLUMN would append to the old statement; a rename quotes the name.)
    assert before.startswith("CREATE TABLE user (")
    assert _create_sql(sqlite_url).startswith('CREATE TABLE "user" ('), _create_sql(sqlite_url)
    assert "nickname" in columns(sqlite_url, "user")
    assert "phone" in columns(sqlite_url, "user")
    assert versions(sqlite_url) == ["a1b2c3d4e504"]
    assert count(sqlite_url, "user") == 3


def _create_sql(url) -> str:
    return query(url, "SELECT sql FROM sqlite_master WHERE name = 'user'")[0][0]


def test_sqlite_batch_rebuild_that_drops_a_column_is_refused(sqlite_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    variant.add(ADD, """
        ops.add_column_if_missing("user", sa.Column("legacy_note", sa.Text, nullable=True))
    """, name="add_legacy_note")
    path = variant.add("a1b2c3d4e505", """
        with op.batch_alter_table("user", recreate="always") as batch:
            batch.drop_column("legacy_note")
    """, name="batch_drop_legacy_note")
    _upgrade_to_add(sqlite_url, tmp_path, variant)

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, **variant.env()))

    assert result.code == 8, result.out
    assert f"({path})" in result.out and "column user.legacy_note (TEXT) would be dropped" in result.out, result.out
    assert "legacy_note" in columns(sqlite_url, "user")
    assert "_alembic_tmp_user" not in snapshot(sqlite_url)["tables"]
    assert versions(sqlite_url) == [ADD]
    assert count(sqlite_url, "user") == 2
