"""Issue 2, the core: the layered upgrade, the fallback and the integrity check.

Every test runs migrate.py (or the plain alembic CLI) as a real process on a
real SQLite file, a real PostgreSQL database and a real MariaDB database (the
``any_url`` fixture; ``db_url`` where MariaDB would add nothing), and then
asserts the exit code and what the database holds: its tables and columns,
its alembic_version rows and its data.

MySQL/MariaDB commit each DDL statement at once, so a migration that fails
half-way leaves what it did so far; there the tests assert that, and that the
revision is recorded as interrupted (migrate_init/progress.py), instead of
a rollback.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from migrate_init.url import parse as parse_url
from tests.support.chains import REVISIONS, TARGET, Chain
from tests.support.dbstate import (
    HISTORY_TABLE,
    PROGRESS_TABLE,
    all_rows,
    connect,
    in_progress,
    insert_many,
    is_mysql,
    is_sqlite,
    load_models,
    models_schema,
    query,
    running_upgrade_lines,
    schema,
    sqlite_path,
    tables,
    upgrade_count,
    versions,
)
from tests.support.locks import migration_lock_free
from tests.support.process import run_migrate, run_python, summary_line

NEW_REVISION = "c0ffee000001"
BROKEN_REVISION = "c0ffee0000bd"


def env_for(url: str, **extra: object) -> dict[str, str]:
    """The environment of one run: DATABASE_URL plus short waits."""
    return {"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "5", **{k: str(v) for k, v in extra.items()}}


def migrate_ok(url: str, *args: str, **extra: object):
    result = run_migrate(*args, env=env_for(url, **extra))
    assert result.code == 0, result.out
    return result


@pytest.fixture
def migrations_copy(tmp_path) -> Chain:
    """An editable copy of the shipped migrations/ (env.py, models.py, versions/)."""
    return Chain(tmp_path / "core_migrations")


# -- fresh deploy --------------------------------------------------------------


def test_fresh_deploy_applies_each_revision_once_and_builds_the_models_schema(any_url):
    result = run_migrate(env=env_for(any_url))

    assert result.code == 0, result.out
    for revision, _down, name in REVISIONS:
        assert upgrade_count(result.out, revision, name) == 1, (revision, result.out)
    assert len(running_upgrade_lines(result.out)) == len(REVISIONS), result.out
    # The seed's own first line, byte for byte after the logger prefix.
    assert "[alembic.runtime.migration] Running upgrade  -> 7e5b5dc7342b, init" in result.out
    assert versions(any_url) == [TARGET]
    assert schema(any_url) == models_schema()
    assert "OK (exit 0)" in summary_line(result.out)
    assert "verification passed" in summary_line(result.out)
    if is_sqlite(any_url):
        # The data folder did not exist: the product created it.
        assert sqlite_path(any_url).is_file()


def test_models_match_the_head_schema_exactly(any_url):
    migrate_ok(any_url)

    live = schema(any_url)
    expected = models_schema()
    assert set(live) == set(expected), "tables differ"
    for table in expected:
        assert live[table] == expected[table], table
    # Types, nullability and indexes too: autogenerate finds nothing to do
    # (but for migrate-init's own bookkeeping: the history, test_history.py; on MySQL, the record
    # of revisions in progress, test_mysql_engine.py).
    metadata = load_models()
    with connect(any_url) as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: (
                    not (kind == "table" and name in (PROGRESS_TABLE, HISTORY_TABLE))
                ),
            },
        )
        assert compare_metadata(context, metadata) == []


# -- update deploy -------------------------------------------------------------


def _users(n: int) -> list[dict]:
    return [
        {
            "id": f"user-{i:05d}",
            "name": f"Ünïcode user {i} ✓",
            "email": f"user{i}@example.com",
            "role": ("admin", "user", "pending")[i % 3],
            "profile_image_url": f"/static/avatars/{i}.png",
            "last_active_at": 1_700_000_000_000 + i,  # beyond 32 bits
            "updated_at": 1_700_000_000 + 2 * i,
            "created_at": 1_600_000_000 + i,
            "api_key": f"sk-{i:032x}" if i % 2 else None,
            "settings": json.dumps({"ui": {"theme": ("dark", "light")[i % 2]}, "n": i}),
            "info": None if i % 5 else json.dumps({"note": "x" * (i % 97)}),
            "oauth_sub": f"oidc@{i}" if i % 3 == 0 else None,
        }
        for i in range(n)
    ]


def _chats(n: int, users: int) -> list[dict]:
    return [
        {
            "id": f"chat-{i:05d}",
            "user_id": f"user-{i % users:05d}",
            "title": f"Chat {i} — émoji 🚀",
            "chat": json.dumps({"messages": [{"role": "user", "content": f"hello {i} " * (i % 13)}]}),
            "created_at": 1_650_000_000 + i,
            "updated_at": 1_650_000_000 + 3 * i,
            "share_id": f"share-{i}" if i % 11 == 0 else None,
            "archived": i % 7 == 0,
        }
        for i in range(n)
    ]


def test_update_deploy_from_70c7b727736e_keeps_every_row_and_adds_user_phone(any_url):
    base = migrate_ok(any_url, "upgrade", "70c7b727736e")
    assert versions(any_url) == ["70c7b727736e"]
    assert len(running_upgrade_lines(base.out)) == 6, base.out
    assert "phone" not in schema(any_url)["user"]
    insert_many(any_url, "user", _users(1250))
    insert_many(any_url, "chat", _chats(5000, 1250))
    users_before = all_rows(any_url, "user")
    chats_before = all_rows(any_url, "chat")
    assert len(users_before) == 1250 and len(chats_before) == 5000

    result = run_migrate(env=env_for(any_url))

    assert result.code == 0, result.out
    assert versions(any_url) == [TARGET]
    # Only the four pending revisions ran, each once.
    applied = running_upgrade_lines(result.out)
    assert len(applied) == 4, result.out
    assert "Running upgrade 70c7b727736e -> ef6fab585ac1, add_user_phone_column" in result.out
    assert "Running upgrade ef6fab585ac1 -> 24e8f9a7b1c2, add_flux_model_credits_column" in result.out
    assert upgrade_count(result.out, "abc123def456", "add_cloud_urls_to_all_tasks") == 1
    assert upgrade_count(result.out, TARGET, TARGET) == 1
    users_after = all_rows(any_url, "user")
    assert "phone" in schema(any_url)["user"]
    assert [u.pop("phone") for u in users_after] == [None] * 1250
    assert users_after == users_before
    assert all_rows(any_url, "chat") == chats_before
    assert schema(any_url) == models_schema()
    counts = [line for line in result.out.splitlines() if "user=1250" in line]
    assert counts and "chat=5000" in counts[0], result.out


# -- re-run at the target --------------------------------------------------------


def test_rerun_at_target_does_nothing_and_needs_no_lock(any_url):
    migrate_ok(any_url)
    query(any_url, "INSERT INTO config (data, version) VALUES ('{}', 1)")
    lock_file = None
    if is_sqlite(any_url):
        database = sqlite_path(any_url)
        lock_file = database.with_name(database.name + ".migrate.lock")
        lock_file.unlink(missing_ok=True)
    before = schema(any_url)

    result = run_migrate(env=env_for(any_url))

    assert result.code == 0, result.out
    assert running_upgrade_lines(result.out) == []
    assert "nothing to do" in summary_line(result.out)
    assert "lock" not in result.out.lower()
    if lock_file is not None:
        assert not lock_file.exists()
    assert versions(any_url) == [TARGET]
    assert schema(any_url) == before
    assert query(any_url, "SELECT data, version FROM config") == [("{}", 1)]


# -- a migration added after merge_heads_final ------------------------------------

ADD_NICKNAME = 'ops.add_column_if_missing("user", sa.Column("nickname", sa.String(64), nullable=True))'
PHONE_LINE = "    phone: Mapped[str | None] = mapped_column(sa.String(32))  # ef6fab585ac1\n"


def test_migration_added_after_merge_heads_final_is_applied(any_url, migrations_copy):
    migrations_copy.add(NEW_REVISION, ADD_NICKNAME, down=TARGET, name="add_user_nickname")
    migrations_copy.edit_models(
        PHONE_LINE, PHONE_LINE + "    nickname: Mapped[str | None] = mapped_column(sa.String(64))\n"
    )
    migrate_ok(any_url)  # an existing deploy at merge_heads_final, with the shipped scripts
    query(any_url, "INSERT INTO \"user\" (id, name) VALUES ('u1', 'Ada')")

    result = run_migrate(env=env_for(any_url, MIGRATIONS_DIR=migrations_copy.path, MODELS="models:Base"))

    assert result.code == 0, result.out
    assert running_upgrade_lines(result.out) == [
        line
        for line in result.out.splitlines()
        if f"Running upgrade {TARGET} -> {NEW_REVISION}, add_user_nickname" in line
    ]
    assert len(running_upgrade_lines(result.out)) == 1
    assert versions(any_url) == [NEW_REVISION]
    assert "nickname" in schema(any_url)["user"]
    assert schema(any_url) == models_schema(migrations_copy.path)
    assert query(any_url, 'SELECT id, name, nickname FROM "user"') == [("u1", "Ada", None)]


def test_added_migration_without_models_checks_the_revision_only(sqlite_url, migrations_copy):
    migrations_copy.add(NEW_REVISION, ADD_NICKNAME, down=TARGET, name="add_user_nickname")

    result = run_migrate(env=env_for(sqlite_url, MIGRATIONS_DIR=migrations_copy.path))

    assert result.code == 0, result.out
    assert len(running_upgrade_lines(result.out)) == len(REVISIONS) + 1
    assert versions(sqlite_url) == [NEW_REVISION]
    assert "nickname" in schema(sqlite_url)["user"]
    assert "MODELS is not set" in result.out
    assert "Verified" not in result.out


# -- several heads and no merge ----------------------------------------------------


def test_two_heads_without_a_merge_are_both_upgraded_in_neutral_words(any_url, migrations_copy):
    migrations_copy.remove(TARGET)
    env = env_for(any_url, MIGRATIONS_DIR=migrations_copy.path, MODELS="models:Base")
    if any_url.startswith("sqlite"):
        # status opens the file read-only and never creates it (issue 12): give it an empty one.
        path = Path(any_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()

    pending = run_migrate("status", env=env)
    result = run_migrate(env=env)
    done = run_migrate("status", env=env)

    assert pending.code == 1, pending.out
    assert re.search(r"^heads:\s+24e8f9a7b1c2, abc123def456$", pending.out, re.M), pending.out
    assert re.search(r"^pending:\s+9$", pending.out, re.M), pending.out
    # no merge_heads_final: neutral wording, not the shipped chain's layers (issue 24)
    assert re.search(r"^target:\s+every head$", pending.out, re.M), pending.out
    assert result.code == 0, result.out
    assert "Upgrading to every head of the scripts." in result.out and "layer" not in result.out, result.out
    assert len(running_upgrade_lines(result.out)) == len(REVISIONS) - 1
    assert versions(any_url) == ["24e8f9a7b1c2", "abc123def456"]
    assert schema(any_url) == models_schema()
    assert done.code == 0, done.out
    assert re.search(r"^current:\s+24e8f9a7b1c2, abc123def456$", done.out, re.M), done.out
    assert re.search(r"^heads:\s+24e8f9a7b1c2, abc123def456$", done.out, re.M), done.out


def test_migration_target_that_is_not_a_revision_falls_to_layer_2_with_a_warning(sqlite_url):
    result = run_migrate(env=env_for(sqlite_url, MIGRATION_TARGET="no_such_merge"))

    assert result.code == 0, result.out
    assert "layer 2" in result.out and "layer 1" not in result.out, result.out
    assert "MIGRATION_TARGET=no_such_merge" in result.out
    assert versions(sqlite_url) == [TARGET]
    assert schema(sqlite_url) == models_schema()


def test_migration_target_below_the_heads_is_a_waypoint_not_a_ceiling(sqlite_url):
    result = run_migrate(env=env_for(sqlite_url, MIGRATION_TARGET="ef6fab585ac1"))

    assert result.code == 0, result.out
    assert "layer 1" in result.out
    assert len(running_upgrade_lines(result.out)) == len(REVISIONS)
    assert versions(sqlite_url) == [TARGET]


# -- a broken migration ---------------------------------------------------------------

# Creates a table, then fails: nothing of it may survive the rollback.
BROKEN_NEW_MIGRATION = """
ops.create_table_if_missing(
    "audit_log",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event", sa.Text),
)
op.execute("INSERT INTO core_no_such_table (x) VALUES (1)")
"""
AUDIT_LOG_MODEL = """
class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    event: Mapped[str | None] = mapped_column(sa.Text)
"""
# 24e8f9a7b1c2 adds its column, then fails.
BROKEN_24E8 = """
ops.add_column_if_missing("flux_config", sa.Column("model_credits", sa.Text, nullable=True))
op.execute("INSERT INTO core_no_such_table (x) VALUES (1)")
"""
# The same, failing before it adds its column (MySQL would have committed the column).
BROKEN_24E8_AT_ONCE = """
op.execute("INSERT INTO core_no_such_table (x) VALUES (1)")
ops.add_column_if_missing("flux_config", sa.Column("model_credits", sa.Text, nullable=True))
"""
BEFORE_24E8 = ["abc123def456", "ef6fab585ac1"]
#: What a failed migration's message says on MySQL/MariaDB, which cannot roll DDL back.
PARTLY_APPLIED = "may be partly applied: MySQL/MariaDB commit each DDL statement at once"


def test_broken_new_migration_is_rescued_by_the_create_all_fallback(any_url, migrations_copy):
    migrations_copy.add(BROKEN_REVISION, BROKEN_NEW_MIGRATION, down=TARGET, name="add_audit_log")
    migrations_copy.append_models(AUDIT_LOG_MODEL)

    result = run_migrate(env=env_for(any_url, MIGRATIONS_DIR=migrations_copy.path, MODELS="models:Base"))

    summary = summary_line(result.out)
    if is_mysql(any_url):
        # MySQL/MariaDB committed the CREATE TABLE before the failing statement: create_all would
        # create nothing, and a fallback that creates nothing rescues nothing (issue 24).
        assert result.code == 1, result.out
        assert "the create_all fallback would create nothing" in summary and BROKEN_REVISION in summary, summary
        assert versions(any_url) == [TARGET]
        return
    assert result.code == 0, result.out
    assert "FALLBACK USED" in summary and BROKEN_REVISION in summary, summary
    assert "verification passed" in summary
    assert "core_no_such_table" in result.out  # the error is named
    # The version table stays before the broken revision; create_all made the table.
    assert versions(any_url) == [TARGET]
    assert schema(any_url) == models_schema(migrations_copy.path)


def test_broken_new_migration_without_fallback_exits_1_and_leaves_nothing_behind(any_url, migrations_copy):
    """Transactional DDL, on SQLite too: the table the migration created is rolled back.

    MySQL/MariaDB cannot: the table stays, the revision is recorded as
    interrupted, the message says so, and the next run (the revision does not
    declare itself idempotent) stops naming ``migrate.py resolve``.
    """
    migrations_copy.add(BROKEN_REVISION, BROKEN_NEW_MIGRATION, down=TARGET, name="add_audit_log")
    migrations_copy.append_models(AUDIT_LOG_MODEL)
    migrate_ok(any_url)
    before = schema(any_url)
    env = env_for(any_url, MIGRATIONS_DIR=migrations_copy.path, MODELS="models:Base", ENABLE_FALLBACK_CREATE="false")

    result = run_migrate(env=env)

    assert result.code == 1, result.out
    summary = summary_line(result.out)
    assert BROKEN_REVISION in summary and "core_no_such_table" in summary, summary
    assert versions(any_url) == [TARGET]
    assert migration_lock_free(any_url), "a failed migration must release the migration lock"
    if parse_url(any_url).engine.transactional_ddl:
        assert "audit_log" not in tables(any_url)
        assert schema(any_url) == before
        return
    assert "audit_log" in tables(any_url)  # committed by its own CREATE TABLE
    assert in_progress(any_url) == [BROKEN_REVISION]
    assert PARTLY_APPLIED in summary and "rolled back" not in summary, summary

    again = run_migrate(env=env)

    assert again.code == 1, again.out
    assert f"migrate.py resolve {BROKEN_REVISION}" in summary_line(again.out), again.out
    assert running_upgrade_lines(again.out) == []
    assert in_progress(any_url) == [BROKEN_REVISION]
    assert versions(any_url) == [TARGET]


def test_broken_24e8f9a7b1c2_without_fallback_exits_1_and_rolls_its_column_back(any_url, migrations_copy):
    """On MySQL/MariaDB the column stays, and the revision (idempotent = True) is run again next time."""
    migrations_copy.replace_upgrade("24e8f9a7b1c2", BROKEN_24E8)

    result = run_migrate(
        env=env_for(any_url, MIGRATIONS_DIR=migrations_copy.path, MODELS="models:Base", ENABLE_FALLBACK_CREATE="false")
    )

    assert result.code == 1, result.out
    assert "24e8f9a7b1c2" in summary_line(result.out)
    assert "ENABLE_FALLBACK_CREATE=false" in summary_line(result.out)
    assert versions(any_url) == BEFORE_24E8
    assert "phone" in schema(any_url)["user"]  # ef6fab585ac1, before it, was kept
    if not is_mysql(any_url):
        assert "model_credits" not in schema(any_url)["flux_config"]
        return
    assert "model_credits" in schema(any_url)["flux_config"]
    assert in_progress(any_url) == ["24e8f9a7b1c2"]
    assert PARTLY_APPLIED in result.out

    fixed = run_migrate(env=env_for(any_url))  # the shipped, working 24e8f9a7b1c2

    assert fixed.code == 0, fixed.out
    assert "Column 'flux_config.model_credits' already exists; skipped." in fixed.out
    assert versions(any_url) == [TARGET]
    assert in_progress(any_url) == []


def test_broken_24e8f9a7b1c2_with_fallback_exits_7_since_create_all_adds_no_column(any_url, migrations_copy):
    """create_all creates missing tables only; the missing column is named, not hidden.

    On MySQL/MariaDB the migration fails before its column (a column added
    first would stay committed there: see the test above).
    """
    migrations_copy.replace_upgrade("24e8f9a7b1c2", BROKEN_24E8_AT_ONCE if is_mysql(any_url) else BROKEN_24E8)

    result = run_migrate(env=env_for(any_url, MIGRATIONS_DIR=migrations_copy.path, MODELS="models:Base"))

    assert result.code == 7, result.out
    assert "24e8f9a7b1c2" in result.out
    assert "create_all" in result.out
    summary = summary_line(result.out)
    assert "flux_config" in summary and "model_credits" in summary, summary
    assert versions(any_url) == BEFORE_24E8
    assert "model_credits" not in schema(any_url)["flux_config"]


# -- a revision these scripts do not know ----------------------------------------------


def _at_unknown_revision(url: str) -> None:
    migrate_ok(url)
    query(url, "UPDATE alembic_version SET version_num = 'deadbeef0000'")


def test_unknown_revision_with_the_full_schema_is_schema_ahead_and_changes_nothing(any_url):
    _at_unknown_revision(any_url)
    # What a newer release might have added: more, never less.
    query(any_url, "CREATE TABLE future_feature (id INTEGER PRIMARY KEY, note TEXT)")
    query(any_url, "ALTER TABLE chat ADD COLUMN pinned BOOLEAN")
    query(any_url, "INSERT INTO chat (id, title) VALUES ('c1', 'kept')")
    before = schema(any_url)

    result = run_migrate(env=env_for(any_url))

    assert result.code == 0, result.out
    assert "Schema ahead of code" in result.out and "deadbeef0000" in result.out
    assert running_upgrade_lines(result.out) == []
    assert "Fallback create_all" not in result.out and "FALLBACK USED" not in result.out
    assert versions(any_url) == ["deadbeef0000"]
    assert schema(any_url) == before
    assert query(any_url, "SELECT id, title FROM chat") == [("c1", "kept")]


def test_unknown_revision_with_a_table_missing_exits_6_and_changes_nothing(any_url):
    _at_unknown_revision(any_url)
    query(any_url, "DROP TABLE payment")
    before = schema(any_url)

    result = run_migrate(env=env_for(any_url))

    assert result.code == 6, result.out
    summary = summary_line(result.out)
    assert "deadbeef0000" in summary and "payment" in summary, summary
    assert running_upgrade_lines(result.out) == []
    assert versions(any_url) == ["deadbeef0000"]
    assert schema(any_url) == before  # no fallback recreated payment


# -- status, history, heads, upgrade REV -----------------------------------------------


def test_status_exits_1_listing_pending_revisions_then_0_at_target(any_url):
    migrate_ok(any_url, "upgrade", "70c7b727736e")

    pending = run_migrate("status", env=env_for(any_url))
    migrate_ok(any_url)
    done = run_migrate("status", env=env_for(any_url))

    assert pending.code == 1, pending.out
    assert re.search(r"^current:\s+70c7b727736e$", pending.out, re.M), pending.out
    assert re.search(r"^pending:\s+4$", pending.out, re.M), pending.out
    for revision in ("ef6fab585ac1", "24e8f9a7b1c2", "abc123def456", TARGET):
        assert re.search(rf"^\s+{revision}\b", pending.out, re.M), (revision, pending.out)
    assert done.code == 0, done.out
    assert re.search(rf"^current:\s+{TARGET}$", done.out, re.M), done.out
    assert "pending:  none" in done.out


def test_status_is_read_only(sqlite_url):
    migrate_ok(sqlite_url, "upgrade", "70c7b727736e")

    result = run_migrate("status", env=env_for(sqlite_url))

    assert result.code == 1, result.out
    assert versions(sqlite_url) == ["70c7b727736e"]


def test_heads_and_history_graph_work_without_a_database(tmp_path):
    # Nothing listens on this URL; the commands must not even try.  (Plain `history` reads the
    # database's migrate_init_history: tests/integration/test_history.py.)
    env = {"DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/none", "DB_WAIT_TIMEOUT": "30"}

    heads = run_migrate("heads", env=env, timeout=20)
    history = run_migrate("history", "--graph", env=env, timeout=20)

    assert heads.code == 0, heads.out
    assert heads.out.strip().splitlines()[-1] == f"{TARGET} (head)"
    assert history.code == 0, history.out
    for revision, _down, name in REVISIONS:
        assert revision in history.out and name in history.out, revision
    assert "24e8f9a7b1c2, abc123def456 -> merge_heads_final (head)" in history.out


def test_history_and_heads_create_no_sqlite_file(sqlite_url):
    env = env_for(sqlite_url)

    assert run_migrate("heads", env=env).code == 0
    assert run_migrate("history", "--graph", env=env).code == 0
    assert run_migrate("history", env=env).code == 3  # read-only: a file that is not there is not made

    assert not sqlite_path(sqlite_url).parent.exists()


def test_upgrade_to_a_revision_stops_there(any_url):
    result = migrate_ok(any_url, "upgrade", "ca81bd47c050")

    assert versions(any_url) == ["ca81bd47c050"]
    assert len(running_upgrade_lines(result.out)) == 2
    assert set(schema(any_url)) == {"user", "chat", "tool", "config"}


def test_upgrade_to_an_unknown_revision_exits_2_and_changes_nothing(any_url):
    result = run_migrate("upgrade", "0000notarev", env=env_for(any_url))

    assert result.code == 2, result.out
    assert "0000notarev" in summary_line(result.out)
    assert running_upgrade_lines(result.out) == []
    if not is_sqlite(any_url) or sqlite_path(any_url).exists():
        assert tables(any_url) == set()


# -- the plain alembic CLI --------------------------------------------------------------


def test_plain_alembic_cli_upgrades_and_reports_with_the_same_database_url(any_url):
    env = env_for(any_url)

    upgraded = run_python("-m", "alembic", "-c", "alembic.ini", "upgrade", "heads", env=env)
    current = run_python("-m", "alembic", "-c", "alembic.ini", "current", env=env)
    again = run_migrate(env=env)

    assert upgraded.code == 0, upgraded.out
    assert len(running_upgrade_lines(upgraded.out)) == len(REVISIONS), upgraded.out
    assert versions(any_url) == [TARGET]
    assert schema(any_url) == models_schema()
    assert current.code == 0, current.out
    assert f"{TARGET} (head)" in current.out
    assert again.code == 0 and "nothing to do" in summary_line(again.out), again.out


def test_plain_alembic_cli_sees_what_migrate_py_applied(db_url):
    migrate_ok(db_url, "upgrade", "70c7b727736e")

    current = run_python("-m", "alembic", "-c", "alembic.ini", "current", env=env_for(db_url))

    assert current.code == 0, current.out
    assert "70c7b727736e" in current.out


# -- a version table that contradicts itself ---------------------------------------


def test_a_version_table_holding_a_head_and_its_ancestor_exits_1_and_changes_nothing(any_url):
    migrate_ok(any_url)
    query(any_url, "INSERT INTO alembic_version (version_num) VALUES ('abc123def456')")
    before = schema(any_url)

    result = run_migrate(env=env_for(any_url))

    assert result.code == 1, result.out
    assert "alembic stamp" in summary_line(result.out)
    assert "Traceback" not in result.out
    assert versions(any_url) == sorted(["abc123def456", TARGET])
    assert schema(any_url) == before
