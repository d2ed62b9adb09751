"""Which statements a dry run refuses because they would end its transaction (issue 25 N1).

Pure text: :func:`migrate_init.preview.ending` reads every statement of a
string with a real SQL tokenizer; strings, dollar quotes, comments and
function bodies are not statements. The end-to-end proof, on real databases,
is tests/integration/test_read_only_preview.py.
"""

from __future__ import annotations

import pytest

from migrate_init.preview import ending


@pytest.mark.parametrize(
    "statement",
    [
        "COMMIT",
        "commit",
        "END",
        "END TRANSACTION",
        "ABORT",
        "ROLLBACK",
        "ROLLBACK WORK",
        "BEGIN",
        "BEGIN IMMEDIATE",
        "START TRANSACTION",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "PREPARE TRANSACTION 'x'",
        "VACUUM",
        "/* why */ -- not yet\n COMMIT",
        "SELECT 1; COMMIT",
        "ALTER TYPE mood ADD VALUE 'meh'; COMMIT;",
    ],
)
def test_a_statement_that_ends_or_reshapes_the_transaction_is_named(statement):
    assert ending(statement, "postgresql") is not None


@pytest.mark.parametrize(
    "statement",
    [
        "ROLLBACK TO SAVEPOINT migrate_init_guard",
        "ROLLBACK TO x",
        "RELEASE SAVEPOINT x",
        "SAVEPOINT x",
        "SELECT 'COMMIT'",
        "SELECT 1 -- COMMIT",
        "DO $$ BEGIN PERFORM 1; END $$",
        "DO $body$ BEGIN COMMIT; END $body$",
        "ALTER TYPE mood ADD VALUE 'meh'",
        "SET search_path TO app",
        "PREPARE q AS SELECT 1",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END",
    ],
)
def test_a_statement_that_leaves_the_transaction_open_passes(statement):
    assert ending(statement, "postgresql") is None


def test_sqlite_reads_one_statement_per_call_so_a_trigger_body_is_not_cut():
    trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 1; END"
    assert ending(trigger, "sqlite") is None
    assert ending("END", "sqlite") is not None
    assert ending("BEGIN IMMEDIATE", "sqlite") is not None
