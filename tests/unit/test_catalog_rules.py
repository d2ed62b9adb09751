"""The rules of catalog comparison, on hand-built snapshots (no database)."""

from __future__ import annotations

import pytest

from migrate_init.catalog import (
    Column,
    Loss,
    Snapshot,
    engine_family,
    losses,
)
from migrate_init.effects import EffectGuard
from migrate_init.errors import ConfigError


def col(
    name: str,
    type_: str,
    *,
    nullable: bool = True,
    default: bool = False,
    generated: bool = False,
) -> Column:
    return Column(name, type_, nullable, default, generated)


# Parameters name engines by short keys: a parameter spelled "postgresql" would
# mark the test as needing the PostgreSQL server (tests/conftest.py).
ENGINES = {"pg": "postgresql", "sqlite": "sqlite", "mysql": "mysql"}


def snap(engine: str, ids: dict[str, int] | None = None, **tables: list[Column]) -> Snapshot:
    return Snapshot(
        dialect=ENGINES.get(engine, engine),
        tables={name: {c.name: c for c in columns} for name, columns in tables.items()},
        table_ids=ids or {},
    )


ACCOUNT_SQLITE = [
    col("id", "INTEGER", nullable=False),
    col("name", "TEXT"),
    col("email", "VARCHAR(50)"),
]
ACCOUNT_PG = [
    col("id", "integer", nullable=False),
    col("name", "text"),
    col("email", "character varying(50)"),
]


def kinds(found: list[Loss]) -> list[tuple[str, str, str | None]]:
    return [(loss.kind, loss.table, loss.column) for loss in found]


def test_identical_snapshots_lose_nothing() -> None:
    assert losses(snap("sqlite", account=ACCOUNT_SQLITE), snap("sqlite", account=ACCOUNT_SQLITE)) == []


def test_new_tables_and_nullable_columns_are_additive() -> None:
    after = snap(
        "pg",
        account=[*ACCOUNT_PG, col("phone", "text")],
        note=[col("id", "integer", nullable=False), col("body", "text", nullable=False)],
    )
    assert losses(snap("pg", account=ACCOUNT_PG), after) == []


def test_new_not_null_column_with_a_default_is_additive() -> None:
    after = snap("sqlite", account=[*ACCOUNT_SQLITE, col("credits", "INTEGER", nullable=False, default=True)])
    assert losses(snap("sqlite", account=ACCOUNT_SQLITE), after) == []


def test_new_generated_not_null_column_is_additive() -> None:
    after = snap("pg", account=[*ACCOUNT_PG, col("n", "integer", nullable=False, generated=True)])
    assert losses(snap("pg", account=ACCOUNT_PG), after) == []


def test_new_not_null_column_without_a_default_on_an_existing_table_is_a_loss() -> None:
    after = snap("sqlite", account=[*ACCOUNT_SQLITE, col("credits", "INTEGER", nullable=False)])
    found = losses(snap("sqlite", account=ACCOUNT_SQLITE), after)
    assert kinds(found) == [("set not null", "account", "credits")]
    assert found[0].describe() == ("column account.credits (INTEGER) would be added NOT NULL without a default")


def test_dropped_table_is_a_loss_naming_its_columns() -> None:
    found = losses(
        snap("sqlite", account=ACCOUNT_SQLITE, note=[col("id", "INTEGER")]),
        snap("sqlite", note=[col("id", "INTEGER")]),
    )
    assert kinds(found) == [("drop table", "account", None)]
    assert found[0].describe() == "table account (3 columns: id, name, email) would be dropped"


def test_dropped_column_is_a_loss_with_its_type() -> None:
    found = losses(snap("sqlite", account=ACCOUNT_SQLITE), snap("sqlite", account=ACCOUNT_SQLITE[::2]))
    assert kinds(found) == [("drop column", "account", "name")]
    assert found[0].describe() == "column account.name (TEXT) would be dropped"


def test_renamed_column_is_a_drop_with_a_rename_hint() -> None:
    after = snap("pg", account=[ACCOUNT_PG[0], ACCOUNT_PG[2], col("full_name", "text")])
    (loss,) = losses(snap("pg", account=ACCOUNT_PG), after)
    assert (loss.kind, loss.column, loss.renamed_to) == ("drop column", "name", "full_name")
    assert loss.describe() == "column account.name (text) would be dropped (renamed to full_name?)"


