"""statements.predict: a MySQL statement's effect on the catalog, judged before it runs.

No server: a catalog snapshot is built by hand the way catalog._mysql reads
one from information_schema (``COLUMN_TYPE`` lower-cased, ``int(11)``), the
statement's effect is predicted, and the losses are judged exactly as
``EffectGuard.before_statement`` judges them: the predictor's extra losses
plus ``catalog.losses`` between the catalog at the migration's start and the
predicted one.
"""

from __future__ import annotations

import pytest

from migrate_init import statements
from migrate_init.catalog import Column, Loss, Snapshot, losses
from migrate_init.statements import Unjudged, predict, worth_judging


def col(name: str, type_: str, nullable: bool = True, default: bool = False) -> Column:
    return Column(name=name, type=type_, nullable=nullable, default_present=default, generated=False)


#: The catalog at the migration's start: two tables as MariaDB reports them.
START = Snapshot(
    "mysql",
    {
        "account": {
            "id": col("id", "int(11)", nullable=False, default=True),  # AUTO_INCREMENT counts as a default
            "name": col("name", "varchar(50)"),
            "email": col("email", "varchar(50)"),
        },
        "other": {"x": col("x", "int(11)")},
    },
)


def judge(statement: str, live: Snapshot = START, start: Snapshot = START) -> list[Loss]:
    """What EffectGuard.before_statement would refuse ``statement`` for (may raise Unjudged)."""
    predicted, extra = predict(live, statement)
    return extra + losses(start, predicted)


def described(statement: str, **kwargs: Snapshot) -> list[str]:
    return [loss.describe() for loss in judge(statement, **kwargs)]


def kinds(statement: str, **kwargs: Snapshot) -> list[tuple[str, str, str | None]]:
    return sorted((loss.kind, loss.table, loss.column) for loss in judge(statement, **kwargs))


def with_table(table: str, /, **columns: str) -> Snapshot:
    """START plus a table (as the live catalog is once an earlier statement created it)."""
    tables = {table: dict(cols) for table, cols in START.tables.items()}
    tables[table] = {column: col(column, type_) for column, type_ in columns.items()}
    return Snapshot("mysql", tables)


# --- several statements, several subcommands ------------------------------------------------


def test_alter_with_an_add_and_a_drop_loses_the_dropped_column_only():
    assert described("ALTER TABLE account ADD COLUMN nick VARCHAR(20), DROP COLUMN email") == [
        "column account.email (varchar(50)) would be dropped"
    ]


def test_alter_with_three_subcommands_reports_each_loss():
    found = kinds(
        "ALTER TABLE account ADD COLUMN n VARCHAR(10) NOT NULL DEFAULT '', DROP COLUMN email, MODIFY name INT"
    )
    assert found == [("change type", "account", "name"), ("drop column", "account", "email")]


def test_two_drops_in_one_alter_are_both_losses():
    assert kinds("ALTER TABLE account DROP COLUMN email, DROP name") == [
        ("drop column", "account", "email"),
        ("drop column", "account", "name"),
    ]


def test_drop_column_if_exists_is_a_loss_when_the_column_exists_and_nothing_when_not():
    assert kinds("ALTER TABLE account DROP COLUMN IF EXISTS email") == [("drop column", "account", "email")]
    assert judge("ALTER TABLE account DROP COLUMN IF EXISTS nope") == []


def test_a_drop_after_a_harmless_statement_in_the_same_string_is_seen():
    assert described("SELECT 1; DROP TABLE account") == ["table account (3 columns: id, name, email) would be dropped"]


def test_a_drop_after_a_statement_the_parser_cannot_read_is_seen():
    # DO is valid MySQL that sqlglot does not parse; it must not hide what follows.
    assert kinds("DO SLEEP(1); DROP TABLE account") == [("drop table", "account", None)]
    assert judge("DO SLEEP(1); UPDATE account SET name = 'DROP'") == []


def test_semicolons_inside_strings_and_identifiers_do_not_split_a_statement():
    assert judge("SELECT 'a;b'; DROP TABLE `x;y`") == []
    assert judge("ALTER TABLE account ADD COLUMN `we;ird` INT") == []


