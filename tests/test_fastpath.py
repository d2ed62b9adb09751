"""Issue 7, the fast path: a run with nothing to do loads neither SQLAlchemy nor Alembic.

Every test runs migrate.py as a real process on a real SQLite file and a real
PostgreSQL database, against an editable copy of the shipped migrations with
its manifest built by ``migrate.py manifest``.  It proves which path ran two
ways: the DEBUG line (``Fast path: ...`` or ``Fast path not taken: <why>``)
and ``python -X importtime``, which lists every module the process imported.
Then it asserts the exit code and the state the database is left in: the
fast path must never answer where the full path would have acted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dbstate import TARGET, MigrationsCopy, is_sqlite, query, schema, versions
from helpers import MIGRATE, REPO, kill_group, run_migrate, run_python, start_python

NEW_REVISION = "c0ffee0000f1"
AT_TARGET = f"OK (exit 0): Database is at its target {TARGET}; nothing to do."


@pytest.fixture
def migrations(tmp_path) -> MigrationsCopy:
    """A copy of the shipped migrations/ with a fresh manifest."""
    copy = MigrationsCopy(tmp_path / "fp_migrations")
    build_manifest(copy)
    return copy


def build_manifest(copy: MigrationsCopy) -> None:
    result = run_migrate("manifest", env={"MIGRATIONS_DIR": copy.path, "MODELS": "models:Base"})
    assert result.code == 0, result.out
    assert (copy.path / ".manifest.json").is_file(), result.out


def env_for(url: str, copy: MigrationsCopy, **extra: object) -> dict[str, str]:
    return {"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "5", "MIGRATIONS_DIR": str(copy.path),
            "MODELS": "models:Base", "LOG_LEVEL": "DEBUG",
            **{k: str(v) for k, v in extra.items()}}


def traced_run(url: str, copy: MigrationsCopy, *args: str, **extra: object):
    """migrate.py under ``-X importtime``: the output also lists every import."""
    return run_python("-X", "importtime", MIGRATE, *args, env=env_for(url, copy, **extra))


def imported(out: str) -> set[str]:
    """The top-level packages that ``-X importtime`` reports as imported."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", out, re.M)
    return {name.split(".")[0] for name in names}


def log_lines(out: str) -> list[str]:
    """The log lines, without -X importtime's and without DEBUG ones."""
    return [line for line in out.splitlines()
            if line.startswith(("INFO", "WARN", "ERROR")) and "import time:" not in line]


def assert_fast(result) -> None:
    assert "Fast path: the database is at" in result.out, result.out
    assert "Fast path not taken" not in result.out, result.out
    modules = imported(result.out)
    assert modules, "python -X importtime printed nothing"
    assert "sqlalchemy" not in modules and "alembic" not in modules, sorted(modules)


def assert_slow(result, reason: str, *, loaded: str = "alembic") -> None:
    """The fast path declined, for ``reason``, and the full path ran."""
    lines = [line for line in result.out.splitlines() if "[migrate_init] Fast path" in line]
    assert any("Fast path not taken: " in line for line in lines), result.out
    assert any(reason in line for line in lines), lines
    assert not any("Fast path: the database is at" in line for line in lines), lines
    # The full path really ran: it loaded Alembic's revision graph (or, when it
    # stopped before that, the module that stopped it).
    assert loaded in imported(result.out), result.out


def at_target(url: str, copy: MigrationsCopy) -> None:
    """Bring a fresh database to the head with the full path (there is no file yet)."""
    result = run_migrate(env=env_for(url, copy))
    assert result.code == 0, result.out
    assert versions(url) == [TARGET]


def summary_line(out: str) -> str:
    lines = [line for line in out.splitlines() if "(exit " in line]
    assert lines, out
    return lines[-1]


# -- the fast path is taken, and says what the full path says -------------------

def test_a_run_at_target_answers_without_importing_sqlalchemy_or_alembic(db_url, migrations, tmp_path):
    at_target(db_url, migrations)
    query(db_url, "INSERT INTO \"user\" (id, name) VALUES ('u1', 'Ada'), ('u2', 'Bo')")
    report_file = tmp_path / "report.json"

    result = traced_run(db_url, migrations, REPORT_FILE=report_file)

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)
    assert "Existing rows: chat=0, user=2" in result.out
    report = json.loads(report_file.read_text())
    assert report["outcome"] == "at_target" and report["exit_code"] == 0
    assert report["from_revisions"] == report["to_revisions"] == [TARGET]
    assert report["row_counts"] == {"chat": 0, "user": 2}
    assert versions(db_url) == [TARGET]


