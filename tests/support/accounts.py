"""An account of its own with a password, owning a database of its own, on either test server.

The same test on PostgreSQL and MariaDB needs the same thing from two servers
whose harnesses differ (a role owning a database; a user granted everything on
one): :func:`own_database` gives it from either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .myserver import MyServer
from .pgserver import PgServer


@contextlib.contextmanager
def own_database(server: PgServer | MyServer, name: str, password: str) -> Iterator[str]:
    """Account ``name`` with ``password`` and database ``name``, which it owns; yield its URL; drop both after."""
    if isinstance(server, PgServer):
        server.create_role(name, password)
        server.create_database(name, owner=name)
    else:
        server.create_database(name)
        server.create_user(name, password, f"ALL PRIVILEGES ON `{name}`.*")
    try:
        yield server.url(database=name, user=name, password=password)
    finally:
        server.drop_database(name)
        if isinstance(server, PgServer):
            server.drop_role(name)
        else:
            server.drop_user(name)