def test_drop_table_of_several_tables_loses_each():
    assert kinds("DROP TABLE account, other") == [("drop table", "account", None), ("drop table", "other", None)]


# --- type changes and widenings ----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE account MODIFY name VARCHAR(100)",
        "ALTER TABLE account MODIFY COLUMN name VARCHAR(50)",
        "ALTER TABLE account MODIFY name TEXT",
        "ALTER TABLE account MODIFY name MEDIUMTEXT",
        "ALTER TABLE account CHANGE name name VARCHAR(100)",
        "ALTER TABLE account CHANGE COLUMN name name TEXT NULL",
        "ALTER TABLE account MODIFY name VARCHAR(100) CHARACTER SET utf8mb4",
        "ALTER TABLE account MODIFY name VARCHAR(50) NULL COMMENT 'shown name'",
        "ALTER TABLE account MODIFY id INT(11) NOT NULL AUTO_INCREMENT",
        "ALTER TABLE account MODIFY other_column_missing INT",
    ],
)
def test_widening_or_restating_a_column_loses_nothing(statement):
    assert judge(statement) == []


@pytest.mark.parametrize(
    ("statement", "detail"),
    [
        ("ALTER TABLE account MODIFY name INT", "varchar(50) -> int"),
        ("ALTER TABLE account MODIFY COLUMN name VARCHAR(20)", "varchar(50) -> varchar(20)"),
        ("ALTER TABLE account CHANGE name name INT", "varchar(50) -> int"),
        ("ALTER TABLE account CHANGE COLUMN `name` `name` DATETIME", "varchar(50) -> datetime"),
        ("ALTER TABLE account MODIFY name TINYTEXT", "varchar(50) -> tinytext"),
        ("ALTER TABLE account MODIFY id BIGINT", "int(11) -> bigint"),
    ],
)
def test_a_type_change_that_is_not_a_widening_is_a_loss(statement, detail):
    found = judge(statement)
    assert [(loss.kind, loss.detail) for loss in found] == [("change type", detail)]


# --- NOT NULL ---------------------------------------------------------------------------------


def test_not_null_on_a_nullable_column_is_a_loss():
    assert described("ALTER TABLE account MODIFY name VARCHAR(50) NOT NULL") == [
        "column account.name (varchar(50)) would become NOT NULL"
    ]
    assert kinds("ALTER TABLE account CHANGE email email VARCHAR(100) NOT NULL DEFAULT ''") == [
        ("set not null", "account", "email")
    ]


def test_relaxing_not_null_or_setting_a_default_loses_nothing():
    assert judge("ALTER TABLE account MODIFY name VARCHAR(50) NULL") == []
    assert judge("ALTER TABLE account ALTER COLUMN name SET DEFAULT 'x'") == []
    assert judge("ALTER TABLE account ALTER name DROP DEFAULT") == []


def test_adding_a_not_null_column_without_a_default_is_a_loss_and_with_one_is_not():
    found = judge("ALTER TABLE account ADD COLUMN req INT NOT NULL")
    assert [(loss.kind, loss.column, loss.added) for loss in found] == [("set not null", "req", True)]
    assert judge("ALTER TABLE account ADD COLUMN req INT NOT NULL DEFAULT 0") == []
    assert judge("ALTER TABLE account ADD COLUMN req INT") == []


# --- renames ----------------------------------------------------------------------------------


def test_rename_column_is_a_loss_naming_the_new_name():
    [loss] = judge("ALTER TABLE account RENAME COLUMN name TO full_name")
    assert (loss.kind, loss.table, loss.column, loss.renamed_to) == ("drop column", "account", "name", "full_name")


def test_change_to_another_name_is_a_rename():
    [loss] = judge("ALTER TABLE account CHANGE name full_name VARCHAR(50)")
    assert (loss.kind, loss.column, loss.renamed_to) == ("drop column", "name", "full_name")


