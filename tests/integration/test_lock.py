"""The migration lock, contended by real processes on a real SQLite folder, a real PostgreSQL and a real MariaDB.

Each contention test starts a holder as a separate Python process (which
takes the engine's lock, prints who it is, and sleeps), then contends from
this process.  Killed holders are SIGKILLed: no Python code of theirs runs,
so what frees the lock is the kernel (flock) or the server (the session ends).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from migrate_init import engines, wait  # noqa: E402
from migrate_init.engines import mysql as engines_mysql  # noqa: E402
from migrate_init.engines import postgresql as engines_postgresql  # noqa: E402
from migrate_init.engines import sqlite as engines_sqlite  # noqa: E402
from migrate_init.errors import AccessDenied, DatabaseUnreachable, LockTimeout, MigrateInitError  # noqa: E402
from migrate_init.lock import MigrationLock  # noqa: E402
from tests.support.myserver import connect as my_connect  # noqa: E402

UNPRIVILEGED = 65534  # nobody
START_TIMEOUT = 30.0
HOLDER_APP = "lock-test-holder"

# Takes the lock as a separate process would, says so, then sleeps until killed.
_HOLDER = r"""
import os, sys, time
sys.path.insert(0, os.environ["LOCK_TEST_REPO"])
from migrate_init.engines import mysql as engines_mysql, postgresql as engines_postgresql, sqlite as engines_sqlite
kind, target = sys.argv[1], sys.argv[2]
try:
    if kind == "sqlite":
        held = engines_sqlite.sqlite_lock(target, timeout=30)
        who = os.getpid()
    elif kind == "mysql":
        from tests.support.myserver import connect
        connection = connect(os.environ["LOCK_TEST_URL"])
        who = connection.thread_id()
        held = engines_mysql.mysql_lock(connection, target, timeout=30)
    else:
        import psycopg2
        connection = psycopg2.connect(os.environ["LOCK_TEST_DSN"], application_name=sys.argv[3])
        connection.autocommit = True
        who = connection.get_backend_pid()
        held = engines_postgresql.postgresql_lock(connection, target, timeout=30)
    held.acquire()
except Exception as exc:
    print("error", type(exc).__name__, exc, flush=True)
    sys.exit(3)
print("held", who, flush=True)
time.sleep(600)
"""


class Stop(Exception):
    """What the test's checkpoint raises: the process must stop."""


class Holder:
    """A holder process: ``proc``, and ``who`` (its PID, or its backend PID on PostgreSQL)."""

    def __init__(self, proc: subprocess.Popen[str], who: int):
        self.proc = proc
        self.who = who

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def _child_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LOCK_TEST_REPO": str(REPO),
        **extra,
    }


def _start(
    argv: list[str],
    env: dict[str, str],
    started: list[subprocess.Popen[str]],
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start a holder; return it and the first line it printed ("held ..." or "error ...")."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=preexec_fn,
        start_new_session=True,
    )
    started.append(proc)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    if not ready:
        proc.kill()
        pytest.fail(f"the lock holder said nothing within {START_TIMEOUT:g}s")
    line = proc.stdout.readline()
    if not line.startswith(("held ", "error ")):
        proc.kill()
        pytest.fail(f"the lock holder failed:\n{line}{proc.stdout.read()}")
    return proc, line.strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process a test starts; killed at the end, pass or fail."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


