"""The migration lock seen from outside migrate.py: held by another session, or left behind.

SQLite: an flock on the lock file beside the database.  PostgreSQL: an
advisory lock on a key derived from the database name (migrate.py takes it
transaction-level, in an open transaction; a session-level one held here
on the same key excludes it just the same).  Both come from the product
(migrate_init.lock), so that the tests hold and look for exactly the lock
migrate.py takes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from migrate_init.engines.mysql import mysql_lock_name
from migrate_init.engines.postgresql import advisory_key
from migrate_init.engines.sqlite import lock_path
from migrate_init.url import parse as parse_url

from . import REPO
from .dbstate import database_name, is_mysql, is_sqlite, pg_query, sqlite_path
from .myserver import connect as my_connect
from .pgserver import connect
from .process import child_env

#: What the SQLite lock holder below records as its start time.
HOLDER_STARTED = "2001-02-03T04:05:06+00:00"


def _dbname(url: str) -> str:
    return make_url(url).database


def _key_parts(key: int) -> tuple[int, int]:
    """The (classid, objid) under which pg_locks shows a bigint advisory key."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def advisory_locks(url: str) -> int:
    """Advisory locks held on the migration key of this database, by anyone."""
    hi, lo = _key_parts(advisory_key(_dbname(url), "alembic_version"))
    return pg_query(
        url,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s AND objid = %s",
        (hi, lo),
    )[0][0]


def migrator_backends(url: str) -> int:
    """Server sessions of migrate-init still connected to this database."""
    return pg_query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'migrate-init'",
    )[0][0]


def flock_free(db: Path) -> bool:
    """Whether the SQLite migration lock file can be locked right now."""
    path = Path(lock_path(db))
    if not path.exists():
        return True
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


@contextlib.contextmanager
def my_lock_held(url: str):
    """MariaDB: hold migrate-init's GET_LOCK lock on this database from a session of our own; yield its id."""
    connection = my_connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 10)", (mysql_lock_name(database_name(url), "alembic_version"),))
            assert cursor.fetchone() == (1,)
        yield connection.thread_id()
    finally:
        connection.close()  # the lock goes with the session


@contextlib.contextmanager
def pg_lock_held(url: str, application_name: str = "robust-lock-holder"):
    """Hold the migration advisory lock from a session of our own; yield its backend pid."""
    conn = connect(url, application_name=application_name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (advisory_key(_dbname(url), "alembic_version"),))
        yield conn.get_backend_pid()
    finally:
        conn.close()


_SQLITE_HOLDER = f"""
import fcntl, json, os, socket, sys, time
from pathlib import Path
from migrate_init.engines.sqlite import lock_path
from migrate_init.url import parse as parse_url
path = Path(lock_path(Path(sys.argv[1])))
path.parent.mkdir(parents=True, exist_ok=True)
handle = open(path, "a+", encoding="utf-8")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
handle.seek(0)
handle.truncate()
handle.write(json.dumps({{"host": socket.gethostname(), "pid": os.getpid(),
                         "started": "{HOLDER_STARTED}"}}) + "\\n")
handle.flush()
print("held", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def sqlite_lock_held(db: Path):
    """A helper process holds the flock on the lock file and records itself; yield its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SQLITE_HOLDER, str(db)],
        env=child_env(),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "held", f"lock holder failed: {line}{proc.stdout.read()}"
        yield proc.pid
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()


def migration_lock_free(url: str) -> bool:
    """Whether nobody holds migrate-init's migration lock of this database, asked as migrate-init asks
    (the engine's ``holder``): an flock, an advisory lock or a GET_LOCK lock alike."""
    database = parse_url(url)
    return database.engine.holder(database, "alembic_version") is None


#: A revision body's start that takes the running migrate.py's migration lock away from outside,
#: once (``took`` says whether it did): SQLite's lock file deleted, PostgreSQL's lock session
#: terminated, MySQL's killed.  Its environment comes from :func:`lock_away_env`.
TAKE_THE_LOCK_AWAY_ONCE = """
marker = Path(os.environ["LOST_MARKER"])
took = not marker.exists()
if took:
    marker.write_text("taken")
    kind, target = os.environ["LOST_KIND"], os.environ["LOST_TARGET"]
    bind = op.get_bind()
    if kind == "sqlite":
        os.remove(target)
    elif kind == "postgresql":
        bind.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid <> pg_backend_pid() AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    else:
        holder = bind.exec_driver_sql(f"SELECT IS_USED_LOCK('{target}')").scalar()
        bind.exec_driver_sql(f"KILL {int(holder)}")
    time.sleep(0.5)  # the server ends the session
"""


def lock_away_env(url: str, marker: Path) -> dict[str, object]:
    """What :data:`TAKE_THE_LOCK_AWAY_ONCE` reads: the marker file, the engine, the lock file or name."""
    if is_sqlite(url):
        kind, target = "sqlite", lock_path(str(sqlite_path(url)))
    elif is_mysql(url):
        kind, target = "mysql", mysql_lock_name(database_name(url), "alembic_version")
    else:
        kind, target = "postgresql", ""
    return {"LOST_MARKER": marker, "LOST_KIND": kind, "LOST_TARGET": target}
