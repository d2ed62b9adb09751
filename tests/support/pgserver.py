"""A throwaway PostgreSQL server for the tests, started from the Debian binaries.

``PgServer().start()`` runs ``initdb`` and ``pg_ctl`` from the newest
``/usr/lib/postgresql/*/bin`` in a fresh temporary directory, listening only on
127.0.0.1 on a free port, with password (scram-sha-256) authentication over TCP
so that the tests exercise real credentials.  ``stop()`` (also registered with
``atexit``) shuts it down and deletes the directory.

initdb and postgres refuse to run as root, so under root every server command
runs as the ``postgres`` system user through ``runuser``; the user is created
when the Debian package did not already do so.

When TEST_DATABASE_URL is set no server is started: that URL is used as the
superuser URL of an existing server, and ``stop()`` leaves it alone.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

from .network import free_port

PG_LIB = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT = 30
# A free port can be taken between probing and binding; try a few.
START_ATTEMPTS = 3
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Speed over durability: the cluster is thrown away after the run.
_SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
"""


class PgServerError(RuntimeError):
    """The test PostgreSQL server could not be started or administered."""


def connect(url: str, *, application_name: str | None = None, autocommit: bool = True):
    """Open a psycopg2 connection from a SQLAlchemy-style URL (autocommit unless told).

    Accepts ``postgresql://`` and ``postgresql+psycopg2://`` alike, and decodes
    percent-encoded credentials the way SQLAlchemy does.  ``application_name``
    names the session in pg_stat_activity.
    """
    u = make_url(url)
    params = {k: v for k, v in u.query.items() if isinstance(v, str)}
    if application_name is not None:
        params["application_name"] = application_name
    conn = psycopg2.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password,
        dbname=u.database,
        connect_timeout=10,
        **params,
    )
    conn.autocommit = autocommit
    return conn


