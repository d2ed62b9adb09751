"""Issue 23: libpq's multi-host URLs (``h1:p1,h2:p2`` before the database name) parse and stay redacted.

SQLAlchemy's grammar has one host and one port; the hosts become its own
multi-host options, so that psycopg2 gets the comma lists libpq reads and
SQLAlchemy's psycopg2 dialect makes exactly the same connect() arguments.
"""

from __future__ import annotations

import pytest
import sqlalchemy

from migrate_init import url
from migrate_init.alembic_glue import sqlalchemy_url
from migrate_init.errors import ConfigError

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("raw", "hosts", "ports"),
    [
        (f"postgresql://app:{SECRET}@db1:5432,db2:5433/app?target_session_attrs=read-write", "db1,db2", "5432,5433"),
        (f"postgres://app:{SECRET}@db1,db2,db3/app", "db1,db2,db3", ",,"),
        (f"postgresql+psycopg2://app:{SECRET}@10.0.0.1:5432,10.0.0.2/app", "10.0.0.1,10.0.0.2", "5432,"),
    ],
)
def test_a_libpq_multi_host_url_gives_libpq_every_host_in_order(raw: str, hosts: str, ports: str) -> None:
    parsed = url.parse(raw)
    kwargs = parsed.connect_kwargs_psycopg2()

    assert (kwargs["host"], kwargs["port"], kwargs["dbname"], kwargs["password"]) == (hosts, ports, "app", SECRET)
    if "target_session_attrs" in raw:
        assert kwargs["target_session_attrs"] == "read-write"
    # SQLAlchemy's engine (the migrations' connections) gets the same arguments as the bare driver.
    dialect = sqlalchemy.create_engine(sqlalchemy_url(parsed)).dialect
    assert dialect.create_connect_args(sqlalchemy_url(parsed))[1] == kwargs
    assert url.parse(parsed.render(hide_password=False)) == parsed


def test_a_multi_host_url_is_redacted_parsed_or_as_text() -> None:
    raw = f"postgresql://app:{SECRET}@db1:5432,db2:5433/app?target_session_attrs=read-write"
    parsed = url.parse(raw)

    assert SECRET not in parsed.safe and SECRET not in str(parsed) and SECRET not in repr(parsed)
    assert "db1" in parsed.safe and "db2" in parsed.safe
    assert url.redact(f"could not connect to {raw}") == (
        "could not connect to postgresql://app:***@db1:5432,db2:5433/app?target_session_attrs=read-write"
    )


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (f"postgresql://app:{SECRET}@db1:x,db2/app", "port 'x'"),
        (f"postgresql://app:{SECRET}@db1:70000,db2/app", "port '70000'"),
        (f"postgresql://app:{SECRET}@db1,,db2/app", "is not a host name"),
        (f"postgresql://app:{SECRET}@[::1]:5432,db2/app", "IPv6"),
        (f"postgresql://app:{SECRET}@db1,db2/app?host=db3", "Use one form"),
    ],
)
def test_a_bad_multi_host_url_is_exit_2_naming_the_entry_and_hiding_the_password(raw: str, words: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL") as refused:
        url.parse(raw)

    assert words in str(refused.value)
    assert SECRET not in str(refused.value)
    assert refused.value.exit_code == 2


def test_a_comma_in_a_mysql_host_is_still_refused_as_before() -> None:
    with pytest.raises(ConfigError):
        url.parse(f"mysql://app:{SECRET}@db1:3306,db2:3306/app")
