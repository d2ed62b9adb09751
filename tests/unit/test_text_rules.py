"""The text rules that annotate `plan` and feed `lint` (migrate_init.guard): what they flag, and what they cannot see.

They only help people read SQL before a run; a run judges effects on the
catalog (tests/unit/test_catalog_rules.py, tests/integration/test_guard_effects.py).
"""

from __future__ import annotations

import pytest

from migrate_init.guard import classify


@pytest.mark.parametrize(
    "statement, expected",
    [
        ('DROP TABLE "user"', ("drop table", "user")),
        ("drop table if exists chat", ("drop table", "chat")),
        ("ALTER TABLE ONLY account DROP COLUMN name", ("drop column", "account.name")),
        ("ALTER TABLE account DROP name", ("drop column", "account.name")),
        (
            "ALTER TABLE account ALTER COLUMN name TYPE integer USING length(name)",
            ("change a column's type", "account.name"),
        ),
        ("ALTER TABLE account RENAME TO accounts", ("rename", "account")),
        ("ALTER TABLE account ALTER COLUMN name SET NOT NULL", ("add NOT NULL to an existing column", "account.name")),
        ("ALTER TABLE account ADD COLUMN x integer NOT NULL", ("add a NOT NULL column without a default", "account.x")),
        ("TRUNCATE TABLE account", ("truncate", "account")),
        ("-- a comment\nDROP TABLE scratch", ("drop table", "scratch")),
    ],
)
def test_a_destructive_statement_is_named_with_its_object(statement, expected):
    assert classify(statement) == expected


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE account ADD COLUMN x integer",
        "ALTER TABLE account ADD COLUMN x integer NOT NULL DEFAULT 0",
        "ALTER TABLE account DROP CONSTRAINT fk_x",
        "CREATE TABLE t (id integer)",
        "SELECT 1",
    ],
)
def test_an_additive_statement_is_not_flagged(statement):
    assert classify(statement) is None


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 1; DROP TABLE account",
        "DO $$ BEGIN ALTER TABLE account DROP COLUMN name; END $$",
        "ALTER TABLE account ADD COLUMN x integer, DROP COLUMN name",
    ],
)
def test_the_shapes_text_rules_miss_are_why_a_run_judges_effects(statement):
    """Issue 13: these walked past the old text guard. They still pass the text rules: the catalog catches them."""
    assert classify(statement) is None
