"""Issue 5, seeding a fresh database from SEED_DIR, and REPAIR_MISSING_COLUMNS.

The seed files live in tests/fixtures/operator_seed: ``01-admin.sql`` inserts
the admin user, ``02-config.py`` inserts a config row naming the admins it
sees, which proves that the files run in name order.  Seeding once, a failing
seed and the repair run on SQLite, PostgreSQL and MariaDB (``any_url``); on
MariaDB the seed files are the same with MySQL's backquotes for the table
``user`` (``seeds_for``), since seed files are written for their engine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.support import FIXTURES
from tests.support.chains import TARGET
from tests.support.dbstate import add_users, columns, count, drop_user_phone, is_mysql, query, versions
from tests.support.process import operator_env, report_of, run_migrate

SEEDS = FIXTURES / "operator_seed"


def seeds_for(url: str, tmp_path: Path) -> Path:
    """SEEDS as they are, or for MySQL/MariaDB a copy that quotes ``user`` with backquotes."""
    if not is_mysql(url):
        return SEEDS
    folder = tmp_path / "mysql-seeds"
    folder.mkdir(exist_ok=True)
    for source in sorted(SEEDS.iterdir()):
        text = source.read_text().replace('"user"', "`user`").replace('\\"user\\"', "`user`")
        assert '"user"' not in text, text
        (folder / source.name).write_text(text)
    return folder


def _seeded_rows(url):
    return count(url, "user", "WHERE role = 'admin'"), query(url, "SELECT data FROM config")


def test_a_fresh_database_is_seeded_once_in_name_order(any_url, tmp_path):
    report = tmp_path / "report.json"
    env = operator_env(any_url, tmp_path, SEED_DIR=seeds_for(any_url, tmp_path), REPORT_FILE=report)

    result = run_migrate(env=env)

    assert result.code == 0, result.out
    admins, configs = _seeded_rows(any_url)
    assert admins == 1
    assert [json.loads(row[0]) for row in configs] == [{"admins": ["admin"]}]
    assert report_of(report)["seeded"] == ["01-admin.sql", "02-config.py"]
    assert result.out.index("01-admin.sql") < result.out.index("02-config.py")
    assert versions(any_url) == [TARGET]

    result = run_migrate(env=env)

    assert result.code == 0, result.out
    assert _seeded_rows(any_url) == (admins, configs)
    assert "Seeding" not in result.out
    assert report_of(report)["seeded"] == []


def test_an_already_migrated_database_is_never_seeded(sqlite_url, tmp_path):
    assert run_migrate(env=operator_env(sqlite_url, tmp_path)).code == 0

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, SEED_DIR=SEEDS))

    assert result.code == 0, result.out
    assert _seeded_rows(sqlite_url) == (0, [])


def test_a_database_with_data_and_pending_migrations_is_never_seeded(db_url, tmp_path):
    result = run_migrate("upgrade", "70c7b727736e", env=operator_env(db_url, tmp_path))
    assert result.code == 0, result.out
    add_users(db_url, "u1", "u2")

    result = run_migrate(env=operator_env(db_url, tmp_path, SEED_DIR=seeds_for(db_url, tmp_path)))

    assert result.code == 0, result.out
    assert versions(db_url) == [TARGET]
    assert _seeded_rows(db_url) == (0, [])
    assert count(db_url, "user") == 2
    assert "Seeding" not in result.out


def test_a_failing_seed_file_fails_the_run_and_leaves_no_seed_rows(any_url, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(seeds_for(any_url, tmp_path) / "01-admin.sql", seeds)
    shutil.copy(seeds_for(any_url, tmp_path) / "02-config.py", seeds)
    (seeds / "03-broken.sql").write_text("INSERT INTO no_such_table (id) VALUES (1);\n")
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(any_url, tmp_path, SEED_DIR=seeds, REPORT_FILE=report))

    assert result.code != 0, result.out
    assert f"The seed file {seeds / '03-broken.sql'} failed" in result.out
    assert versions(any_url) == [TARGET]
    assert report_of(report)["outcome"] == "seed_failed"
    if is_mysql(any_url):
        # DDL commits at once there: each file is its own transaction, and what committed says so (issue 25 N20).
        assert _seeded_rows(any_url)[0] == 1
        assert report_of(report)["seeded"] == ["01-admin.sql", "02-config.py"]
        assert "(01-admin.sql, 02-config.py) committed and are recorded" in result.out
    else:
        assert _seeded_rows(any_url) == (0, [])
        assert count(any_url, "user") == 0


# --- REPAIR_MISSING_COLUMNS -------------------------------------------------


def test_repair_adds_a_missing_model_column_as_nullable_and_keeps_the_rows(any_url, tmp_path):
    assert run_migrate(env=operator_env(any_url, tmp_path)).code == 0
    add_users(any_url, "u1", "u2")
    drop_user_phone(any_url)

    without = run_migrate(env=operator_env(any_url, tmp_path))

    assert without.code == 7, without.out
    assert "table 'user' lacks columns: phone" in without.out
    assert "phone" not in columns(any_url, "user")

    result = run_migrate(env=operator_env(any_url, tmp_path, REPAIR_MISSING_COLUMNS="true"))

    assert result.code == 0, result.out
    assert "Added missing column 'user.phone' as nullable (REPAIR_MISSING_COLUMNS=true)." in result.out
    assert "phone" in columns(any_url, "user")
    assert query(any_url, 'SELECT id, phone FROM "user" ORDER BY id') == [("u1", None), ("u2", None)]
    assert versions(any_url) == [TARGET]

    again = run_migrate(env=operator_env(any_url, tmp_path, REPAIR_MISSING_COLUMNS="true"))

    assert again.code == 0, again.out
    assert "Added missing column" not in again.out


def test_repair_after_pending_migrations(db_url, tmp_path):
    """A column that no pending migration adds (tool.access_control came in 70c7b727736e)."""
    result = run_migrate("upgrade", "70c7b727736e", env=operator_env(db_url, tmp_path))
    assert result.code == 0, result.out
    query(db_url, "INSERT INTO tool (id, name) VALUES ('t1', 'calc')")
    query(db_url, "ALTER TABLE tool DROP COLUMN access_control")

    result = run_migrate(env=operator_env(db_url, tmp_path, REPAIR_MISSING_COLUMNS="true"))

    assert result.code == 0, result.out
    assert "Added missing column 'tool.access_control'" in result.out
    assert "access_control" in columns(db_url, "tool")
    assert query(db_url, "SELECT id, access_control FROM tool") == [("t1", None)]
    assert versions(db_url) == [TARGET]