def test_rename_table_with_two_pairs_loses_both_tables():
    found = judge("RENAME TABLE account TO a2, other TO o2")
    assert sorted((loss.kind, loss.table, loss.renamed_to) for loss in found) == [
        ("drop table", "account", "a2"),
        ("drop table", "other", "o2"),
    ]


def test_rename_table_with_backquotes_and_a_database_prefix():
    for statement in (
        "RENAME TABLE `account` TO `mydb`.`a2`",
        "RENAME TABLE mydb.account TO mydb.a2",
        "RENAME TABLE `mydb` . `account` TO `a2`",
    ):
        found = judge(statement)
        assert [(loss.kind, loss.table, loss.renamed_to) for loss in found] == [("drop table", "account", "a2")]
    assert judge("RENAME TABLE `we``ird` TO `a2`") == []  # no such table


@pytest.mark.parametrize("statement", ["ALTER TABLE account RENAME TO a2", "ALTER TABLE account RENAME a2"])
def test_alter_table_rename_to_is_a_table_loss(statement):
    found = judge(statement)
    assert [(loss.kind, loss.table, loss.renamed_to) for loss in found] == [("drop table", "account", "a2")]


def test_renaming_a_table_away_and_back_loses_nothing():
    assert judge("RENAME TABLE account TO tmp, tmp TO account") == []


def test_the_online_schema_change_swap_is_judged_by_the_rows_of_the_table_swapped_in():
    # pt-online-schema-change's idiom: build account_new, copy, swap the names in one RENAME.  Whether
    # the copy happened is a question for the rows (issue 25, N9), read before the RENAME runs.
    live = with_table("account_new", id="int(11)", name="varchar(50)", email="varchar(50)", extra="int(11)")
    [loss] = judge("RENAME TABLE account TO account_old, account_new TO account", live=live)
    assert (loss.kind, loss.table, loss.recreated, loss.replaced_by, loss.renamed_to) == (
        "drop table",
        "account",
        True,
        "account_new",
        "account_old",
    )


def test_a_table_created_empty_and_swapped_in_is_a_table_loss():
    found = judge("CREATE TABLE account_new LIKE account; RENAME TABLE account TO account_old, account_new TO account")
    assert [(loss.kind, loss.table, loss.recreated, loss.renamed_to) for loss in found] == [
        ("drop table", "account", False, "account_old")
    ]


# --- CREATE ---------------------------------------------------------------------------------------


def test_create_or_replace_of_an_existing_table_is_a_table_loss():
    assert kinds("CREATE OR REPLACE TABLE account (id INT, name VARCHAR(50), email VARCHAR(50))") == [
        ("drop table", "account", None)
    ]


def test_create_or_replace_of_a_table_this_migration_created_loses_nothing():
    live = with_table("staging", id="int(11)")  # an earlier statement of the migration made it
    assert judge("CREATE OR REPLACE TABLE staging (id INT, x INT)", live=live) == []
    assert judge("CREATE OR REPLACE TABLE brand_new (id INT)") == []


def test_create_table_if_not_exists_of_an_existing_table_changes_nothing():
    assert judge("CREATE TABLE IF NOT EXISTS account (a INT, b INT); ALTER TABLE account DROP COLUMN b") == []


def test_create_then_drop_in_one_string_loses_nothing():
    assert judge("CREATE TABLE tmp (id INT); DROP TABLE tmp") == []


def test_dropping_a_table_this_migration_created_loses_nothing():
    assert judge("DROP TABLE staging", live=with_table("staging", id="int(11)")) == []


def test_drop_table_if_exists_of_a_missing_table_loses_nothing_and_of_an_existing_one_is_a_loss():
    assert judge("DROP TABLE IF EXISTS missing") == []
    assert kinds("DROP TABLE IF EXISTS account") == [("drop table", "account", None)]


