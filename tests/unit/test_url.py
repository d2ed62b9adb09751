"""The one URL parser and redactor (migrate_init.url).

A URL must mean here what it means to SQLAlchemy (compared with SQLAlchemy's
own parser and psycopg2 dialect), every mistake is exit 2 naming the
variable, and no form of a password survives redact(), render() or a log line.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from migrate_init import report, url
from migrate_init.errors import ConfigError

# Every character that breaks a naive URL parser or masker, each on its own and all together.
SPECIAL_PASSWORDS = {
    "backslash": "pa\\ss\\word",
    "double-quote": 'pa"ss"word',
    "single-quote": "pa'ss'word",
    "umlaut": "pässwörd",
    "at": "p@ss@word",
    "slash": "pa/ss/word",
    "hash": "pa#ss#word",
    "percent": "pa%ss%25word",
    "space": "pa ss word",
    "everything": "Tr1:ck@y/p%25ss \\\"'ä#?&=w0rd",
}


def forms_of(password: str) -> set[str]:
    """Every way a password could be printed, computed here independently of url.secret_forms."""
    forms = {
        password,
        quote(password, safe=""),
        quote(password),
        quote(password, safe=" +"),
        quote_plus(password),
        json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1],
        repr(password)[1:-1],
        ascii(password)[1:-1],
        password.replace("\\", "\\\\"),
    }
    return {form for form in forms if len(form) >= 3}


def assert_no_password(text: str, password: str) -> None:
    for form in forms_of(password):
        assert form not in text, f"the password shows as {form!r} in {text!r}"


def encoded_url(password: str, *, host: str = "db.example", port: int = 5432) -> str:
    return f"postgresql://app:{quote(password, safe='')}@{host}:{port}/appdb"


@pytest.fixture
def restore_report():
    """Put logging and the report mask back as they were: report.setup() is global."""
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level, logging.getLogger(name).propagate)
        for name in (report.LOGGER, "alembic")
    }
    masker = report._masker
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    report._masker = masker


# -- parse: what SQLAlchemy reads ----------------------------------------------------------

SQLALCHEMY_AGREES = [
    "sqlite:////data/app.db",
    "sqlite:///relative/app.db",
    "sqlite+pysqlite:////tmp/a b/app%25.db",
    "postgresql://user:p%40ss%2Fw%25rd%3Ax@db.example:5432/app",
    "postgresql+psycopg2://u:pw@10.0.0.1/app?sslmode=require&application_name=x",
    "postgresql://u:pw@[::1]:5433/app",
    "postgresql://u:pw@[fe80::1%25eth0]/app",
    "postgresql://u@localhost/app",
    "postgresql:///app?host=/var/run/postgresql",
    "postgresql://h",
    "postgresql://u:@h/d",
    "postgresql://u:a/b#c d@h/d",
    "postgresql://u:pw@h/d?host=a:1&host=b:2",
    "mysql+pymysql://root:se+cret@mysql/app?charset=utf8mb4",
    *(encoded_url(password) for password in SPECIAL_PASSWORDS.values()),
]


@pytest.mark.parametrize("raw", SQLALCHEMY_AGREES)
def test_parse_reads_a_url_exactly_as_sqlalchemy_does(raw):
    parsed = url.parse(raw)
    expected = make_url(raw)

    assert (parsed.drivername, parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        expected.drivername,
        expected.username,
        expected.password,
        expected.host,
        expected.port,
        expected.database,
    )
    query: dict[str, object] = {}
    for key, value in parsed.query:
        query[key] = (
            (*query[key], value)
            if isinstance(query.get(key), tuple)
            else ((query[key], value) if key in query else value)
        )
    assert query == dict(expected.query)
    assert parsed.render(hide_password=False) == expected.render_as_string(hide_password=False)
    assert url.parse(parsed.render(hide_password=False)) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql+psycopg2://app:s%40cret@db.example:6432/appdb",
        "postgresql+psycopg2://app:s%40cret@db.example/appdb?sslmode=verify-full&connect_timeout=3",
        "postgresql+psycopg2://app@/appdb?host=/run/postgresql",
        "postgresql+psycopg2://app:pw@/appdb?host=h1:5432&host=h2:5433",
        "postgresql+psycopg2://app:pw@/appdb?host=h1,h2&port=5432,5433",
        "postgresql+psycopg2://app:pw@/appdb?host=h1:5433",
        "postgresql+psycopg2://app:pw@/appdb?host=h1&host=h2",
        "postgresql+psycopg2://app:pw@urlhost:5432/appdb?host=qhost&port=6000",
        "postgresql+psycopg2://",
    ],
)
def test_connect_kwargs_are_what_sqlalchemys_psycopg2_dialect_passes(raw):
    dialect = sqlalchemy.create_engine(raw).dialect
    _args, expected = dialect.create_connect_args(make_url(raw))

    assert url.parse(raw).connect_kwargs_psycopg2() == expected


def test_connect_kwargs_refuse_an_option_given_twice_naming_it_without_the_password():
    parsed = url.parse("postgresql://app:hunter2secret@db/app?sslmode=require&sslmode=disable")

    with pytest.raises(ConfigError, match="sslmode") as refused:
        parsed.connect_kwargs_psycopg2()
    assert "hunter2secret" not in str(refused.value)


# -- connect_kwargs_pymysql: what PyMySQL gets, as SQLAlchemy's pymysql dialect gives it -------------

PYMYSQL_URLS = [
    "mysql+pymysql://app:s%40cret@db.example:3307/appdb",
    "mysql+pymysql://app:pw@db/appdb?charset=latin1&connect_timeout=3",
    "mysql+pymysql://app:pw@db/appdb?ssl_ca=/ca.pem&ssl_cert=/c.pem&ssl_key=/k.pem&ssl_check_hostname=false",
    "mysql+pymysql://app:pw@db/appdb?compress=true&local_infile=1&read_timeout=7&write_timeout=9",
    "mysql+pymysql://app:pw@db/appdb?compress=false&use_unicode=0",
    "mysql+pymysql://app@/appdb?unix_socket=/run/mysqld/mysqld.sock",
    "mysql+pymysql://app:pw@db/appdb?client_flag=2",
    "mysql+pymysql://app:pw@[::1]:3306/appdb",
    "mariadb+pymysql://app:pw@db/appdb",
    "mysql+pymysql:///appdb",  # nothing but the database (a URL without one is exit 2, below)
    *(
        encoded_url(password).replace("postgresql://", "mysql+pymysql://").replace(":5432", ":3306")
        for password in SPECIAL_PASSWORDS.values()
    ),
]


@pytest.mark.parametrize("raw", PYMYSQL_URLS)
def test_pymysql_kwargs_are_what_sqlalchemys_pymysql_dialect_passes(raw):
    """The same arguments, but for three documented differences: SQLAlchemy adds client_flag=FOUND_ROWS
    (it changes only what UPDATE reports; the bare-driver reader never updates), migrate-init
    names utf8mb4, PyMySQL's own default charset, and hands the password over as UTF-8 bytes
    (PyMySQL would send a str as latin-1; test_bad_input.py logs in with a non-ASCII one)."""
    import pymysql

    _args, expected = sqlalchemy.create_engine(raw).dialect.create_connect_args(make_url(raw))
    if "client_flag=" not in raw:
        assert expected.pop("client_flag") == pymysql.constants.CLIENT.FOUND_ROWS
    expected.setdefault("charset", "utf8mb4")
    assert pymysql.connections.DEFAULT_CHARSET == "utf8mb4"
    if "password" in expected:
        expected["password"] = expected["password"].encode("utf-8")

    assert url.parse(raw).connect_kwargs_pymysql() == expected


def test_pymysql_kwargs_take_every_name_pymysql_connect_takes():
    """Nothing reaches pymysql.connect that it would refuse (a TypeError there is exit 2 naming it)."""
    import inspect

    import pymysql

    accepted = set(inspect.signature(pymysql.connections.Connection.__init__).parameters)
    for raw in PYMYSQL_URLS:
        assert set(url.parse(raw).connect_kwargs_pymysql()) <= accepted, raw


def test_pymysql_kwargs_are_the_same_for_mysql_and_mariadb_schemes():
    forms = [
        "mysql://app:p%40ss@db:3306/appdb?charset=utf8mb4",
        "mariadb://app:p%40ss@db:3306/appdb?charset=utf8mb4",
        "mysql+pymysql://app:p%40ss@db:3306/appdb?charset=utf8mb4",
        "mariadb+pymysql://app:p%40ss@db:3306/appdb?charset=utf8mb4",
    ]

    kwargs = [url.parse(raw).connect_kwargs_pymysql() for raw in forms]

    assert all(k == kwargs[0] for k in kwargs), kwargs
    assert kwargs[0]["password"] == b"p@ss" and kwargs[0]["port"] == 3306


def test_pymysql_kwargs_with_database_password_carry_it_decoded():
    parsed = url.parse("mysql://app@db/appdb").with_password("Tr1:ck@y/p%25ss")

    assert parsed.connect_kwargs_pymysql()["password"] == b"Tr1:ck@y/p%25ss"


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("charset=utf8mb4&charset=latin1", "charset"),
        ("connect_timeout=3&connect_timeout=4", "connect_timeout"),
        ("connect_timeout=soon", "connect_timeout"),
        ("read_timeout=-1", "read_timeout"),
        ("port=33o6", "port"),
        ("client_flag=0x2", "client_flag"),
    ],
)
def test_pymysql_kwargs_refuse_a_repeated_or_non_numeric_option_naming_it_without_the_password(query, named):
    parsed = url.parse(f"mysql://app:hunter2secret@db/app?{query}")

    with pytest.raises(ConfigError, match=named) as refused:
        parsed.connect_kwargs_pymysql()
    assert "hunter2secret" not in str(refused.value)
    assert "app:***@db" in str(refused.value)


def test_pymysql_kwargs_pass_an_unknown_option_through_for_pymysql_to_refuse():
    """migrate-init does not guess: an option it does not convert goes to PyMySQL as text, and
    PyMySQL's TypeError becomes exit 2 naming it (test_config.py proves that end to end)."""
    kwargs = url.parse("mysql://app:pw@db/app?frobnicate=1&init_command=SET%20NAMES%20utf8mb4").connect_kwargs_pymysql()

    assert kwargs["frobnicate"] == "1"
    assert kwargs["init_command"] == "SET NAMES utf8mb4"