def test_the_fast_path_prints_the_lines_and_report_of_the_full_path(db_url, migrations, tmp_path):
    at_target(db_url, migrations)
    fast_report, slow_report = tmp_path / "fast.json", tmp_path / "slow.json"

    # At INFO, as in production: only the path taken differs, which the imports show.
    fast = traced_run(db_url, migrations, REPORT_FILE=fast_report, LOG_LEVEL="INFO")
    slow = traced_run(db_url, migrations, REPORT_FILE=slow_report, LOG_LEVEL="INFO", FAST_PATH="false")

    assert fast.code == slow.code == 0, (fast.out, slow.out)
    assert "sqlalchemy" not in imported(fast.out) and "sqlalchemy" in imported(slow.out)
    assert log_lines(fast.out) == log_lines(slow.out)
    fast_data, slow_data = json.loads(fast_report.read_text()), json.loads(slow_report.read_text())
    for data in (fast_data, slow_data):
        data.pop("durations")
    assert fast_data == slow_data


def test_wait_at_target_takes_the_fast_path(db_url, migrations):
    at_target(db_url, migrations)

    result = traced_run(db_url, migrations, "wait")

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(f"OK (exit 0): Database reached its target {TARGET}.")


def test_enable_auto_migration_false_at_target_still_takes_the_fast_path(sqlite_url, migrations):
    at_target(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations, ENABLE_AUTO_MIGRATION="false")

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)


def test_a_password_with_special_characters_works_and_never_shows(pg_server, migrations, tmp_path):
    password = "p@ss/w%rd:x+y"
    pg_server.create_role("fp_special", password)
    name = "fp_special_db"
    pg_server.create_database(name, owner="fp_special")
    try:
        url = pg_server.url(database=name, user="fp_special", password=password)
        assert "%40" in url  # the URL carries the password percent-encoded
        at_target(url, migrations)
        report_file = tmp_path / "report.json"

        result = traced_run(url, migrations, REPORT_FILE=report_file)

        assert result.code == 0, result.out
        assert_fast(result)
        written = report_file.read_text()
        encoded = make_url(url).render_as_string(hide_password=False).split("@")[0].split(":")[-1]
        for secret in (password, encoded, "p@ss", "w%rd"):
            assert secret not in result.out and secret not in written, secret
    finally:
        pg_server.drop_database(name)
        pg_server.drop_role("fp_special")


def test_migration_target_naming_another_known_revision_still_means_every_head(db_url, migrations):
    at_target(db_url, migrations)

    result = traced_run(db_url, migrations, MIGRATION_TARGET="ef6fab585ac1")

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)


# -- every doubt sends the run down the full path, which does the right thing ---

def test_an_added_migration_makes_the_manifest_stale_and_gets_applied(db_url, migrations):
    at_target(db_url, migrations)
    migrations.add_revision(NEW_REVISION, TARGET,
                            'ops.add_column_if_missing("user", sa.Column("nickname", sa.Text))')

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, "the manifest is stale")
    assert versions(db_url) == [NEW_REVISION]
    assert "nickname" in schema(db_url)["user"]


def test_an_edited_migration_makes_the_manifest_stale(db_url, migrations):
    at_target(db_url, migrations)
    path = migrations.file_of("ef6fab585ac1")
    path.write_text(path.read_text() + "\n# edited after the manifest was built\n")

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, "the manifest is stale")
    assert summary_line(result.out).endswith(AT_TARGET)


def test_edited_models_make_the_manifest_stale_and_verification_catches_the_gap(db_url, migrations):
    at_target(db_url, migrations)
    migrations.edit_models(
        "    phone: Mapped[str | None] = mapped_column(sa.String(32))  # ef6fab585ac1\n",
        "    phone: Mapped[str | None] = mapped_column(sa.String(32))  # ef6fab585ac1\n"
        "    nickname: Mapped[str | None] = mapped_column(sa.Text)\n",
    )

    result = traced_run(db_url, migrations)

    assert result.code == 7, result.out
    assert_slow(result, "the manifest is stale")
    assert "nickname" in summary_line(result.out)


