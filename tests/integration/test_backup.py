"""Issue 5, SQLite backups: taken before pending migrations and only then, pruned, checked for space.

Every backup is opened with sqlite3 and must pass ``PRAGMA integrity_check``
and hold the rows the database held before the run.  Issue 27: the copy is the
database's bytes, one committed state while another process writes, on any filesystem.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.chains import TARGET
from tests.support.dbstate import add_blobs, add_users, count, query, snapshot, sqlite_path, versions
from tests.support.faults import file_digest
from tests.support.process import (
    Runner,
    kill_group,
    operator_env,
    report_of,
    run_migrate,
    start_python,
    summary_line,
    wait_until,
)


def _backups(folder: Path) -> list[Path]:
    # <db file>.<UTC stamp>.at-<revision>.migrate-init-backup (issue 13: a name no user file has)
    return sorted(folder.glob("*.migrate-init-backup")) if folder.is_dir() else []


def _open_backup(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{quote(str(path), safe='/')}?mode=ro", uri=True)
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


def _tmpfs(mount: Path, size: str):
    """A tmpfs of ``size`` on ``mount``; CI runs the tests as root, so failing to mount it fails the test there."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs on {mount}: {done.stderr.strip()} (needs root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs."""
    yield from _tmpfs(tmp_path / "tiny", "64k")


@pytest.fixture
def roomy_tmpfs(tmp_path):
    """A 128 MiB tmpfs: another filesystem than the database's, where copy_file_range says EXDEV."""
    yield from _tmpfs(tmp_path / "roomy", "128m")


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


# --- backup names say which database, fit the filesystem, and stop on SIGTERM (issue 25) ---------------------


def _upgrade_in_steps(url: str, tmp_path: Path, env: dict[str, str], steps: list[str]) -> list[str]:
    """Upgrade to each of ``steps`` in turn (rows added after the first); the backup each run named."""
    named = []
    for index, step in enumerate(steps):
        report = tmp_path / "report.json"
        result = run_migrate("upgrade", step, env={**env, "REPORT_FILE": str(report)})
        assert result.code == 0, result.out
        named.append(report_of(report)["backup"])
        if index == 0:
            add_users(url, "u1")
    return named


def test_two_databases_of_the_same_name_sharing_a_backup_dir_keep_their_own_backups(tmp_path):
    """/t1/webui.db and /t2/webui.db, one BACKUP_DIR, BACKUP_KEEP=1: t2's runs never prune t1's backup (N13)."""
    shared = tmp_path / "shared-backups"
    urls = [f"sqlite:///{tmp_path / name / 'webui.db'}" for name in ("t1", "t2")]
    steps = ["7e5b5dc7342b", "ca81bd47c050", "9b4c5d8e2f10", "5c8d3e1f4a27"]
    kept = {}
    for url in urls:
        env = operator_env(url, tmp_path, BACKUP_DIR=shared, BACKUP_KEEP=1)
        named = _upgrade_in_steps(url, tmp_path, env, steps if url == urls[1] else steps[:2])
        kept[url] = named[-1]

    assert Path(kept[urls[0]]).exists(), f"t2's runs pruned t1's backup: {sorted(p.name for p in shared.iterdir())}"
    assert Path(kept[urls[1]]).exists()
    assert sorted(_backups(shared)) == sorted(Path(p) for p in kept.values())
    connection = _open_backup(Path(kept[urls[0]]))
    try:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("7e5b5dc7342b",)]
    finally:
        connection.close()


@pytest.mark.parametrize("name", ["d" * 200 + ".db", "ö" * 100 + ".db"])
def test_a_database_with_a_long_file_name_is_backed_up_and_pruned(tmp_path, name):
    """A database file name of 203 bytes (ASCII, or two bytes a character): the backup's name, which adds
    its time, revision and suffixes, still fits in 255 bytes (N34)."""
    url = f"sqlite:///{tmp_path / 'data' / name}"
    env = operator_env(url, tmp_path, BACKUP_KEEP=1)

    named = _upgrade_in_steps(url, tmp_path, env, ["7e5b5dc7342b", "ca81bd47c050", "9b4c5d8e2f10"])

    assert named[0] is None and all(named[1:]), named
    folder = sqlite_path(url).parent / "backups"
    assert _backups(folder) == [Path(named[-1])], "BACKUP_KEEP=1 keeps the newest backup only"
    assert len(os.fsencode(Path(named[-1]).name)) <= 255
    assert versions(url) == ["9b4c5d8e2f10"]


