"""Fixtures and markers shared by every test folder.

The PostgreSQL and MariaDB servers are never optional: when one cannot be
started, every test that needs it errors (CI must not pass by skipping
database tests).

Each test is marked by its folder: ``unit`` (no server, no Docker, seconds in
all), ``integration`` (real SQLite files, the real PostgreSQL and MariaDB
servers, real processes) or ``image`` (a real Docker engine); ``postgres``
when it uses the PostgreSQL server and ``mysql`` when it uses the MariaDB one.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.myserver import MyServer, MyServerError
from tests.support.pgserver import PgServer, PgServerError

TESTS = Path(__file__).resolve().parent
#: The marker of each test folder.
FOLDER_MARKERS = {"unit": "unit", "integration": "integration", "image": "image"}
#: The fixtures that start or use the PostgreSQL server (and db_url's and any_url's
#: "postgresql" parameter; a test that reaches the server another way marks itself ``postgres``).
PG_FIXTURES = {"pg_server", "pg_url"}
#: The same for the MariaDB server (and any_url's "mysql" parameter), marker ``mysql``.
MY_FIXTURES = {"mysql_server", "mysql_url"}
#: Each server marker: its fixtures, the engine parameter of db_url/any_url that uses it, its name.
SERVER_MARKERS = {
    "postgres": (PG_FIXTURES, "postgresql", "PostgreSQL"),
    "mysql": (MY_FIXTURES, "mysql", "MariaDB"),
}
#: How long an image test may take: the first one builds the image (docker build: 900 s).
IMAGE_TIMEOUT = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept = []
    for item in items:
        rule = getattr(getattr(item, "function", None), "not_a_case", None)  # tests.support.not_a_case
        callspec = getattr(item, "callspec", None)
        if rule is not None and callspec is not None and rule(callspec.params):
            config.hook.pytest_deselected(items=[item])
        else:
            kept.append(item)
    items[:] = kept
    for item in items:
        folder = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
        marker = FOLDER_MARKERS.get(folder)
        if marker is None:
            raise pytest.UsageError(f"{item.nodeid}: every test lives in tests/unit, tests/integration or tests/image.")
        item.add_marker(marker)
        callspec = getattr(item, "callspec", None)
        engines = set() if callspec is None else {callspec.params.get(name) for name in ("db_url", "any_url")}
        for server_marker, (fixtures, engine, server) in SERVER_MARKERS.items():
            if not (fixtures & set(item.fixturenames) or engine in engines):
                continue
            if marker == "unit":
                raise pytest.UsageError(
                    f"{item.nodeid}: a unit test must not need {server}; move it to tests/integration."
                )
            item.add_marker(server_marker)
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


@pytest.fixture(scope="session")
def mysql_server():
    """The session's MariaDB server (or TEST_MYSQL_URL's), never skipped.

    Its superuser is ``root`` (``mysql_server.superuser_url``); make a limited
    account with ``mysql_server.create_user(name, password, "SELECT ON `db`.*")``
    and drop it with ``mysql_server.drop_user(name)``.
    """
    server = MyServer()
    try:
        server.start()
    except Exception as exc:
        raise MyServerError(
            f"Cannot start the MariaDB test server; these tests need one and "
            f"are never skipped. Run the suite with 'bash tests/run.sh' (it "
            f"installs MariaDB) or set TEST_MYSQL_URL.\n{exc}"
        ) from exc
    yield server
    server.stop()


@pytest.fixture
def mysql_url(mysql_server: MyServer):
    """A brand-new empty database for this test (``mysql://root:PW@127.0.0.1:PORT/t_...``); dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = mysql_server.create_database(name)
    yield url
    mysql_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite:////<tmp>/data/webui.db``; the data folder does not exist yet."""
    return f"sqlite:///{tmp_path / 'data' / 'webui.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both engines: a sqlite_url or a pg_url."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url"}[request.param]
    return request.getfixturevalue(fixture)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The same test on every engine: a sqlite_url, a pg_url or a mysql_url (MariaDB)."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mysql": "mysql_url"}[request.param]
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
