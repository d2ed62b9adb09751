"""``python -m migrate_init``: the same as ``migrate.py`` and the ``migrate-init`` command."""

from . import early

early.install()  # before any other import: a SIGTERM from here on is recorded (issue 25 N32)

from .cli import main  # noqa: E402

if __name__ == "__main__":
    main()