def test_the_prediction_holds_what_was_added():
    predicted, _ = predict(
        START,
        "CREATE TABLE t2 (id INT NOT NULL PRIMARY KEY, note VARCHAR(40) DEFAULT 'x'); "
        "ALTER TABLE account ADD COLUMN nick VARCHAR(20) AFTER name",
    )
    assert predicted.tables["t2"]["id"] == col("id", "int", nullable=False)
    assert predicted.tables["t2"]["note"] == col("note", "varchar(40)", default=True)
    assert predicted.tables["account"]["nick"] == col("nick", "varchar(20)")
    assert list(START.tables["account"]) == ["id", "name", "email"], "the live catalog must not be changed"


# --- dropped and created again in one statement -------------------------------------------------------


def test_a_column_dropped_and_added_again_in_one_alter_is_a_loss():
    # MariaDB runs this as one statement, and email's values are gone.
    assert described("ALTER TABLE account DROP COLUMN email, ADD COLUMN email VARCHAR(50)") == [
        "column account.email (varchar(50)) would be dropped"
    ]
    assert kinds("ALTER TABLE account DROP COLUMN email, ADD COLUMN email VARCHAR(50), MODIFY email VARCHAR(60)") == [
        ("drop column", "account", "email")
    ]


def test_a_column_dropped_and_added_again_in_two_statements_of_one_string_is_a_loss():
    assert kinds("ALTER TABLE account DROP COLUMN email; ALTER TABLE account ADD COLUMN email VARCHAR(50)") == [
        ("drop column", "account", "email")
    ]


def test_a_column_renamed_away_and_replaced_by_an_empty_one_is_a_loss():
    found = judge("ALTER TABLE account CHANGE name name_old VARCHAR(50), ADD COLUMN name VARCHAR(50)")
    assert [(loss.kind, loss.column, loss.renamed_to) for loss in found] == [("drop column", "name", "name_old")]


def test_a_table_dropped_and_created_again_with_the_same_columns_is_a_loss():
    assert kinds(
        "DROP TABLE account; CREATE TABLE account (id int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "name varchar(50), email varchar(50))"
    ) == [("drop table", "account", None)]
    assert kinds(
        "RENAME TABLE account TO account_old; CREATE TABLE account (id int(11), name varchar(50), email varchar(50))"
    ) == [("drop table", "account", None)]


def test_a_column_this_migration_added_may_be_dropped_and_added_again():
    live = Snapshot("mysql", {**START.tables, "account": {**START.tables["account"], "tmp": col("tmp", "int(11)")}})
    assert judge("ALTER TABLE account DROP COLUMN tmp, ADD COLUMN tmp INT", live=live) == []


# --- spelling: quotes, case, comments -------------------------------------------------------------


def test_backquoted_identifiers_are_read():
    assert kinds("ALTER TABLE `account` DROP COLUMN `email`") == [("drop column", "account", "email")]
    assert kinds("DROP TABLE `account`") == [("drop table", "account", None)]
    assert kinds("ALTER TABLE `account` MODIFY `name` INT") == [("change type", "account", "name")]


def test_keywords_in_lower_case_and_column_names_in_any_case():
    assert kinds("alter table account drop column EMAIL") == [("drop column", "account", "email")]


def test_a_table_named_in_another_case_is_taken_to_be_that_table():
    # With lower_case_table_names=1 (Windows, macOS, some managed servers) ACCOUNT is account.
    assert kinds("ALTER TABLE ACCOUNT DROP COLUMN email") == [("drop column", "account", "email")]
    assert kinds("DROP TABLE Account") == [("drop table", "account", None)]


def test_a_table_qualified_with_its_database_is_read():
    assert kinds("ALTER TABLE mydb.account DROP COLUMN email") == [("drop column", "account", "email")]


@pytest.mark.parametrize(
    "statement",
    [
        "/* why */ DROP TABLE account",
        "-- why\nDROP TABLE account",
        "# why\nDROP TABLE account",
        "/* one */\n-- two\n   DROP TABLE account",
    ],
)
def test_comments_before_the_statement_hide_nothing(statement):
    assert kinds(statement) == [("drop table", "account", None)]