def test_renamed_table_is_a_drop_with_a_rename_hint() -> None:
    (loss,) = losses(snap("sqlite", account=ACCOUNT_SQLITE), snap("sqlite", member=ACCOUNT_SQLITE))
    assert (loss.kind, loss.table, loss.renamed_to) == ("drop table", "account", "member")


def test_postgresql_table_dropped_and_created_again_is_a_loss() -> None:
    before = snap("pg", ids={"account": 16400}, account=ACCOUNT_PG)
    after = snap("pg", ids={"account": 16500}, account=ACCOUNT_PG)
    (loss,) = losses(before, after)
    assert loss.kind == "drop table"
    assert "dropped and created again" in loss.describe()


def test_postgresql_rename_hint_follows_the_table_oid() -> None:
    before = snap("pg", ids={"account": 1}, account=ACCOUNT_PG)
    after = snap("pg", ids={"account": 2, "account_old": 1}, account=ACCOUNT_PG, account_old=ACCOUNT_PG)
    (loss,) = losses(before, after)
    assert (loss.kind, loss.renamed_to) == ("drop table", "account_old")


def test_changed_type_is_a_loss() -> None:
    after = snap("pg", account=[ACCOUNT_PG[0], col("name", "integer"), ACCOUNT_PG[2]])
    (loss,) = losses(snap("pg", account=ACCOUNT_PG), after)
    assert loss.kind == "change type"
    assert loss.describe() == "column account.name would change type (text -> integer)"


def test_column_becoming_generated_is_a_loss() -> None:
    after = snap("pg", account=[ACCOUNT_PG[0], col("name", "text", generated=True), ACCOUNT_PG[2]])
    assert kinds(losses(snap("pg", account=ACCOUNT_PG), after)) == [("change type", "account", "name")]


def test_existing_nullable_column_becoming_not_null_is_a_loss() -> None:
    after = snap(
        "sqlite",
        account=[ACCOUNT_SQLITE[0], col("name", "TEXT", nullable=False), ACCOUNT_SQLITE[2]],
    )
    (loss,) = losses(snap("sqlite", account=ACCOUNT_SQLITE), after)
    assert loss.describe() == "column account.name (TEXT) would become NOT NULL"


def test_not_null_becoming_nullable_is_not_a_loss() -> None:
    after = snap("sqlite", account=[col("id", "INTEGER"), *ACCOUNT_SQLITE[1:]])
    assert losses(snap("sqlite", account=ACCOUNT_SQLITE), after) == []


@pytest.mark.parametrize(
    ("dialect", "old", "new"),
    [
        ("pg", "character varying(50)", "character varying(100)"),
        ("pg", "character varying(50)", "character varying"),
        ("pg", "character varying(50)", "text"),
        ("pg", "character varying", "text"),
        ("sqlite", "VARCHAR(50)", "VARCHAR(100)"),
        ("sqlite", "VARCHAR(50)", "TEXT"),
        ("sqlite", "VARCHAR", "TEXT"),
        ("mysql", "varchar(50)", "varchar(255)"),
        ("mysql", "varchar(50)", "longtext"),
    ],
)
def test_varchar_widening_keeps_data(dialect: str, old: str, new: str) -> None:
    before = snap(dialect, t=[col("c", old)])
    assert losses(before, snap(dialect, t=[col("c", new)])) == []


