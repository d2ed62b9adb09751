#!/usr/bin/env python3
"""migrate-init: get the database ready, then exit 0 or with a code that says what went wrong.

Usage: python migrate.py [run | upgrade REV | status | history | heads | current | wait]
See README.md for the environment variables and exit codes.
"""

from migrate_init import early

early.install()  # before any other import: a SIGTERM from here on is recorded (issue 25 N32)

from migrate_init.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
