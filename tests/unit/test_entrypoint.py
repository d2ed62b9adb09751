"""docker-entrypoint.sh and migrate.py agree on the commands the entrypoint hands to migrate.py."""

from __future__ import annotations

from tests.support import REPO


def test_entrypoint_knows_every_migrate_py_command():
    from migrate_init.cli import COMMANDS

    line = next(
        text
        for text in (REPO / "docker-entrypoint.sh").read_text().splitlines()
        if text.startswith("readonly MIGRATE_COMMANDS=")
    )
    assert set(line.split("=", 1)[1].strip("'").split()) == set(COMMANDS)