@pytest.mark.parametrize(
    ("dialect", "old", "new"),
    [
        ("pg", "character varying(100)", "character varying(50)"),
        ("pg", "character varying", "character varying(50)"),
        ("pg", "text", "character varying(100)"),
        ("pg", "text", "character varying"),
        ("pg", "character(10)", "character(20)"),  # only varchar widens
        ("pg", "numeric(10,2)", "numeric(12,2)"),  # precision is not widened
        ("pg", "integer", "bigint"),
        ("pg", "timestamp without time zone", "date"),
        ("sqlite", "VARCHAR(100)", "VARCHAR(50)"),
        ("sqlite", "TEXT", "VARCHAR(50)"),
        ("sqlite", "TEXT", "INTEGER"),
        ("sqlite", "DATETIME", "DATE"),
        ("sqlite", "JSON", "TEXT"),
        ("sqlite", "NUMERIC(10, 2)", "NUMERIC(10, 4)"),
        ("mysql", "varchar(50)", "tinytext"),
        ("mysql", "int", "bigint"),
    ],
)
def test_other_type_changes_are_losses(dialect: str, old: str, new: str) -> None:
    before = snap(dialect, t=[col("c", old)])
    assert kinds(losses(before, snap(dialect, t=[col("c", new)]))) == [("change type", "t", "c")]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # What Alembic's batch mode writes back for a table created by raw SQL:
        # the same type as SQLite stores it and SQLAlchemy reads it.
        ("INT", "INTEGER"),
        ("TINYINT", "INTEGER"),
        ("BOOL", "BOOLEAN"),
        ("STRING", "NUMERIC"),
        ("DOUBLE PRECISION", "REAL"),
        ("CLOB", "TEXT"),
        ("CHARACTER VARYING(30)", "TEXT(30)"),
        ("NUMERIC(10,2)", "NUMERIC(10, 2)"),
        ("varchar( 50 )", "VARCHAR(50)"),
    ],
)
def test_sqlite_spellings_of_one_type_are_the_same_type(old: str, new: str) -> None:
    before = snap("sqlite", t=[col("c", old)])
    assert losses(before, snap("sqlite", t=[col("c", new)])) == []


def test_mysql_integer_display_width_is_not_a_type() -> None:
    before = snap("mysql", t=[col("c", "int(11)"), col("d", "bigint(20) unsigned")])
    after = snap("mysql", t=[col("c", "int"), col("d", "bigint unsigned")])
    assert losses(before, after) == []


def test_sqlite_names_compare_without_case() -> None:
    before = snap("sqlite", Account=[col("Name", "TEXT")])
    assert losses(before, snap("sqlite", account=[col("name", "text")])) == []


def test_postgresql_names_compare_with_case() -> None:
    before = snap("pg", account=[col("Name", "text")])
    found = losses(before, snap("pg", account=[col("name", "text")]))
    assert kinds(found) == [("drop column", "account", "Name")]


def test_every_loss_of_a_migration_is_reported_in_order() -> None:
    before = snap("sqlite", account=ACCOUNT_SQLITE, note=[col("id", "INTEGER")])
    after = snap("sqlite", account=[ACCOUNT_SQLITE[0], col("email", "INTEGER", nullable=False)])
    assert kinds(losses(before, after)) == [
        ("drop column", "account", "name"),
        ("change type", "account", "email"),
        ("set not null", "account", "email"),
        ("drop table", "note", None),
    ]


def test_snapshots_of_different_engines_do_not_compare() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        losses(snap("sqlite"), snap("pg"))


@pytest.mark.parametrize(
    ("dialect", "family"),
    [
        ("sqlite", "sqlite"),
        ("postgres", "pg"),
        ("postgresql+psycopg2", "pg"),
        ("mysql", "mysql"),
        ("mariadb", "mysql"),
    ],
)
def test_engine_family_knows_the_supported_engines(dialect: str, family: str) -> None:
    assert engine_family(dialect) == ENGINES[family]


def test_unknown_engine_is_a_config_error_naming_allow_destructive() -> None:
    with pytest.raises(ConfigError, match="ALLOW_DESTRUCTIVE=true"):
        engine_family("mssql")


def test_guard_without_allow_on_unknown_engine_refuses_to_run_blind() -> None:
    with pytest.raises(ConfigError):
        EffectGuard(allow=False).begin(object(), "mssql")


def test_guard_with_allow_on_unknown_engine_runs_without_checking() -> None:
    guard = EffectGuard(allow=True)
    guard.begin(object(), "mssql")
    guard.check(object(), "mssql", "abc", "versions/abc.py")
    assert guard.findings == []


def test_guard_check_before_begin_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="begin"):
        EffectGuard(allow=False).check(object(), "sqlite", "abc", "versions/abc.py")