def test_sigterm_during_a_large_backup_stops_it_and_leaves_no_backup_file(sqlite_url, tmp_path):
    """A backup of some 300 MB is under way when SIGTERM comes: exit 143, the copy ends at its next step, no file
    of it is left (neither complete nor partial), and the database is as it was (N26)."""
    _at_70c7_with_rows(sqlite_url, tmp_path)
    add_blobs(sqlite_url, 300)
    before = snapshot(sqlite_url)
    backups = tmp_path / "backups"
    runner = Runner(operator_env(sqlite_url, tmp_path, BACKUP_DIR=backups, MIGRATION_TIMEOUT=600), tmp_path / "run.log")
    try:
        wait_until(
            lambda: backups.is_dir() and any(".partial" in p.name for p in backups.iterdir()),
            120,
            "the backup to start",
            runner,
            interval=0.002,
        )
        runner.signal(signal.SIGTERM)

        assert runner.wait(120) == 143, runner.out
    finally:
        runner.kill()
    assert list(backups.iterdir()) == [], "a stopped backup leaves nothing behind"
    assert "Backed up" not in runner.out, runner.out
    assert versions(sqlite_url) == ["70c7b727736e"]
    assert snapshot(sqlite_url) == before
    assert count(sqlite_url, "user") == 3


@pytest.mark.parametrize("folder", ["odd#dir", "odd?dir", "odd%dir"])
def test_backup_of_a_database_in_a_folder_whose_name_holds_uri_characters_holds_its_rows(tmp_path, folder):
    # issue 21: the backup opened "file:/srv/odd#dir/app.db?mode=ro" unquoted, so SQLite read the
    # path as /srv/odd, created an empty file there, and the "backup" held no table at all.
    home = tmp_path / folder
    home.mkdir()
    url = "sqlite:///" + quote(str(home / "app.db"), safe="/")
    _at_70c7_with_rows(url, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())

    result = run_migrate(env=operator_env(url, tmp_path))

    assert result.code == 0, result.out
    assert versions(url) == [TARGET]
    [backup] = _backups(home / "backups")
    connection = _open_backup(backup)
    try:
        assert connection.execute('SELECT COUNT(*) FROM "user"').fetchone() == (3,)
        assert connection.execute("SELECT COUNT(*) FROM chat").fetchone() == (2,)
    finally:
        connection.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a file appeared beside the folder"


# --- the copy: the database's bytes, one consistent state, on any filesystem (issue 27) ----------------------


def test_backup_of_a_rollback_journal_database_is_its_bytes(sqlite_url, tmp_path):
    """Some 40 MB, copied in several chunks: the backup is the file byte for byte, as it was before the run."""
    _at_70c7_with_rows(sqlite_url, tmp_path)
    add_blobs(sqlite_url, 40)
    database = sqlite_path(sqlite_url)
    before = file_digest(database)

    result = run_migrate(env=operator_env(sqlite_url, tmp_path))

    assert result.code == 0, result.out
    [backup] = _backups(database.parent / "backups")
    assert file_digest(backup) == before
    _open_backup(backup).close()
    assert versions(sqlite_url) == [TARGET]


