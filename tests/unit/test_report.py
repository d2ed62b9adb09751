"""report: timestamps, the mask that never raises, and a termination message that always parses.

In-process: report.setup() writes to the sys.stderr that pytest captures.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.config
import re
import time

import pytest

from migrate_init import report

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TEXT_LINE = re.compile(rf"^(?P<time>{TIME.pattern}) (?P<level>[A-Z]+)\s+\[(?P<logger>[\w.]+)\] (?P<message>.*)$")


@pytest.fixture(autouse=True)
def restore_report():
    """report.setup() is global: put logging and the mask back as they were."""
    names = (report.LOGGER, "alembic", "alembic.runtime.migration")
    saved = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in names
    }
    masker, handler = report._masker, report._handler
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled
    report._masker, report._handler = masker, handler


def parse_time(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC).timestamp()


# -- timestamps ------------------------------------------------------------------------------


def test_every_text_line_starts_with_an_iso_utc_time_with_milliseconds(capsys):
    report.setup(log_format="text")
    before = time.time()
    report.event("one", "First event.")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 7e5b5dc7342b, init")
    report.warning("two", "Second event.")
    after = time.time()

    lines = capsys.readouterr().err.splitlines()

    assert len(lines) == 3
    for line in lines:
        match = TEXT_LINE.match(line)
        assert match, line
        assert before - 0.001 <= parse_time(match["time"]) <= after + 0.001
    assert [TEXT_LINE.match(line)["logger"] for line in lines] == [
        "migrate_init",
        "alembic.runtime.migration",
        "migrate_init",
    ]
    assert (
        lines[2].split(" ", 1)[1] == "WARNING [migrate_init] Second event."
    )  # full level names: grep WARNING finds it


def test_every_json_line_carries_the_time_as_an_iso_utc_string(capsys):
    report.setup(log_format="json")
    before = time.time()
    report.event("one", "First event.", count=3)
    after = time.time()

    record = json.loads(capsys.readouterr().err)

    assert TIME.fullmatch(record["time"])
    assert before - 0.001 <= parse_time(record["time"]) <= after + 0.001
    assert (record["event"], record["message"], record["count"]) == ("one", "First event.", 3)


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1795949462.123456, "2026-11-29T10:51:02.123Z"),
        (1795949462.9996, "2026-11-29T10:51:02.999Z"),
    ],
)
def test_timestamp_is_utc_with_three_digit_milliseconds(created, expected):
    assert report.timestamp(created) == expected


# -- the mask ----------------------------------------------------------------------------------


def test_mask_hides_configured_secrets_and_any_url_password():
    report.setup(secrets=["postgresql://app:c0nfigured@db/app", "t0ken-value"])

    assert report.mask("pw c0nfigured and t0ken-value") == "pw *** and ***"
    assert report.mask("mysql://root:n0tconfigured@mysql/x") == "mysql://root:***@mysql/x"
    assert report.mask("sqlite:////data/webui.db") == "sqlite:////data/webui.db"


def test_a_database_url_secret_without_a_password_leaves_the_sqlite_path_readable(capsys):
    report.setup(secrets=["sqlite:////app/backend/data/webui.db"])

    report.event("x", "Opened sqlite:////app/backend/data/webui.db.")

    assert "sqlite:////app/backend/data/webui.db." in capsys.readouterr().err


def test_a_record_whose_arguments_do_not_fit_is_still_logged(capsys):
    report.setup(secrets=["hunter2secret"])

    logging.getLogger(report.LOGGER).info("%d rows for hunter2secret", "not a number")

    err = capsys.readouterr().err
    assert "rows for ***" in err
    assert "Logging error" not in err and "hunter2secret" not in err


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_field_that_cannot_be_masked_withholds_the_text_but_keeps_the_line(capsys, log_format):
    report.setup(log_format=log_format, secrets=["hunter2secret"])

    report.event("odd", "Value hunter2secret follows.", value=Unprintable())
    report.event("next", "The next line.")

    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert "Logging error" not in err and "hunter2secret" not in err
    assert "The next line." in lines[1]
    if log_format == "json":
        records = [json.loads(line) for line in lines]
        assert [record["event"] for record in records] == ["odd", "next"]
        assert records[0]["message"] == "Value *** follows."
        assert records[0]["value"].startswith("(text withheld")


def test_the_mask_filter_never_raises_on_a_message_that_is_not_text(capsys):
    report.setup()

    logging.getLogger(report.LOGGER).info(Unprintable())
    report.event("after", "Still logging.")

    err = capsys.readouterr().err
    assert "Still logging." in err
    assert "Logging error" not in err


def test_reclaim_takes_the_loggers_back_from_an_env_py_file_config(capsys, tmp_path):
    """A user's env.py calls fileConfig(alembic.ini), which disables our logger and adds its own handler."""
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        "[loggers]\nkeys = root,alembic\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARNING\nhandlers = console\n"
        "[logger_alembic]\nlevel = INFO\nhandlers = console\nqualname = alembic\n"
        "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n"
        "[formatter_generic]\nformat = PLAIN %(message)s\n"
    )
    report.setup(secrets=["hunter2secret"])
    logging.config.fileConfig(ini, disable_existing_loggers=True)
    report.event("kept", "Said while disabled.")
    # Our own lines take the logger back by themselves (issue 24): never silenced, and once.
    assert capsys.readouterr().err.count("Said while disabled.") == 1

    report.reclaim()
    report.event("back", "Said after reclaim hunter2secret.")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade a -> b, c")

    err = capsys.readouterr().err
    assert "PLAIN" not in err  # no line went out through env.py's unmasked handler
    assert err.count("Said after reclaim ***.") == 1
    assert err.count("Running upgrade a -> b, c") == 1
    logging.getLogger().handlers.clear()  # fileConfig's root handler points at this test's stream


