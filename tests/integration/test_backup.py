"""Issue 5, SQLite backups: taken before pending migrations and only then, pruned, checked for space.

Every backup is opened with sqlite3 and must pass ``PRAGMA integrity_check``
and hold the rows the database held before the run.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support.chains import TARGET
from tests.support.dbstate import add_users, count, query, snapshot, sqlite_path, versions
from tests.support.process import operator_env, report_of, run_migrate, summary_line


def _backups(folder: Path) -> list[Path]:
    # <db file>.<UTC stamp>.at-<revision>.migrate-init-backup (issue 13: a name no user file has)
    return sorted(folder.glob("*.migrate-init-backup")) if folder.is_dir() else []


def _open_backup(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    return connection


def _at_70c7_with_rows(url, tmp_path) -> None:
    result = run_migrate("upgrade", "70c7b727736e", env=operator_env(url, tmp_path))
    assert result.code == 0, result.out
    add_users(url, "u1", "u2", "u3")
    query(url, "INSERT INTO chat (id, user_id, title) VALUES ('c1', 'u1', 'a'), ('c2', 'u2', 'b')")


def test_backup_is_taken_before_pending_migrations_and_matches_the_database(sqlite_url, tmp_path):
    result = run_migrate("upgrade", "70c7b727736e", env=operator_env(sqlite_url, tmp_path))
    assert result.code == 0, result.out
    folder = sqlite_path(sqlite_url).parent / "backups"
    assert _backups(folder) == [], "a new, empty database has nothing to back up"
    add_users(sqlite_url, "u1", "u2", "u3")
    query(sqlite_url, "INSERT INTO chat (id, user_id, title) VALUES ('c1', 'u1', 'a'), ('c2', 'u2', 'b')")
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, REPORT_FILE=report))

    assert result.code == 0, result.out
    [backup] = _backups(folder)
    connection = _open_backup(backup)
    try:
        assert connection.execute('SELECT COUNT(*) FROM "user"').fetchone() == (3,)
        assert connection.execute("SELECT COUNT(*) FROM chat").fetchone() == (2,)
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("70c7b727736e",)]
        assert "phone" not in {r[1] for r in connection.execute('PRAGMA table_info("user")')}
    finally:
        connection.close()
    assert versions(sqlite_url) == [TARGET]
    # The summary names it: the text line and REPORT_FILE.
    assert str(backup) in summary_line(result.out), summary_line(result.out)
    assert report_of(report)["backup"] == str(backup)

    # Only then: a run with nothing to apply takes no backup.
    again = run_migrate(env=operator_env(sqlite_url, tmp_path, REPORT_FILE=report))

    assert again.code == 0, again.out
    assert _backups(folder) == [backup]
    assert report_of(report)["backup"] is None
    assert "Backed up" not in again.out and "Backup:" not in again.out


def test_backup_keep_keeps_the_newest_backups(sqlite_url, tmp_path):
    folder = tmp_path / "my-backups"
    env = operator_env(sqlite_url, tmp_path, BACKUP_DIR=folder, BACKUP_KEEP=2)
    assert run_migrate("upgrade", "7e5b5dc7342b", env=env).code == 0
    add_users(sqlite_url, "u1")
    steps = ["ca81bd47c050", "9b4c5d8e2f10", "5c8d3e1f4a27"]
    for step in steps:
        result = run_migrate("upgrade", step, env=env)
        assert result.code == 0, result.out

    kept = _backups(folder)
    # Each backup is labelled with the revision it was taken at: the oldest (7e5b5dc7342b) is gone.
    assert len(kept) == 2, kept
    assert "ca81bd47c050" in kept[0].name and "9b4c5d8e2f10" in kept[1].name, kept
    assert not (sqlite_path(sqlite_url).parent / "backups").exists()
    for backup in kept:
        connection = _open_backup(backup)
        assert connection.execute('SELECT COUNT(*) FROM "user"').fetchone() == (1,)
        connection.close()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs; CI runs the tests as root, so failing to mount it fails the test there."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        message = f"cannot mount a tmpfs on {mount}: {done.stderr.strip()} (needs root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_short_free_space_fails_before_any_ddl_and_says_how_much_is_needed(sqlite_url, tmp_path, tiny_tmpfs):
    _at_70c7_with_rows(sqlite_url, tmp_path)
    # About 300 kB of data: more than the 64 KiB the backup folder has.
    query(sqlite_url, "INSERT INTO tool (id, content) VALUES ('big', :blob)", {"blob": "x" * 300_000})
    database = sqlite_path(sqlite_url)
    before = snapshot(sqlite_url)
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, BACKUP_DIR=tiny_tmpfs, REPORT_FILE=report))

    assert result.code == 1, result.out
    assert f"Not enough free space in BACKUP_DIR={tiny_tmpfs}" in result.out
    needed = database.stat().st_size * 1.1 / 1_000_000
    assert f"{needed:.1f} MB needed" in result.out, result.out
    assert "No migration was applied" in result.out
    assert "Running upgrade" not in result.out
    assert snapshot(sqlite_url) == before
    assert versions(sqlite_url) == ["70c7b727736e"]
    assert count(sqlite_url, "user") == 3
    assert list(tiny_tmpfs.iterdir()) == []
    summary = report_of(report)
    assert (summary["outcome"], summary["exit_code"], summary["backup"]) == ("backup_failed", 1, None)