class SqliteBackend:
    kind = "sqlite"
    engine = engines.of("sqlite")

    def __init__(self, folder: Path, processes: list[subprocess.Popen[str]]):
        self.database = str(folder / "webui.db")
        self.processes = processes

    def new_lock(
        self, timeout: float, checkpoint: Callable[[], None] | None = None, on_wait: Callable[[str], None] | None = None
    ) -> MigrationLock:
        return engines_sqlite.sqlite_lock(
            self.database, timeout=timeout, allow_network_fs=False, checkpoint=checkpoint, on_wait=on_wait
        )

    def holder(self) -> str | None:
        return engines_sqlite.holder_sqlite(self.database)

    def start_holder(self) -> Holder:
        proc, line = _start([sys.executable, "-c", _HOLDER, "sqlite", self.database], _child_env(), self.processes)
        assert line.startswith("held "), line
        return Holder(proc, int(line.split()[1]))

    def names(self, holder: Holder) -> list[str]:
        """Words that name the lock and that holder."""
        return [engines_sqlite.lock_path(self.database), f"PID {holder.who}", socket.gethostname()]

    def me(self, held: MigrationLock) -> list[str]:
        return [f"PID {os.getpid()}", socket.gethostname()]

    def session_closed(self, lock: MigrationLock) -> bool:
        return True  # the flock's file descriptor is the lock's only resource: no session to close


class ServerBackend:
    """A server's lock, taken and read as the engine does (its session_lock and holder_in), each in a
    session of its own."""

    engine: Any
    database: str

    def connect(self) -> Any:
        raise NotImplementedError

    def observer(self) -> Any:
        return self.connect()

    def new_lock(
        self, timeout: float, checkpoint: Callable[[], None] | None = None, on_wait: Callable[[str], None] | None = None
    ) -> MigrationLock:
        return self.engine.session_lock(
            self.connect(),
            self.database,
            version_table="alembic_version",
            timeout=timeout,
            checkpoint=checkpoint,
            on_wait=on_wait,
        )

    def holder(self) -> str | None:
        connection = self.observer()
        try:
            return self.engine.holder_in(connection, self.database, "alembic_version")
        finally:
            connection.close()


class PostgresqlBackend(ServerBackend):
    kind = "postgresql"
    engine = engines.of("postgresql")

    def __init__(self, url: str, processes: list[subprocess.Popen[str]]):
        u = make_url(url)
        assert u.database
        self.database = u.database
        self.dsn = psycopg2.extensions.make_dsn(
            host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database, connect_timeout=10
        )
        self.processes = processes
        self.key = engines_postgresql.advisory_key(self.database, "alembic_version")
        self._connections: list[psycopg2.extensions.connection] = []

    def connect(self, application_name: str = "lock-test") -> psycopg2.extensions.connection:
        connection = psycopg2.connect(self.dsn, application_name=application_name)
        connection.autocommit = True
        self._connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self._connections:
            if not connection.closed:
                connection.close()

    def observer(self) -> psycopg2.extensions.connection:
        return self.connect("lock-test-observer")

    def start_holder(self) -> Holder:
        proc, line = _start(
            [sys.executable, "-c", _HOLDER, "postgresql", self.database, HOLDER_APP],
            _child_env(LOCK_TEST_DSN=self.dsn),
            self.processes,
        )
        assert line.startswith("held "), line
        return Holder(proc, int(line.split()[1]))

    def names(self, holder: Holder) -> list[str]:
        return [str(self.key), f"backend PID {holder.who}", HOLDER_APP, "127.0.0.1"]

    def me(self, held: MigrationLock) -> list[str]:
        return [f"backend PID {held.connection.get_backend_pid()}", "lock-test"]  # type: ignore[attr-defined]

    def session_closed(self, lock: MigrationLock) -> bool:
        return bool(lock.connection.closed)  # type: ignore[attr-defined]


class MysqlBackend(ServerBackend):
    kind = "mysql"
    engine = engines.of("mysql")

    def __init__(self, url: str, processes: list[subprocess.Popen[str]]):
        self.url = url
        self.database = make_url(url).database or ""
        self.name = engines_mysql.mysql_lock_name(self.database, "alembic_version")
        self.processes = processes
        self._connections: list[Any] = []

    def connect(self) -> Any:
        connection = my_connect(self.url)
        self._connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self._connections:
            if connection.open:
                connection.close()

    def start_holder(self) -> Holder:
        proc, line = _start(
            [sys.executable, "-c", _HOLDER, "mysql", self.database],
            _child_env(LOCK_TEST_URL=self.url),
            self.processes,
        )
        assert line.startswith("held "), line
        return Holder(proc, int(line.split()[1]))

    def names(self, holder: Holder) -> list[str]:
        # mysql_url's account is root, connected over TCP from this machine.
        return [self.name, f"connection ID {holder.who}", "user 'root' from 127.0.0.1"]

    def me(self, held: MigrationLock) -> list[str]:
        return [f"connection ID {held.connection.thread_id()}"]  # type: ignore[attr-defined]

    def session_closed(self, lock: MigrationLock) -> bool:
        return not lock.connection.open  # type: ignore[attr-defined]


