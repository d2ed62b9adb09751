"""``python -m migrate_init``: the same as ``migrate.py`` and the ``migrate-init`` command."""

from .cli import main

if __name__ == "__main__":
    main()
