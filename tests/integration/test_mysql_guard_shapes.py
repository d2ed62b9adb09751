"""Issue 25 (N7-N10, N30, N31): the MySQL/MariaDB statement guard and seeds, on the real MariaDB server.

MySQL/MariaDB commit DDL at once, so the destructive guard judges each
statement before it runs (migrate_init/statements.py).  Each test runs
``migrate.py`` as a real process on a project written into tmp_path (the
helpers of test_mysql_safety.py) and reads what the server holds afterwards:

- an engine change of a table holding rows (BLACKHOLE keeps none, MEMORY
  loses them on restart) is refused before it runs (N7);
- the session's ``sql_mode`` decides how a statement is read:
  ``NO_BACKSLASH_ESCAPES`` and ``ANSI_QUOTES`` (N8);
- a table swapped for an empty copy (``CREATE TABLE ... LIKE`` and
  ``RENAME TABLE``) is a table dropped and created again: its rows are no
  longer under its name (N9);
- a character set change that a non-strict ``sql_mode`` would turn into
  ``?`` is refused; a widening one, or one every value fits, passes (N10);
- ``ZEROFILL`` (which implies ``UNSIGNED``) is predicted as the type the
  server will show, so the refusal comes before the statement, never after
  it (N31);
- a ``.sql`` seed with several statements runs statement by statement (N30).
"""

from __future__ import annotations

import pytest

from tests.integration.test_mysql_safety import (
    ACCOUNT_COLUMNS,
    ACCOUNT_ROWS,
    CREATE_ACCOUNT,
    account_rows,
    assert_account_intact,
    columns_of,
    migrate,
    recorded,
    rows,
    tables_of,
    versions_of,
    write_project,
)
from tests.support.myserver import execute
from tests.support.process import summary_line


def engine_of(url: str, table: str) -> str:
    return rows(
        url,
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table,),
    )[0][0]


def applies(url: str, tmp_path, body: str) -> None:
    """r1 makes account (two rows), r2 runs ``body``: both apply, exit 0."""
    project = write_project(tmp_path / "project", (CREATE_ACCOUNT, False), (body, False))
    result, _ = migrate(url, project, tmp_path)
    assert result.code == 0, result.out


def refusal(result) -> str:
    """The summary of a run that must have ended with exit 8."""
    assert result.code == 8, result.out
    return summary_line(result.out)


def assert_refused_before(result, *named: str) -> str:
    """Exit 8, refused before the statement ran (never "could not be rolled back"), naming ``named``."""
    summary = refusal(result)
    assert "The statement was refused before it ran" in summary, summary
    assert "could not be rolled back" not in summary, summary
    assert "ALLOW_DESTRUCTIVE=r2 " in summary, summary
    for text in named:
        assert text in summary, summary
    return summary


# --- N7: ENGINE= -----------------------------------------------------------------------------


@pytest.fixture
def blackhole(mysql_server) -> None:
    """The BLACKHOLE engine, a plugin Debian's MariaDB ships but does not load."""
    if not execute(
        mysql_server.superuser_url,
        "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'BLACKHOLE' AND SUPPORT IN ('YES', 'DEFAULT')",
    ):
        execute(mysql_server.superuser_url, "INSTALL SONAME 'ha_blackhole'")


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE account ENGINE=BLACKHOLE",
        "ALTER TABLE account ENGINE = MEMORY",
        "ALTER TABLE account ADD COLUMN nick VARCHAR(20), ENGINE=MEMORY",
    ],
    ids=["blackhole", "memory", "memory-with-an-addition"],
)
def test_an_engine_change_of_a_table_holding_rows_is_refused_before_it_runs(mysql_url, tmp_path, blackhole, statement):
    project = write_project(tmp_path / "project", (CREATE_ACCOUNT, False), (f"op.execute({statement!r})", True))
    result, _ = migrate(mysql_url, project, tmp_path)
    assert_refused_before(result, "table account", "engine", "2 row(s)")
    assert_account_intact(mysql_url)
    assert engine_of(mysql_url, "account") == "InnoDB"
    assert versions_of(mysql_url) == ["r1"]


def test_an_engine_change_that_keeps_the_rows_or_of_an_empty_table_passes(mysql_url, tmp_path):
    applies(
        mysql_url,
        tmp_path,
        """
        op.execute("CREATE TABLE scratch (id INT PRIMARY KEY)")
        op.execute("ALTER TABLE scratch ENGINE=MEMORY")
        op.execute("ALTER TABLE account ENGINE=Aria")
        op.execute("ALTER TABLE account ENGINE=InnoDB, ALGORITHM=COPY")
    """,
    )
    assert engine_of(mysql_url, "scratch") == "MEMORY" and engine_of(mysql_url, "account") == "InnoDB"
    assert_account_intact(mysql_url)