@pytest.mark.parametrize(
    "statement",
    [
        "/*!40101 DROP TABLE account */",
        "/*!DROP TABLE account */",
        "/*M!100101 DROP TABLE account */",
        "SELECT 1; /*!50001 DROP TABLE account */",
    ],
)
def test_executable_comments_are_read_as_the_statement_they_hold(statement):
    # The server runs what /*! ... */ holds; a parser that skips comments would see nothing.
    assert kinds(statement) == [("drop table", "account", None)]


def test_harmless_executable_comments_stay_harmless():
    assert judge("/*!40101 SET NAMES utf8mb4 */") == []
    assert judge("SELECT 1 /*!40101 , 2 */") == []


# --- what the parser cannot read --------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE account CONVERT TO CHARACTER SET latin1",
        "ALTER IGNORE TABLE account ADD COLUMN z INT",
        "ALTER ONLINE TABLE account ADD COLUMN z INT",
        "ALTER TABLE account PARTITION BY HASH(id) PARTITIONS 4",
        "CREATE TRIGGER trg BEFORE INSERT ON account FOR EACH ROW SET NEW.name = 'x'",
        "/* first */ ALTER TABLE account CONVERT TO CHARACTER SET latin1",
        "SELECT 1; ALTER TABLE account CONVERT TO CHARACTER SET latin1",
    ],
)
def test_ddl_the_parser_cannot_read_is_unjudged(statement):
    with pytest.raises(Unjudged) as raised:
        predict(START, statement)
    assert str(raised.value), "Unjudged must say what it could not read"


# --- DML: rows are not judged, and never refused --------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE account SET name = %s WHERE id = %s",
        "DELETE FROM account WHERE id = %s",
        "INSERT INTO account (id, name, email) VALUES (%s, %s, %s)",
        "INSERT INTO account (id, name) VALUES (%s, %s) ON DUPLICATE KEY UPDATE name = VALUES(name)",
        "REPLACE INTO account (id, name) VALUES (%s, %s)",
        "REPLACE account SET id = 1, name = 'x'",
        "UPDATE account SET name = 'DROP TABLE account; ALTER TABLE account DROP COLUMN email'",
        "INSERT INTO other (x) SELECT id FROM account",
        "TRUNCATE TABLE account",
        "SELECT SLEEP(1)",
        "LOAD DATA INFILE '/tmp/rows' INTO TABLE account",
    ],
)
def test_dml_loses_nothing_and_is_not_unjudged(statement):
    predicted, extra = predict(START, statement)
    assert extra == []
    assert predicted.tables == START.tables


def test_worth_judging_picks_ddl_words_only():
    assert worth_judging("ALTER TABLE account DROP COLUMN email")
    assert worth_judging("rename table a to b")
    assert worth_judging("CREATE OR REPLACE TABLE t (id INT)")
    assert not worth_judging("UPDATE account SET name = %s")
    assert not worth_judging("INSERT INTO alembic_version (version_num) VALUES ('r1')")
    assert not worth_judging("SELECT SLEEP(60)")


# --- indexes and keys hold no data of their own ------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE INDEX ix ON account (name)",
        "CREATE UNIQUE INDEX ix ON account (email)",
        "DROP INDEX ix ON account",
        "ALTER TABLE account ADD INDEX ix (name), ADD UNIQUE KEY uq (email)",
        "ALTER TABLE account DROP INDEX ix",
        "ALTER TABLE account DROP FOREIGN KEY fk_other",
        "ALTER TABLE account ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES other (x)",
        "ALTER TABLE account DROP PRIMARY KEY",
        "ALTER TABLE account ENGINE=InnoDB",
        "ALTER TABLE account ADD COLUMN n2 INT, ALGORITHM=INPLACE, LOCK=NONE",
        "CREATE VIEW v AS SELECT * FROM account",
        "DROP VIEW IF EXISTS v",
    ],
)
def test_index_key_view_and_table_option_changes_lose_nothing(statement):
    assert judge(statement) == []