def test_pymysql_kwargs_keep_a_query_password_and_render_hides_it():
    parsed = url.parse("mysql://app@db/app?password=hunter2secret")

    assert parsed.connect_kwargs_pymysql()["password"] == b"hunter2secret"
    assert "hunter2secret" not in parsed.safe and "hunter2secret" not in repr(parsed)


@pytest.mark.parametrize(
    ("raw", "backend", "driver"),
    [
        ("postgres://u:pw@h/db", "postgresql", ""),
        ("postgres+psycopg2://u:pw@h/db", "postgresql", "psycopg2"),
        ("postgresql+psycopg://u:pw@h/db", "postgresql", "psycopg"),
        ("mariadb+pymysql://u:pw@h/db", "mysql", "pymysql"),
        ("mysql://u:pw@h/db", "mysql", ""),
        ("sqlite+pysqlite:////data/x.db", "sqlite", "pysqlite"),
        ("mssql+pyodbc://u:pw@dsn", "mssql", "pyodbc"),
    ],
)
def test_the_postgres_and_mariadb_aliases_name_their_backend_and_keep_the_scheme(raw, backend, driver):
    parsed = url.parse(raw)

    assert (parsed.backend, parsed.driver) == (backend, driver)
    assert parsed.drivername == raw.split("://")[0]