def test_a_database_at_an_unknown_revision_gets_the_full_path(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "UPDATE alembic_version SET version_num = 'fe11ed000000'")

    result = traced_run(db_url, migrations)

    # Every table and column is there: schema ahead of code, exit 0, nothing changed.
    assert result.code == 0, result.out
    assert_slow(result, "a revision the manifest does not know")
    assert "Schema ahead of code" in summary_line(result.out)
    assert versions(db_url) == ["fe11ed000000"]


def test_several_rows_in_the_version_table_get_the_full_path(db_url, migrations):
    at_target(db_url, migrations)
    # Both branches applied, the merge not yet: two rows, neither of them the head.
    query(db_url, "DELETE FROM alembic_version")
    query(db_url, "INSERT INTO alembic_version (version_num) VALUES ('24e8f9a7b1c2'), ('abc123def456')")

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, "holds 24e8f9a7b1c2, abc123def456")
    assert re.search(r"Applying .*24e8f9a7b1c2.* -> merge_heads_final", result.out), result.out
    assert versions(db_url) == [TARGET]


def test_the_head_and_a_stray_row_in_the_version_table_get_the_full_path(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "INSERT INTO alembic_version (version_num) VALUES ('abc123def456')")

    result = traced_run(db_url, migrations)

    # What the full path then makes of it is the core's business (tests/test_core.py).
    assert_slow(result, f"holds abc123def456, {TARGET}")


def test_a_missing_version_table_gets_the_full_path(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "DROP TABLE alembic_version")

    result = traced_run(db_url, migrations)

    # The migrations are idempotent: the whole chain runs again, changes nothing, and stamps.
    assert result.code == 0, result.out
    assert_slow(result, "no alembic_version table")
    assert versions(db_url) == [TARGET]


def test_a_database_at_migration_target_but_not_at_every_head_is_upgraded(db_url, migrations):
    result = run_migrate("upgrade", "ef6fab585ac1", env=env_for(db_url, migrations))
    assert result.code == 0, result.out
    assert versions(db_url) == ["ef6fab585ac1"]

    result = traced_run(db_url, migrations, MIGRATION_TARGET="ef6fab585ac1")

    assert result.code == 0, result.out
    assert_slow(result, "not the heads")
    assert versions(db_url) == [TARGET]


def test_an_unknown_migration_target_gets_the_full_path(db_url, migrations):
    at_target(db_url, migrations)

    result = traced_run(db_url, migrations, MIGRATION_TARGET="no_such_revision")

    assert result.code == 0, result.out
    assert_slow(result, "MIGRATION_TARGET=no_such_revision is not a revision in the manifest")
    assert versions(db_url) == [TARGET]


def test_a_missing_column_gets_the_full_path_and_fails_verification(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, 'ALTER TABLE "user" DROP COLUMN phone')

    result = traced_run(db_url, migrations)

    assert result.code == 7, result.out
    assert_slow(result, "table 'user' lacks columns")
    assert "phone" in summary_line(result.out)


def test_a_missing_table_gets_the_full_path(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "DROP TABLE payment")

    result = traced_run(db_url, migrations)

    assert result.code == 7, result.out
    assert_slow(result, "table 'payment' is missing")


def test_no_manifest_gets_the_full_path(sqlite_url, migrations):
    at_target(sqlite_url, migrations)
    (migrations.path / ".manifest.json").unlink()

    result = traced_run(sqlite_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, "no manifest")
    assert summary_line(result.out).endswith(AT_TARGET)


def test_a_fresh_database_gets_the_full_path(sqlite_url, migrations):
    result = traced_run(sqlite_url, migrations)

    # The data folder does not exist either: the full path creates it.
    assert result.code == 0, result.out
    assert_slow(result, "is missing or not writable")
    assert versions(sqlite_url) == [TARGET]


def test_a_fresh_database_in_an_existing_folder_is_migrated_by_the_first_runner(db_url, migrations):
    if is_sqlite(db_url):
        Path(make_url(db_url).database).parent.mkdir()

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, "this runner is the first, and migrates")
    assert versions(db_url) == [TARGET]


