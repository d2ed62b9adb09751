"""Issue 5, the read-only operator commands: plan, check, verify, lint.

Each test runs migrate.py as a real process on a real SQLite file, a real
PostgreSQL database and a real MariaDB database (``any_url``), then asserts
the exit code, the output an operator reads, and that the database is exactly
as it was (or as the test left it).

``plan`` differs on MariaDB by design: DDL commits at once there, so plan
lists the pending migrations without running them (no SQL), and ``run``
judges each statement before it runs instead.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from tests.support.chains import TARGET, Chain, line_of
from tests.support.dbstate import (
    add_users,
    columns,
    count,
    drop_user_phone,
    is_mysql,
    query,
    snapshot,
    versions,
)
from tests.support.process import kill_group, operator_env, run_migrate, start_migrate

PENDING_AFTER_70C7 = ("abc123def456", "ef6fab585ac1", "24e8f9a7b1c2", TARGET)
#: plan's words on MySQL/MariaDB, where it lists the pending migrations without running them.
NOT_RUN = (
    "migration(s), not run: MySQL/MariaDB commit each DDL statement at once, so plan cannot run "
    "them in a transaction and roll it back."
)


def migrate(url, tmp_path, *args, **extra):
    result = run_migrate(*args, env=operator_env(url, tmp_path, **extra))
    assert result.code == 0, result.out
    return result


# --- plan -------------------------------------------------------------------


def test_plan_lists_pending_migrations_with_their_sql_and_changes_nothing(any_url, tmp_path):
    migrate(any_url, tmp_path, "upgrade", "70c7b727736e")
    add_users(any_url, "u1", "u2")
    before = snapshot(any_url)

    result = run_migrate("plan", env=operator_env(any_url, tmp_path))

    assert result.code == 0, result.out
    assert "current:  70c7b727736e" in result.out
    headers = re.findall(r"^-- \[(\d+)/(\d+)\] (\S+) \((\w+)\)", result.out, re.M)
    assert [h[2] for h in headers] == list(PENDING_AFTER_70C7), result.out
    assert {h[1] for h in headers} == {"4"}
    if is_mysql(any_url):
        # Listed, each with its file, and not run: no SQL, since none was sent.
        assert f"pending:  4 {NOT_RUN}" in result.out, result.out
        assert "ALTER TABLE" not in result.out and "INSERT INTO" not in result.out, result.out
        assert "/versions/ef6fab585ac1_add_user_phone_column.py" in result.out
    else:
        # The SQL of each pending migration, not of the ones already applied.
        assert re.search(r'^ALTER TABLE "?user"? ADD COLUMN phone VARCHAR\(32\);$', result.out, re.M), result.out
        assert re.search(r"^ALTER TABLE \"?flux_task\"? ADD COLUMN cloud_image_url TEXT;$", result.out, re.M)
    assert "CREATE TABLE" not in result.out
    assert "DESTRUCTIVE" not in result.out
    # Nothing changed: not the schema, not the version, not the rows.
    assert snapshot(any_url) == before
    assert versions(any_url) == ["70c7b727736e"]
    assert "phone" not in columns(any_url, "user")
    assert count(any_url, "user") == 2


def test_plan_on_an_empty_database_creates_no_table(any_url, tmp_path):
    if any_url.startswith("sqlite"):
        # plan opens an existing file and never creates one (issue 12): an empty file is an empty database.
        path = Path(any_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
    result = run_migrate("plan", env=operator_env(any_url, tmp_path))

    assert result.code == 0, result.out
    assert "current:  base (empty)" in result.out
    assert "pending:  10 migration(s)" in result.out
    if is_mysql(any_url):
        assert f"pending:  10 {NOT_RUN}" in result.out, result.out
        assert "CREATE TABLE" not in result.out, result.out
    else:
        assert re.search(r'^CREATE TABLE "?user"? \(', result.out, re.M), result.out
    assert snapshot(any_url) == {"tables": {}, "versions": []}


def test_plan_on_a_missing_sqlite_file_exits_3_and_creates_nothing(sqlite_url, tmp_path):
    result = run_migrate("plan", env=operator_env(sqlite_url, tmp_path))

    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert result.code == 3, result.out
    assert f"The SQLite database {path} does not exist" in result.out, result.out
    assert not path.exists() and not path.parent.exists()


def test_plan_flags_a_destructive_statement_without_refusing_or_applying_it(any_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    variant.add(
        "a1b2c3d4e501",
        """
        ops.add_column_if_missing("user", sa.Column("legacy_note", sa.Text, nullable=True))
    """,
        name="add_legacy_note",
    )
    variant.add(
        "a1b2c3d4e502",
        """
        op.drop_column("user", "legacy_note")
    """,
        name="drop_legacy_note",
    )
    migrate(any_url, tmp_path)
    before = snapshot(any_url)

    result = run_migrate("plan", env=operator_env(any_url, tmp_path, **variant.env()))

    # plan exits as run would (issue 24): the column holds nothing, so run would apply it (exit 0).
    assert result.code == 0, result.out
    assert re.search(r"^-- \[2/2\] a1b2c3d4e502 \(drop_legacy_note\)", result.out, re.M), result.out
    if is_mysql(any_url):
        _plan_lists_and_run_refuses_the_drop_before_it_runs(any_url, tmp_path, variant, result.out, before)
        return
    # The guard's verdict, as `run` would give it (issue 22): the column was made by the
    # revision before, in the same run, and holds nothing, so its drop loses nothing.
    # (test_destructive_guard.py::test_plan_and_run_give_the_same_verdict covers a drop of values.)
    assert "DESTRUCTIVE" not in result.out, result.out
    assert re.search(r'^ALTER TABLE "?user"? DROP COLUMN legacy_note;$', result.out, re.M), result.out
    assert snapshot(any_url) == before
    assert versions(any_url) == [TARGET]


def _plan_lists_and_run_refuses_the_drop_before_it_runs(url, tmp_path, variant, out, before):
    """MySQL/MariaDB: plan runs nothing, so it cannot judge the effect; `run` judges the
    DROP before sending it, refuses it (exit 8), and the column and its rows stay."""
    assert f"pending:  2 {NOT_RUN}" in out, out
    assert "DROP COLUMN" not in out and "DESTRUCTIVE" not in out, out
    assert snapshot(url) == before
    add_users(url, "u1")
    assert run_migrate("upgrade", "a1b2c3d4e501", env=operator_env(url, tmp_path, **variant.env())).code == 0
    query(url, "UPDATE user SET legacy_note = 'keep me'")  # values the drop would lose (issue 22)

    result = run_migrate(env=operator_env(url, tmp_path, **variant.env()))

    assert result.code == 8, result.out
    assert "column user.legacy_note" in result.out and "would be dropped, holding 1 non-NULL" in result.out, result.out
    assert versions(url) == ["a1b2c3d4e501"]
    assert "legacy_note" in columns(url, "user")
    assert count(url, "user") == 1


# --- check and verify (and plan at target) --------------------------------


def test_at_target_plan_check_and_verify_pass_and_a_dropped_column_fails_check_and_verify(any_url, tmp_path):
    migrate(any_url, tmp_path)
    add_users(any_url, "u1", "u2", "u3")
    query(any_url, "INSERT INTO chat (id, user_id, title) VALUES ('c1', 'u1', 'hello')")
    before = snapshot(any_url)

    plan = run_migrate("plan", env=operator_env(any_url, tmp_path))
    check = run_migrate("check", env=operator_env(any_url, tmp_path))
    verify = run_migrate("verify", env=operator_env(any_url, tmp_path))

    assert plan.code == 0, plan.out
    assert "Nothing to apply" in plan.out
    assert check.code == 0, check.out
    assert "No drift" in check.out
    assert verify.code == 0, verify.out
    assert re.search(r"Existing rows: chat=1, user=3$", verify.out, re.M), verify.out
    assert f"OK (exit 0): Every table and column of MODELS exists (revision {TARGET})" in verify.out
    assert snapshot(any_url) == before

    drop_user_phone(any_url)
    query(any_url, "DROP TABLE payment")
    check = run_migrate("check", env=operator_env(any_url, tmp_path))
    verify = run_migrate("verify", env=operator_env(any_url, tmp_path))

    assert check.code == 1, check.out
    assert "2 difference(s)" in check.out, check.out
    assert "column 'user.phone' is in the models but not in the database" in check.out
    assert "table 'payment' is in the models but not in the database" in check.out
    assert verify.code == 7, verify.out
    assert "missing tables: payment; table 'user' lacks columns: phone" in verify.out
    assert "REPAIR_MISSING_COLUMNS=true" in verify.out
    assert "phone" not in columns(any_url, "user")
    assert count(any_url, "user") == 3


def test_check_reports_a_column_and_a_table_added_by_hand(any_url, tmp_path):
    migrate(any_url, tmp_path)
    query(any_url, 'ALTER TABLE "user" ADD COLUMN nickname VARCHAR(40)')
    query(any_url, "CREATE TABLE audit_note (id INTEGER PRIMARY KEY, body TEXT)")
    before = snapshot(any_url)

    result = run_migrate("check", env=operator_env(any_url, tmp_path))

    assert result.code == 1, result.out
    assert "2 difference(s)" in result.out, result.out
    assert "column 'user.nickname' is in the database but not in the models" in result.out
    assert "table 'audit_note' is in the database but not in the models" in result.out
    assert snapshot(any_url) == before


# --- lint -------------------------------------------------------------------


def test_lint_passes_the_shipped_migrations(tmp_path):
    result = run_migrate("lint", env=operator_env(f"sqlite:///{tmp_path}/unused.db", tmp_path))

    assert result.code == 0, result.out
    assert "No findings" in result.out
    assert not (tmp_path / "unused.db").exists()


# (body of the new revision, the line the finding must point at, words of the finding)
LINT_CASES = {
    "drop_column": (
        """
        ops.add_column_if_missing("user", sa.Column("legacy_note", sa.Text, nullable=True))
        op.drop_column("user", "legacy_note")
        """,
        'op.drop_column("user", "legacy_note")',
        "destructive: drop_column(): drop column",
    ),
    "type_change": (
        """
        op.alter_column("user", "phone", type_=sa.String(64))
        """,
        "op.alter_column(",
        "destructive: alter_column(type_=...): changes a column's type",
    ),
    "column_rename": (
        """
        op.alter_column("user", "phone", new_column_name="mobile")
        """,
        "op.alter_column(",
        "destructive: alter_column(new_column_name=...): renames a column",
    ),
    "table_rename": (
        """
        op.rename_table("payment", "payments")
        """,
        "op.rename_table(",
        "destructive: rename_table(): rename table",
    ),
    "not_null_without_default": (
        """
        if not ops.column_exists("user", "tier"):
            op.add_column("user", sa.Column("tier", sa.Integer, nullable=False))
        """,
        "op.add_column(",
        "destructive: add_column(): NOT NULL column without a server_default",
    ),
    "raw_drop_table": (
        """
        ops.create_table_if_missing("scratch", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("DROP TABLE scratch")
        """,
        'op.execute("DROP TABLE scratch")',
        "destructive: execute(): drop table scratch",
    ),
    "add_column_without_check": (
        """
        op.add_column("user", sa.Column("nickname", sa.String(40), nullable=True))
        """,
        "op.add_column(",
        "non-idempotent: op.add_column() without an existence check",
    ),
}


def test_lint_reports_file_and_line_of_each_risky_migration(tmp_path):
    variant = Chain(tmp_path / "migrations")
    expected = []
    for number, case in enumerate(LINT_CASES, 1):
        body, needle, words = LINT_CASES[case]
        path = variant.add(f"b0b0b0b0b0{number:02d}", body, name=f"lint_{case}")
        expected.append(f"{path}:{line_of(path, needle)}: {words}")

    result = run_migrate("lint", env=operator_env(f"sqlite:///{tmp_path}/unused.db", tmp_path, **variant.env()))

    assert result.code == 1, result.out
    for line in expected:
        assert line in result.out, f"{line}\nnot in:\n{result.out}"
    # The source pass reports the new revisions only: the shipped ones are clean.
    reported = [line for line in result.out.splitlines() if re.match(r"^/.*\.py:\d+: (destructive|non-)", line)]
    assert all(str(variant.path / "versions" / "b0b0b0b0b0") in line for line in reported), reported
    assert re.search(r"^\d+ finding\(s\) in ", result.out, re.M)


def test_lint_reads_the_sql_a_migration_sends(tmp_path):
    """A drop hidden behind a helper the source pass cannot see is caught in the SQL pass."""
    variant = Chain(tmp_path / "migrations")
    path = variant.add(
        "b0b0b0b0b0b2",
        """
        statement = " ".join(["DROP", "TABLE", "payment"])
        op.execute(statement)
    """,
        name="lint_hidden_drop",
    )

    result = run_migrate("lint", env=operator_env(f"sqlite:///{tmp_path}/unused.db", tmp_path, **variant.env()))

    # A candidate loss seen from an empty database is a warning: run judges the values (issues 22, 24).
    assert result.code == 0 and "[warning]" in result.out and "[error]" not in result.out, result.out
    assert re.search(
        rf"^{re.escape(str(path))}:\d+: destructive: effect of b0b0b0b0b0b2: table payment .* "
        r"would be dropped; `run` refuses it only if values would be lost \(allow it by name: "
        r"ALLOW_DESTRUCTIVE=b0b0b0b0b0b2\) \[warning\]$",
        result.out,
        re.M,
    ), result.out


def test_lint_with_a_mariadb_url_runs_on_a_throw_away_sqlite_file_and_touches_nothing(mysql_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    path = variant.add("b0b0b0b0b0b4", 'op.drop_column("user", "phone")', name="lint_my_drop")

    result = run_migrate("lint", env=operator_env(mysql_url, tmp_path, **variant.env()))

    # A candidate loss seen from an empty database is a warning: run judges the values (issues 22, 24).
    assert result.code == 0 and "[warning]" in result.out and "[error]" not in result.out, result.out
    assert re.search(rf"^{re.escape(str(path))}:\d+: destructive: drop_column", result.out, re.M), result.out
    assert snapshot(mysql_url) == {"tables": {}, "versions": []}


def test_lint_on_postgresql_reads_exact_postgresql_sql_and_leaves_nothing_behind(pg_url, tmp_path):
    """With a PostgreSQL DATABASE_URL the chain runs in a scratch schema that is rolled back."""
    result = run_migrate("lint", env=operator_env(pg_url, tmp_path))

    assert result.code == 0, result.out
    assert "on PostgreSQL (scratch schema migrate_init_lint, rolled back)" in result.out
    assert "No findings" in result.out
    assert query(
        pg_url, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'migrate_init_lint'"
    ) == [(0,)]
    assert snapshot(pg_url)["tables"] == {}  # not even a version table


def test_lint_on_postgresql_adds_squawks_advice_to_its_own_findings(pg_url, tmp_path):
    # squawk-cli (requirements-dev.txt) installs the squawk binary beside this interpreter.
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    assert shutil.which("squawk", path=search), f"squawk is not installed (PATH={search})"
    variant = Chain(tmp_path / "migrations")
    path = variant.add("b0b0b0b0b0b3", 'op.drop_column("user", "phone")', name="lint_pg_drop")

    result = run_migrate("lint", env=operator_env(pg_url, tmp_path, PATH=search, **variant.env()))

    # A candidate loss seen from an empty database is a warning: run judges the values (issues 22, 24).
    assert result.code == 0 and "[warning]" in result.out and "[error]" not in result.out, result.out
    assert f"squawk (advice): {path}: b0b0b0b0b0b3: warning: ban-drop-column" in result.out
    assert re.search(rf"^{re.escape(str(path))}:\d+: destructive: drop_column", result.out, re.M), result.out
    # The rules the runtime covers (DDL_LOCK_TIMEOUT, MIGRATION_TIMEOUT) are not repeated.
    assert "require-lock-timeout" not in result.out


def test_wait_waits_for_a_sqlite_file_the_migrator_has_not_created_yet(sqlite_url, tmp_path):
    """`wait` beside a Job: the file appears when the migrator starts, and then reaches its target."""
    env = operator_env(sqlite_url, tmp_path, DB_WAIT_TIMEOUT=30, LOCK_TIMEOUT=30, MIGRATION_TIMEOUT=30)
    waiter = start_migrate("wait", env=env)
    try:
        time.sleep(1.5)  # the waiter has found no file yet
        assert waiter.poll() is None, waiter.stdout.read() if waiter.stdout else ""
        migrated = run_migrate(env=env)
        assert migrated.code == 0, migrated.out
        out, _ = waiter.communicate(timeout=60)
    finally:
        kill_group(waiter)

    assert waiter.returncode == 0, out
    assert "Database reached its target" in out, out


def test_wait_on_a_database_at_the_heads_but_short_of_models_is_exit_7_at_once(sqlite_url, tmp_path):
    env = operator_env(sqlite_url, tmp_path, LOCK_TIMEOUT=60, MIGRATION_TIMEOUT=60)
    assert run_migrate(env=env).code == 0
    drop_user_phone(sqlite_url)
    started = time.monotonic()

    result = run_migrate("wait", env=env)

    assert result.code == 7, result.out
    assert "table 'user' lacks columns: phone" in result.out, result.out
    assert time.monotonic() - started < 30, "it waited for a migrator that will never add the column"
