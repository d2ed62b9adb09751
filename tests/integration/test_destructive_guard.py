"""Issue 5, the destructive-operation guard, both directions, on SQLite and PostgreSQL.

The fixture migrations keep the models valid either way: ``a1...01`` adds
``user.legacy_note`` (not in the models) and ``a1...02`` drops it, so a run
allowed to drop it still passes verification.  Loss is judged by values
(issue 22): the note is filled in where a test means a drop that loses data,
and left NULL where it proves that the default lets a drop of nothing through.
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
    variant.add(
        ADD,
        """
        ops.add_column_if_missing("user", sa.Column("legacy_note", sa.Text, nullable=True))
    """,
        name="add_legacy_note",
    )
    variant.path_drop = variant.add(
        DROP,
        """
        op.create_index("ix_user_email_guard", "user", ["email"])
        op.drop_column("user", "legacy_note")
    """,
        name="drop_legacy_note",
    )
    return variant


def _upgrade_to_add(url, tmp_path, variant, notes=True):
    """Upgrade to ADD and add two users; with ``notes``, each has a legacy_note the drop would lose."""
    result = run_migrate("upgrade", ADD, env=operator_env(url, tmp_path, **variant.env()))
    assert result.code == 0, result.out
    add_users(url, "u1", "u2")
    if notes:
        query(url, "UPDATE \"user\" SET legacy_note = 'keep me'")


def test_dropping_a_column_is_refused_with_exit_8_and_nothing_of_it_applied(db_url, tmp_path, drop_variant):
    _upgrade_to_add(db_url, tmp_path, drop_variant)
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(db_url, tmp_path, REPORT_FILE=report, **drop_variant.env()))

    assert result.code == 8, result.out
    assert f"Migration {DROP} ({drop_variant.path_drop})" in result.out
    # Judged by its effect on the catalog (issue 13), named by what would be lost.
    assert re.search(
        r"column user\.legacy_note \((TEXT|text)\) would be dropped, holding 2 non-NULL value", result.out
    ), result.out
    # The exact setting that allows this revision, and nothing more.
    assert f"ALLOW_DESTRUCTIVE={DROP} " in result.out and "ALLOW_DESTRUCTIVE=true" not in result.out
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
    variant.add(
        "a1b2c3d4e502",
        """
        ops.create_table_if_missing("scratch", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO scratch (id) VALUES (1)")
    """,
        name="add_scratch",
    )
    path = variant.add(
        "a1b2c3d4e503",
        """
        op.execute("DROP TABLE scratch")
    """,
        name="raw_drop",
    )

    result = run_migrate(env=operator_env(db_url, tmp_path, **variant.env()))

    assert result.code == 8, result.out
    assert f"({path})" in result.out and "table scratch" in result.out, result.out
    assert versions(db_url) == ["a1b2c3d4e502"]
    assert "scratch" in snapshot(db_url)["tables"]
    assert count(db_url, "scratch") == 1


def test_a_table_created_and_dropped_in_one_migration_loses_nothing_and_passes(db_url, tmp_path):
    """The guard judges what existed before the migration: a scratch table it made itself is not data."""
    variant = Chain(tmp_path / "migrations")
    variant.add(
        "a1b2c3d4e503",
        """
        ops.create_table_if_missing("scratch", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("DROP TABLE scratch")
    """,
        name="scratch_in_and_out",
    )

    result = run_migrate(env=operator_env(db_url, tmp_path, **variant.env()))

    assert result.code == 0, result.out
    assert versions(db_url) == ["a1b2c3d4e503"]
    assert "scratch" not in snapshot(db_url)["tables"]


def test_sqlite_batch_rebuild_that_adds_a_column_is_not_refused(sqlite_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    variant.add(
        "a1b2c3d4e504",
        """
        with op.batch_alter_table("user", recreate="always") as batch:
            batch.add_column(sa.Column("nickname", sa.String(64), nullable=True))
    """,
        name="batch_add_nickname",
    )
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
    variant.add(
        ADD,
        """
        ops.add_column_if_missing("user", sa.Column("legacy_note", sa.Text, nullable=True))
    """,
        name="add_legacy_note",
    )
    path = variant.add(
        "a1b2c3d4e505",
        """
        with op.batch_alter_table("user", recreate="always") as batch:
            batch.drop_column("legacy_note")
    """,
        name="batch_drop_legacy_note",
    )
    _upgrade_to_add(sqlite_url, tmp_path, variant)

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, **variant.env()))

    assert result.code == 8, result.out
    assert f"({path})" in result.out, result.out
    assert "column user.legacy_note (TEXT) would be dropped, holding 2 non-NULL value(s)" in result.out, result.out
    assert "legacy_note" in columns(sqlite_url, "user")
    assert "_alembic_tmp_user" not in snapshot(sqlite_url)["tables"]
    assert versions(sqlite_url) == [ADD]
    assert count(sqlite_url, "user") == 2


# --- judged by values, allowed by name (issue 22) ------------------------------------


def test_dropping_an_all_null_column_passes_with_the_defaults(db_url, tmp_path, drop_variant):
    _upgrade_to_add(db_url, tmp_path, drop_variant, notes=False)

    result = run_migrate(env=operator_env(db_url, tmp_path, **drop_variant.env()))

    assert result.code == 0, result.out
    assert "legacy_note" not in columns(db_url, "user")
    assert versions(db_url) == [DROP]
    assert count(db_url, "user") == 2


def test_dropping_an_empty_table_passes_with_the_defaults(db_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    variant.add(
        "a1b2c3d4e502",
        """
        ops.create_table_if_missing("scratch", sa.Column("id", sa.Integer, primary_key=True))
    """,
        name="add_scratch",
    )
    variant.add("a1b2c3d4e503", 'op.drop_table("scratch")', name="drop_scratch")
    assert run_migrate("upgrade", "a1b2c3d4e502", env=operator_env(db_url, tmp_path, **variant.env())).code == 0

    result = run_migrate(env=operator_env(db_url, tmp_path, **variant.env()))

    assert result.code == 0, result.out
    assert "scratch" not in snapshot(db_url)["tables"]
    assert versions(db_url) == ["a1b2c3d4e503"]


def _two_drops(tmp_path) -> Chain:
    """ADD adds user.legacy_note and user.legacy_tag; DROP drops the note; DROP2 drops the tag."""
    variant = Chain(tmp_path / "migrations")
    variant.add(
        ADD,
        """
        ops.add_column_if_missing("user", sa.Column("legacy_note", sa.Text, nullable=True))
        ops.add_column_if_missing("user", sa.Column("legacy_tag", sa.Text, nullable=True))
    """,
        name="add_legacy_columns",
    )
    variant.path_drop = variant.add(DROP, 'op.drop_column("user", "legacy_note")', name="drop_legacy_note")
    variant.path_drop2 = variant.add("a1b2c3d4e506", 'op.drop_column("user", "legacy_tag")', name="drop_legacy_tag")
    return variant


def test_the_allow_list_lets_exactly_that_revision_through_and_still_refuses_another(db_url, tmp_path):
    variant = _two_drops(tmp_path)
    _upgrade_to_add(db_url, tmp_path, variant)
    query(db_url, "UPDATE \"user\" SET legacy_tag = 't'")

    result = run_migrate(env=operator_env(db_url, tmp_path, ALLOW_DESTRUCTIVE=DROP, **variant.env()))

    assert result.code == 8, result.out
    assert f"ALLOW_DESTRUCTIVE={DROP} let {DROP} through: column user.legacy_note" in result.out, result.out
    assert f"Migration a1b2c3d4e506 ({variant.path_drop2})" in result.out
    assert "column user.legacy_tag" in result.out and "ALLOW_DESTRUCTIVE=a1b2c3d4e506 " in result.out
    assert versions(db_url) == [DROP]
    assert "legacy_note" not in columns(db_url, "user") and "legacy_tag" in columns(db_url, "user")

    result = run_migrate(env=operator_env(db_url, tmp_path, ALLOW_DESTRUCTIVE=f"{DROP},a1b2c3d4e506", **variant.env()))

    assert result.code == 0, result.out
    assert versions(db_url) == ["a1b2c3d4e506"] and "legacy_tag" not in columns(db_url, "user")
    assert count(db_url, "user") == 2


def test_an_unknown_revision_in_the_allow_list_is_exit_2_naming_it(sqlite_url, tmp_path, drop_variant):
    result = run_migrate(
        env=operator_env(sqlite_url, tmp_path, ALLOW_DESTRUCTIVE=f"{DROP},f00dfeed", **drop_variant.env())
    )

    assert result.code == 2, result.out
    assert "ALLOW_DESTRUCTIVE names f00dfeed, which is not a revision of the scripts" in result.out, result.out
    assert "Applying" not in result.out


def test_a_revision_whose_module_declares_itself_reviewed_passes(db_url, tmp_path, drop_variant):
    text = drop_variant.path_drop.read_text()
    drop_variant.path_drop.write_text(
        text.replace("depends_on = None\n", "depends_on = None\nallow_destructive = True\n")
    )
    _upgrade_to_add(db_url, tmp_path, drop_variant)

    result = run_migrate(env=operator_env(db_url, tmp_path, **drop_variant.env()))

    assert result.code == 0, result.out
    assert f"allow_destructive = True in its module let {DROP} through" in result.out, result.out
    assert "legacy_note" not in columns(db_url, "user")
    assert versions(db_url) == [DROP]


@pytest.mark.parametrize("notes", [True, False], ids=["holding values", "all NULL"])
def test_plan_and_run_give_the_same_verdict(db_url, tmp_path, drop_variant, notes):
    _upgrade_to_add(db_url, tmp_path, drop_variant, notes=notes)
    env = operator_env(db_url, tmp_path, **drop_variant.env())

    planned = run_migrate("plan", env=env)
    ran = run_migrate(env=env)

    # plan exits as run would (issue 24): 8 where run refuses, 0 where it applies.
    assert planned.code == (8 if notes else 0), planned.out
    refusal = f"refused unless ALLOW_DESTRUCTIVE={DROP}"
    if notes:
        assert "-- DESTRUCTIVE: column user.legacy_note" in planned.out and refusal in planned.out, planned.out
        assert ran.code == 8, ran.out
        assert versions(db_url) == [ADD]
    else:
        assert "-- DESTRUCTIVE" not in planned.out, planned.out
        assert ran.code == 0, ran.out
        assert versions(db_url) == [DROP]


# The shapes that refused every real project's fresh install (issue 22): open-webui's
# chat.chat TEXT -> JSON on a table created four revisions earlier, mlflow's
# runs.status VARCHAR(20) -> VARCHAR(9), optuna's drop of two columns of empty tables.
REAL_SHAPES = [
    (
        "c0ffee000001",
        """
        op.create_table("chat_log", sa.Column("id", sa.Integer, primary_key=True), sa.Column("chat", sa.Text))
        op.create_table("exp_runs", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("status", sa.String(20)))
        op.create_table("trial_params", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("param_name", sa.String(50)), sa.Column("old_value", sa.Text))
        op.create_table("trial_values", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("value", sa.Float), sa.Column("old_step", sa.Integer))
    """,
    ),
    ("c0ffee000002", 'op.add_column("chat_log", sa.Column("title", sa.Text))'),
    ("c0ffee000003", 'op.create_index("ix_exp_runs_status", "exp_runs", ["status"])'),
    ("c0ffee000004", 'op.add_column("trial_params", sa.Column("distribution", sa.Text))'),
    (
        "c0ffee000005",
        """
        with op.batch_alter_table("chat_log") as batch:
            batch.alter_column("chat", type_=sa.JSON, existing_type=sa.Text, postgresql_using="chat::json")
        with op.batch_alter_table("exp_runs") as batch:
            batch.alter_column("status", type_=sa.String(9), existing_type=sa.String(20))
    """,
    ),
    (
        "c0ffee000006",
        """
        with op.batch_alter_table("trial_params") as batch:
            batch.drop_column("old_value")
        with op.batch_alter_table("trial_values") as batch:
            batch.drop_column("old_step")
    """,
    ),
]


def _real_shapes(tmp_path) -> Chain:
    variant = Chain(tmp_path / "migrations")
    for revision, body in REAL_SHAPES:
        variant.add(revision, body, name=f"shape_{revision[-1]}")
    return variant


def test_a_fresh_install_of_real_project_shapes_passes_with_the_defaults(db_url, tmp_path):
    variant = _real_shapes(tmp_path)

    result = run_migrate(env=operator_env(db_url, tmp_path, **variant.env()))

    assert result.code == 0, result.out
    assert versions(db_url) == ["c0ffee000006"]
    assert "old_value" not in columns(db_url, "trial_params") and "old_step" not in columns(db_url, "trial_values")


def test_the_same_shapes_on_a_seeded_database_refuse_only_the_drop_of_values(db_url, tmp_path):
    variant = _real_shapes(tmp_path)
    env = operator_env(db_url, tmp_path, **variant.env())
    assert run_migrate("upgrade", "c0ffee000004", env=env).code == 0
    query(db_url, "INSERT INTO chat_log (id, chat) VALUES (1, '{\"a\": 1}')")
    query(db_url, "INSERT INTO exp_runs (id, status) VALUES (1, 'FINISHED')")
    query(db_url, "INSERT INTO trial_params (id, param_name, old_value) VALUES (1, 'x', '0.5')")
    query(db_url, "INSERT INTO trial_values (id, value, old_step) VALUES (1, 0.5, 3)")

    result = run_migrate(env=env)

    # The type changes keep every value; the drops would lose them.
    assert result.code == 8, result.out
    assert "Migration c0ffee000006 (" in result.out and "ALLOW_DESTRUCTIVE=c0ffee000006 " in result.out
    assert "column trial_params.old_value" in result.out and "holding 1 non-NULL value(s)" in result.out
    assert versions(db_url) == ["c0ffee000005"]
    assert "old_value" in columns(db_url, "trial_params")
    assert query(db_url, "SELECT status FROM exp_runs")[0][0] == "FINISHED"

    result = run_migrate(env={**env, "ALLOW_DESTRUCTIVE": "c0ffee000006"})

    assert result.code == 0, result.out
    assert versions(db_url) == ["c0ffee000006"]