Backend = SqliteBackend | PostgresqlBackend | MysqlBackend


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> Iterator[Backend]:
    """The same lock test on a SQLite folder, a PostgreSQL database and a MariaDB one."""
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path, processes)
        return
    server: ServerBackend = (
        PostgresqlBackend(request.getfixturevalue("pg_url"), processes)
        if request.param == "postgresql"
        else MysqlBackend(request.getfixturevalue("mysql_url"), processes)
    )
    yield server
    server.close()


# -- contention between real processes -------------------------------------------


def test_second_process_times_out_naming_the_lock_and_the_first_holder(backend: Backend) -> None:
    holder = backend.start_holder()
    announced: list[str] = []
    contender = backend.new_lock(timeout=0.6, on_wait=announced.append)

    started = time.monotonic()
    with pytest.raises(LockTimeout) as raised:
        contender.acquire()
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert raised.value.exit_code == 5
    assert 0.6 <= elapsed < 5.0, f"took {elapsed:.2f}s"
    assert "LOCK_TIMEOUT=0.6s" in message
    assert message.endswith("Nothing was changed. Wait for it to finish, or raise LOCK_TIMEOUT.")
    for word in backend.names(holder):
        assert word in message, f"{word!r} is not named: {message}"
    # One announcement per wait, naming the lock and the holder too.
    assert len(announced) == 1, announced
    assert announced[0].startswith(f"Waiting for {contender.description}, held by ")
    for word in backend.names(holder):
        assert word in announced[0], f"{word!r} is not named: {announced[0]}"
    assert not contender.held
    assert contender.waited
    assert backend.session_closed(contender)
    assert holder.proc.poll() is None
    assert all(word in (backend.holder() or "") for word in backend.names(holder)[1:])


def test_a_killed_holders_lock_is_free_at_once(backend: Backend) -> None:
    holder = backend.start_holder()
    assert backend.holder() is not None

    holder.kill()
    started = time.monotonic()
    # flock: gone with the process, so a single attempt (timeout 0) succeeds.
    # advisory lock, GET_LOCK: gone when the server notices the session's socket closed.
    taker = backend.new_lock(timeout=0 if backend.engine.file_based else 10)
    taker.acquire()
    elapsed = time.monotonic() - started

    assert taker.held
    assert elapsed < 5.0, f"took {elapsed:.2f}s"
    taker.release()
    assert backend.holder() is None


def test_a_checkpoint_that_raises_stops_a_waiting_acquire_within_a_slice(backend: Backend) -> None:
    holder = backend.start_holder()
    started = time.monotonic()

    def checkpoint() -> None:
        if time.monotonic() - started >= 0.3:
            raise Stop("SIGTERM")

    waiting = backend.new_lock(timeout=60, checkpoint=checkpoint)
    with pytest.raises(Stop):
        waiting.acquire()
    elapsed = time.monotonic() - started

    assert elapsed < 2.0, f"took {elapsed:.2f}s"
    assert not waiting.held
    assert backend.session_closed(waiting)
    assert backend.names(holder)[1] in (backend.holder() or "")  # the holder's PID or session