def test_dependencies_to_install_get_the_full_path(sqlite_url, migrations, tmp_path):
    at_target(sqlite_url, migrations)
    wheelhouse = tmp_path / "empty-wheelhouse"
    wheelhouse.mkdir()

    result = traced_run(sqlite_url, migrations, EXTRA_PIP_PACKAGES="no-such-package-fp==1.0",
                        PIP_FIND_LINKS=wheelhouse, PIP_NO_INDEX="true",
                        DEPS_TARGET=tmp_path / "deps")

    assert_slow(result, "EXTRA_PIP_PACKAGES or PIP_REQUIREMENTS is set", loaded="packaging")
    assert result.code == 9, result.out


def test_a_database_that_does_not_answer_at_once_gets_the_full_path_which_waits(pg_server, migrations):
    url = pg_server.url(database="postgres")
    closed = make_url(url).set(port=1).render_as_string(hide_password=False)

    result = traced_run(closed, migrations, DB_WAIT_TIMEOUT=1)

    assert result.code == 3, result.out
    assert_slow(result, "did not answer at the first try")


def test_fast_path_false_always_runs_the_full_sequence(sqlite_url, migrations):
    at_target(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations, FAST_PATH="false")

    assert result.code == 0, result.out
    assert_slow(result, "FAST_PATH=false")


# -- replicas that start together: the first migrates, the others wait light ----

@contextlib.contextmanager
def holding_the_first_lock(url: str):
    """Hold the lock a first runner holds while it migrates (fastpath.py)."""
    if is_sqlite(url):
        with open(make_url(url).database + ".migrate.first", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        return
    import psycopg2

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from migrate_init.lock import advisory_key

    u = make_url(url)
    connection = psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                                  dbname=u.database)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (advisory_key(u.database, "alembic_version", label="first"),))
        yield
    finally:
        connection.close()


def start_traced(url: str, copy: MigrationsCopy, **extra: object):
    return start_python("-X", "importtime", MIGRATE, env=env_for(url, copy, **extra))


