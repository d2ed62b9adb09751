"""Issue 27: on PostgreSQL the guard reads what it needs about the session in the round trips it makes anyway.

The savepoint before a migration and the transaction's id share one round trip,
and the catalog read after it also brings back the transaction's id (if one is
assigned) and the deferred constraint triggers, and a run leaves the savepoint
to the migration's own COMMIT: two statements instead of six.  What the folded
reads decide must not
change: a migration that commits and opens a new transaction in its own SQL is
still told apart (the savepoint it would roll back to is gone), and the deferred
triggers are still run before the commit and judged (test_read_only_preview's
N5 tests).  Speed is the benchmark's business (row 7), not these tests'.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.chains import Chain
from tests.support.dbstate import columns, query, versions
from tests.support.process import operator_env, run_migrate

LEDGER = "c27b00000001"
LAST = "c27b00000002"


def chain_with(tmp_path: Path, last: str) -> Chain:
    chain = Chain(tmp_path / "migrations")
    chain.add(
        LEDGER,
        """
op.create_table("ledger", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))
op.execute("INSERT INTO ledger (id, note) VALUES (1, 'kept')")
""",
        name="ledger",
    )
    chain.add(LAST, last, name="last")
    return chain


def test_postgresql_migration_that_commits_and_begins_again_is_named_as_committed(pg_url: str, tmp_path: Path) -> None:
    # Still in a transaction when it ends, but not the one the guard's savepoint is in: only the
    # transaction's id (read with the savepoint, and again with the catalog) tells them apart.
    chain = chain_with(tmp_path, 'op.execute("COMMIT; BEGIN; ALTER TABLE ledger DROP COLUMN note")')
    result = run_migrate(env=operator_env(pg_url, tmp_path, **chain.env()))
    assert result.code == 8, result.out
    assert f"Migration {LAST} (" in result.out and "committed by itself" in result.out, result.out
    assert "column ledger.note (text) was dropped" in result.out, result.out
    # The new transaction (with its DROP) was rolled back; the version row stays at the one before.
    assert versions(pg_url) == [LEDGER]
    assert "note" in columns(pg_url, "ledger")
    assert query(pg_url, "SELECT id, note FROM ledger") == [(1, "kept")]


def test_postgresql_migration_that_stays_in_its_transaction_passes_with_the_folded_reads(
    pg_url: str, tmp_path: Path
) -> None:
    chain = chain_with(tmp_path, 'op.add_column("ledger", sa.Column("code", sa.String(10), nullable=True))')
    result = run_migrate(env=operator_env(pg_url, tmp_path, **chain.env()))
    assert result.code == 0, result.out
    assert versions(pg_url) == [LAST]
    assert "code" in columns(pg_url, "ledger")
    assert query(pg_url, "SELECT id, note FROM ledger") == [(1, "kept")]
