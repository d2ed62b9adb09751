"""Issue 26: the history of what was applied, checksums that catch an edited revision, the graph.

Every test runs on SQLite, PostgreSQL and MariaDB (``any_url``), through real
``migrate.py`` processes, and reads ``migrate_init_history`` back from the
database itself.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from migrate_init import checksum
from tests.support import REPO
from tests.support.chains import BODIES, SLOW_ROWS, TARGET, Chain, marker_says
from tests.support.dbstate import HISTORY_TABLE, in_progress, is_mysql, query, tables, versions
from tests.support.process import (
    MIGRATE,
    Runner,
    migrate_env,
    operator_env,
    run_migrate,
    run_python,
    run_split,
    summary_line,
    wait_until,
)

SHIPPED = 10
NEW = "feed00000001"
SLOW = "feed0000510e"
#: A new revision after the head: one table, nothing slow.
ADD_TABLE = 'op.create_table("history_probe", sa.Column("id", sa.Integer, primary_key=True))'
#: A revision of the shipped chain that tests edit, and what its upgrade() says.
EDITED = "ca81bd47c050"
EDITED_LINE = 'sa.Column("version", sa.Integer),'


def migrate(url: str, chain: Chain, tmp_path: Path, *args: str, **extra: object):
    return run_migrate(*args, env=operator_env(url, tmp_path, DATA_DIR=tmp_path / "data-dir", **chain.env(), **extra))


def history_json(url: str, chain: Chain, tmp_path: Path) -> dict:
    code, out, err = run_split(
        "history", "--json", env=operator_env(url, tmp_path, DATA_DIR=tmp_path / "data-dir", **chain.env())
    )
    assert code == 0, err
    return json.loads(out)


def rows(url: str) -> list[dict]:
    """The history, oldest first, as the database holds it."""
    names = (
        "id",
        "revision",
        "kind",
        "outcome",
        "started_at",
        "finished_at",
        "duration_ms",
        "checksum",
        "migrate_init_version",
        "host",
    )
    found = query(url, f"SELECT {', '.join(names)} FROM {HISTORY_TABLE} ORDER BY id")
    return [dict(zip(names, row, strict=True)) for row in found]


def deployed(url: str, tmp_path: Path) -> Chain:
    chain = Chain(tmp_path / "migrations")
    result = migrate(url, chain, tmp_path)
    assert result.code == 0, result.out
    return chain


def edit_semantically(chain: Chain) -> None:
    path = chain.file_of(EDITED)
    text = path.read_text()
    assert text.count(EDITED_LINE) == 1
    path.write_text(text.replace(EDITED_LINE, 'sa.Column("version", sa.BigInteger),'))


# -- what a deploy and an update record --------------------------------------------------


def test_a_deploy_records_each_revision_applied_with_its_checksum_in_the_order_applied(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)

    history = rows(any_url)
    assert [r["kind"] for r in history] == ["applied"] * SHIPPED
    assert {r["outcome"] for r in history} == {"ok"}
    assert history[0]["revision"] == "7e5b5dc7342b" and history[-1]["revision"] == TARGET
    for row in history:
        assert row["checksum"] == checksum.of_file(chain.file_of(row["revision"])), row
        assert isinstance(row["duration_ms"], int) and row["duration_ms"] >= 0, row
        assert row["started_at"].endswith("+00:00") and row["finished_at"] >= row["started_at"], row
        assert row["migrate_init_version"] and row["host"], row
    assert versions(any_url) == [TARGET]


def test_a_second_database_deployed_with_the_manifest_cached_records_each_files_own_checksum(sqlite_url, tmp_path):
    """Issue 27: a run whose manifest is fresh takes the checksums from it instead of parsing every
    revision again; what it records is still each file's own checksum, revision by revision."""
    chain = deployed(sqlite_url, tmp_path)
    second_url = sqlite_url.replace(".db", "-second.db")  # beside it, where the first run cached the manifest
    assert second_url != sqlite_url
    result = migrate(second_url, chain, tmp_path, LOG_LEVEL="DEBUG")
    assert result.code == 0, result.out
    assert "not the heads of the manifest" in result.out, result.out  # the manifest was fresh
    history = rows(second_url)
    assert [r["kind"] for r in history] == ["applied"] * SHIPPED
    for row in history:
        assert row["checksum"] == checksum.of_file(chain.file_of(row["revision"])), row