def test_sqlite_paths_follow_sqlalchemy_three_slashes_relative_four_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert url.parse("sqlite:///data/webui.db").sqlite_path == str(tmp_path / "data" / "webui.db")
    assert url.parse("sqlite:////var/lib/app/webui.db").sqlite_path == "/var/lib/app/webui.db"
    assert url.parse("sqlite+pysqlite:////tmp/a%20b.db").sqlite_path == "/tmp/a b.db"
    assert url.parse("sqlite:///file:data/x.db?uri=true&mode=rw").sqlite_path == str(tmp_path / "data" / "x.db")
    assert url.parse("sqlite:///file:///srv/x.db?uri=true").sqlite_path == "/srv/x.db"
    assert url.parse("postgresql://h/db").sqlite_path is None
    assert not url.parse("sqlite:////x.db").is_memory


@pytest.mark.parametrize(
    "raw",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite+pysqlite:///:memory:",
        "sqlite:///file::memory:?cache=shared",
        "sqlite:///file:memdb1?mode=memory&cache=shared&uri=true",
    ],
)
def test_an_in_memory_sqlite_database_is_refused_as_it_cannot_outlive_the_container(raw):
    with pytest.raises(ConfigError, match="in-memory") as refused:
        url.parse(raw)

    assert refused.value.exit_code == 2
    assert "DATABASE_URL" in str(refused.value)


