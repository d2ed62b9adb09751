#!/usr/bin/env python3
"""migrate-init: get the database ready, then exit 0 or with a code that says what went wrong.

Usage: python migrate.py [run | upgrade REV | status | history | heads | current | wait]
See README.md for the environment variables and exit codes.
"""

from migrate_init.cli import main

if __name__ == "__main__":
    main()