def test_an_engine_change_sent_around_sqlalchemy_is_reported_after_it_ran(mysql_url, tmp_path):
    """A raw DBAPI cursor bypasses the statement guard; the catalog check after the migration sees the engine."""
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        (
            """
        cursor = op.get_bind().connection.driver_connection.cursor()
        cursor.execute("ALTER TABLE account ENGINE=MEMORY")
    """,
            True,
        ),
    )
    summary = refusal(migrate(mysql_url, project, tmp_path)[0])
    assert "table account changed engine (InnoDB -> MEMORY)" in summary, summary
    assert "could not be rolled back" in summary, summary
    assert engine_of(mysql_url, "account") == "MEMORY"  # what the message says: it stayed
    assert versions_of(mysql_url) == ["r1"]


# --- N8: sql_mode ----------------------------------------------------------------------------


def test_no_backslash_escapes_is_honoured_when_a_statement_is_read(mysql_url, tmp_path):
    """Under NO_BACKSLASH_ESCAPES, 'a\\' ends the string: the DROP COLUMN after it is real and judged."""
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        (
            r"""
        op.execute("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')")
        op.execute("ALTER TABLE account ADD COLUMN x VARCHAR(40) DEFAULT 'a\\', DROP COLUMN name -- '")
    """,
            True,
        ),
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert_refused_before(result, "column account.name (varchar(50)) would be dropped")
    assert_account_intact(mysql_url)


def test_ansi_quotes_is_honoured_when_a_statement_is_read(mysql_url, tmp_path):
    """Under ANSI_QUOTES, "x\\" is an identifier (no escapes there): the DROP COLUMN after it is judged,
    and a double-quoted column added alone passes."""
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        (
            r"""
        op.execute("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES')")
        op.execute('ALTER TABLE "account" ADD COLUMN "nick" VARCHAR(20)')
        op.execute('ALTER TABLE account ADD COLUMN "x\\" INT DEFAULT 1, DROP COLUMN name -- " INT')
    """,
            True,
        ),
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert_refused_before(result, "column account.name (varchar(50)) would be dropped")
    assert columns_of(mysql_url, "account") == [*ACCOUNT_COLUMNS, ("nick", "varchar(20)")]
    assert account_rows(mysql_url) == ACCOUNT_ROWS


# --- N9: a table swapped for an empty copy ---------------------------------------------------

SWAP = """
    op.execute("CREATE TABLE IF NOT EXISTS account_new LIKE account")
    op.execute("RENAME TABLE account TO account_old, account_new TO account")
"""


def test_a_table_swapped_for_an_empty_copy_is_refused_and_its_rows_stay_under_its_name(mysql_url, tmp_path):
    project = write_project(
        tmp_path / "project", (CREATE_ACCOUNT, False), (SWAP, True), ('op.execute("DROP TABLE account_old")', False)
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert_refused_before(
        result,
        "table account (3 columns: id, name, email; replaced by account_new) would be "
        "dropped (renamed to account_old?), holding 2 row(s); 2 of them not in the new table",
    )
    assert_account_intact(mysql_url)
    assert "account_old" not in tables_of(mysql_url)
    assert versions_of(mysql_url) == ["r1"] and recorded(mysql_url) == ["r2"]

    # Allowed, the swap runs: the rows are in account_old, and dropping that is a loss of its own.
    summary = refusal(migrate(mysql_url, project, tmp_path, ALLOW_DESTRUCTIVE="r2")[0])
    assert (
        "Migration r3 (" in summary and "table account_old (3 columns: id, name, email) would be dropped" in summary
    ), summary
    assert versions_of(mysql_url) == ["r2"]
    assert account_rows(mysql_url) == []
    assert rows(mysql_url, "SELECT id, name, email FROM account_old ORDER BY id") == ACCOUNT_ROWS


def test_a_table_swapped_for_a_complete_copy_passes(mysql_url, tmp_path):
    """The online schema change idiom: build the new table, copy every row, swap the names."""
    applies(
        mysql_url,
        tmp_path,
        """
        op.execute("CREATE TABLE account_new LIKE account")
        op.execute("ALTER TABLE account_new ADD COLUMN nick VARCHAR(20)")
        op.execute("INSERT INTO account_new (id, name, email) SELECT id, name, email FROM account")
        op.execute("RENAME TABLE account TO account_old, account_new TO account")
    """,
    )
    assert account_rows(mysql_url) == ACCOUNT_ROWS
    assert rows(mysql_url, "SELECT id, name, email FROM account_old ORDER BY id") == ACCOUNT_ROWS


# --- N10: character sets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "value"),
    [
        ("VARCHAR(50) CHARACTER SET ascii", "Zoë"),
        ("VARCHAR(50) CHARSET latin1", "Łukasz"),
        ("NVARCHAR(50)", "Zoë \U0001f600"),
        ("VARCHAR(50) COLLATE latin1_swedish_ci", "Łukasz"),
    ],
    ids=["ascii", "latin1", "nvarchar", "collate-latin1"],
)
def test_a_character_set_change_that_would_lose_characters_is_refused_in_a_non_strict_sql_mode(
    mysql_url, tmp_path, definition, value
):
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        (
            f"""
        op.execute("SET SESSION sql_mode = ''")
        op.execute("ALTER TABLE account MODIFY name {definition}")
    """,
            True,
        ),
    )
    result, _ = migrate(mysql_url, project, tmp_path, "upgrade", "r1")
    assert result.code == 0, result.out
    execute(mysql_url, "UPDATE account SET name = %s WHERE id = 1", (value,))
    result, _ = migrate(mysql_url, project, tmp_path)
    assert_refused_before(result, "column account.name would change type", "utf8mb4")
    assert rows(mysql_url, "SELECT name FROM account WHERE id = 1") == [(value,)]
    assert rows(
        mysql_url,
        "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE "
        "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'account' AND COLUMN_NAME = 'name'",
    ) == [("utf8mb4",)]


