"""Issue 11: any Alembic project as it is, adopting a database, and what is refused before anything runs.

Real SQLite files and the real PostgreSQL and MariaDB servers, migrate.py as a real process.
The env.py files here are written the way users write them, not the way
migrate-init would like them: migrate-init must own the migration context
whatever they do, or refuse before anything is applied.
"""

from __future__ import annotations

import re
import sqlite3
import textwrap
from pathlib import Path

import pytest

from tests.support.chains import TARGET, Chain
from tests.support.dbstate import columns, count, query, running_upgrade_lines, snapshot, sqlite_path, versions
from tests.support.process import operator_env, run_migrate, summary_line

# -- adopting an existing database: stamp ---------------------------------------------


#: The driver an app's own create_all names (SQLAlchemy's bare postgresql:// and mysql:// mean others).
_DRIVERS = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}


def _with_driver(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


def _made_by_create_all(url: str, tmp_path: Path) -> None:
    """A database the app made itself with create_all: every table, no version row."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2] / "migrations")!r})
        import sqlalchemy as sa
        from models import Base
        engine = sa.create_engine({_with_driver(url)!r})
        Base.metadata.create_all(engine)
        with engine.begin() as c:
            c.execute(Base.metadata.tables["user"].insert().values(id="u1", name="Ann", email="a@x", role="admin"))
        engine.dispose()
    """)
    if url.startswith("sqlite"):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    from tests.support.process import run_python

    made = run_python("-c", script)
    assert made.code == 0, made.out


def test_stamp_adopts_a_database_made_by_create_all_and_the_next_run_has_nothing_to_do(any_url, tmp_path):
    _made_by_create_all(any_url, tmp_path)
    env = operator_env(any_url, tmp_path)

    stamped = run_migrate("stamp", TARGET, env=env)
    again = run_migrate(env=env)

    assert stamped.code == 0, stamped.out
    assert f"-> {TARGET}" in summary_line(stamped.out), stamped.out
    assert versions(any_url) == [TARGET]
    assert again.code == 0, again.out
    assert "nothing to do" in summary_line(again.out), again.out
    assert running_upgrade_lines(again.out) == []
    assert count(any_url, "user") == 1


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("DROP TABLE payment", "missing tables: payment"),
        ('ALTER TABLE "user" DROP COLUMN phone', "table 'user' lacks columns: phone"),
    ],
    ids=["a table", "a column"],
)
def test_stamp_on_a_database_that_does_not_match_models_exits_7_and_records_nothing(
    any_url, tmp_path, statement, named
):
    _made_by_create_all(any_url, tmp_path)
    query(any_url, statement)
    before = snapshot(any_url)

    result = run_migrate("stamp", TARGET, env=operator_env(any_url, tmp_path))

    assert result.code == 7, result.out
    assert named in summary_line(result.out), result.out
    assert "no revision was recorded" in summary_line(result.out)
    assert snapshot(any_url) == before
    assert versions(any_url) == []


def test_stamp_of_an_unknown_revision_exits_2(sqlite_url, tmp_path):
    _made_by_create_all(sqlite_url, tmp_path)

    result = run_migrate("stamp", "no_such_rev", env=operator_env(sqlite_url, tmp_path))

    assert result.code == 2, result.out
    assert "stamp no_such_rev: no such revision" in summary_line(result.out)
    assert versions(sqlite_url) == []


# -- what fails to load is not a failed migration ---------------------------------------


def test_an_env_py_that_does_not_load_is_exit_1_with_its_file_and_line_and_no_fallback(db_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    env_py = chain.path / "env.py"
    text = env_py.read_text().replace(
        "from alembic import context\n",
        "from alembic import context\nraise RuntimeError('env.py is broken on purpose')\n",
        1,
    )
    env_py.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "broken on purpose" in t)

    result = run_migrate(env=operator_env(db_url, tmp_path, **chain.env()))

    assert result.code == 1, result.out
    summary = summary_line(result.out)
    assert f"{env_py}:{line}: RuntimeError: env.py is broken on purpose" in summary, summary
    assert "Nothing was applied" in summary
    assert "FALLBACK USED" not in result.out and "create_all" not in result.out, result.out
    assert versions(db_url) == []
    assert "user" not in snapshot(db_url)["tables"]


def test_an_env_py_that_fails_after_the_migrations_ran_says_what_was_applied(sqlite_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    env_py = chain.path / "env.py"
    env_py.write_text(env_py.read_text() + "\nraise RuntimeError('env.py fails at its very end')\n")

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, **chain.env()))

    assert result.code == 1, result.out
    summary = summary_line(result.out)
    assert "env.py fails at its very end" in summary, summary
    assert "Nothing was applied" not in summary, summary
    assert f"The database is at {TARGET}" in summary, summary
    assert versions(sqlite_url) == [TARGET]