def test_holder_is_none_when_free_and_names_the_holder_while_held(backend: Backend) -> None:
    assert backend.holder() is None
    held = backend.new_lock(timeout=5)
    with held as entered:
        assert entered is held
        assert held.held and not held.waited
        found = backend.holder()
        assert found is not None
        for word in backend.me(held):
            assert word in found, f"{word!r} is not named: {found}"
        held.acquire()  # already held (the full path reuses the fast path's lock): no wait
        assert held.held
    assert not held.held
    assert backend.holder() is None
    held.release()  # idempotent, never raises
    held.release()
    assert backend.holder() is None


@pytest.mark.parametrize("raised", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_lock_is_released_when_the_body_raises(backend: Backend, raised: BaseException) -> None:
    held = backend.new_lock(timeout=5)
    with pytest.raises(type(raised)), held:
        assert backend.holder() is not None
        raise raised
    assert not held.held
    assert backend.holder() is None
    again = backend.new_lock(timeout=0 if backend.engine.file_based else 5)
    with again:
        assert again.held


def test_a_free_lock_is_taken_even_with_a_zero_timeout(backend: Backend) -> None:
    announced: list[str] = []
    held = backend.new_lock(timeout=0, on_wait=announced.append)
    with held:
        assert held.held
    assert announced == []


# -- SQLite ---------------------------------------------------------------------------


def test_sqlite_lock_file_is_group_writable_and_records_the_holder_until_released(tmp_path: Path) -> None:
    database = tmp_path / "webui.db"
    path = engines_sqlite.lock_path(database)
    assert path == f"{database}.migrate.lock"
    previous = os.umask(0o022)
    try:
        held = engines_sqlite.sqlite_lock(str(database), timeout=1)
        with held:
            info = os.stat(path)
            record = json.loads(Path(path).read_text(encoding="utf-8"))
    finally:
        os.umask(previous)

    assert info.st_mode & 0o777 == 0o664
    assert held.description == f"the migration lock {path}"
    assert record["pid"] == os.getpid()
    assert record["host"] == socket.gethostname()
    assert record["started"].endswith("+00:00")
    assert (
        json.loads(Path(path).read_text(encoding="utf-8")) == {}
    )  # no stale name once released (padded, never truncated)
    assert not database.exists()  # the lock never touches the database itself


def test_sqlite_lock_in_a_missing_folder_says_so_and_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "missing" / "webui.db"
    with pytest.raises(MigrateInitError) as raised:
        engines_sqlite.sqlite_lock(str(database), timeout=1).acquire()
    assert str(tmp_path / "missing") in str(raised.value)
    assert "Nothing was changed" in str(raised.value)
    assert not (tmp_path / "missing").exists()


def test_filesystem_type_and_check_filesystem_on_local_filesystems(tmp_path: Path) -> None:
    assert wait.filesystem_type("/proc/self") == "proc"
    assert wait.filesystem_type(tmp_path / "not" / "yet") == wait.filesystem_type(tmp_path)
    wait.check_filesystem(str(tmp_path / "webui.db"), allow_network_fs=False)
    assert list(tmp_path.iterdir()) == []


# -- a lock file left by another UID (root only: the tests switch users) --------------


def _require_root(why: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} needs root, and CI runs as root")
        pytest.skip(f"{why} needs root")


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(UNPRIVILEGED)
    os.setuid(UNPRIVILEGED)


def _python_for_nobody() -> str:
    """An interpreter UID 65534 can run (this venv's may live under a root-only /root)."""
    tried = []
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if not candidate or candidate in tried:
            continue
        tried.append(candidate)
        try:
            check = subprocess.run(
                [
                    candidate,
                    "-c",
                    "import os, sys; sys.path.insert(0, os.environ['LOCK_TEST_REPO']); import migrate_init.engines.sqlite",
                ],
                env=_child_env(),
                preexec_fn=_as_nobody,
                capture_output=True,
                text=True,
            )
        except OSError:  # not executable by that user
            continue
        if check.returncode == 0:
            return candidate
    pytest.fail(
        f"UID {UNPRIVILEGED} can run none of {tried} with {REPO} importable; the "
        "repository and a Python must be readable by every user"
    )


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder UID 65534 can reach (pytest's tmp_path is root-only), not writable by it."""
    folder = Path(tempfile.mkdtemp(prefix="lock-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_lock_file_left_by_another_uid_read_only_is_still_locked_through_a_read_descriptor(
    shared_folder: Path, processes: list[subprocess.Popen[str]]
) -> None:
    _require_root("running a lock holder as another UID")
    database = str(shared_folder / "webui.db")
    path = engines_sqlite.lock_path(database)
    with engines_sqlite.sqlite_lock(database, timeout=1):  # root's run leaves the file behind
        pass
    os.chmod(path, 0o444)
    before = os.stat(path)

    proc, line = _start(
        [_python_for_nobody(), "-c", _HOLDER, "sqlite", database], _child_env(), processes, preexec_fn=_as_nobody
    )
    assert line.startswith("held "), line
    pid = int(line.split()[1])

    # The read-only flock excludes everyone else; its holder could not record a name.
    with pytest.raises(LockTimeout) as raised:
        engines_sqlite.sqlite_lock(database, timeout=0.3).acquire()
    assert "has not recorded its name" in str(raised.value), raised.value
    assert engines_sqlite.holder_sqlite(database) is not None
    after = os.stat(path)
    assert (after.st_uid, after.st_mode, after.st_size) == (0, before.st_mode, before.st_size)  # untouched

    proc.kill()
    proc.wait(10)
    assert pid == proc.pid
    with engines_sqlite.sqlite_lock(database, timeout=0) as taken:
        assert taken.held


def test_lock_file_another_uid_cannot_even_read_is_access_denied_naming_uid_owner_and_mode(
    shared_folder: Path, processes: list[subprocess.Popen[str]]
) -> None:
    _require_root("running a lock holder as another UID")
    database = str(shared_folder / "webui.db")
    path = engines_sqlite.lock_path(database)
    with engines_sqlite.sqlite_lock(database, timeout=1):
        pass
    os.chmod(path, 0o600)

    proc, line = _start(
        [_python_for_nobody(), "-c", _HOLDER, "sqlite", database], _child_env(), processes, preexec_fn=_as_nobody
    )

    assert line.startswith(f"error {AccessDenied.__name__} "), line
    for word in (path, f"UID {UNPRIVILEGED}", "owned by UID 0", "mode 0o600", "Nothing was changed"):
        assert word in line, f"{word!r} is not named: {line}"
    assert proc.wait(10) == 3


# -- PostgreSQL -------------------------------------------------------------------------


def test_advisory_key_keeps_the_recipe_of_earlier_releases() -> None:
    """An old replica and a new one must take the same key during a rolling update."""
    digest = hashlib.sha256(b"migrate-init:webui:alembic_version").digest()
    assert engines_postgresql.advisory_key("webui", "alembic_version") == int.from_bytes(digest[:8], "big", signed=True)
    assert (
        engines_postgresql.advisory_key("webui", "alembic_version") == 3139527983616900291
    )  # what the previous release computed


def test_postgresql_lock_excludes_a_session_holding_the_key_the_old_way(pg_url: str) -> None:
    backend = PostgresqlBackend(pg_url, [])
    try:
        old = backend.connect("old-replica")
        with old.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (backend.key,))
        found = backend.holder()
        assert found is not None and f"backend PID {old.get_backend_pid()}" in found, found
        assert "old-replica" in found

        with pytest.raises(LockTimeout) as raised:
            backend.new_lock(timeout=0.3).acquire()
        assert "old-replica" in str(raised.value)

        old.close()
        with backend.new_lock(timeout=10) as taken:
            assert taken.held
    finally:
        backend.close()


def test_postgresql_lock_connection_has_a_short_statement_timeout_and_closes_on_release(pg_url: str) -> None:
    backend = PostgresqlBackend(pg_url, [])
    try:
        connection = backend.connect()
        connection.autocommit = False  # the lock puts it in autocommit itself
        held = engines_postgresql.postgresql_lock(connection, backend.database, timeout=5)
        with held:
            assert connection.autocommit
            with connection.cursor() as cursor:
                cursor.execute("SHOW statement_timeout")
                assert cursor.fetchone() == ("5s",)
        assert connection.closed
        assert held.description == f"the advisory lock {backend.key}"
        with pytest.raises(RuntimeError):
            held.acquire()  # its connection is gone: a PostgreSQL lock serves once
    finally:
        backend.close()


def test_a_held_postgresql_lock_outlives_the_sessions_idle_in_transaction_timeout(pg_url: str) -> None:
    """The lock's transaction sits idle while the migrations run elsewhere: a role's or server's
    idle_in_transaction_session_timeout must not end it (and the lock with it)."""
    backend = PostgresqlBackend(pg_url, [])
    try:
        connection = backend.connect()
        with connection.cursor() as cursor:
            cursor.execute("SET idle_in_transaction_session_timeout = '1s'")  # as a role's setting would
        held = engines_postgresql.postgresql_lock(connection, backend.database, timeout=5)
        with held:
            time.sleep(2.5)
            held.verify()  # LockLost if the server had ended the session
            assert backend.holder() is not None
    finally:
        backend.close()


def test_a_held_mysql_lock_keeps_its_idle_session_past_a_short_server_wait_timeout(mysql_url: str) -> None:
    """Managed servers may set wait_timeout to a minute or less; the lock's session sits idle
    for as long as the migrations take, and its GET_LOCK lock would end with it."""
    connection = my_connect(mysql_url)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION wait_timeout = 2")  # as the server's setting would
    database = make_url(mysql_url).database
    assert database is not None
    held = engines_mysql.mysql_lock(connection, database, timeout=5)
    with held:
        time.sleep(4)
        held.verify()  # LockLost if the server had ended the idle session
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.wait_timeout")
            row = cursor.fetchone()
        assert row is not None and int(row[0]) >= engines_mysql.LOCK_SESSION_WAIT_TIMEOUT


def test_a_lock_connection_lost_while_waiting_is_database_unreachable(pg_url: str) -> None:
    processes: list[subprocess.Popen[str]] = []
    backend = PostgresqlBackend(pg_url, processes)
    try:
        backend.start_holder()
        admin = backend.connect("lock-test-admin")
        connection = backend.connect()

        def terminate(_sentence: str) -> None:  # the first time it finds the lock busy
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", (connection.get_backend_pid(),))

        waiting = engines_postgresql.postgresql_lock(connection, backend.database, timeout=30, on_wait=terminate)
        started = time.monotonic()
        with pytest.raises(DatabaseUnreachable) as raised:
            waiting.acquire()
        assert time.monotonic() - started < 10
        assert f"the advisory lock {backend.key}" in str(raised.value)
        assert raised.value.exit_code == 3
        assert not waiting.held
    finally:
        for proc in processes:
            proc.kill()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        backend.close()


def test_holder_postgresql_leaves_a_transactional_connection_as_it_found_it(pg_url: str) -> None:
    backend = PostgresqlBackend(pg_url, [])
    try:
        observer = psycopg2.connect(backend.dsn)
        try:
            assert engines_postgresql.holder_postgresql(observer, backend.database) is None
            status = observer.get_transaction_status()
            assert status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        finally:
            observer.close()
    finally:
        backend.close()


# -- MySQL (no server here: only what needs none) ------------------------------------


def test_mysql_lock_name_fits_mysqls_64_characters_and_depends_on_database_and_table() -> None:
    long_name = engines_mysql.mysql_lock_name("d" * 64, "t" * 64)
    assert len(long_name) <= 64
    assert engines_mysql.mysql_lock_name("a", "alembic_version") != engines_mysql.mysql_lock_name(
        "b", "alembic_version"
    )
    assert engines_mysql.mysql_lock_name("a", "alembic_version") != engines_mysql.mysql_lock_name("a", "other_version")
    assert engines_mysql.mysql_lock_name("a", "v") == engines_mysql.mysql_lock_name("a", "v")
