"""Issue 5, reports: progress lines, LOG_FORMAT=json, the REPORT_FILE summary, several heads.

The JSON lines must carry what the text lines carry (level, logger, message)
plus machine fields; the REPORT_FILE summary must say what happened for a
success and for each kind of failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket

import pytest

from tests.support.chains import REVISIONS, TARGET, Chain
from tests.support.dbstate import add_users, is_sqlite, query, sqlite_path, versions
from tests.support.mounts import bind
from tests.support.process import operator_env, report_of, run_migrate, run_split, summary_line

# Every text line starts with the time, ISO 8601 UTC with milliseconds (issue 12).
_TEXT = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+)\s+\[(?P<logger>[\w.]+)\] "
    r"(?P<message>.*)$"
)
SUMMARY_KEYS = {
    "outcome",
    "exit_code",
    "from_revisions",
    "to_revisions",
    "layers_tried",
    "fallback_used",
    "backup",
    "row_counts",
    "durations",
}


def test_progress_lines_name_each_migration_then_its_elapsed_time(sqlite_url, tmp_path):
    result = run_migrate(env=operator_env(sqlite_url, tmp_path))

    assert result.code == 0, result.out
    progress = [
        line.split("] ", 1)[1]
        for line in result.out.splitlines()
        if re.search(r"\] (\[\d+/\d+\] Applying|Applied) ", line)
    ]
    expected = []
    for index, (revision, source, name) in enumerate(REVISIONS, 1):
        expected.append(re.escape(f"[{index}/10] Applying {source} -> {revision} ({name})"))
        expected.append(re.escape(f"Applied {revision} in ") + r"\d+ms")
    assert len(progress) == len(expected), "\n".join(progress)
    for line, pattern in zip(progress, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


def _normalise(message: str, folder) -> str:
    return re.sub(r"\b\d+ms\b", "<ms>", message.replace(str(folder), "<tmp>"))


def test_json_logs_are_one_object_per_line_with_the_fields_of_the_text_lines(tmp_path):
    lines = {}
    for log_format in ("text", "json"):
        folder = tmp_path / log_format
        folder.mkdir()
        url = f"sqlite:///{folder}/data/webui.db"
        code, stdout, stderr = run_split(env=operator_env(url, folder, LOG_FORMAT=log_format))
        assert code == 0, stderr
        assert stdout == ""
        lines[log_format] = (folder, stderr.splitlines())

    folder, text_lines = lines["text"]
    text = []
    for line in text_lines:
        match = _TEXT.match(line)
        assert match, f"not a text log line: {line!r}"
        text.append((match["level"], match["logger"], _normalise(match["message"], folder)))

    folder, json_lines = lines["json"]
    records = [json.loads(line) for line in json_lines]  # every line parses
    assert all(isinstance(r, dict) for r in records)
    for record in records:
        assert {"time", "level", "logger", "event", "message"} <= record.keys(), record
    assert [(r["level"], r["logger"], _normalise(r["message"], folder)) for r in records] == text

    applying = [r for r in records if r["event"] == "applying"]
    assert [(r["index"], r["total"], r["revision"], r["name"]) for r in applying] == [
        (k, 10, revision, name) for k, (revision, _, name) in enumerate(REVISIONS, 1)
    ]
    applied = [r for r in records if r["event"] == "applied"]
    assert [r["revision"] for r in applied] == [step[0] for step in REVISIONS]
    assert all(isinstance(r["elapsed"], float) and r["elapsed"] >= 0 for r in applied)
    summary = records[-1]
    assert summary["event"] == "summary"
    assert summary["message"].startswith("OK (exit 0): Upgraded base (empty) -> merge_heads_final")
    assert (summary["outcome"], summary["exit_code"], summary["to_revisions"]) == ("upgraded", 0, [TARGET])


def test_json_logs_stay_json_when_the_configuration_is_refused(tmp_path):
    report = tmp_path / "report.json"
    code, _stdout, stderr = run_split(
        env=operator_env(
            f"sqlite:///{tmp_path}/x.db", tmp_path, LOG_FORMAT="json", BACKUP_KEEP="many", REPORT_FILE=report
        )
    )

    assert code == 2, stderr
    [record] = [json.loads(line) for line in stderr.splitlines()]
    assert (record["level"], record["event"], record["exit_code"]) == ("ERROR", "summary", 2)
    assert "BACKUP_KEEP" in record["message"]
    summary = report_of(report)
    assert (summary["outcome"], summary["exit_code"]) == ("config_error", 2)
    assert "BACKUP_KEEP='many'" in summary["message"]
    assert not (tmp_path / "x.db").exists()


def test_report_file_summarises_a_successful_upgrade(db_url, tmp_path):
    result = run_migrate("upgrade", "70c7b727736e", env=operator_env(db_url, tmp_path))
    assert result.code == 0, result.out
    add_users(db_url, "u1", "u2")
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(db_url, tmp_path, REPORT_FILE=report))

    assert result.code == 0, result.out
    summary = report_of(report)
    assert SUMMARY_KEYS <= summary.keys()
    assert (summary["outcome"], summary["exit_code"]) == ("upgraded", 0)
    assert summary["from_revisions"] == ["70c7b727736e"]
    assert summary["to_revisions"] == [TARGET] == versions(db_url)
    assert summary["applied"] == ["abc123def456", "ef6fab585ac1", "24e8f9a7b1c2", TARGET]
    assert summary["layers_tried"] == ["layer 1"]
    assert summary["fallback_used"] is False
    assert summary["row_counts"] == {"chat": 0, "user": 2}
    assert {"wait", "upgrade", "total"} <= summary["durations"].keys()
    assert all(isinstance(v, float) and v >= 0 for v in summary["durations"].values())
    if is_sqlite(db_url):
        assert summary["backup"] and summary["backup"].endswith(".at-70c7b727736e.migrate-init-backup")
    else:
        assert summary["backup"] is None
    assert summary["message"] in summary_line(result.out)


def test_report_file_summarises_a_refused_destructive_migration(db_url, tmp_path):
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
    assert run_migrate(env=operator_env(db_url, tmp_path)).code == 0
    # The guard refuses only a drop of values (issue 22): the column made in this run holds none.
    add_users(db_url, "u1")
    query(db_url, 'ALTER TABLE "user" ADD COLUMN legacy_note TEXT')
    query(db_url, "UPDATE \"user\" SET legacy_note = 'keep me'")
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(db_url, tmp_path, REPORT_FILE=report, **variant.env()))

    assert result.code == 8, result.out
    summary = report_of(report)
    assert (summary["outcome"], summary["exit_code"]) == ("destructive_refused", 8)
    assert summary["from_revisions"] == [TARGET]
    # Where the database was left: the first new revision applied, the refused one not.
    assert summary["to_revisions"] == ["a1b2c3d4e501"] == versions(db_url)
    assert summary["applied"] == ["a1b2c3d4e501"]
    assert summary["failed_revision"] == "a1b2c3d4e502"
    assert summary["layers_tried"] == ["layer 1"]
    assert summary["fallback_used"] is False
    assert "a1b2c3d4e502_drop_legacy_note.py" in summary["message"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("case", ["unknown_revision_2", "unreachable_3"])
def test_report_file_summarises_a_failure(case, sqlite_url, tmp_path):
    report = tmp_path / "report.json"
    if case == "unknown_revision_2":
        result = run_migrate("upgrade", "nosuchrev", env=operator_env(sqlite_url, tmp_path, REPORT_FILE=report))
        expected = ("config_error", 2)
        assert "upgrade nosuchrev" in report_of(report)["message"]
    else:
        url = f"postgresql://app:s3cret-pw@127.0.0.1:{_closed_port()}/app"
        result = run_migrate(env=operator_env(url, tmp_path, REPORT_FILE=report, DB_WAIT_TIMEOUT=1))
        expected = ("unreachable", 3)
        assert "s3cret-pw" not in report.read_text() and "s3cret-pw" not in result.out

    assert result.code == expected[1], result.out
    summary = report_of(report)
    assert SUMMARY_KEYS <= summary.keys()
    assert (summary["outcome"], summary["exit_code"]) == expected
    assert (summary["to_revisions"], summary["fallback_used"], summary["backup"]) == ([], False, None)
    assert summary["message"] in summary_line(result.out)


@pytest.mark.parametrize("shape", ["merge_removed", "branched_after_target"])
def test_several_heads_show_the_branches_and_the_merge_command(shape, sqlite_url, tmp_path):
    variant = Chain(tmp_path / "migrations")
    if shape == "merge_removed":
        variant.remove(TARGET)
        heads = ["24e8f9a7b1c2", "abc123def456"]
    else:
        variant.add(
            "d00d00d00d01",
            "ops.add_column_if_missing('user', sa.Column('left_note', sa.Text))",
            name="left_branch",
            down=TARGET,
        )
        variant.add(
            "d00d00d00d02",
            "ops.add_column_if_missing('user', sa.Column('right_note', sa.Text))",
            name="right_branch",
            down=TARGET,
        )
        heads = ["d00d00d00d01", "d00d00d00d02"]
    report = tmp_path / "report.json"

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, REPORT_FILE=report, **variant.env()))

    assert result.code == 0, result.out
    # A custom MIGRATIONS_DIR has its own alembic.ini: the shipped one would point elsewhere.
    command = f'migrate.py alembic merge -m "merge heads" {" ".join(heads)}'
    summary = report_of(report)
    assert summary["branches"] == heads
    assert summary["merge_command"] == command
    assert any(command in warning for warning in summary["warnings"])
    assert f"Join the branches with: {command}" in result.out
    assert versions(sqlite_url) == heads


# --- REPORT_FILE never overwrites what is not a report (issue 25, N12) -------------------------------


def _migrated(url: str, tmp_path) -> bytes:
    """The database migrated, with a row; its bytes."""
    result = run_migrate(env=operator_env(url, tmp_path))
    assert result.code == 0, result.out
    add_users(url, "kept")
    return sqlite_path(url).read_bytes()


@pytest.mark.parametrize("alias", ["hard link", "bind mount"])
def test_report_file_that_is_the_database_under_another_name_is_exit_2_and_the_database_is_unchanged(
    sqlite_url, tmp_path, alias
):
    before = _migrated(sqlite_url, tmp_path)
    database = sqlite_path(sqlite_url)
    if alias == "hard link":
        report = tmp_path / "report.json"
        os.link(database, report)
        mounted = contextlib.nullcontext()
    else:
        mounted = bind(database.parent, tmp_path / "alias")
        report = tmp_path / "alias" / database.name
    with mounted:
        result = run_migrate(env=operator_env(sqlite_url, tmp_path, REPORT_FILE=report))

        assert result.code == 2, result.out
        assert f"REPORT_FILE={report}" in summary_line(result.out)
        assert database.read_bytes() == before


@pytest.mark.parametrize("content", ["env.py", "text", "binary"])
def test_report_file_naming_an_existing_file_that_is_not_a_report_is_exit_2_and_the_file_is_unchanged(
    db_url, tmp_path, content
):
    existing = {
        "env.py": b"from alembic import context\ncontext.configure()\n",
        "text": b"keep me\n",
        "binary": bytes(range(256)),
    }[content]
    report = tmp_path / ("env.py" if content == "env.py" else "notes")
    report.write_bytes(existing)

    result = run_migrate(env=operator_env(db_url, tmp_path, REPORT_FILE=report))

    assert result.code == 2, result.out
    assert f"REPORT_FILE={report}" in summary_line(result.out)
    assert report.read_bytes() == existing
    if is_sqlite(db_url):
        assert not sqlite_path(db_url).exists()
    else:
        assert versions(db_url) == []


@pytest.mark.parametrize("previous", ["a report", "an empty file"])
def test_report_file_overwrites_a_previous_report_or_an_empty_file(sqlite_url, tmp_path, previous):
    report = tmp_path / "report.json"
    if previous == "a report":
        first = run_migrate(env=operator_env(sqlite_url, tmp_path, REPORT_FILE=report))
        assert first.code == 0, first.out
        assert report_of(report)["outcome"] != "at_target"
    else:
        report.write_bytes(b"")

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, REPORT_FILE=report))

    assert result.code == 0, result.out
    expected = "at_target" if previous == "a report" else report_of(report)["outcome"]
    assert report_of(report)["outcome"] == expected
    assert report_of(report)["exit_code"] == 0
