"""Issue 7, the fast path: a run with nothing to do loads neither SQLAlchemy nor Alembic.

There is one reader (issue 10): every path reads the database through
``probe`` and decides with ``state.standing_of``.  What the scripts and models
expect comes from a fresh manifest (the fast path: nothing heavy imported)
or from loading them.  So the fast path is not a second opinion that
"declines": where it answers, it answers what the full path answers, and
the tests prove that by running ``FAST_PATH=false`` on the same database and
comparing exit code and summary line.

Every test runs migrate.py as a real process on a real SQLite file and a real
PostgreSQL database (and, for the no-op run, its verdicts and the lock, a
real MariaDB database through ``any_url``), against an editable copy of the
shipped migrations with its manifest built by ``migrate.py manifest`` (or,
where said, cached by the first full run).  It proves which path ran two ways: the DEBUG line
(``Fast path: ...`` or ``Fast path not taken: <why>``) and ``python -X
importtime``, which lists every module the process imported.  Then it
asserts the exit code and the state the database is left in.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support import MIGRATE, REPO
from tests.support.accounts import own_database
from tests.support.chains import TARGET, Chain
from tests.support.dbstate import insert_many, is_mysql, is_sqlite, query, schema, sqlite_path, versions
from tests.support.locks import my_lock_held, pg_lock_held, sqlite_lock_held
from tests.support.network import free_port
from tests.support.process import (
    Result,
    child_env,
    kill_group,
    run_migrate,
    run_python,
    run_split,
    start_python,
    summary_line,
)
from tests.support.wheelhouse import build_wheel

NEW_REVISION = "c0ffee0000f1"
AT_TARGET = f"OK (exit 0): Database is at its target {TARGET}; nothing to do."
STALE = "is stale: the migration scripts or the models changed since it was written"
PHONE = "    phone: Mapped[str | None] = mapped_column(sa.String(32))  # ef6fab585ac1\n"
NICKNAME = "    nickname: Mapped[str | None] = mapped_column(sa.Text)\n"


@pytest.fixture
def migrations(tmp_path) -> Chain:
    """A copy of the shipped migrations/ with a fresh manifest."""
    copy = Chain(tmp_path / "fp_migrations")
    build_manifest(copy)
    return copy


def build_manifest(copy: Chain, models: str = "models:Base") -> dict:
    result = run_migrate("manifest", env={"MIGRATIONS_DIR": copy.path, "MODELS": models})
    assert result.code == 0, result.out
    path = copy.path / ".manifest.marshal"
    assert path.is_file(), result.out
    return marshal.loads(path.read_bytes())


def data_dir(copy: Chain) -> Path:
    """The DATA_DIR of every run on ``copy``: the cache of a PostgreSQL run lands here,
    not in the repository's data/ (migrate-init's default)."""
    return copy.path.parent / "data-dir"


def env_for(url: str, copy: Chain, **extra: object) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "DB_WAIT_TIMEOUT": "5",
        "MIGRATIONS_DIR": str(copy.path),
        "MODELS": "models:Base",
        "LOG_LEVEL": "DEBUG",
        "DATA_DIR": str(data_dir(copy)),
        **{k: str(v) for k, v in extra.items()},
    }


def traced_run(url: str, copy: Chain, *args: str, **extra: object) -> Result:
    """migrate.py under ``-X importtime``: the output also lists every import."""
    return run_python("-X", "importtime", MIGRATE, *args, env=env_for(url, copy, **extra))


def imported(out: str) -> set[str]:
    """The top-level packages that ``-X importtime`` reports as imported."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", out, re.M)
    return {name.split(".")[0] for name in names}


def log_lines(out: str) -> list[str]:
    """The log lines, without -X importtime's and without DEBUG ones."""
    return [
        line for line in out.splitlines() if line.startswith(("INFO", "WARN", "ERROR")) and "import time:" not in line
    ]


def verdict(out: str) -> str:
    """The summary line without its timestamp: 'OK (exit 0): ...' or 'FAILED (exit N): ...'."""
    line = summary_line(out)
    return line[line.index("] ") + 2 :]


def path_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "[migrate_init] Fast path" in line]


def assert_light(out: str) -> None:
    modules = imported(out)
    assert modules, "python -X importtime printed nothing"
    assert "sqlalchemy" not in modules and "alembic" not in modules, sorted(modules)


def assert_fast(result: Result) -> None:
    assert "Fast path: the database is at" in result.out, result.out
    assert "Fast path not taken" not in result.out, result.out
    assert_light(result.out)


def assert_slow(result: Result, reason: str, *, loaded: str = "alembic") -> None:
    """The manifest could not answer, for ``reason``, and the scripts and models were loaded."""
    lines = path_lines(result.out)
    assert any("Fast path not taken: " in line and reason in line for line in lines), (reason, lines, result.out)
    assert not any("Fast path: the database is at" in line for line in lines), lines
    assert loaded in imported(result.out), result.out


def assert_as_the_full_path(result: Result, url: str, copy: Chain, *args: str, **extra: object) -> None:
    """``result`` is what FAST_PATH=false answers on the same database: exit code and summary."""
    full = traced_run(url, copy, *args, FAST_PATH="false", **extra)
    assert_slow(full, "FAST_PATH=false")
    assert (result.code, verdict(result.out)) == (full.code, verdict(full.out)), (result.out, full.out)