def test_a_character_set_change_whose_every_value_fits_passes(mysql_url, tmp_path):
    """Judged by the values: each one converted to the new set and back, before the statement runs."""
    applies(
        mysql_url,
        tmp_path,
        """
        op.execute("UPDATE account SET email = 'zoë@example.com' WHERE id = 2")
        op.execute("ALTER TABLE account MODIFY name VARCHAR(50) CHARACTER SET ascii")
        op.execute("ALTER TABLE account MODIFY email VARCHAR(50) CHARACTER SET latin1")
    """,
    )
    assert account_rows(mysql_url) == [(1, "alice", "alice@example.com"), (2, "bob", "zoë@example.com")]
    assert rows(
        mysql_url,
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE "
        "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'account' AND COLUMN_NAME <> 'id' "
        "ORDER BY COLUMN_NAME",
    ) == [("email", "latin1"), ("name", "ascii")]


def test_a_character_set_widening_keeps_every_value_and_passes(mysql_url, tmp_path):
    project = write_project(
        tmp_path / "project",
        (
            CREATE_ACCOUNT
            + """
op.execute("ALTER TABLE account ADD COLUMN tag VARCHAR(20) CHARACTER SET latin1")
op.execute("UPDATE account SET tag = 'Zoë'")
""",
            False,
        ),
        (
            """
        op.execute("ALTER TABLE account MODIFY tag VARCHAR(20) CHARACTER SET utf8mb4")
        op.execute("ALTER TABLE account MODIFY tag TEXT")
    """,
            False,
        ),
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 0, result.out
    assert rows(mysql_url, "SELECT DISTINCT tag FROM account") == [("Zoë",)]


# --- N31: ZEROFILL ---------------------------------------------------------------------------


def test_zerofill_is_predicted_as_the_type_the_server_shows_and_refused_before_it_runs(mysql_url, tmp_path):
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        ('op.execute("ALTER TABLE account MODIFY id INT ZEROFILL")', True),
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert_refused_before(result, "column account.id would change type (int(11) -> int unsigned zerofill)")
    assert_account_intact(mysql_url)

    # Allowed, it runs, and the check after it agrees with the prediction: no second refusal.
    result, _ = migrate(mysql_url, project, tmp_path, ALLOW_DESTRUCTIVE="r2")
    assert result.code == 0, result.out
    assert columns_of(mysql_url, "account")[0] == ("id", "int(10) unsigned zerofill")
    assert versions_of(mysql_url) == ["r2"]


# --- N30: seeds with several statements ------------------------------------------------------

SEED = """\
-- Two statements, a semicolon in a string, and a comment between them.
INSERT INTO account (id, name) VALUES (3, 'carol; not a statement');
/* a comment; with a semicolon */
INSERT INTO account (id, name, email) VALUES (4, 'it''s dave', "dave@example.com");  # trailing comment

DELIMITER $$
CREATE TRIGGER account_lower BEFORE INSERT ON account FOR EACH ROW
BEGIN
  SET NEW.email = LOWER(NEW.email);
END$$
DELIMITER ;
INSERT INTO account (id, name, email) VALUES (5, 'eve', 'EVE@EXAMPLE.COM')
"""


def test_a_sql_seed_with_several_statements_runs_each_of_them_once(mysql_url, tmp_path):
    project = write_project(
        tmp_path / "project",
        (
            CREATE_ACCOUNT.replace(
                "op.execute(\"INSERT INTO account (id, name, email) VALUES (1, 'alice', 'alice@example.com'), "
                "(2, 'bob', NULL)\")",
                "",
            ),
            False,
        ),
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01-accounts.sql").write_text(SEED, encoding="utf-8")
    result, _ = migrate(mysql_url, project, tmp_path, SEED_DIR=seeds)
    assert result.code == 0, result.out
    assert account_rows(mysql_url) == [
        (3, "carol; not a statement", None),
        (4, "it's dave", "dave@example.com"),
        (5, "eve", "eve@example.com"),
    ]
    assert rows(mysql_url, "SELECT name FROM migrate_init_seed") == [("01-accounts.sql",)]

    result, _ = migrate(mysql_url, project, tmp_path, SEED_DIR=seeds)
    assert result.code == 0, result.out
    assert len(account_rows(mysql_url)) == 3