@pytest.mark.parametrize(
    ("statement", "adds_only"),
    [
        ("CREATE TABLE t (id INT PRIMARY KEY, note TEXT)", True),
        ("CREATE INDEX ix_t_note ON t (note(20))", True),
        ("ALTER TABLE t ADD COLUMN x INT, ADD INDEX ix_x (x)", True),
        ("ALTER TABLE t ADD COLUMN x INT NOT NULL DEFAULT 0", True),
        ("SHOW CREATE TABLE `t`", True),
        ("ALTER TABLE t ADD COLUMN x INT NOT NULL", False),  # NOT NULL without a default: judged in full
        ("CREATE OR REPLACE TABLE t (id INT)", False),
        ("ALTER TABLE t ADD COLUMN x INT, DROP COLUMN note", False),
        ("ALTER TABLE t MODIFY note VARCHAR(10)", False),
        ("SELECT 1; DROP TABLE t", False),
        ("CREATE TABLE u (id INT); DROP TABLE t", False),
        ("/*!50001 DROP TABLE t */", False),
        ("RENAME TABLE t TO u", False),
        ("ALTER TABLE t CONVERT TO CHARACTER SET latin1", False),
    ],
)
def test_only_adds_skips_the_catalog_read_only_for_statements_that_cannot_lose_anything(statement, adds_only):
    assert statements.only_adds(statement) is adds_only
    if not adds_only:
        return
    # What only_adds lets through, predict judges the same way: no loss on any catalog.
    live = Snapshot(
        "mysql",
        {"t": {"id": Column("id", "int", False, False, False), "note": Column("note", "text", True, False, False)}},
    )
    predicted, extra = statements.predict(live, statement)
    assert not extra and not losses(live, predicted)


# --- issue 25: sql_mode, engines, character sets, ZEROFILL, splitting ------------------------------

NO_BACKSLASH = "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES"


def test_no_backslash_escapes_ends_a_string_at_its_backslash_so_the_drop_after_it_counts():
    statement = r"ALTER TABLE account ADD COLUMN x VARCHAR(40) DEFAULT 'a\', DROP COLUMN name -- '"
    assert statements.only_adds(statement)  # read with backslash escapes, it is one ADD COLUMN
    assert not statements.only_adds(statement, NO_BACKSLASH)
    predicted, extra = predict(START, statement, NO_BACKSLASH)
    assert [(loss.kind, loss.column) for loss in extra + losses(START, predicted)] == [("drop column", "name")]


def test_ansi_quotes_reads_double_quotes_as_names():
    statement = 'ALTER TABLE account ADD COLUMN "x\\" INT DEFAULT 1, DROP COLUMN name -- " INT'
    assert not statements.only_adds(statement, "ANSI_QUOTES")
    predicted, _ = predict(START, statement, "ANSI_QUOTES")
    assert "x\\" in predicted.tables["account"] and "name" not in predicted.tables["account"]


@pytest.mark.parametrize(
    ("text", "mode", "parts"),
    [
        ("SELECT 'a;b'; SELECT `c;d`", "", ["SELECT 'a;b'", "SELECT `c;d`"]),
        ("SELECT 'a\\';'; SELECT 2", "", ["SELECT 'a\\';'", "SELECT 2"]),
        ("SELECT 'a\\'; SELECT 2", NO_BACKSLASH, ["SELECT 'a\\'", "SELECT 2"]),
        ("SELECT 1 -- x; y\n; /* ; */ # ;\nSELECT 2;", "", ["SELECT 1 -- x; y", "/* ; */ # ;\nSELECT 2"]),
        ("-- only a comment;\n", "", []),
        ("/*!40101 SET NAMES utf8 */;", "", ["/*!40101 SET NAMES utf8 */"]),
        ("SELECT 1--1; SELECT 2", "", ["SELECT 1--1", "SELECT 2"]),
    ],
)
def test_split_cuts_at_semicolons_outside_strings_names_and_comments(text, mode, parts):
    assert statements.split(text, mode) == parts


def test_split_for_a_client_script_follows_delimiter_lines():
    script = (
        "DELIMITER $$\nCREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.x = 1; END$$\n"
        "DELIMITER ;\nSELECT 1;"
    )
    assert statements.split(script, client=True) == [
        "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.x = 1; END",
        "SELECT 1",
    ]