def at_target(url: str, copy: Chain) -> None:
    """Bring a fresh database to the head with the full path (there is no file yet)."""
    result = run_migrate(env=env_for(url, copy))
    assert result.code == 0, result.out
    assert versions(url) == [TARGET]


def cached_manifests(folder: Path) -> list[Path]:
    return sorted((folder / ".migrate-init").glob("manifest-*.marshal"))


def cache_folder(url: str, copy: Chain) -> Path:
    """Where the first full run caches the manifest: beside a SQLite database, else DATA_DIR."""
    return sqlite_path(url).parent if is_sqlite(url) else data_dir(copy)


def forget_manifests(url: str, copy: Chain) -> None:
    """No baked manifest and no cache anywhere: the folder as a mounted volume brings it."""
    (copy.path / ".manifest.marshal").unlink(missing_ok=True)
    for folder in (cache_folder(url, copy), data_dir(copy), copy.path):
        for path in cached_manifests(folder):
            path.unlink()


# -- the fast path is taken, and says what the full path says -------------------


def test_a_run_at_target_answers_without_importing_sqlalchemy_or_alembic(any_url, migrations, tmp_path):
    at_target(any_url, migrations)
    query(any_url, "INSERT INTO \"user\" (id, name) VALUES ('u1', 'Ada'), ('u2', 'Bo')")
    report_file = tmp_path / "report.json"

    result = traced_run(any_url, migrations, REPORT_FILE=report_file)

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)
    assert "Existing rows: chat=0, user=2" in result.out
    report = json.loads(report_file.read_text())
    assert report["outcome"] == "at_target" and report["exit_code"] == 0
    assert report["from_revisions"] == report["to_revisions"] == [TARGET]
    assert report["row_counts"] == {"chat": 0, "user": 2}
    assert versions(any_url) == [TARGET]


def test_a_run_with_nothing_to_do_reports_a_large_table_by_estimate_and_verify_counts_it(any_url, migrations, tmp_path):
    # Issue 27: a COUNT(*) grows with the table; a no-op takes the engine's own figure above 10,000 rows.
    at_target(any_url, migrations)
    insert_many(any_url, "user", [{"id": f"u{n}", "name": f"user {n}"} for n in range(12_000)])
    query(any_url, "INSERT INTO chat (id, user_id, title) VALUES ('c1', 'u1', 'hello')")
    if not is_sqlite(any_url):
        query(any_url, "ANALYZE TABLE user" if is_mysql(any_url) else 'ANALYZE "user"')
    report_file = tmp_path / "report.json"

    result = traced_run(any_url, migrations, REPORT_FILE=report_file)

    assert result.code == 0, result.out
    assert_fast(result)
    assert re.search(r"Existing rows: chat=1, user=about \d+K$", result.out, re.M), result.out
    estimate = json.loads(report_file.read_text())["row_counts"]["user"]
    assert 6_000 <= estimate <= 24_000, estimate
    verify = run_migrate("verify", env=env_for(any_url, migrations))
    assert verify.code == 0, verify.out
    assert re.search(r"Existing rows: chat=1, user=12000$", verify.out, re.M), verify.out


def test_the_fast_path_prints_the_lines_and_report_of_the_full_path(any_url, migrations, tmp_path):
    at_target(any_url, migrations)
    fast_report, slow_report = tmp_path / "fast.json", tmp_path / "slow.json"

    # At INFO, as in production: only the path taken differs, which the imports show.
    fast = traced_run(any_url, migrations, REPORT_FILE=fast_report, LOG_LEVEL="INFO")
    slow = traced_run(any_url, migrations, REPORT_FILE=slow_report, LOG_LEVEL="INFO", FAST_PATH="false")

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


def test_verify_at_target_takes_the_fast_path(any_url, migrations):
    at_target(any_url, migrations)

    result = traced_run(any_url, migrations, "verify")

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(
        f"OK (exit 0): Every table and column of MODELS exists (revision {TARGET})."
    )
    assert_as_the_full_path(result, any_url, migrations, "verify")


@pytest.mark.parametrize("verb", ["wait", "verify", "current"])
def test_a_read_only_verb_on_a_missing_sqlite_file_is_exit_3_creates_nothing_and_stays_light(
    sqlite_url, migrations, verb
):
    database = sqlite_path(sqlite_url)

    result = traced_run(sqlite_url, migrations, verb)

    assert result.code == 3, result.out
    assert f"The SQLite database {database} does not exist. Nothing was created" in summary_line(result.out)
    assert not database.parent.exists()
    assert_light(result.out)


def test_a_run_at_target_on_sqlite_imports_no_json_pathlib_or_urllib(sqlite_url, migrations):
    """Issue 14: the manifest is marshal, paths are strings, a URL with nothing to quote needs no urllib."""
    at_target(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations, REPORT_FILE="off")

    assert result.code == 0, result.out
    assert_fast(result)
    assert not {"json", "pathlib", "urllib"} & imported(result.out), sorted(imported(result.out))


def test_enable_auto_migration_false_at_target_still_takes_the_fast_path(sqlite_url, migrations):
    at_target(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations, ENABLE_AUTO_MIGRATION="false")

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)