def test_a_sqlite_url_with_a_host_or_password_is_refused_without_showing_the_password():
    with pytest.raises(ConfigError, match="SQLite URL names a file") as refused:
        url.parse("sqlite://admin:hunter2secret@host/app.db")

    assert "hunter2secret" not in str(refused.value)


# -- parse: what is refused, with exit 2, naming the variable, never showing the password --


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("postgresql://app:hunter2secret@db:port/app", "is not a number"),
        ("postgresql://app:hunter2secret@db:54x2/app", "is not a number"),
        ("postgresql://app:hunter2secret@db:0/app", "out of range"),
        ("postgresql://app:hunter2secret@db:65536/app", "out of range"),
        ("postgresql://app:hunter2secret@db:99999999999999999999/app", "out of range"),
        ("postgresql://app:hunter2secret@db:\u0665\u0664\u0663\u0662/app", "is not a number"),
        ("postgresql://app:hunter2secret@::1/app", "IPv6 address goes in brackets"),
    ],
)
def test_a_bad_port_is_exit_2_naming_the_variable_and_hiding_the_password(raw, words):
    with pytest.raises(ConfigError, match=words) as refused:
        url.parse(raw, "DATABASE_URL_FILE (/run/secrets/db)")

    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert message.startswith("DATABASE_URL_FILE (/run/secrets/db)")
    assert "hunter2secret" not in message
    assert "app:***@" in message


def test_ipv6_hosts_in_brackets_parse_render_and_stay_visible():
    parsed = url.parse("postgresql://app:hunter2secret@[2001:db8::7]:6543/app")

    assert (parsed.host, parsed.port) == ("2001:db8::7", 6543)
    assert parsed.safe == "postgresql://app:***@[2001:db8::7]:6543/app"
    assert url.redact("at postgresql://app:hunter2secret@[2001:db8::7]:6543/app") == (
        "at postgresql://app:***@[2001:db8::7]:6543/app"
    )


@pytest.mark.parametrize("password", ["p@ss@word", "us@er:p@ss"])
def test_more_than_one_raw_at_is_refused_with_the_encoding_advice(password):
    raw = f"postgresql://app:{password}@db.example:5432/app"

    with pytest.raises(ConfigError) as refused:
        url.parse(raw)

    message = str(refused.value)
    assert "more than one unencoded at sign" in message
    assert "%40" in message and "%2F" in message and "%23" in message and "%25" in message and "%3A" in message
    assert "db.example:5432/app" in message  # where it points stays readable
    assert_no_password(message, password)
    # The log mask reads a URL's password up to the last at sign of the line: the advice must survive it.
    assert "%2F" in url.redact(message) and "%3A" in url.redact(message), url.redact(message)
    for piece in password.split("@"):
        assert f":{piece}@" not in message


@pytest.mark.parametrize("control", ["\n", "\r", "\t", "\x00", "\x7f", "\u2028"])
def test_a_control_character_anywhere_is_refused_and_the_value_not_shown(control):
    raw = f"postgresql://app:hunter2{control}xyzzy@db/app"

    with pytest.raises(ConfigError, match="DATABASE_URL contains") as refused:
        url.parse(raw)

    assert "hunter2" not in str(refused.value) and "xyzzy" not in str(refused.value)


