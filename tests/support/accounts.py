"""An account of its own with a password, owning a database of its own, on either test server.

The same test on PostgreSQL and MariaDB needs the same thing from two servers
whose harnesses differ (a role owning a database; a user granted everything on
one): :func:`own_database` gives it from either, and :func:`limited_account` an
account that may only do what it is granted on a database's tables.
"""

from __future__ import annotations

import contextlib
import uuid
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


@contextlib.contextmanager
def limited_account(server: PgServer | MyServer, database: str, password: str, privileges: str) -> Iterator[str]:
    """A new account with ``password`` that may log in to ``database`` and do ``privileges`` there
    ("SELECT", "SELECT, INSERT, UPDATE, DELETE"...) on its tables, and create nothing; yield its URL."""
    name = f"u_{uuid.uuid4().hex[:12]}"
    if isinstance(server, PgServer):
        server.create_role(name, password)
        server.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", dbname=database)
        server.psql(f'GRANT {privileges} ON ALL TABLES IN SCHEMA public TO "{name}"', dbname=database)
    else:
        server.create_user(name, password, f"{privileges} ON `{database}`.*")
    try:
        yield server.url(database=database, user=name, password=password)
    finally:
        if isinstance(server, PgServer):
            server.psql(f'DROP OWNED BY "{name}" CASCADE', dbname=database)
            server.drop_role(name)
        else:
            server.drop_user(name)