#: Each server, and the bare driver migrate-init reaches it with.
servers = pytest.mark.parametrize(
    ("server", "driver"),
    [
        pytest.param("pg_server", "psycopg2", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql_server", "pymysql", marks=pytest.mark.mysql, id="mysql"),
    ],
)


@servers
def test_a_password_with_special_characters_works_and_never_shows(server, driver, request, migrations, tmp_path):
    password = "p@ss/w%rd:x+y#z"
    with own_database(request.getfixturevalue(server), f"fp_special_{os.getpid()}", password) as url:
        assert "%40" in url  # the URL carries the password percent-encoded
        at_target(url, migrations)
        parts = make_url(url)
        encoded = parts.render_as_string(hide_password=False).split("@")[0].split(":")[-1]
        for log_format in ("text", "json"):
            report_file = tmp_path / f"report-{log_format}.json"

            result = traced_run(url, migrations, REPORT_FILE=report_file, LOG_FORMAT=log_format)

            assert result.code == 0, result.out
            assert_fast(result)
            written = report_file.read_text()
            for secret in (password, encoded, "p@ss", "w%rd"):
                assert secret not in result.out and secret not in written, secret
            assert json.loads(written)["database"] == (
                f"{parts.drivername}://{parts.username}:***@{parts.host}:{parts.port}/{parts.database}"
            )


def test_migration_target_naming_another_known_revision_still_means_every_head(db_url, migrations):
    at_target(db_url, migrations)

    result = traced_run(db_url, migrations, MIGRATION_TARGET="ef6fab585ac1")

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)


def test_an_unknown_migration_target_at_the_heads_is_answered_by_the_fast_path(db_url, migrations):
    # MIGRATION_TARGET only chooses the first layer of an upgrade; at the heads
    # there is none, so the fast path answers what the full path answers.
    at_target(db_url, migrations)

    result = traced_run(db_url, migrations, MIGRATION_TARGET="no_such_revision")

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)
    assert_as_the_full_path(result, db_url, migrations, MIGRATION_TARGET="no_such_revision")
    assert versions(db_url) == [TARGET]


# -- the same reads, the same verdict: answered from the manifest, as FAST_PATH=false does --


def test_a_missing_column_at_the_heads_is_exit_7_without_loading_anything(any_url, migrations):
    at_target(any_url, migrations)
    query(any_url, 'ALTER TABLE "user" DROP COLUMN phone')

    result = traced_run(any_url, migrations)

    assert result.code == 7, result.out
    assert_fast(result)
    assert "table 'user' lacks columns: phone" in summary_line(result.out)
    assert_as_the_full_path(result, any_url, migrations)
    assert "phone" not in schema(any_url)["user"]


def test_a_missing_table_at_the_heads_is_exit_7_without_loading_anything(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "DROP TABLE payment")

    result = traced_run(db_url, migrations)

    assert result.code == 7, result.out
    assert_fast(result)
    assert "missing tables: payment" in summary_line(result.out)
    assert_as_the_full_path(result, db_url, migrations)
    assert "payment" not in schema(db_url)


def test_repair_missing_columns_at_the_heads_loads_the_models_and_adds_the_column(db_url, migrations):
    # The one case at the heads where the manifest cannot answer: adding a column needs the models.
    at_target(db_url, migrations)
    query(db_url, 'ALTER TABLE "user" DROP COLUMN phone')

    result = traced_run(db_url, migrations, REPAIR_MISSING_COLUMNS="true")

    assert result.code == 0, result.out
    assert_slow(result, "Fast path not taken: ")
    assert "added 1 missing column(s) as nullable (REPAIR_MISSING_COLUMNS=true): user.phone" in summary_line(result.out)
    assert "phone" in schema(db_url)["user"]
    assert versions(db_url) == [TARGET]


def test_an_unknown_revision_with_the_whole_schema_is_schema_ahead_without_loading_anything(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "UPDATE alembic_version SET version_num = 'fe11ed000000'")

    result = traced_run(db_url, migrations)

    # Every table and column is there: schema ahead of code, exit 0, nothing changed.
    assert result.code == 0, result.out
    assert "Fast path not taken" not in result.out, result.out
    assert_light(result.out)
    assert "Schema ahead of code" in summary_line(result.out)
    assert_as_the_full_path(result, db_url, migrations)
    assert versions(db_url) == ["fe11ed000000"]


def test_an_unknown_revision_with_a_column_missing_is_exit_6_without_loading_anything(any_url, migrations):
    at_target(any_url, migrations)
    query(any_url, "UPDATE alembic_version SET version_num = 'fe11ed000000'")
    query(any_url, 'ALTER TABLE "user" DROP COLUMN phone')

    result = traced_run(any_url, migrations)

    assert result.code == 6, result.out
    assert "Fast path not taken" not in result.out, result.out
    assert_light(result.out)
    assert "fe11ed000000" in summary_line(result.out)
    assert "table 'user' lacks columns: phone" in summary_line(result.out)
    assert_as_the_full_path(result, any_url, migrations)
    assert versions(any_url) == ["fe11ed000000"]


# -- a stale manifest: the scripts or models changed, so they are loaded ----------