@pytest.mark.parametrize(
    "raw", ["not a url", "://nothing", "app:hunter2secret@db/app", "postgresql//app:hunter2secret@db/app"]
)
def test_a_value_without_a_scheme_is_refused_and_never_shown(raw):
    # It may be a bare password or a secret's base64 text: described, never printed.
    with pytest.raises(ConfigError, match="does not start with a scheme") as refused:
        url.parse(raw)

    assert f"({len(raw)} characters, not shown: it may be a secret)" in str(refused.value)
    assert raw not in str(refused.value) and "hunter2secret" not in str(refused.value)


def test_text_sqlalchemy_would_silently_drop_is_refused():
    with pytest.raises(ConfigError, match="cannot be read"):
        url.parse("postgresql://app:pw@[::1]trailing/app")


# -- render, str, repr ----------------------------------------------------------------------


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS.values(), ids=SPECIAL_PASSWORDS.keys())
def test_render_hides_the_password_and_str_and_repr_never_show_it(password):
    parsed = url.parse(encoded_url(password))

    assert parsed.password == password
    for shown in (parsed.render(), parsed.safe, str(parsed), repr(parsed), f"{parsed}"):
        assert shown.endswith("app:***@db.example:5432/appdb") or "app:***@db.example:5432/appdb" in shown
        assert_no_password(shown, password)
    assert url.parse(parsed.render(hide_password=False)).password == password


def test_render_hides_query_passwords_but_keeps_other_options():
    parsed = url.parse("postgresql://app@db/app?sslmode=require&sslpassword=k3ysecret&PASSWORD=x%26y1")

    assert parsed.render() == "postgresql://app@db/app?PASSWORD=***&sslmode=require&sslpassword=***"
    assert "k3ysecret" in parsed.render(hide_password=False)


def test_with_password_adds_a_password_that_survives_a_round_trip():
    parsed = url.parse("postgresql://app@db.example/app").with_password("p@ss/w%rd ä")

    assert parsed.password == "p@ss/w%rd ä"
    assert url.parse(parsed.render(hide_password=False)) == parsed
    assert make_url(parsed.render(hide_password=False)).password == "p@ss/w%rd ä"
    assert "p@ss" not in parsed.safe