def execute(url: str, statement, params=None) -> list[tuple]:
    """Run one statement on ``url`` in autocommit mode; return its rows, if any."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def newest_bin_dir() -> Path:
    """The bin folder of the newest PostgreSQL installed from Debian packages."""
    found = [p.parent for p in PG_LIB.glob("*/bin/initdb")]
    if not found:
        raise PgServerError(
            f"No PostgreSQL server binaries under {PG_LIB}/*/bin: install them with "
            "'apt-get install -y postgresql' (tests/run.sh does so), or set "
            "TEST_DATABASE_URL to the superuser URL of an existing server."
        )
    return max(found, key=lambda p: _version_key(p.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name)) or (0,)


def _check_name(name: str) -> str:
    # Names are quoted as identifiers anyway; refusing odd ones keeps the URLs
    # the tests build from them unambiguous.
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plain PostgreSQL identifier")
    return name


class PgServer:
    """One PostgreSQL server for a test session (see the module docstring)."""

    def __init__(self, external_url: str | None = None) -> None:
        if external_url is None:
            external_url = os.environ.get("TEST_DATABASE_URL") or None
        self._external_url = external_url
        self._url: URL | None = None
        self._tmp: Path | None = None
        self._bin: Path | None = None
        self._run_as: str | None = None

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> PgServer:
        """Start the server (or check the external one answers); return self."""
        if self._url is not None:
            return self
        if self._external_url:
            url = make_url(self._external_url).set(drivername="postgresql")
            try:
                execute(url.render_as_string(hide_password=False), "select 1")
            except psycopg2.Error as exc:
                raise PgServerError(
                    f"TEST_DATABASE_URL ({url.render_as_string()}) does not answer: {exc}".strip()
                ) from exc
            self._url = url
            return self
        atexit.register(self.stop)
        try:
            self._start_local()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int | None:
        """The postmaster this object started (None for TEST_DATABASE_URL's server)."""
        if self._tmp is None:
            return None
        return int((self._tmp / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        """Stop a server this object started and delete its files; idempotent."""
        tmp, self._tmp = self._tmp, None
        self._url = None
        if tmp is None:
            return
        data = tmp / "data"
        if (data / "postmaster.pid").exists():
            # immediate: no checkpoint, nothing worth keeping.
            result = self._run(
                self._pg("pg_ctl"),
                "stop",
                "-D",
                str(data),
                "-m",
                "immediate",
                "-w",
                check=False,
            )
            if result.returncode != 0:
                self._kill_postmaster(data)
        shutil.rmtree(tmp, ignore_errors=True)

    def _start_local(self) -> None:
        self._bin = newest_bin_dir()
        self._run_as = self._server_user()
        self._tmp = Path(tempfile.mkdtemp(prefix="pgtest-", dir=self._temp_base()))
        if self._run_as:
            shutil.chown(self._tmp, user=self._run_as, group=self._user_group())
        password = secrets.token_urlsafe(18)
        self._initdb(password)
        last_error = ""
        for _ in range(START_ATTEMPTS):
            port = free_port()
            result = self._run(
                self._pg("pg_ctl"),
                "start",
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-D",
                str(self._tmp / "data"),
                "-l",
                str(self._tmp / "server.log"),
                "-o",
                f"-p {port}",
                check=False,
            )
            if result.returncode == 0:
                self._url = URL.create(
                    "postgresql",
                    username=SUPERUSER,
                    password=password,
                    host="127.0.0.1",
                    port=port,
                    database="postgres",
                )
                return
            last_error = result.stdout + self._log_tail()
        raise PgServerError(f"PostgreSQL ({self._bin}) did not start after {START_ATTEMPTS} attempts:\n{last_error}")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m MODE``: every session ends (a failover's first half), and it answers again."""
        if self._tmp is None:
            raise PgServerError("restart() needs a server this object started (not TEST_DATABASE_URL's).")
        self._run(
            self._pg("pg_ctl"),
            "restart",
            "-w",
            "-t",
            str(START_TIMEOUT),
            "-m",
            mode,
            "-D",
            str(self._tmp / "data"),
            "-l",
            str(self._tmp / "server.log"),
        )

    def start_standby(self) -> PgServer:
        """A hot standby of this server, streaming from it: ``pg_basebackup -R``, on another free port.

        A real replica: it answers read-only queries, refuses writes and advisory
        locks (it is in recovery), and replays what the primary commits.  Stop it
        with its own ``stop()``.
        """
        if self._tmp is None or self._url is None:
            raise PgServerError("A standby needs a server this object started (not TEST_DATABASE_URL's).")
        standby = PgServer(external_url="")
        standby._bin, standby._run_as = self._bin, self._run_as
        standby._tmp = Path(tempfile.mkdtemp(prefix="pgstandby-", dir=self._temp_base()))
        atexit.register(standby.stop)
        try:
            if self._run_as:
                shutil.chown(standby._tmp, user=self._run_as, group=self._user_group())
            data = standby._tmp / "data"
            # -R writes standby.signal and primary_conninfo (with the password given here).
            standby._run(
                self._pg("pg_basebackup"),
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-h",
                "127.0.0.1",
                "-p",
                str(self._url.port),
                "-U",
                SUPERUSER,
                env={"PGPASSWORD": self._url.password or ""},
            )
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(f"unix_socket_directories = '{standby._tmp}'\nhot_standby = on\n")
            last_error = ""
            for _ in range(START_ATTEMPTS):
                port = free_port()
                result = standby._run(
                    standby._pg("pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "-D",
                    str(data),
                    "-l",
                    str(standby._tmp / "server.log"),
                    "-o",
                    f"-p {port}",
                    check=False,
                )
                if result.returncode == 0:
                    standby._url = self._url.set(port=port)
                    return standby
                last_error = result.stdout + standby._log_tail()
            raise PgServerError(f"The standby did not start after {START_ATTEMPTS} attempts:\n{last_error}")
        except BaseException:
            standby.stop()
            raise

    def _initdb(self, password: str) -> None:
        assert self._tmp is not None
        pwfile = self._tmp / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self._run_as:
            shutil.chown(pwfile, user=self._run_as, group=self._user_group())
        self._run(
            self._pg("initdb"),
            "-D",
            str(self._tmp / "data"),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        pwfile.unlink()
        with (self._tmp / "data" / "postgresql.conf").open("a") as conf:
            conf.write(_SERVER_SETTINGS.format(socket_dir=self._tmp))

    # --- running server commands ---------------------------------------------

    def _server_user(self) -> str | None:
        """The user to run the server as: ``postgres`` under root, else None."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/var/lib/postgresql",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVER_USER,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        return SERVER_USER

    def _user_group(self) -> int:
        assert self._run_as is not None
        return pwd.getpwnam(self._run_as).pw_gid

    def _temp_base(self) -> str:
        """A temp folder the server user can reach (TMPDIR may be root-only)."""
        base = tempfile.gettempdir()
        probe = ("sh", "-c", 'test -w "$1" && test -x "$1"', "sh", base)
        if self._run_as and self._run(*probe, check=False).returncode != 0:
            return "/tmp"
        return base

    def _pg(self, program: str) -> str:
        assert self._bin is not None
        return str(self._bin / program)

    def _run(self, *argv: str, check: bool = True, cwd: str | Path | None = None, env: dict[str, str] | None = None):
        """Run a command as the server user, in the temp dir (or /), with ``env`` added."""
        if self._run_as:
            argv = ("runuser", "-u", self._run_as, "--", *argv)
        # cwd: root's working directory is often unreadable for postgres, and
        # initdb/postgres complain when they cannot chdir back to it.
        result = subprocess.run(
            argv,
            cwd=cwd or self._tmp or "/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "LC_ALL": "C", **(env or {})},
        )
        if check and result.returncode != 0:
            raise PgServerError(f"{' '.join(argv)} failed with exit code {result.returncode}:\n{result.stdout}")
        return result

    def _log_tail(self, lines: int = 20) -> str:
        assert self._tmp is not None
        try:
            text = (self._tmp / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _kill_postmaster(self, data: Path) -> None:
        try:
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)

    # --- administration ------------------------------------------------------

    @property
    def superuser_url(self) -> str:
        """``postgresql://postgres:PW@127.0.0.1:PORT/postgres`` (password included)."""
        return self.url()

    def url(self, database: str | None = None, user: str | None = None, password: str | None = None) -> str:
        """A URL on this server; credentials are percent-encoded as needed."""
        if self._url is None:
            raise PgServerError("The PostgreSQL test server is not running: call start().")
        u = self._url
        if database is not None:
            u = u.set(database=database)
        if user is not None:
            u = u.set(username=user, password=password)
        return u.render_as_string(hide_password=False)

    def psql(self, statement, dbname: str | None = None, params=None) -> list[tuple]:
        """Run one statement as superuser in ``dbname`` (autocommit); return rows."""
        return execute(self.url(database=dbname), statement, params)

    def create_database(self, name: str, owner: str | None = None) -> str:
        """Create an empty database; return its superuser URL."""
        stmt = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(_check_name(name)))
        if owner is not None:
            stmt += sql.SQL(" OWNER {}").format(sql.Identifier(_check_name(owner)))
        self.psql(stmt)
        return self.url(database=name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting whoever is still in it."""
        ident = sql.Identifier(_check_name(name))
        conn = connect(self.url())
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                force = conn.server_version >= 130000
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {}{}").format(ident, sql.SQL(" WITH (FORCE)" if force else ""))
                )
        finally:
            conn.close()

    def create_role(self, name: str, password: str, superuser: bool = False) -> None:
        """Create a login role with a password (scram-sha-256 on PG 14+)."""
        self.psql(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s {}").format(
                sql.Identifier(_check_name(name)), sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER")
            ),
            params=(password,),
        )

    def drop_role(self, name: str) -> None:
        """Drop a role if it exists (drop the databases it owns first)."""
        self.psql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(_check_name(name))))