def test_backup_into_another_filesystem_is_the_database_bytes(sqlite_url, tmp_path, roomy_tmpfs):
    """BACKUP_DIR on a tmpfs, the database on the disk: the kernel will not copy_file_range between them, and the
    copy goes on another way (sendfile)."""
    _at_70c7_with_rows(sqlite_url, tmp_path)
    add_blobs(sqlite_url, 40)
    database = sqlite_path(sqlite_url)
    before = file_digest(database)

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, BACKUP_DIR=roomy_tmpfs))

    assert result.code == 0, result.out
    [backup] = _backups(roomy_tmpfs)
    assert file_digest(backup) == before
    assert list(roomy_tmpfs.iterdir()) == [backup]
    _open_backup(backup).close()
    assert versions(sqlite_url) == [TARGET]


# Rewrites every row of "pair" in one transaction, as fast as it can, until the file `stop` exists.
_WRITER = """
import os, sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
connection.execute("PRAGMA synchronous=OFF")
commits = 0
while not os.path.exists(sys.argv[2]):
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("UPDATE pair SET n = n + 1")
    connection.execute("COMMIT")
    commits += 1
    time.sleep(0.002)
print(commits)
"""


def test_a_writer_committing_throughout_the_backup_leaves_it_one_consistent_state(sqlite_url, tmp_path):
    """Another process rewrites 2,000 rows spread over a 200 MB file in every transaction while migrate.py runs:
    every row of the backup holds the same value (one committed state, not pages of several), and it passes
    integrity_check.  A byte copy taken without holding SQLite's read lock tears here."""
    _at_70c7_with_rows(sqlite_url, tmp_path)
    database = sqlite_path(sqlite_url)
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("CREATE TABLE pair (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad BLOB)")
        connection.execute("CREATE TABLE filler (b BLOB)")
        for _ in range(20):  # the rows of pair lie between 10 MB blobs, all along the file
            connection.execute("INSERT INTO filler VALUES (zeroblob(10000000))")
            connection.executemany("INSERT INTO pair (n, pad) VALUES (0, zeroblob(400))", [()] * 100)
    connection.close()
    stop = tmp_path / "stop-writing"
    writer = start_python("-c", _WRITER, database, stop)
    try:
        wait_until(lambda: query(sqlite_url, "SELECT max(n) FROM pair")[0][0] > 0, 60, "the writer's first commit")

        result = run_migrate(env=operator_env(sqlite_url, tmp_path))

        stop.touch()
        out, _ = writer.communicate(timeout=120)
    finally:
        kill_group(writer)
    assert writer.returncode == 0 and int(out) > 0, out
    assert result.code == 0, result.out
    assert versions(sqlite_url) == [TARGET]
    [backup] = _backups(database.parent / "backups")
    connection = _open_backup(backup)
    try:
        assert connection.execute("SELECT count(*), count(DISTINCT n) FROM pair").fetchone() == (2000, 1)
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("70c7b727736e",)]
    finally:
        connection.close()
    assert query(sqlite_url, "SELECT count(*), count(DISTINCT n) FROM pair") == [(2000, 1)]


def test_backup_of_a_wal_database_holds_its_rows_and_leaves_no_side_file(sqlite_url, tmp_path):
    """A database in WAL mode, with commits still in its -wal: copied with SQLite's backup API (its main file
    alone is not a state); the backup holds every committed row and the folder only the backup."""
    _at_70c7_with_rows(sqlite_url, tmp_path)
    database = sqlite_path(sqlite_url)
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")  # keep what follows in the -wal
    with connection:
        connection.execute("INSERT INTO \"user\" (id, name, email, role) VALUES ('u4', 'u4', 'u4@example.com', 'user')")
    assert Path(f"{database}-wal").stat().st_size > 0
    try:
        result = run_migrate(env=operator_env(sqlite_url, tmp_path))
    finally:
        connection.close()

    assert result.code == 0, result.out
    folder = database.parent / "backups"
    [backup] = _backups(folder)
    assert list(folder.iterdir()) == [backup]
    connection = _open_backup(backup)
    try:
        assert connection.execute('SELECT id FROM "user" ORDER BY id').fetchall() == [
            ("u1",),
            ("u2",),
            ("u3",),
            ("u4",),
        ]
    finally:
        connection.close()
    assert versions(sqlite_url) == [TARGET]