# -- redact: any text, valid URLs or not ------------------------------------------------------


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS.values(), ids=SPECIAL_PASSWORDS.keys())
def test_redact_masks_a_raw_password_with_special_characters_up_to_the_last_at(password):
    text = f"could not connect to postgresql://app:{password}@db.example:5432/appdb: refused"

    redacted = url.redact(text)

    assert redacted == "could not connect to postgresql://app:***@db.example:5432/appdb: refused"


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS.values(), ids=SPECIAL_PASSWORDS.keys())
def test_redact_masks_a_percent_encoded_password_and_keeps_host_port_and_path(password):
    redacted = url.redact(f"DATABASE_URL={encoded_url(password)} failed")

    assert redacted == "DATABASE_URL=postgresql://app:***@db.example:5432/appdb failed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgresql://db/app?password=hunter2secret&sslmode=require",
            "postgresql://db/app?password=***&sslmode=require",
        ),
        (
            "postgresql://db/app?sslmode=require&SSLPASSWORD=hunter2secret",
            "postgresql://db/app?sslmode=require&SSLPASSWORD=***",
        ),
        ("mysql://db/app?pass=hunter2secret", "mysql://db/app?pass=***"),
        ("mysql://db/app?passwd=hunter2secret", "mysql://db/app?passwd=***"),
        ("Driver={x};Server=db;Pwd=hunter2secret;Uid=app", "Driver={x};Server=db;Pwd=***"),
        ("host=db port=5432 password='hunter2 \\'secret' dbname=app", "host=db port=5432 password='***' dbname=app"),
        ('{"user": "app", "password": "hunter2\\"secret"}', '{"user": "app", "password": "***"}'),
        ("{'user': 'app', 'password': 'hunter2secret'}", "{'user': 'app', 'password': '***'}"),
    ],
)
def test_redact_masks_query_and_keyword_passwords(text, expected):
    assert url.redact(text) == expected
    assert "hunter2" not in url.redact(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("://app:hunter2secret@db/app", "://app:***@db/app"),
        ("postgresql://app:hunter2secret@db:port/app", "postgresql://app:***@db:port/app"),
        ("postgresql://:hunter2secret@db/app", "postgresql://:***@db/app"),
        # Not a database's scheme: its whole user info may be the credential (issue 25, N27).
        ("weird+scheme.x://app:hunter2secret@db", "weird+scheme.x://***@db"),
        ("'postgresql://app:hunter2secret@db/app'", "'postgresql://app:***@db/app'"),
    ],
)
def test_redact_masks_passwords_in_urls_that_do_not_parse(text, expected):
    assert url.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:////app/backend/data/webui.db",
        "sqlite:////data/team@example/webui.db",
        "sqlite:///relative/dir:with:colons/x.db",
        "Running upgrade 7e5b5dc7342b -> ca81bd47c050, add_config_table",
        "postgresql://app@db.example:5432/appdb",
        "postgresql://[::1]:5432/appdb",
        "Verified 11 tables: user=3, chat=0",
    ],
)
def test_redact_leaves_text_without_passwords_alone_and_sqlite_paths_visible(text):
    assert url.redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tinydep@git+https://ghp_token4711@github.com/org/tinydep.git",
            "tinydep@git+https://***@github.com/org/tinydep.git",
        ),
        ("https://ghp_token4711:x-oauth-basic@github.com/org/a.git", "https://***@github.com/org/a.git"),
        (
            "a @ https://user:token4711@127.0.0.1:9/a.whl, b @ https://127.0.0.1:9/b.whl",
            "a @ https://***@127.0.0.1:9/a.whl, b @ https://127.0.0.1:9/b.whl",
        ),
        ("file://token4711@localhost/wheels/a.whl", "file://***@localhost/wheels/a.whl"),
        (
            "mysql+pymysql://app@db/app, postgres://app:token4711@db/app",
            "mysql+pymysql://app@db/app, postgres://app:***@db/app",
        ),
    ],
)
def test_redact_masks_the_whole_user_info_of_a_url_that_is_not_a_databases(text, expected):
    """A token alone in a requirement's URL is a credential; a database's user name stays in view (N27)."""
    assert url.redact(text) == expected
    assert url.redact(expected) == expected


def test_redact_is_idempotent_and_masks_each_url_on_a_line_keeping_each_host():
    text = "from postgresql://a:one1@secret@h1/db to postgresql://b:two2secret@h2/db"

    once = url.redact(text)

    assert once == "from postgresql://a:***@h1/db to postgresql://b:***@h2/db"
    assert url.redact(once) == once


def test_redact_masks_a_url_its_repr_and_its_json_on_one_line():
    raw = "postgresql://app:p@ss\"w'rd@db/app"
    text = f"cannot open {raw} ({raw!r}, {json.dumps(raw)})"

    redacted = url.redact(text)

    assert redacted.count("app:***@db/app") == 3, redacted
    assert_no_password(redacted, "p@ss\"w'rd")


def test_redact_masks_a_password_holding_a_raw_scheme_separator_even_at_the_cost_of_the_host():
    redacted = url.redact("at postgresql://app:pa://ss@db/app")

    assert "pa://ss" not in redacted and "ss@" not in redacted
    assert redacted.endswith("@db/app")


def test_redact_masks_across_lines_only_what_is_on_each_line():
    text = "postgresql://app:hunter2secret@db/app\nsee admin@example.org\r\npostgresql://db:5432/x"

    assert url.redact(text) == ("postgresql://app:***@db/app\nsee admin@example.org\r\npostgresql://db:5432/x")


# -- secret_forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS.values(), ids=SPECIAL_PASSWORDS.keys())
def test_secret_forms_of_a_password_hold_every_printable_form(password):
    assert forms_of(password) <= url.secret_forms(password)


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS.values(), ids=SPECIAL_PASSWORDS.keys())
def test_secret_forms_of_a_url_are_its_passwords_forms_not_the_url(password):
    raw = encoded_url(password)

    forms = url.secret_forms(raw)

    assert forms_of(password) <= forms
    assert quote(password, safe="") in forms
    assert raw not in forms and "db.example" not in forms


