"""Fixtures shared by every test: a real PostgreSQL server and fresh databases.

The PostgreSQL server is never optional: when it cannot be started, every
test that needs it errors (CI must not pass by skipping database tests).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

# Make `import helpers` / `import pgserver` work from any test folder and under
# any --import-mode, not only pytest's default "prepend".
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import REPO  # noqa: E402
from pgserver import PgServer, PgServerError  # noqa: E402

__all__ = ["REPO"]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server (or TEST_DATABASE_URL's), never skipped."""
    server = PgServer()
    try:
        server.start()
    except Exception as exc:
        raise PgServerError(
            f"Cannot start the PostgreSQL test server; these tests need one and "
            f"are never skipped. Run the suite with 'bash tests/run.sh' (it "
            f"installs PostgreSQL) or set TEST_DATABASE_URL.\n{exc}"
        ) from exc
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer):
    """A brand-new empty database for this test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite:////<tmp>/data/webui.db``; the data folder does not exist yet."""
    return f"sqlite:///{tmp_path / 'data' / 'webui.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both engines: a sqlite_url or a pg_url."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url"}[request.param]
    return request.getfixturevalue(fixture)