def mysql_start() -> Snapshot:
    """START as catalog._mysql reads it: engines, default character sets, the columns' character sets."""
    tables = {
        table: {
            name: Column(
                c.name,
                c.type,
                c.nullable,
                c.default_present,
                c.generated,
                charset="utf8mb4" if c.type.startswith("varchar") else None,
            )
            for name, c in columns.items()
        }
        for table, columns in START.tables.items()
    }
    return Snapshot(
        "mysql",
        tables,
        engines={"account": "InnoDB", "other": "InnoDB"},
        charsets={"account": "utf8mb4", "other": "utf8mb4"},
    )


@pytest.mark.parametrize(
    ("statement", "candidate"),
    [
        ("ALTER TABLE account ENGINE=BLACKHOLE", True),
        ("ALTER TABLE account ENGINE = MEMORY, ADD COLUMN z INT", True),
        ("ALTER TABLE account ENGINE=InnoDB", False),
        ("ALTER TABLE account ENGINE=Aria", False),
    ],
)
def test_an_engine_change_is_a_candidate_unless_the_engine_keeps_the_rows(statement, candidate):
    assert not statements.only_adds(statement)
    _predicted, extra = predict(mysql_start(), statement)
    assert [(loss.kind, loss.table) for loss in extra] == ([("change engine", "account")] if candidate else [])


@pytest.mark.parametrize(
    ("definition", "lossy"),
    [
        ("VARCHAR(50) CHARACTER SET ascii", True),
        ("VARCHAR(50) CHARSET latin1", True),
        ("NVARCHAR(50)", True),
        ("VARCHAR(50) COLLATE latin1_swedish_ci", True),
        ("VARCHAR(50)", False),
        ("VARCHAR(60) CHARACTER SET utf8mb4", False),
        ("TEXT", False),
    ],
)
def test_a_character_set_change_that_may_lose_characters_is_a_type_change(definition, lossy):
    start = mysql_start()
    predicted, _ = predict(start, f"ALTER TABLE account MODIFY name {definition}")
    found = [(loss.kind, loss.column) for loss in losses(start, predicted)]
    assert found == ([("change type", "name")] if lossy else [])


def test_zerofill_is_predicted_unsigned_as_the_server_shows_it():
    predicted, _ = predict(START, "ALTER TABLE account MODIFY id INT ZEROFILL")
    assert predicted.tables["account"]["id"].type == "int unsigned zerofill"
    assert [loss.describe() for loss in losses(START, predicted)] == [
        "column account.id would change type (int(11) -> int unsigned zerofill)"
    ]


@pytest.mark.parametrize(
    ("stored", "written"),
    [
        ("decimal(10,2)", "DECIMAL(10,2)"),
        ("decimal(10,2)", "NUMERIC(10, 2)"),
        ("decimal(10,0)", "DECIMAL"),
        ("tinyint(1)", "BOOLEAN"),
        ("tinyint(1)", "BOOL"),
        ("year(4)", "YEAR"),
        ("float(10,2)", "FLOAT(10,2)"),
        ("enum('a','b')", "ENUM('a','b')"),
        ("set('a','b')", "SET('a', 'b')"),
        ("bigint(20) unsigned", "SERIAL"),
        ("int(10) unsigned zerofill", "INT ZEROFILL"),
    ],
)
def test_a_type_written_as_the_server_stores_it_is_no_change(stored, written):
    # Each pair as MariaDB 10.11 reports COLUMN_TYPE after `MODIFY c <written>` (issue 25, N31): the
    # prediction and the check after the statement must agree.
    live = with_table("p", c=stored)
    predicted, _ = predict(live, f"ALTER TABLE p MODIFY c {written}")
    assert losses(live, predicted) == []


def test_an_enum_value_with_a_comma_and_a_space_is_still_its_own_value():
    live = with_table("p", c="enum('a, b')")
    predicted, _ = predict(live, "ALTER TABLE p MODIFY c ENUM('a,b')")
    assert [loss.kind for loss in losses(live, predicted)] == ["change type"]