def test_secret_forms_of_a_url_without_a_password_are_empty_so_the_path_stays_readable():
    assert url.secret_forms("sqlite:////app/backend/data/webui.db") == set()
    assert url.secret_forms("postgresql://app@db.example:5432/app") == set()
    assert url.secret_forms("postgresql://db/app?password=k3y%2Fsecret") >= {"k3y/secret", "k3y%2Fsecret"}


def test_secret_forms_cover_both_readings_of_a_password_with_a_raw_at():
    forms = url.secret_forms("postgresql://app:first@second@db/app")

    assert {"first", "first@second"} <= forms


# -- through the log: an exception message, text and JSON --------------------------------------


def _a_real_error(raw_url: str) -> Exception:
    """What a driver or a user's env.py might raise: the URL, its repr and its JSON inside the message."""
    try:
        raise RuntimeError(f"cannot open {raw_url} ({raw_url!r}, {json.dumps(raw_url)})")
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("configured", [True, False], ids=["configured-secret", "unconfigured"])
@pytest.mark.parametrize("password", SPECIAL_PASSWORDS.values(), ids=SPECIAL_PASSWORDS.keys())
def test_an_exception_logged_through_report_shows_no_form_of_the_password(
    password, configured, log_format, capsys, restore_report
):
    raw_url = f"postgresql://app:{password}@db.example:5432/appdb"
    encoded = encoded_url(password)
    report.setup(log_format=log_format, level="DEBUG", secrets=[encoded] if configured else [])
    error = _a_real_error(raw_url)
    wrapped = _a_real_error(encoded)

    report.error(
        "unexpected",
        f"Unexpected {type(error).__name__}: {error}",
        url=raw_url,
        detail={"urls": [raw_url, encoded], "repr": repr(error)},
    )
    logging.getLogger(report.LOGGER).info("also %s and %r", encoded, wrapped)
    logging.getLogger(report.LOGGER).debug("Traceback of the unexpected error", exc_info=wrapped)

    output = capsys.readouterr().err
    assert output.count("\n") >= 3
    assert_no_password(output, password)
    assert "db.example:5432/appdb" in output
    if log_format == "json":
        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert len(records) == 3
        assert records[0]["url"] == "postgresql://app:***@db.example:5432/appdb"
        assert "traceback" in records[2]


def test_the_url_module_imports_nothing_heavy_at_import_time():
    """It is on the fast path (issue 7): re, urllib.parse and json are imported where they are used."""
    heavy = {"sqlalchemy", "alembic", "psycopg2", "dataclasses", "typing", "pathlib", "json", "urllib", "re"}
    with open(url.__file__, encoding="utf-8") as handle:
        source = handle.read()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert top_level == ["from __future__ import annotations", "import os", "from .errors import ConfigError"]
    assert not {line.split()[1].split(".")[0] for line in top_level} & heavy


@pytest.mark.parametrize(
    "raw",
    ["mysql://app:hunter2secret@db:3306", "mariadb://app:hunter2secret@db/", "mysql+pymysql://app:hunter2secret@db"],
)
def test_a_mysql_url_without_a_database_is_exit_2_naming_what_is_missing(raw):
    """MySQL has no default database; without one env.py failed on an AssertionError (exit 1)."""
    with pytest.raises(ConfigError, match="names no database") as refused:
        url.parse(raw)
    assert "hunter2secret" not in str(refused.value)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        # A Kubernetes Secret's data mounted undecoded: base64 of postgresql://u:s3cret-pw@db/app
        ("cG9zdGdyZXNxbDovL3U6czNjcmV0LXB3QGRiL2FwcA==", "base64 text of a URL"),
        ("s3cret-pw", None),  # a bare password where the URL belongs
        ("s3cret-pw/with/slashes", None),
        ("/data/s3cret-pw.db", "looks like a file path"),
    ],
)
def test_a_value_that_is_not_a_url_is_never_shown_only_described(value, hint):
    with pytest.raises(ConfigError, match="not a database URL") as refused:
        url.parse(value, "DATABASE_URL_FILE (/run/secrets/db)")
    message = str(refused.value)
    assert "s3cret-pw" not in message and value not in message, message
    assert f"{len(value)} characters, not shown" in message, message
    if hint:
        assert hint in message, message
