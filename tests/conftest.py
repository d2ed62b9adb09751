"""Fixtures and markers shared by every test folder.

The PostgreSQL server is never optional: when it cannot be started, every
test that needs it errors (CI must not pass by skipping database tests).

Each test is marked by its folder: ``unit`` (no server, no Docker, seconds in
all), ``integration`` (real SQLite files, the real PostgreSQL server, real
processes) or ``image`` (a real Docker engine); and ``postgres`` when it uses
the PostgreSQL server.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.pgserver import PgServer, PgServerError

TESTS = Path(__file__).resolve().parent
#: The marker of each test folder.
FOLDER_MARKERS = {"unit": "unit", "integration": "integration", "image": "image"}
#: The fixtures that start or use the PostgreSQL server (and db_url's "postgresql"
#: parameter; a test that reaches the server another way marks itself ``postgres``).
PG_FIXTURES = {"pg_server", "pg_url"}
#: How long an image test may take: the first one builds the image (docker build: 900 s).
IMAGE_TIMEOUT = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
        marker = FOLDER_MARKERS.get(folder)
        if marker is None:
            raise pytest.UsageError(
                f"{item.nodeid}: every test lives in tests/unit, tests/integration or tests/image.")
        item.add_marker(marker)
        params = getattr(item, "callspec", None)
        uses_pg = bool(PG_FIXTURES & set(item.fixturenames)) or (
            params is not None and params.params.get("db_url") == "postgresql")
        if uses_pg:
            if marker == "unit":
                raise pytest.UsageError(
                    f"{item.nodeid}: a unit test must not need PostgreSQL; move it to tests/integration.")
            item.add_marker("postgres")
        if marker == "image" and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(IMAGE_TIMEOUT))


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


@pytest.fixture
def shared_tmp():
    """A folder that process.run_unprivileged's UID can reach (pytest's tmp_path is root-only).

    Made writable again afterwards, so that it can be deleted whatever a test
    took away from it.
    """
    folder = Path(tempfile.mkdtemp(prefix="migrate-init-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for child in [folder, *folder.rglob("*")]:
        if child.is_dir() and not child.is_symlink():
            child.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)