def test_an_added_migration_makes_the_manifest_stale_and_gets_applied(db_url, migrations):
    at_target(db_url, migrations)
    migrations.add(NEW_REVISION, 'ops.add_column_if_missing("user", sa.Column("nickname", sa.Text))', down=TARGET)

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, STALE)
    assert versions(db_url) == [NEW_REVISION]
    assert "nickname" in schema(db_url)["user"]
    # That full run cached the manifest of the new scripts: the next run needs no imports.
    again = traced_run(db_url, migrations)
    assert again.code == 0, again.out
    assert_fast(again)
    assert summary_line(again.out).endswith(f"OK (exit 0): Database is at its target {NEW_REVISION}; nothing to do.")


def test_an_edited_migration_makes_the_manifest_stale(db_url, migrations):
    at_target(db_url, migrations)
    path = migrations.file_of("ef6fab585ac1")
    path.write_text(path.read_text() + "\n# edited after the manifest was built\n")

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, STALE)
    assert summary_line(result.out).endswith(AT_TARGET)


def test_a_no_op_records_a_stat_key_and_an_edit_that_keeps_size_and_mtime_is_still_stale(sqlite_url, migrations):
    # Issue 27: once the content matched, a no-op vouches for the files by stat alone. An edit that
    # keeps the size and puts the mtime back (touch -r, tar, a reproducible build) still changes the ctime.
    at_target(sqlite_url, migrations)
    first = traced_run(sqlite_url, migrations)
    assert first.code == 0, first.out
    assert_fast(first)
    keyed = [
        p for p in cached_manifests(sqlite_path(sqlite_url).parent) if marshal.loads(p.read_bytes()).get("stat_key")
    ]
    assert keyed, "the no-op did not record the stat key in its cache"
    second = traced_run(sqlite_url, migrations)
    assert second.code == 0, second.out
    assert_fast(second)

    models = migrations.path / "models.py"
    text = models.read_text()
    assert "mapped_column(sa.String(32))  # ef6fab585ac1" in text
    before = models.stat()
    edited = text.replace('__tablename__ = "chat"', '__tablename__ = "chit"')
    assert len(edited) == len(text) and edited != text
    models.write_text(edited)
    os.utime(models, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert models.stat().st_size == before.st_size and models.stat().st_mtime_ns == before.st_mtime_ns

    result = traced_run(sqlite_url, migrations)

    assert_slow(result, STALE)
    assert result.code == 7, result.out  # the full path's verdict: table chit is missing


def test_edited_models_make_the_manifest_stale_and_verification_catches_the_gap(db_url, migrations):
    at_target(db_url, migrations)
    migrations.edit_models(PHONE, PHONE + NICKNAME)

    result = traced_run(db_url, migrations)

    assert result.code == 7, result.out
    assert_slow(result, STALE)
    assert "table 'user' lacks columns: nickname" in summary_line(result.out)
    assert_as_the_full_path(result, db_url, migrations)


def test_an_edit_that_keeps_the_size_and_mtime_is_still_detected_by_the_content_hash(db_url, migrations):
    at_target(db_url, migrations)
    path = migrations.path / "models.py"
    before = path.stat()
    text = path.read_text()
    assert text.count("    phone: Mapped") == 1
    # Same length, and the mtime put back: only the content tells.
    path.write_text(text.replace("    phone: Mapped", "    phonx: Mapped"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    result = traced_run(db_url, migrations)

    assert result.code == 7, result.out
    assert_slow(result, STALE)
    assert "table 'user' lacks columns: phonx" in summary_line(result.out)
    assert_as_the_full_path(result, db_url, migrations)


# Issue 11: the manifest hashes every local file that loading MODELS read, not
# only models.py: a model defined in a sibling module or inside a package.


def _models_parts(copy: Chain) -> tuple[str, str, str, str]:
    """(the header: docstring and imports, the Base class, the User class, the other classes) of models.py."""
    text = (copy.path / "models.py").read_text()
    base, user, chat = (text.index(f"class {name}(") for name in ("Base", "User", "Chat"))
    return text[:base], text[base:user], text[user:chat], text[chat:]


def models_importing_a_sibling(copy: Chain) -> Path:
    """models.py imports Base and User from accounts.py, beside it; returns accounts.py."""
    header, base, user, rest = _models_parts(copy)
    sibling = copy.path / "accounts.py"
    sibling.write_text(header + base + user)
    (copy.path / "models.py").write_text(header + "from accounts import Base, User  # noqa: F401\n\n\n" + rest)
    return sibling


def models_as_a_package(copy: Chain) -> Path:
    """MODELS=app_models:Base, a package whose User lives in app_models/accounts.py; returns that file."""
    header, base, user, rest = _models_parts(copy)
    package = copy.path / "app_models"
    package.mkdir()
    (package / "base.py").write_text(header + base)
    (package / "accounts.py").write_text(header + "from .base import Base\n\n\n" + user)
    (package / "__init__.py").write_text(
        header + "from .base import Base\nfrom .accounts import User  # noqa: F401\n\n\n" + rest
    )
    (copy.path / "models.py").unlink()  # nothing may fall back on it
    return package / "accounts.py"


@pytest.mark.parametrize(
    "layout, models",
    [(models_importing_a_sibling, "models:Base"), (models_as_a_package, "app_models:Base")],
    ids=["sibling-module", "package"],
)
def test_a_column_added_in_a_module_the_models_import_makes_the_manifest_stale(db_url, tmp_path, layout, models):
    copy = Chain(tmp_path / "split_models")
    imported_file = layout(copy)
    data = build_manifest(copy, models)
    assert os.path.realpath(imported_file) in {os.path.realpath(copy.path / f) for f in data["files"]}, data["files"]
    result = run_migrate(env=env_for(db_url, copy, MODELS=models))
    assert result.code == 0, result.out
    light = traced_run(db_url, copy, MODELS=models)
    assert light.code == 0, light.out
    assert_fast(light)  # the split models are not stale by themselves

    text = imported_file.read_text()
    assert text.count(PHONE) == 1
    imported_file.write_text(text.replace(PHONE, PHONE + NICKNAME))
    result = traced_run(db_url, copy, MODELS=models)

    assert result.code == 7, result.out
    assert_slow(result, STALE)
    assert "table 'user' lacks columns: nickname" in summary_line(result.out)
    assert_as_the_full_path(result, db_url, copy, MODELS=models)
    assert versions(db_url) == [TARGET]


def test_a_manifest_for_other_models_is_not_used(sqlite_url, migrations):
    at_target(sqlite_url, migrations)

    # The same MetaData, named another way: the manifest cannot know that.
    result = traced_run(sqlite_url, migrations, MODELS="models:Base.metadata")

    assert result.code == 0, result.out
    assert_slow(
        result,
        f"the manifest {migrations.path / '.manifest.marshal'} is for MODELS=models:Base, not models:Base.metadata",
    )
    assert summary_line(result.out).endswith(AT_TARGET)


# -- the database is not at the heads: the real lock, then the scripts are loaded ---


def assert_loaded_under_the_lock(result: Result, current: str) -> None:
    """The reason is logged only once the migration lock is held and the database is really behind."""
    assert_slow(result, f"the database is at {current}, not the heads of the manifest ({TARGET})")
    lines = result.out.splitlines()
    acquired = next((n for n, line in enumerate(lines) if "Acquired the " in line and " lock" in line), None)
    declined = next(n for n, line in enumerate(lines) if "Fast path not taken" in line)
    assert acquired is not None and acquired < declined, result.out


def test_several_rows_in_the_version_table_are_upgraded_through_the_merge(db_url, migrations):
    at_target(db_url, migrations)
    # Both branches applied, the merge not yet: two rows, neither of them the head.
    query(db_url, "DELETE FROM alembic_version")
    query(db_url, "INSERT INTO alembic_version (version_num) VALUES ('24e8f9a7b1c2'), ('abc123def456')")

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_loaded_under_the_lock(result, "24e8f9a7b1c2, abc123def456")
    assert re.search(r"Applying .*24e8f9a7b1c2.* -> merge_heads_final", result.out), result.out
    assert versions(db_url) == [TARGET]


def test_the_head_and_a_stray_row_in_the_version_table_get_the_full_path(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "INSERT INTO alembic_version (version_num) VALUES ('abc123def456')")

    result = traced_run(db_url, migrations)

    # What the full path then makes of it is the core's business (test_upgrade.py).
    assert_loaded_under_the_lock(result, f"abc123def456, {TARGET}")


def test_a_missing_version_table_gets_the_whole_chain_again(db_url, migrations):
    at_target(db_url, migrations)
    query(db_url, "DROP TABLE alembic_version")

    result = traced_run(db_url, migrations)

    # The migrations are idempotent: the whole chain runs again, changes nothing, and stamps.
    assert result.code == 0, result.out
    assert_loaded_under_the_lock(result, "base (empty)")
    assert versions(db_url) == [TARGET]


def test_a_database_at_migration_target_but_not_at_every_head_is_upgraded(db_url, migrations):
    result = run_migrate("upgrade", "ef6fab585ac1", env=env_for(db_url, migrations))
    assert result.code == 0, result.out
    assert versions(db_url) == ["ef6fab585ac1"]

    result = traced_run(db_url, migrations, MIGRATION_TARGET="ef6fab585ac1")

    assert result.code == 0, result.out
    assert_loaded_under_the_lock(result, "ef6fab585ac1")
    assert versions(db_url) == [TARGET]


def test_a_fresh_database_in_a_missing_folder_is_created_and_migrated(sqlite_url, migrations):
    database = sqlite_path(sqlite_url)
    assert not database.parent.exists()

    result = traced_run(sqlite_url, migrations)

    # `run` is a fresh deploy: it creates the folder and the file.
    assert result.code == 0, result.out
    assert_loaded_under_the_lock(result, "base (empty)")
    assert database.is_file()
    assert versions(sqlite_url) == [TARGET]


def test_a_fresh_database_in_an_existing_folder_is_migrated_by_the_runner_that_takes_the_lock(db_url, migrations):
    if is_sqlite(db_url):
        sqlite_path(db_url).parent.mkdir()

    result = traced_run(db_url, migrations)

    assert result.code == 0, result.out
    assert_loaded_under_the_lock(result, "base (empty)")
    assert summary_line(result.out).endswith(
        f"Upgraded base (empty) -> {TARGET}: 10 migration(s) applied (layer 1); verification passed."
    )
    assert versions(db_url) == [TARGET]


def test_enable_auto_migration_false_on_a_database_behind_gets_the_full_path(db_url, migrations):
    behind(db_url, migrations)

    result = traced_run(db_url, migrations, ENABLE_AUTO_MIGRATION="false")

    # Nothing applied, and the verification says what the pending migrations would add.
    assert result.code == 7, result.out
    assert_slow(result, "ENABLE_AUTO_MIGRATION=false, with migrations pending")
    assert "ENABLE_AUTO_MIGRATION=false" in summary_line(result.out)
    assert versions(db_url) == ["ef6fab585ac1"]


# -- other reasons to load the scripts and models -----------------------------------


def test_no_manifest_and_no_cache_gets_the_full_path(sqlite_url, migrations):
    at_target(sqlite_url, migrations)
    forget_manifests(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations)

    assert result.code == 0, result.out
    assert_slow(result, f"no manifest ({migrations.path / '.manifest.marshal'}")
    assert summary_line(result.out).endswith(AT_TARGET)


def test_dependencies_to_install_get_the_full_path(sqlite_url, migrations, tmp_path):
    at_target(sqlite_url, migrations)
    wheelhouse = tmp_path / "wheelhouse"
    build_wheel(wheelhouse, "tinydep", "1.0")

    result = traced_run(
        sqlite_url,
        migrations,
        EXTRA_PIP_PACKAGES="tinydep==1.0",
        PIP_FIND_LINKS=wheelhouse,
        PIP_NO_INDEX="true",
        DEPS_TARGET=tmp_path / "deps",
    )

    # The packages may be what the models import: they are installed, then the models loaded.
    assert result.code == 0, result.out
    assert f"Installed tinydep==1.0 into {tmp_path / 'deps'}." in result.out
    assert_slow(result, "EXTRA_PIP_PACKAGES or PIP_REQUIREMENTS is set")
    assert summary_line(result.out).endswith(AT_TARGET)


def test_upgrade_to_a_revision_loads_the_scripts(sqlite_url, migrations):
    at_target(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations, "upgrade", TARGET)

    assert result.code == 0, result.out
    assert_slow(result, f"upgrade {TARGET}")
    assert versions(sqlite_url) == [TARGET]


@servers
def test_a_database_that_does_not_answer_is_waited_for_with_the_bare_driver(server, driver, request, migrations):
    # Nothing answers on that port: which database the URL names does not matter.
    closed = (
        make_url(request.getfixturevalue(server).url(database="app"))
        .set(port=free_port())
        .render_as_string(hide_password=False)
    )

    result = traced_run(closed, migrations, DB_WAIT_TIMEOUT=1)

    # The wait comes before any decision: nothing heavy is imported to find out.
    assert result.code == 3, result.out
    assert "did not answer within DB_WAIT_TIMEOUT=1s" in summary_line(result.out)
    assert not path_lines(result.out), result.out
    assert_light(result.out)
    assert driver in imported(result.out)


def test_fast_path_false_always_runs_the_full_sequence(sqlite_url, migrations):
    at_target(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations, FAST_PATH="false")

    assert result.code == 0, result.out
    assert_slow(result, "FAST_PATH=false")


# -- the end of the process (issue 14) ----------------------------------------------


def test_a_run_that_loaded_the_users_code_ends_with_the_interpreters_own_teardown(db_url, migrations, tmp_path):
    """Only a process that ran nothing but migrate-init skips the interpreter's teardown (os._exit).

    Once env.py has run, its atexit handlers and unclosed files are the user's:
    the process ends as Python ends it, and they run.
    """
    marker = tmp_path / "atexit-ran"
    with open(migrations.path / "env.py", "a", encoding="utf-8") as env_py:
        env_py.write(
            f"\nimport atexit\natexit.register(lambda: open({str(marker)!r}, 'a').write('ran\\n'))\n"
            f"_left_open = open({str(tmp_path / 'unclosed')!r}, 'w')\n_left_open.write('buffered')\n"
        )
    build_manifest(migrations)

    full = traced_run(db_url, migrations)

    assert full.code == 0, full.out
    assert_slow(full, "not the heads of the manifest")
    ran = marker.read_text()  # once per time env.py ran (each layer runs it), at the process's end
    assert ran and set(ran.splitlines()) == {"ran"}, ran
    assert (tmp_path / "unclosed").read_text() == "buffered"

    fast = traced_run(db_url, migrations)

    assert fast.code == 0, fast.out
    assert_fast(fast)
    assert marker.read_text() == ran  # env.py was not loaded: nothing of the user's ran
    assert summary_line(fast.out).endswith(AT_TARGET)


def test_a_sqlite_run_with_nothing_to_do_imports_only_what_it_uses(sqlite_url, migrations):
    """Issue 14: no module that the way to "nothing to do" does not need (see docs/performance.md)."""
    at_target(sqlite_url, migrations)

    result = traced_run(sqlite_url, migrations)

    assert result.code == 0, result.out
    assert_fast(result)
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", result.out, re.M))
    unused = {
        "re",
        "enum",
        "signal",
        "threading",
        "contextlib",
        "logging",
        "json",
        "typing",
        "dataclasses",
        "pathlib",
        "urllib.parse",
        "datetime",
        "sqlite3",
        "hashlib",
        "socket",
        "math",
        "migrate_init.upgrade",
        # Not migrate_init.lock: the engine's module (engines/sqlite.py) holds its reader and its lock,
        # whose base (lock.py: stdlib only, about 0.1 ms) comes with it (issue 21).
        "migrate_init.commands",
        "migrate_init.seed",
    }
    assert not names & unused, sorted(names & unused)


def test_a_run_with_nothing_to_do_writes_every_line_before_it_ends(sqlite_url, migrations, tmp_path):
    """The fast path ends with os._exit: its lines, its REPORT_FILE and its exit code are all there."""
    at_target(sqlite_url, migrations)
    report_file = tmp_path / "report.json"
    env = env_for(sqlite_url, migrations, LOG_LEVEL="INFO", REPORT_FILE=report_file)

    code, stdout, stderr = run_split(env=env)

    assert code == 0, stderr
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 3 and stderr.endswith("\n"), stderr
    assert lines[-1].endswith(AT_TARGET)
    assert json.loads(report_file.read_text())["exit_code"] == 0


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_a_run_with_nothing_to_do_whose_reader_left_still_exits_0(sqlite_url, migrations, closed):
    """A closed pipe is the reader's choice: the settled exit code stands (no 120 from a failed flush)."""
    at_target(sqlite_url, migrations)
    proc = subprocess.Popen(
        [sys.executable, str(MIGRATE)],
        env=child_env(env_for(sqlite_url, migrations)),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    getattr(proc, closed).close()  # the reader leaves before a line is written
    other = proc.stderr if closed == "stdout" else proc.stdout
    out = other.read()
    assert proc.wait(timeout=60) == 0, out
    if closed == "stdout":
        assert AT_TARGET in out


# -- the cache: a mounted migrations folder with no build step (issue 11) ------------


def test_the_first_full_run_caches_the_manifest_and_the_second_takes_the_fast_path(db_url, tmp_path):
    copy = Chain(tmp_path / "mounted_migrations")  # no `migrate.py manifest`: nothing baked
    folder = cache_folder(db_url, copy)

    first = traced_run(db_url, copy)

    assert first.code == 0, first.out
    assert_slow(first, f"no manifest ({copy.path / '.manifest.marshal'}")
    assert versions(db_url) == [TARGET]
    assert not (copy.path / ".manifest.marshal").exists()
    cached = cached_manifests(folder)
    assert len(cached) == 1, list(folder.rglob("*"))
    assert f"Cached the manifest in {cached[0]} for the fast path." in first.out
    assert marshal.loads(cached[0].read_bytes())["heads"] == [TARGET]

    second = traced_run(db_url, copy)

    assert second.code == 0, second.out
    assert_fast(second)
    assert summary_line(second.out).endswith(AT_TARGET)


def test_without_the_baked_manifest_the_cache_answers(sqlite_url, migrations):
    at_target(sqlite_url, migrations)
    (migrations.path / ".manifest.marshal").unlink()
    assert cached_manifests(sqlite_path(sqlite_url).parent)

    result = traced_run(sqlite_url, migrations)

    assert result.code == 0, result.out
    assert_fast(result)
    assert summary_line(result.out).endswith(AT_TARGET)


def test_a_full_run_that_finds_the_database_at_target_caches_the_manifest_too(sqlite_url, migrations):
    at_target(sqlite_url, migrations)
    forget_manifests(sqlite_url, migrations)
    first = traced_run(sqlite_url, migrations)
    assert first.code == 0, first.out
    assert_slow(first, "no manifest (")

    second = traced_run(sqlite_url, migrations)

    assert second.code == 0, second.out
    assert_fast(second)


# -- replicas: the one migration lock, taken with the bare driver --------------------


@contextlib.contextmanager
def holding_the_migration_lock(url: str):
    """Another migrator holds the real migration lock (tests.support.locks) until the block ends."""
    if is_sqlite(url):
        with sqlite_lock_held(sqlite_path(url)):
            yield
    elif is_mysql(url):
        with my_lock_held(url):
            yield
    else:
        with pg_lock_held(url):
            yield


def finish_the_job_as_the_holder(url: str, copy: Chain) -> None:
    """What the holder does with the lock: bring the database to the heads (Alembic's own CLI takes no lock)."""
    result = run_migrate("alembic", "upgrade", "heads", env=env_for(url, copy))
    assert result.code == 0, result.out
    assert versions(url) == [TARGET]


def start_traced(url: str, copy: Chain, **extra: object):
    return start_python("-X", "importtime", MIGRATE, env=env_for(url, copy, **extra))


WAITING_FOR_THE_LOCK = re.compile(r"Waiting for the (migration|advisory|MySQL) lock .*, held by ")


def read_until(proc, pattern: re.Pattern) -> str:
    """The output of ``proc`` up to the line matching ``pattern``; fails if it exits first."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if pattern.search(line):
            return "".join(seen)
    proc.wait()
    raise AssertionError(f"exited {proc.returncode} before printing {pattern.pattern!r}:\n{''.join(seen)}")


def behind(url: str, copy: Chain) -> None:
    """A database one deploy behind: at ef6fab585ac1, with the rest pending."""
    result = run_migrate("upgrade", "ef6fab585ac1", env=env_for(url, copy))
    assert result.code == 0, result.out
    assert versions(url) == ["ef6fab585ac1"]


def test_a_runner_that_waited_for_the_lock_answers_without_sqlalchemy_when_the_holder_finished(any_url, migrations):
    behind(any_url, migrations)
    with holding_the_migration_lock(any_url):
        proc = start_traced(any_url, migrations)
        try:
            early = read_until(proc, WAITING_FOR_THE_LOCK)
            finish_the_job_as_the_holder(any_url, migrations)
        except BaseException:
            kill_group(proc)
            raise
    rest, _ = proc.communicate(timeout=120)
    out = early + rest

    assert proc.returncode == 0, out
    assert_fast(Result(proc.returncode, out))
    assert summary_line(out).endswith(
        f"Database is at its target {TARGET}; nothing to do (another migrator finished while "
        "this one waited for the lock)."
    )
    assert versions(any_url) == [TARGET]


@pytest.mark.parametrize(
    "engine", [pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]
)
def test_a_runner_waits_for_the_lock_in_the_session_it_reads_with(engine, request, migrations):
    """One session per runner, not two (issue 14): 16 replicas are 16 connections while they wait."""
    url = request.getfixturevalue("pg_url" if engine == "postgresql" else "mysql_url")
    behind(url, migrations)
    with holding_the_migration_lock(url):
        proc = start_traced(url, migrations)
        try:
            early = read_until(proc, WAITING_FOR_THE_LOCK)
            if engine == "postgresql":
                sessions = query(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'migrate-init'")
            else:  # the sessions in this database but this query's and the holder's
                sessions = query(
                    url,
                    "SELECT count(*) - 1 FROM information_schema.PROCESSLIST "
                    "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
                )
        finally:
            kill_group(proc)
            proc.communicate(timeout=60)
    assert sessions == [(1,)], early
    assert versions(url) == ["ef6fab585ac1"]


def test_a_runner_that_waited_for_the_lock_migrates_itself_when_the_holder_left_the_database_behind(db_url, migrations):
    behind(db_url, migrations)
    with holding_the_migration_lock(db_url):
        proc = start_traced(db_url, migrations)
        try:
            early = read_until(proc, WAITING_FOR_THE_LOCK)
        except BaseException:
            kill_group(proc)
            raise
        # Released without finishing: a migrator that crashed, or gave up.
    rest, _ = proc.communicate(timeout=120)
    out = early + rest

    assert proc.returncode == 0, out
    assert_loaded_under_the_lock(Result(proc.returncode, out), "ef6fab585ac1")
    assert re.search(r"Upgraded ef6fab585ac1 -> merge_heads_final", summary_line(out)), out
    assert versions(db_url) == [TARGET]


def test_sigterm_while_waiting_for_the_lock_exits_143_and_changes_nothing(sqlite_url, migrations):
    behind(sqlite_url, migrations)
    with holding_the_migration_lock(sqlite_url):
        proc = start_traced(sqlite_url, migrations)
        try:
            early = read_until(proc, WAITING_FOR_THE_LOCK)
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=120)
        finally:
            kill_group(proc)
    out = early + rest

    assert proc.returncode == 143, out
    assert "FAILED (exit 143): Stopped by SIGTERM while waiting for the migration lock" in summary_line(out)
    assert_light(out)  # a waiter waits light: nothing was loaded before the lock
    assert versions(sqlite_url) == ["ef6fab585ac1"]


def test_replicas_started_together_apply_each_migration_once(db_url, migrations):
    if is_sqlite(db_url):
        sqlite_path(db_url).parent.mkdir()
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
    # The seven that did not migrate re-read under the lock (or after it) and never loaded anything.
    for out, line in zip(outs, summaries, strict=True):
        if "nothing to do" in line:
            assert_fast(Result(0, out))
    assert versions(db_url) == [TARGET]


# -- the pieces ------------------------------------------------------------------


def test_the_log_mask_finds_every_form_of_a_url_password_without_sqlalchemy():
    code = (
        "import sys; from migrate_init.url import secret_forms\n"
        "forms = secret_forms('postgresql://u:p%40ss%2Bw+rd@h/db')\n"
        "assert {'p@ss+w+rd', 'p%40ss%2Bw+rd', 'p%40ss%2Bw%2Brd'} <= forms, forms\n"
        "assert not {'h', 'u', 'db'} & forms, forms\n"  # the host, user and path stay readable
        "assert 'not a url' in secret_forms('not a url')\n"
        "assert 'sqlalchemy' not in sys.modules\n"
    )
    result = run_python("-c", code)

    assert result.code == 0, result.out


def test_the_manifest_records_the_heads_schema_the_files_read_and_a_content_hash(migrations):
    data = marshal.loads((migrations.path / ".manifest.marshal").read_bytes())

    assert data["heads"] == [TARGET]
    assert len(data["revisions"]) == 10
    assert data["models"] == "models:Base"
    files = {os.path.realpath(migrations.path / f) for f in data["files"]}
    wanted = {migrations.path / "env.py", migrations.path / "models.py", *migrations.versions.glob("*.py")}
    assert {os.path.realpath(f) for f in wanted} <= files, sorted(files)
    assert not any("site-packages" in f or "/migrate_init/" in f for f in files), sorted(files)
    assert "phone" in data["schema"]["user"]
    assert data["counted_tables"] == ["chat", "user"]
    assert re.fullmatch(r"[0-9a-f]{64}", data["content_hash"])


def test_the_benchmark_runs_in_quick_mode():
    result = run_python(REPO / "bench" / "bench.py", "--quick", "--only", "1", "--sqlite-only", timeout=300)

    assert result.code == 0, result.out
    assert re.search(r"^1 .*SQLite.*(PASS|MISS)", result.out, re.M), result.out