# -- the termination message and REPORT_FILE -----------------------------------------------------


def summary_data(message: str, **fields: object) -> dict[str, object]:
    summary = report.Summary(
        command="run",
        outcome="migration_failed",
        exit_code=1,
        message=message,
        database="postgresql://app:***@db.example:5432/appdb",
        from_revisions=["70c7b727736e"],
        to_revisions=["70c7b727736e"],
        applied=[f"rev{i:04d}" for i in range(50)],
        layers_tried=["merge_heads_final"],
        failed_revision="ef6fab585ac1",
        backup="/data/backups/webui-1.db",
        row_counts={f"table_{i}": i for i in range(30)},
    )
    data = summary.as_dict()
    data.update(fields)
    return data


MESSAGES = {
    "umlauts": "ä" * 3000,
    "emoji": "🚀🔥👩‍👩‍👧‍👦" * 700,
    "mixed": ("Migration ef6fab585ac1 failed: überlauf 数据库 💥 " * 200),
    "ascii": "x" * 20000,
}


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
@pytest.mark.parametrize("limit", [4000, 3999, 1500, 400])
def test_a_long_summary_is_cut_by_bytes_into_valid_json_within_the_limit(message, limit):
    text = report._fit(summary_data(message), limit)

    data = json.loads(text)
    assert len(text.encode("utf-8")) <= limit
    assert data["truncated"] is True
    assert data["exit_code"] == 1 and data["outcome"] == "migration_failed"
    kept = data["message"].removesuffix("…")
    assert kept and message.startswith(kept)
    assert "applied" not in data and "row_counts" not in data  # the expendable fields went first


def test_the_cut_keeps_the_important_fields_while_the_message_still_says_enough():
    text = report._fit(summary_data("ä" * 3000), 3999)

    data = json.loads(text)
    assert data["failed_revision"] == "ef6fab585ac1"
    assert data["backup"] == "/data/backups/webui-1.db"
    assert len(data["message"]) > 1000


def test_a_huge_secondary_field_is_dropped_before_the_message_is_cut_to_nothing():
    text = report._fit(summary_data("short message", database="sqlite:////" + "d/" * 5000), 4000)

    data = json.loads(text)
    assert data["message"] == "short message"
    assert "database" not in data and data["truncated"] is True
    assert len(text.encode()) <= 4000


def test_a_summary_that_fits_is_written_whole_without_a_truncated_mark():
    data = summary_data("Migration ef6fab585ac1 failed: ä 🚀.")

    text = report._fit(data, 4000)

    assert json.loads(text) == data
    assert "truncated" not in text


def test_even_an_absurd_limit_gives_valid_json():
    for limit in (2, 10, 40, 80):
        text = report._fit(summary_data("ä" * 100), limit)
        assert len(text.encode()) <= limit
        json.loads(text)


def test_secrets_are_masked_before_the_cut_so_no_prefix_of_one_survives():
    report.setup(secrets=["postgresql://app:Sup3rSecretPassw0rd@db/app"])
    message = "x" * 3950 + " Sup3rSecretPassw0rd and postgresql://root:An0therSecret@h/db"

    for limit in range(3950, 4000, 3):
        text = report._fit(summary_data(message), limit)
        assert "Sup3r" not in text and "An0ther" not in text
        json.loads(text)


def test_finish_writes_the_masked_summary_to_report_file_and_logs_one_line(tmp_path, capsys):
    report.setup(log_format="json", secrets=["postgresql://app:hunter2secret@db/app"])
    summary = report.Summary(
        outcome="migration_failed",
        exit_code=1,
        message="Could not reach postgresql://app:hunter2secret@db/app: ä.",
        database="postgresql://app:***@db/app",
    )
    report_file = tmp_path / "report.json"

    report.finish(summary, str(report_file))

    written = report_file.read_text(encoding="utf-8")
    line = json.loads(capsys.readouterr().err)
    assert json.loads(written)["message"] == "Could not reach postgresql://app:***@db/app: ä."
    assert line["message"] == "FAILED (exit 1): Could not reach postgresql://app:***@db/app: ä."
    assert TIME.fullmatch(line["time"])
    assert "hunter2secret" not in written


def test_report_file_off_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    report.setup()

    for value in ("-", "none", "OFF"):
        report.finish(report.Summary(message="done"), value)

    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err.count("OK (exit 0): done") == 3