def read_until(proc, text: str) -> str:
    """The output of ``proc`` up to the line holding ``text``; fails if it exits first."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    proc.wait()
    raise AssertionError(f"exited {proc.returncode} before printing {text!r}:\n{''.join(seen)}")


def behind(url: str, copy: MigrationsCopy) -> None:
    """A database one deploy behind: at ef6fab585ac1, with the rest pending."""
    if is_sqlite(url):
        Path(make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
    result = run_migrate("upgrade", "ef6fab585ac1", env=env_for(url, copy))
    assert result.code == 0, result.out


def test_a_runner_that_finds_another_migrating_waits_then_answers_without_sqlalchemy(db_url, migrations):
    behind(db_url, migrations)
    with holding_the_first_lock(db_url):
        proc = start_traced(db_url, migrations)
        try:
            early = read_until(proc, "Waiting for the migrator that started first")
            # The "first migrator": this one ignores the first lock, as an older image would.
            first = run_migrate(env=env_for(db_url, migrations, FAST_PATH="false"))
            assert first.code == 0, first.out
        except BaseException:
            kill_group(proc)
            raise
    rest, _ = proc.communicate(timeout=120)
    out = early + rest

    assert proc.returncode == 0, out
    assert_fast(type("Result", (), {"out": out})())
    assert summary_line(out).endswith(
        f"Database is at its target {TARGET}; nothing to do (another migrator finished while "
        "this one waited for the lock).")
    assert versions(db_url) == [TARGET]


def test_a_waiting_runner_takes_over_when_the_first_leaves_the_database_behind(db_url, migrations):
    behind(db_url, migrations)
    with holding_the_first_lock(db_url):
        proc = start_traced(db_url, migrations)
        try:
            early = read_until(proc, "Waiting for the migrator that started first")
        except BaseException:
            kill_group(proc)
            raise
    rest, _ = proc.communicate(timeout=120)
    out = early + rest

    assert proc.returncode == 0, out
    assert_slow(type("Result", (), {"out": out})(), "the first migrator did not finish the job")
    assert re.search(r"Upgraded ef6fab585ac1 -> merge_heads_final", summary_line(out)), out
    assert versions(db_url) == [TARGET]


def test_sigterm_while_waiting_for_the_first_exits_143_and_changes_nothing(sqlite_url, migrations):
    behind(sqlite_url, migrations)
    with holding_the_first_lock(sqlite_url):
        proc = start_traced(sqlite_url, migrations)
        try:
            early = read_until(proc, "Waiting for the migrator that started first")
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=120)
        finally:
            kill_group(proc)
    out = early + rest

    assert proc.returncode == 143, out
    assert "FAILED (exit 143): Stopped by SIGTERM while waiting for the migrator" in summary_line(out)
    assert versions(sqlite_url) == ["ef6fab585ac1"]


def test_enable_auto_migration_false_on_a_database_behind_gets_the_full_path(db_url, migrations):
    behind(db_url, migrations)

    result = traced_run(db_url, migrations, ENABLE_AUTO_MIGRATION="false")

    # Nothing applied, and the verification says what the pending migrations would add.
    assert result.code == 7, result.out
    assert_slow(result, "ENABLE_AUTO_MIGRATION=false")
    assert "ENABLE_AUTO_MIGRATION=false" in summary_line(result.out)
    assert versions(db_url) == ["ef6fab585ac1"]


def test_replicas_started_together_apply_each_migration_once(db_url, migrations):
    if is_sqlite(db_url):
        Path(make_url(db_url).database).parent.mkdir()
    procs = [start_traced(db_url, migrations) for _ in range(8)]
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        outs.append(out)
        assert proc.returncode == 0, out

    summaries = [summary_line(out) for out in outs]
    assert sum("Upgraded base (empty) -> merge_heads_final" in line for line in summaries) == 1, summaries
    assert sum("nothing to do" in line for line in summaries) == 7, summaries
    everything = "".join(outs)
    assert everything.count("Running upgrade 24e8f9a7b1c2, abc123def456 -> merge_heads_final") == 1
    assert versions(db_url) == [TARGET]


# -- the pieces ------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "sqlite:////data/app.db",
    "sqlite:///relative/app.db",
    "sqlite+pysqlite:////tmp/a b/app%25.db",
    "postgresql://user:p%40ss%2Fw%25rd%3Ax@db.example:5432/app",
    "postgresql+psycopg2://u:pw@10.0.0.1/app?sslmode=require&application_name=x",
    "postgresql://u:pw@[::1]:5433/app",
    "postgresql://u@localhost/app",
    "postgresql:///app?host=/var/run/postgresql",
    "mysql+pymysql://root:se+cret@mysql/app?charset=utf8mb4",
])
def test_split_url_reads_a_url_exactly_as_sqlalchemy_does(url):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from migrate_init import db

    parts = db.split_url(url)
    expected = make_url(url)
    assert parts is not None
    assert (parts.drivername, parts.username, parts.password, parts.host, parts.database) == (
        expected.drivername, expected.username, expected.password, expected.host, expected.database)
    assert (int(parts.port) if parts.port else None) == expected.port
    assert dict(parts.query) == dict(expected.query)
    assert parts.render_safe() == db.redact(expected)


def test_the_log_mask_finds_every_form_of_a_url_password_without_sqlalchemy():
    code = (
        "import sys; from migrate_init import report\n"
        "forms = report._secret_forms('postgresql://u:p%40ss%2Bw+rd@h/db')\n"
        "assert {'p@ss+w+rd', 'p%40ss%2Bw+rd', 'p%40ss%2Bw%2Brd'} <= forms, forms\n"
        "assert report._secret_forms('not a url') == {'not a url'}\n"
        "assert 'sqlalchemy' not in sys.modules\n"
    )
    result = run_python("-c", code)

    assert result.code == 0, result.out


def test_the_manifest_records_the_heads_schema_and_a_content_hash(migrations):
    data = json.loads((migrations.path / ".manifest.json").read_text())

    assert data["heads"] == [TARGET]
    assert len(data["revisions"]) == 10
    assert data["models"] == "models:Base" and data["models_file"] == "models.py"
    assert "phone" in data["schema"]["user"]
    assert data["counted_tables"] == ["chat", "user"]
    assert re.fullmatch(r"[0-9a-f]{64}", data["content_hash"])


def test_the_benchmark_runs_in_quick_mode():
    result = run_python(REPO / "bench" / "bench.py", "--quick", "--only", "1", "--sqlite-only",
                        timeout=300)

    assert result.code == 0, result.out
    assert re.search(r"^1 .*SQLite.*(PASS|MISS)", result.out, re.M), result.out