def test_a_script_with_a_syntax_error_is_exit_1_naming_it(db_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    bad = chain.add("b0rken000001", "pass")
    bad.write_text(bad.read_text().replace("def upgrade() -> None:", "def upgrade( -> None:"))

    result = run_migrate(env=operator_env(db_url, tmp_path, **chain.env()))

    assert result.code == 1, result.out
    assert str(bad) in summary_line(result.out), result.out
    assert "FALLBACK USED" not in result.out


# -- env.py that does things its own way --------------------------------------------------

_OWN_ENGINE_ENV = """
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

import sys
sys.path.insert(0, {folder!r})
from models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {{}}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        {extra}
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
"""


def _own_env(chain: Chain, extra: str = "pass") -> None:
    (chain.path / "env.py").write_text(_OWN_ENGINE_ENV.format(folder=str(chain.path), extra=extra))


def test_an_alembic_init_env_py_runs_on_migrate_inits_connection_one_transaction_per_migration(db_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    _own_env(chain)
    chain.add(
        "f00d00000001",
        """
        ops.add_column_if_missing("user", sa.Column("nickname", sa.String(40), nullable=True))
    """,
    )
    chain.add(
        "f00d00000002",
        """
        raise RuntimeError("the second one fails")
    """,
    )

    result = run_migrate(env=operator_env(db_url, tmp_path, ENABLE_FALLBACK_CREATE="false", **chain.env()))

    # Its own engine would have run everything in one transaction and lost f00d00000001 too.
    assert result.code == 1, result.out
    assert "Migration f00d00000002" in summary_line(result.out), result.out
    assert versions(db_url) == ["f00d00000001"]
    assert "nickname" in columns(db_url, "user")
    # Progress from Alembic's callbacks and the version table, whatever the loggers say.
    assert re.search(r"Applied f00d00000001 in \d+ms", result.out), result.out


def test_an_env_py_whose_own_connection_writes_is_refused_by_the_database(sqlite_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    _own_env(chain, extra='connection.exec_driver_sql("CREATE TABLE sneaky (id INTEGER)")')

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, **chain.env()))

    assert result.code == 1, result.out
    assert "readonly" in summary_line(result.out).lower() or "read-only" in summary_line(result.out).lower(), result.out
    assert not sqlite_path(sqlite_url).exists() or "sneaky" not in snapshot(sqlite_url)["tables"]


def test_an_env_py_that_connects_to_another_database_is_refused_before_anything_runs(sqlite_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    other = tmp_path / "elsewhere.db"
    _own_env(chain)
    env_py = chain.path / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "config.get_section(config.config_ini_section, {})", f'{{"sqlalchemy.url": "sqlite:///{other}"}}'
        )
    )

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, **chain.env()))

    assert result.code == 2, result.out
    summary = summary_line(result.out)
    assert f"env.py connects to sqlite:///{other}" in summary, summary
    assert "config.get_main_option('sqlalchemy.url')" in summary
    assert not other.exists() or "alembic_version" not in _tables(other)
    assert versions(sqlite_url) == []


def test_a_multidb_env_py_is_refused_before_anything_runs(sqlite_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    _own_env(chain)
    env_py = chain.path / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "context.configure(connection=connection, target_metadata=target_metadata)",
            "context.configure(connection=connection, target_metadata=target_metadata, upgrade_token='engine1_upgrades')",
        )
    )

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, **chain.env()))

    assert result.code == 2, result.out
    assert "several databases" in summary_line(result.out), result.out
    assert versions(sqlite_url) == []


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# -- reading the live schema: generated columns ---------------------------------------------


def test_a_generated_column_counts_as_a_column_on_both_paths(sqlite_url, tmp_path):
    chain = Chain(tmp_path / "migrations")
    chain.add(
        "9e11e7a70001",
        """
        op.execute('CREATE TABLE IF NOT EXISTS stats (id INTEGER PRIMARY KEY, a INTEGER, '
                   'doubled INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL)')
    """,
    )
    chain.append_models("""
        class Stats(Base):
            __tablename__ = "stats"
            id = sa.Column(sa.Integer, primary_key=True)
            a = sa.Column(sa.Integer)
            doubled = sa.Column(sa.Integer, sa.Computed("a * 2"))
    """)
    env = operator_env(sqlite_url, tmp_path, LOG_LEVEL="DEBUG", **chain.env())
    first = run_migrate(env=env)
    assert first.code == 0, first.out

    fast = run_migrate(env=env)
    full = run_migrate(env={**env, "FAST_PATH": "false"})

    assert fast.code == 0 and full.code == 0, (fast.out, full.out)
    assert "Fast path: the database is at 9e11e7a70001" in fast.out, fast.out
    assert "nothing to do" in summary_line(fast.out) and "nothing to do" in summary_line(full.out)


# -- check, in words ---------------------------------------------------------------------


def test_check_names_a_foreign_key_difference_in_words(any_url, tmp_path):
    url = any_url
    chain = Chain(tmp_path / "migrations")
    env = operator_env(url, tmp_path, **chain.env())
    assert run_migrate(env=env).code == 0
    chain.append_models("""
        Base.metadata.tables["credit"].append_constraint(
            sa.ForeignKeyConstraint(["user_id"], ["user.id"], name="fk_credit_user_extra"))
    """)

    result = run_migrate("check", env=env)

    assert result.code == 1, result.out
    assert "fk_credit_user_extra" in result.out, result.out
    assert "object at 0x" not in result.out and "ForeignKeyConstraint(" not in result.out, result.out