def test_an_update_adds_a_row_with_its_duration_and_history_shows_it_first_then_nothing_pending(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    chain.add(NEW, ADD_TABLE)

    assert history_json(any_url, chain, tmp_path)["pending"] == [NEW]

    result = migrate(any_url, chain, tmp_path, IMAGE_REVISION="0123abcd")
    assert result.code == 0, result.out

    history = rows(any_url)
    assert len(history) == SHIPPED + 1
    assert history[-1]["revision"] == NEW and history[-1]["kind"] == "applied"
    assert isinstance(history[-1]["duration_ms"], int)
    listed = migrate(any_url, chain, tmp_path, "history")
    assert listed.code == 0, listed.out
    lines = listed.out.splitlines()
    first = lines[lines.index(next(line for line in lines if line.startswith("WHEN"))) + 1]
    assert NEW in first and "applied" in first and "unchanged" in first and "image 0123abcd" in first, first
    assert "Pending: none" in listed.out
    data = history_json(any_url, chain, tmp_path)
    assert data["history"][0]["revision"] == NEW and data["history"][0]["checksum_state"] == "unchanged"
    assert data["history"][0]["image_revision"] == "0123abcd"
    assert data["pending"] == [] and data["edited"] == []


def test_a_database_migrated_before_the_history_existed_gets_baseline_rows_on_the_next_run(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    query(any_url, f"DROP TABLE {HISTORY_TABLE}")

    result = migrate(any_url, chain, tmp_path)

    assert result.code == 0, result.out
    history = rows(any_url)
    assert [r["kind"] for r in history] == ["baseline"] * SHIPPED
    assert [r["revision"] for r in history][-1] == TARGET
    assert all(r["checksum"] == checksum.of_file(chain.file_of(r["revision"])) for r in history)
    again = migrate(any_url, chain, tmp_path)
    assert again.code == 0 and len(rows(any_url)) == SHIPPED, again.out


# -- a killed run ----------------------------------------------------------------------------


def test_a_run_killed_inside_a_revision_leaves_a_history_that_agrees_with_the_version_table(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    # Idempotent, so that on MySQL/MariaDB (whose DDL stays) the next run may run it again.
    chain.add(SLOW, BODIES["slow_idempotent"], name="slow_idempotent", idempotent=True)
    marker = tmp_path / "marker"
    env = migrate_env(any_url, chain.path, ROBUST_MARKER=marker, ROBUST_SLOW_SECONDS=60, DATA_DIR=tmp_path / "data-dir")
    runner = Runner(env, tmp_path / "killed.log")
    wait_until(marker_says(marker, SLOW), 60, "the run to reach the middle of the slow revision", runner)
    runner.kill()
    assert runner.proc.returncode == -signal.SIGKILL

    # Neither the version row nor a history row of the killed revision: they commit together.
    assert versions(any_url) == [TARGET]
    assert [r["revision"] for r in rows(any_url) if r["revision"] == SLOW] == []
    listed = migrate(any_url, chain, tmp_path, "history")
    assert listed.code == 0, listed.out
    if is_mysql(any_url):
        # The one record of "half-applied" stays migrate_init_progress; history shows it from there.
        assert in_progress(any_url) == [SLOW]
        assert f"Interrupted: {SLOW}" in listed.out
    assert f"  {SLOW} (" in listed.out.split("Pending:")[1]

    finished = migrate(any_url, chain, tmp_path)
    assert finished.code == 0, finished.out
    assert versions(any_url) == [SLOW]
    mine = [r for r in rows(any_url) if r["revision"] == SLOW]
    assert [r["kind"] for r in mine] == (["interrupted", "applied"] if is_mysql(any_url) else ["applied"])
    assert query(any_url, f"SELECT COUNT(*) FROM {SLOW}") == [(SLOW_ROWS,)]


# -- checksums: what an edit means --------------------------------------------------------------


def test_a_comment_docstring_and_formatting_edit_passes_verify_and_the_run(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    path = chain.file_of(EDITED)
    text = path.read_text()
    text = text.replace('"""', '"""Reworded: this docstring says more now.\n\n', 1)
    text = text.replace(EDITED_LINE, f"{EDITED_LINE}  # why: the config's schema version")
    text = text.replace("def upgrade() -> None:\n", "def upgrade() -> None:\n    # a comment\n\n")
    text = text.replace('"config",', "'config' ,")  # reformatted: other quotes, a space
    path.write_text(text)
    assert checksum.of_file(path) == rows(any_url)[1]["checksum"]

    verify = migrate(any_url, chain, tmp_path, "verify")
    run = migrate(any_url, chain, tmp_path)

    assert verify.code == 0, verify.out
    assert run.code == 0 and "changed in" not in run.out, run.out


def test_a_semantic_edit_fails_verify_naming_the_revision_and_accept_clears_it(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    edit_semantically(chain)

    verify = migrate(any_url, chain, tmp_path, "verify")
    assert verify.code == 12, verify.out
    assert "FAILED (exit 12)" in summary_line(verify.out) and EDITED in summary_line(verify.out)
    assert "migrate.py accept REV" in summary_line(verify.out)

    warned = migrate(any_url, chain, tmp_path)  # ON_EDITED_REVISION=warn, the default
    assert warned.code == 0, warned.out
    assert re.search(rf"WARN.*{EDITED}.* changed in ", warned.out), warned.out

    listed = migrate(any_url, chain, tmp_path, "history")
    assert f"Edited: {EDITED}" in listed.out and "edited" in next(
        line for line in listed.out.splitlines() if line.startswith("20") and EDITED in line
    )

    accepted = migrate(any_url, chain, tmp_path, "accept", EDITED)
    assert accepted.code == 0, accepted.out
    last = rows(any_url)[-1]
    assert (last["revision"], last["kind"]) == (EDITED, "accepted")
    assert last["checksum"] == checksum.of_file(chain.file_of(EDITED))
    cleared = migrate(any_url, chain, tmp_path, "verify")
    assert cleared.code == 0, cleared.out


def test_on_edited_revision_fail_refuses_before_migrating_anything(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    edit_semantically(chain)
    chain.add(NEW, ADD_TABLE)

    refused = migrate(any_url, chain, tmp_path, ON_EDITED_REVISION="fail")

    assert refused.code == 12, refused.out
    assert EDITED in summary_line(refused.out) and "nothing was migrated" in summary_line(refused.out)
    assert versions(any_url) == [TARGET]
    assert "history_probe" not in tables(any_url)
    assert len(rows(any_url)) == SHIPPED


def test_verify_names_an_applied_revision_whose_script_is_gone(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    chain.add(NEW, ADD_TABLE)
    assert migrate(any_url, chain, tmp_path).code == 0
    chain.remove(NEW)

    verify = migrate(any_url, chain, tmp_path, "verify")

    assert verify.code == 12, verify.out
    assert NEW in summary_line(verify.out) and "missing from" in summary_line(verify.out)
    assert migrate(any_url, chain, tmp_path, "accept", NEW).code == 0
    assert migrate(any_url, chain, tmp_path, "verify").code == 0


# -- the fast path ---------------------------------------------------------------------------


def imported(out: str) -> set[str]:
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", out, re.M)
    return {name.split(".")[0] for name in names}


def test_the_fast_path_reports_an_edited_revision_without_loading_sqlalchemy(any_url, tmp_path):
    chain = deployed(any_url, tmp_path)
    env = operator_env(any_url, tmp_path, DATA_DIR=tmp_path / "data-dir", LOG_LEVEL="DEBUG", **chain.env())
    plain = run_python("-X", "importtime", MIGRATE, env=env)
    assert plain.code == 0 and "sqlalchemy" not in imported(plain.out), plain.out
    edit_semantically(chain)
    assert migrate(any_url, chain, tmp_path).code == 0  # the manifest is stale: the full path caches a new one

    fast = run_python("-X", "importtime", MIGRATE, env=env)
    refused = run_python("-X", "importtime", MIGRATE, env={**env, "ON_EDITED_REVISION": "fail"})

    assert fast.code == 0, fast.out
    assert "Fast path: the database is at" in fast.out
    assert "sqlalchemy" not in imported(fast.out) and "alembic" not in imported(fast.out)
    assert re.search(rf"WARN.*{EDITED}.* changed in ", fast.out), fast.out
    assert refused.code == 12, refused.out
    assert "sqlalchemy" not in imported(refused.out)


# -- the graph --------------------------------------------------------------------------------


def test_graph_marks_merges_branch_points_the_current_revision_and_pending_ones(any_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    assert migrate(any_url, chain, tmp_path, "upgrade", "70c7b727736e").code == 0

    mermaid = migrate(any_url, chain, tmp_path, "graph")
    dot = migrate(any_url, chain, tmp_path, "graph", "--format", "dot")

    assert mermaid.code == 0 and dot.code == 0, (mermaid.out, dot.out)
    assert mermaid.out.startswith("flowchart TD")
    assert re.search(r'r_merge_heads_final\{\{"merge_heads_final<br/>\(merge, pending\)"\}\}', mermaid.out)
    assert "70c7b727736e<br/>add_tool_access_control_column<br/>(branch point, current)" in mermaid.out
    assert "r_ef6fab585ac1 --> r_24e8f9a7b1c2" in mermaid.out
    assert re.search(r"class r_abc123def456,\S+ pending", mermaid.out)
    assert dot.out.startswith("digraph revisions {")
    assert '"abc123def456" -> "merge_heads_final";' in dot.out
    assert versions(any_url) == ["70c7b727736e"]


def test_the_readme_shows_what_graph_prints_for_the_shipped_chain(sqlite_url, tmp_path):
    env = operator_env(sqlite_url, tmp_path, DATA_DIR=tmp_path / "data-dir")
    assert run_migrate("upgrade", "ef6fab585ac1", env=env).code == 0

    code, out, err = run_split("graph", env=env)

    assert code == 0, err
    readme = (REPO / "README.md").read_text()
    shown = readme[readme.index("```mermaid\n") + len("```mermaid\n") :]
    assert shown[: shown.index("```")] == out
