"""config.load() in-process: every variable rule, and the secrets it hands to the mask.

tests/integration/test_config.py runs the same rules through migrate.py as a
real process; here each case is one call, so every edge is cheap to pin.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from migrate_init import config, url
from migrate_init.errors import ConfigError

PG = "postgresql://app@db.example:5432/appdb"


def load(**env: str | Path) -> config.Config:
    return config.load({key: str(value) for key, value in env.items()})


def refused(**env: str | Path) -> str:
    """The message of the ConfigError that load() raises; it must be exit 2."""
    with pytest.raises(ConfigError) as error:
        load(**env)
    assert error.value.exit_code == 2
    return str(error.value)


# -- DATABASE_URL ----------------------------------------------------------------------------


def test_database_url_is_parsed_once_and_kept_as_text_and_as_url(tmp_path):
    cfg = load(DATABASE_URL=f"sqlite:///{tmp_path}/data/webui.db")

    assert cfg.database_url == f"sqlite:///{tmp_path}/data/webui.db"
    assert isinstance(cfg.database, url.Url)
    assert cfg.database.sqlite_path == str(tmp_path / "data" / "webui.db")
    assert cfg.secrets == (cfg.database_url,)


def test_the_default_database_is_webui_db_under_data_dir_and_is_no_secret(tmp_path):
    cfg = load(DATA_DIR=tmp_path / "data")

    assert cfg.database.sqlite_path == str(tmp_path / "data" / "webui.db")
    assert cfg.database_url == f"sqlite:///{tmp_path}/data/webui.db"
    assert cfg.secrets == ()


def test_a_data_dir_with_url_characters_is_a_path_not_url_syntax(tmp_path):
    data_dir = tmp_path / "odd?dir#1%41@x"

    cfg = load(DATA_DIR=data_dir)

    assert cfg.database.sqlite_path == str(data_dir / "webui.db")
    assert make_url(cfg.database_url).database == str(data_dir / "webui.db")  # what SQLAlchemy will open


def test_an_empty_database_url_is_refused_instead_of_using_the_default():
    assert "DATABASE_URL is set but empty" in refused(DATABASE_URL="")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite://", "in-memory"),
        ("postgresql://app:hunter2secret@db:port/app", "not a number"),
        ("postgresql://app:hunter2secret@db:70000/app", "out of range"),
        ("postgresql://app:hunter2@secret@db/app", "more than one unencoded at sign"),
        ("not a url", "does not start with a scheme"),
    ],
)
def test_a_database_url_that_cannot_serve_is_refused_at_load_naming_the_variable(value, words):
    message = refused(DATABASE_URL=value)

    assert words in message
    assert message.startswith("DATABASE_URL")
    assert "hunter2" not in message


def test_database_url_file_is_read_with_exactly_one_trailing_newline_stripped(tmp_path):
    for ending in ("\n", "\r\n", ""):
        secret = tmp_path / f"url{len(ending)}"
        secret.write_bytes(f"{PG}{ending}".encode())

        cfg = load(DATABASE_URL_FILE=secret)

        assert cfg.database_url == PG
        assert cfg.database.host == "db.example"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (f"{PG}\n\n", "a line break at character"),
        (f"{PG}\r\n\r\n", "a line break at character"),
        (f"{PG}\nsecond line\n", "a line break at character"),
        (f"{PG}\t\n", "a control character"),
        ("postgresql://app:hunter2\x00secret@db/app\n", "a control character"),
    ],
)
def test_a_secret_file_with_more_than_one_trailing_newline_or_a_control_character_is_refused(tmp_path, content, words):
    secret = tmp_path / "db_url"
    secret.write_bytes(content.encode())

    message = refused(DATABASE_URL_FILE=secret)

    assert words in message
    assert "DATABASE_URL_FILE" in message and str(secret) in message
    assert "hunter2" not in message and "db.example" not in message  # the content is never shown


@pytest.mark.parametrize("content", ["", "\n", "  \n"])
def test_an_empty_secret_file_is_refused_naming_variable_and_file(tmp_path, content):
    secret = tmp_path / "db_url"
    secret.write_text(content)

    message = refused(DATABASE_URL_FILE=secret)

    assert "DATABASE_URL_FILE" in message and str(secret) in message and "empty" in message


def test_a_missing_secret_file_is_refused_naming_variable_and_file(tmp_path):
    message = refused(DATABASE_URL_FILE=tmp_path / "nowhere")

    assert "DATABASE_URL_FILE" in message and str(tmp_path / "nowhere") in message


def test_a_url_error_in_a_secret_file_names_the_file_variable_and_path(tmp_path):
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://app:hunter2secret@db:port/app\n")

    message = refused(DATABASE_URL_FILE=secret)

    assert message.startswith(f"DATABASE_URL_FILE ({secret})")
    assert "hunter2secret" not in message


@pytest.mark.parametrize("name", config.SECRET_VARIABLES)
def test_a_secret_and_its_file_both_set_is_refused_naming_both(tmp_path, name):
    secret = tmp_path / "secret"
    secret.write_text("value\n")

    message = refused(**{name: "value", f"{name}_FILE": secret})

    assert f"Both {name} and {name}_FILE are set" in message


# -- DATABASE_PASSWORD -----------------------------------------------------------------------

PASSWORD = "p@ss/w%rd:#? ä'\"\\"


def test_database_password_goes_into_the_url_that_drivers_get_and_is_masked():
    cfg = load(DATABASE_URL=PG, DATABASE_PASSWORD=PASSWORD)

    assert cfg.database.password == PASSWORD
    assert make_url(cfg.database_url).password == PASSWORD  # what SQLAlchemy will send
    assert url.parse(cfg.database_url) == cfg.database
    assert PASSWORD in cfg.secrets
    assert cfg.database.safe == "postgresql://app:***@db.example:5432/appdb"
    assert PASSWORD not in repr(cfg)


def test_database_password_file_is_read_like_every_secret_file(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text(PASSWORD + "\n")

    cfg = load(DATABASE_URL=PG, DATABASE_PASSWORD_FILE=secret)

    assert cfg.database.password == PASSWORD


def test_an_empty_database_password_counts_as_unset():
    cfg = load(DATABASE_URL=PG, DATABASE_PASSWORD="")

    assert cfg.database.password is None
    assert cfg.database_url == PG


def test_a_url_with_a_password_and_database_password_is_refused_naming_both():
    message = refused(DATABASE_URL="postgresql://app:inurl1@db/app", DATABASE_PASSWORD="other22")

    assert "DATABASE_URL already holds a password" in message and "DATABASE_PASSWORD" in message
    assert "inurl1" not in message and "other22" not in message


def test_database_password_file_against_a_url_file_with_a_password_names_both_files(tmp_path):
    (tmp_path / "url").write_text("postgresql://app:inurl1@db/app\n")
    (tmp_path / "pw").write_text("other22\n")

    message = refused(DATABASE_URL_FILE=tmp_path / "url", DATABASE_PASSWORD_FILE=tmp_path / "pw")

    assert f"DATABASE_URL_FILE ({tmp_path / 'url'})" in message
    assert f"DATABASE_PASSWORD_FILE ({tmp_path / 'pw'})" in message
    assert "unset DATABASE_PASSWORD_FILE" in message


def test_database_password_for_sqlite_or_for_a_url_without_a_user_is_refused(tmp_path):
    assert "SQLite database" in refused(DATABASE_URL=f"sqlite:///{tmp_path}/x.db", DATABASE_PASSWORD="pw1")
    assert "SQLite database" in refused(DATA_DIR=tmp_path, DATABASE_PASSWORD="pw1")
    assert "names no user" in refused(DATABASE_URL="postgresql://db/app", DATABASE_PASSWORD="pw1")


def test_a_control_character_in_database_password_is_refused_without_showing_it():
    message = refused(DATABASE_URL=PG, DATABASE_PASSWORD="hunter2\nsecret")

    assert "DATABASE_PASSWORD contains a control character" in message
    assert "hunter2" not in message


# -- seconds and counts --------------------------------------------------------------------

SECONDS = ("MIGRATION_TIMEOUT", "DB_WAIT_TIMEOUT", "LOCK_TIMEOUT", "DDL_LOCK_TIMEOUT")


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1e10", "more than 31 days"),
        ("2678401", "more than 31 days"),
        ("inf", "more than 31 days"),
        ("nan", "must be zero or a positive number"),
        ("-1", "must be zero or a positive number"),
        ("soon", "is not a number of seconds"),
    ],
)
def test_a_bad_number_of_seconds_is_refused_naming_the_variable(tmp_path, name, value, words):
    message = refused(DATA_DIR=tmp_path, **{name: value})

    assert message.startswith(f"{name}={value!r}") and words in message


@pytest.mark.parametrize("name", SECONDS)
def test_thirty_one_days_is_the_longest_accepted_wait(tmp_path, name):
    cfg = load(DATA_DIR=tmp_path, **{name: "2678400"})

    assert getattr(cfg, name.lower()) == 2678400.0


def test_zero_means_no_limit_for_the_migration_and_ddl_lock_timeouts(tmp_path):
    cfg = load(DATA_DIR=tmp_path, MIGRATION_TIMEOUT="0", DDL_LOCK_TIMEOUT="0")

    assert (cfg.migration_timeout, cfg.ddl_lock_timeout) == (0.0, 0.0)


@pytest.mark.parametrize("value", ["0.0005", "1e-9", "0.0009999"])
def test_a_ddl_lock_timeout_that_would_round_to_no_limit_is_refused(tmp_path, value):
    message = refused(DATA_DIR=tmp_path, DDL_LOCK_TIMEOUT=value)

    assert "DDL_LOCK_TIMEOUT" in message and "would round to 0" in message and "no limit" in message


def test_one_millisecond_is_the_shortest_ddl_lock_timeout(tmp_path):
    assert load(DATA_DIR=tmp_path, DDL_LOCK_TIMEOUT="0.001").ddl_lock_timeout == 0.001


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DDL_LOCK_RETRIES", "1.5"),
        ("DDL_LOCK_RETRIES", "-1"),
        ("BACKUP_KEEP", "three"),
        ("BACKUP_KEEP", "-2"),
    ],
)
def test_a_bad_count_is_refused_naming_the_variable(tmp_path, name, value):
    assert refused(DATA_DIR=tmp_path, **{name: value}).startswith(f"{name}={value!r}")


def test_counts_and_seconds_read_back_as_given(tmp_path):
    cfg = load(DATA_DIR=tmp_path, DDL_LOCK_RETRIES="0", BACKUP_KEEP="7", LOCK_TIMEOUT="2.5")

    assert (cfg.ddl_lock_retries, cfg.backup_keep, cfg.lock_timeout) == (0, 7, 2.5)


# -- booleans, words -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("1", True),
        (" on ", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("off", False),
    ],
)
def test_booleans_accept_the_usual_words(tmp_path, value, expected):
    assert load(DATA_DIR=tmp_path, ENABLE_FALLBACK_CREATE=value).enable_fallback_create is expected


def test_an_empty_boolean_counts_as_unset_and_a_bad_one_is_refused(tmp_path):
    assert load(DATA_DIR=tmp_path, ALLOW_DESTRUCTIVE="").allow_destructive is False
    assert "LOG_FORMAT='xml' is not 'text' or 'json'" in refused(DATA_DIR=tmp_path, LOG_FORMAT="xml")
    assert "SQLITE_ALLOW_NETWORK_FS='maybe' is not a boolean" in refused(
        DATA_DIR=tmp_path, SQLITE_ALLOW_NETWORK_FS="maybe"
    )


@pytest.mark.parametrize(
    ("value", "everything", "revisions"),
    [
        ("true", True, ()),
        ("false", False, ()),
        ("", False, ()),
        ("f1e2d3c4b5a6", False, ("f1e2d3c4b5a6",)),
        (" f1e2d3c4b5a6 , v2.4.0.a,f1e2d3c4b5a6", False, ("f1e2d3c4b5a6", "v2.4.0.a")),
    ],
)
def test_allow_destructive_takes_true_false_or_a_list_of_revisions(tmp_path, value, everything, revisions):
    loaded = load(DATA_DIR=tmp_path, ALLOW_DESTRUCTIVE=value)
    assert (loaded.allow_destructive, loaded.allow_destructive_revisions) == (everything, revisions)


@pytest.mark.parametrize("value", ["a1,,b2", "a1 b2", "a1;b2", ",", "'a1'"])
def test_a_malformed_allow_destructive_list_is_refused_naming_the_bad_part(tmp_path, value):
    message = refused(DATA_DIR=tmp_path, ALLOW_DESTRUCTIVE=value)
    assert f"ALLOW_DESTRUCTIVE={value!r} is neither true/false nor a comma-separated list of revision ids" in message
    assert "ALLOW_DESTRUCTIVE=f1e2d3c4b5a6,v2.4.0.a" in message


def test_log_format_and_level_are_checked(tmp_path):
    assert "LOG_FORMAT" in refused(DATA_DIR=tmp_path, LOG_FORMAT="xml")
    assert "LOG_LEVEL" in refused(DATA_DIR=tmp_path, LOG_LEVEL="chatty")
    cfg = load(DATA_DIR=tmp_path, LOG_FORMAT="JSON", LOG_LEVEL="debug")
    assert (cfg.log_format, cfg.log_level) == ("json", "DEBUG")


# -- MODELS --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        ":Base",
        "models:",
        "models.Base",
        "models:Base:x",
        "my-app.models:Base",
        "models:Base.",
        "models:.Base",
        "models :Base",
        ":",
    ],
)
def test_models_must_be_two_dotted_python_names(tmp_path, value):
    message = refused(DATA_DIR=tmp_path, MODELS=value)

    assert message.startswith(f"MODELS={value!r}") and "module:attribute" in message


@pytest.mark.parametrize("value", ["models:Base", "myapp.models:Base", "models:Base.metadata", "_m:meta_data"])
def test_models_of_the_form_module_attribute_are_kept(tmp_path, value):
    assert load(DATA_DIR=tmp_path, MODELS=value).models == value


def test_the_shipped_migrations_default_to_the_shipped_models_and_a_custom_folder_to_none(tmp_path):
    assert load(DATA_DIR=tmp_path).models == config.SHIPPED_MODELS
    assert load(DATA_DIR=tmp_path, MIGRATIONS_DIR=tmp_path / "mine").models is None


# -- REPORT_FILE ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "words"),
    [
        ("", "the SQLite database itself"),
        ("-journal", "rollback journal"),
        ("-wal", "write-ahead log"),
        ("-shm", "shared-memory file"),
        (".migrate.lock", "migration lock file"),
    ],
)
def test_report_file_must_not_be_the_database_or_one_of_its_files(tmp_path, suffix, words):
    database = tmp_path / "data" / "webui.db"

    message = refused(DATABASE_URL=f"sqlite:///{database}", REPORT_FILE=f"{database}{suffix}")

    assert message.startswith(f"REPORT_FILE={database}{suffix}") and words in message


def test_report_file_is_compared_after_resolving_links_and_relative_paths(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "alias").symlink_to(data)
    monkeypatch.chdir(tmp_path)

    assert "the SQLite database itself" in refused(
        DATABASE_URL="sqlite:///data/webui.db", REPORT_FILE=tmp_path / "alias" / "webui.db"
    )
    assert "the SQLite database itself" in refused(
        DATABASE_URL=f"sqlite:///{data}/webui.db", REPORT_FILE="alias/../data/./webui.db"
    )


def test_report_file_must_not_be_inside_the_backup_folder(tmp_path):
    database = tmp_path / "data" / "webui.db"

    default = refused(DATABASE_URL=f"sqlite:///{database}", REPORT_FILE=tmp_path / "data" / "backups" / "r.json")
    chosen = refused(
        DATABASE_URL=f"sqlite:///{database}", BACKUP_DIR=tmp_path / "bk", REPORT_FILE=tmp_path / "bk" / "sub" / "r.json"
    )

    assert "backup folder" in default and "backup folder" in chosen


def test_a_report_file_of_its_own_is_accepted(tmp_path):
    database = tmp_path / "data" / "webui.db"

    for report_file in (
        tmp_path / "data" / "report.json",
        tmp_path / "data" / "webui.db.json",
        "-",
        tmp_path / "data" / "backups-report.json",
    ):
        cfg = load(DATABASE_URL=f"sqlite:///{database}", REPORT_FILE=report_file)
        assert cfg.report_file == str(report_file)
    # A backup folder elsewhere frees the default one; PostgreSQL has no files to protect.
    assert load(
        DATABASE_URL=f"sqlite:///{database}",
        BACKUP_DIR=tmp_path / "bk",
        REPORT_FILE=tmp_path / "data" / "backups" / "r.json",
    ).report_file
    assert load(DATABASE_URL=PG, REPORT_FILE=database).report_file == str(database)


def test_reporting_drops_a_report_file_that_would_overwrite_the_database(tmp_path):
    database = tmp_path / "webui.db"
    own = tmp_path / "report.json"

    assert config.reporting(
        {"DATABASE_URL": f"sqlite:///{database}", "REPORT_FILE": str(database), "LOG_FORMAT": "json"}
    ) == ("json", None)
    # Even when the URL itself is what load() refused.
    assert config.reporting({"DATABASE_URL": f"sqlite:///{database}?x=\n", "REPORT_FILE": str(database)}) == (
        "text",
        None,
    )
    assert config.reporting(
        {"DATABASE_URL": f"sqlite:///{database}", "REPORT_FILE": str(own), "LOG_FORMAT": "bogus"}
    ) == ("text", str(own))
    assert config.reporting({"DATA_DIR": str(tmp_path), "REPORT_FILE": str(database)}) == ("text", None)


def test_reporting_keeps_the_report_file_when_the_configuration_error_is_elsewhere(tmp_path):
    own = str(tmp_path / "report.json")

    assert config.reporting({"DATABASE_URL_FILE": str(tmp_path / "missing"), "REPORT_FILE": own}) == ("text", own)
    assert config.reporting({"DATABASE_URL": "postgresql://db:port/x", "REPORT_FILE": own}) == ("text", own)
    assert config.reporting({"DATA_DIR": str(tmp_path), "REPORT_FILE": "-"}) == ("text", "-")


# -- the object ------------------------------------------------------------------------------


def test_config_is_frozen_and_load_reads_only_the_mapping_it_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRATION_TIMEOUT", "soon")
    monkeypatch.setenv("DATABASE_URL", "not a url")

    cfg = load(DATA_DIR=tmp_path)

    assert (cfg.migration_timeout, cfg.lock_timeout, cfg.heartbeat_interval) == (600.0, 660.0, 5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.migration_timeout = 1.0  # type: ignore[misc]
    assert os.environ["MIGRATION_TIMEOUT"] == "soon"


def test_on_edited_revision_is_warn_or_fail_and_anything_else_is_refused_naming_it(tmp_path):
    environ = {"DATA_DIR": str(tmp_path)}
    assert config.load(environ).on_edited_revision == "warn"
    assert config.load({**environ, "ON_EDITED_REVISION": "FAIL"}).on_edited_revision == "fail"
    with pytest.raises(ConfigError, match="ON_EDITED_REVISION='ignore' is not 'warn' or 'fail'"):
        config.load({**environ, "ON_EDITED_REVISION": "ignore"})
