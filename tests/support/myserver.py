"""A throwaway MariaDB server for the tests, started from the Debian binaries.

``MyServer().start()`` runs ``mariadb-install-db`` and ``mariadbd`` (Debian's
``mariadb-server``) in a fresh temporary directory, with its own option file,
data directory and unix socket, listening only on 127.0.0.1 on a free port.
Grant tables are real (never ``--skip-grant-tables``) and every account has a
password, so that the tests exercise real credentials: a wrong password is
refused with error 1045, a missing grant with 1142/1044.  ``stop()`` (also
registered with ``atexit``) shuts it down and deletes the directory.

The superuser is ``root`` (``'root'@'127.0.0.1'``, all privileges with grant
option) with a random password; of the other accounts ``mariadb-install-db``
makes only ``'root'@'localhost'`` (the socket, same password) is kept.  The
server ignores /etc/mysql: its settings are the ``_SERVER_SETTINGS`` below,
utf8mb4 as Debian's packaged configuration has it, and speed over durability.

Under root the server runs as the ``mysql`` system user (``--user=mysql``:
mariadbd raises its open-files limit, then drops privileges); the user is
created when the Debian package did not already do so.

When TEST_MYSQL_URL is set no server is started: that URL
(``mysql://`` or ``mariadb://``) is used as the superuser URL of an existing
server, and ``stop()`` leaves it alone.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
from sqlalchemy.engine import URL, make_url

from .network import free_port

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = "mariadb-install-db"
SERVER_USER = "mysql"
SUPERUSER = "root"
START_TIMEOUT = 60
STOP_TIMEOUT = 15
# A free port can be taken between probing and binding; try a few.
START_ATTEMPTS = 3
# A unix socket path is at most 107 bytes (sun_path).
_MAX_SOCKET_PATH = 100
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9_.%:-]{1,255}$")
# Client-side errors while the server is still coming up.
_NOT_YET = {2003, 2006, 2013}

# Speed over durability: the server is thrown away after the run.  The files
# go in the temp dir; nothing from /etc/mysql is read (--defaults-file).
_SERVER_SETTINGS = """\
[mariadbd]
datadir = {tmp}/data
socket = {tmp}/mariadbd.sock
pid-file = {tmp}/mariadbd.pid
log-error = {tmp}/server.log
tmpdir = {tmp}
bind-address = 127.0.0.1
skip-name-resolve
# No "Host is blocked because of many connection errors" after tests that
# fail to log in on purpose.
host_cache_size = 0
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
skip-log-bin
sync_binlog = 0
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
innodb_buffer_pool_size = 32M
innodb_log_file_size = 16M
# io_uring/libaio are often unavailable in containers (seccomp).
innodb_use_native_aio = 0
max_connections = 300
"""

# Run by mariadb-install-db in bootstrap mode (grant tables not loaded until
# FLUSH PRIVILEGES): keep root at localhost (the socket) and 127.0.0.1 only,
# both with the password.
_BOOTSTRAP_SQL = """\
DELETE FROM mysql.global_priv WHERE Host NOT IN ('localhost', '127.0.0.1');
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1');
FLUSH PRIVILEGES;
ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}';
"""


class MyServerError(RuntimeError):
    """The test MariaDB server could not be started or administered."""


def connect(
    url: str, *, autocommit: bool = True, connect_timeout: int = 10, read_timeout: float | None = None
) -> pymysql.connections.Connection:
    """Open a PyMySQL connection from a SQLAlchemy-style URL (autocommit unless told).

    Accepts ``mysql://``, ``mariadb://`` and their ``+pymysql`` forms alike,
    decodes percent-encoded credentials the way SQLAlchemy does, and passes
    query parameters (``charset``, ``unix_socket``...) to ``pymysql.connect``.
    The connection uses utf8mb4 unless the URL names another charset.
    ``connect_timeout`` only bounds the TCP connect: without ``read_timeout``
    a peer that accepts but never sends the handshake blocks forever.
    """
    u = make_url(url)
    if u.get_backend_name() not in ("mysql", "mariadb"):
        raise ValueError(f"{u.render_as_string()} is not a mysql:// or mariadb:// URL")
    params = {k: v for k, v in u.query.items() if isinstance(v, str)}
    params.setdefault("charset", "utf8mb4")
    return pymysql.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 3306,
        user=u.username,
        password=u.password or "",
        database=u.database or None,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        autocommit=autocommit,
        **params,
    )


def execute(url: str, statement: str, params=None) -> list[tuple]:
    """Run one statement on ``url`` in autocommit mode (``%s`` parameters); return its rows, if any.

    Without ``params`` the statement is sent as written (a ``%`` needs no escaping).
    """
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def quote_identifier(name: str) -> str:
    """```name``` for a database, table or column name (backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def _check_name(name: str) -> str:
    # Names are quoted anyway; refusing odd ones keeps the URLs the tests
    # build from them unambiguous.
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plain MariaDB identifier")
    return name


def _check_host(host: str) -> str:
    if not _HOST.match(host):
        raise ValueError(f"{host!r} is not a plain account host ('%', '127.0.0.1', 'localhost'...)")
    return host


class MyServer:
    """One MariaDB server for a test session (see the module docstring)."""

    def __init__(self, external_url: str | None = None) -> None:
        if external_url is None:
            external_url = os.environ.get("TEST_MYSQL_URL") or None
        self._external_url = external_url
        self._url: URL | None = None
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_as: str | None = None

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> MyServer:
        """Start the server (or check the external one answers); return self."""
        if self._url is not None:
            return self
        if self._external_url:
            url = make_url(self._external_url).set(drivername="mysql")
            try:
                execute(url.render_as_string(hide_password=False), "SELECT 1")
            except pymysql.Error as exc:
                raise MyServerError(f"TEST_MYSQL_URL ({url.render_as_string()}) does not answer: {exc}") from exc
            self._url = url
            return self
        atexit.register(self.stop)
        try:
            self._start_local()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop a server this object started and delete its files; idempotent."""
        tmp, self._tmp = self._tmp, None
        proc, self._proc = self._proc, None
        self._url = None
        if proc is not None:
            _terminate(proc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def _start_local(self) -> None:
        for program in (str(MARIADBD), INSTALL_DB):
            if shutil.which(program) is None:
                raise MyServerError(
                    f"{program} is not installed: install MariaDB with 'apt-get install -y "
                    "mariadb-server' (tests/run.sh does so), or set TEST_MYSQL_URL to the "
                    "superuser URL of an existing server."
                )
        self._run_as = self._server_user()
        self._tmp = Path(tempfile.mkdtemp(prefix="mytest-", dir=self._temp_base()))
        self._chown(self._tmp)
        password = secrets.token_urlsafe(18)
        self._install_db(password)
        last_error = ""
        for _ in range(START_ATTEMPTS):
            port = free_port()
            url = URL.create("mysql", username=SUPERUSER, password=password, host="127.0.0.1", port=port)
            last_error = self._launch(port, url)
            if not last_error:
                self._url = url
                return
            if "Address already in use" not in last_error:
                break
        # stop() deletes the directory: keep the log beside it for a look.
        kept = Path(f"{self._tmp}-server.log")
        try:
            shutil.copyfile(self._tmp / "server.log", kept)
        except OSError:
            kept = self._tmp / "server.log"
        raise MyServerError(f"MariaDB ({MARIADBD}) did not start (whole log: {kept}):\n{last_error}")

    def _install_db(self, password: str) -> None:
        assert self._tmp is not None
        config = self._tmp / "my.cnf"
        config.write_text(_SERVER_SETTINGS.format(tmp=self._tmp))
        (self._tmp / "server.log").touch()
        bootstrap = self._tmp / "bootstrap.sql"
        # token_urlsafe: no quote or backslash to escape in the SQL string.
        bootstrap.write_text(_BOOTSTRAP_SQL.format(password=password))
        bootstrap.chmod(0o600)
        for path in (config, self._tmp / "server.log", bootstrap):
            self._chown(path)
        try:
            self._run(
                INSTALL_DB,
                f"--defaults-file={config}",
                *self._user_option(),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--extra-file={bootstrap}",
            )
        finally:
            bootstrap.unlink(missing_ok=True)

    def _launch(self, port: int, url: URL) -> str:
        """Start mariadbd on ``port`` and wait until ``url`` logs in; "" or what went wrong."""
        assert self._tmp is not None
        log = self._tmp / "server.log"
        with log.open("ab") as out:
            # A session of its own: a Ctrl-C meant for pytest does not reach it
            # before stop() does.
            self._proc = subprocess.Popen(
                [str(MARIADBD), f"--defaults-file={self._tmp / 'my.cnf'}", *self._user_option(), f"--port={port}"],
                cwd=self._tmp,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        last = ""
        while time.monotonic() - started < START_TIMEOUT:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                return f"mariadbd exited with code {code}; the end of its log:\n{self._log_tail()}"
            try:
                connect(url.render_as_string(hide_password=False), connect_timeout=2, read_timeout=2).close()
                return ""
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] not in _NOT_YET:
                    last = f"{exc}"
            time.sleep(0.05)
        _terminate(self._proc)
        self._proc = None
        return (
            f"mariadbd did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT} s"
            f"{' (' + last + ')' if last else ''}; the end of its log:\n{self._log_tail()}"
        )

    # --- running server commands ---------------------------------------------

    def _server_user(self) -> str | None:
        """The user to run the server as: ``mysql`` under root, else None."""
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
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVER_USER,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        return SERVER_USER

    def _user_option(self) -> list[str]:
        return [f"--user={self._run_as}"] if self._run_as else []

    def _chown(self, path: Path) -> None:
        if self._run_as:
            shutil.chown(path, user=self._run_as, group=pwd.getpwnam(self._run_as).pw_gid)

    def _temp_base(self) -> str:
        """A temp folder the server user can reach (TMPDIR may be root-only) with a short path."""
        base = tempfile.gettempdir()
        # mytest-XXXXXXXX/mariadbd.sock
        if len(base) + 32 > _MAX_SOCKET_PATH:
            return "/tmp"
        if self._run_as:
            probe = ["runuser", "-u", self._run_as, "--", "sh", "-c", 'test -w "$1" && test -x "$1"', "sh", base]
            if subprocess.run(probe, cwd="/", capture_output=True).returncode != 0:
                return "/tmp"
        return base

    def _run(self, *argv: str) -> None:
        """Run a command in the temp dir; raise MyServerError with its output when it fails."""
        result = subprocess.run(
            argv,
            cwd=self._tmp or "/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
        )
        if result.returncode != 0:
            raise MyServerError(
                f"{' '.join(argv)} failed with exit code {result.returncode}:\n{result.stdout}{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        if self._tmp is None:
            return ""
        try:
            text = (self._tmp / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- administration ------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The mariadbd process this object started (None for TEST_MYSQL_URL's server)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def superuser_url(self) -> str:
        """``mysql://root:PW@127.0.0.1:PORT`` (password included, no database)."""
        return self.url()

    @property
    def unix_socket(self) -> Path | None:
        """The server's unix socket (None for TEST_MYSQL_URL's server)."""
        return None if self._tmp is None else self._tmp / "mariadbd.sock"

    def url(self, database: str | None = None, user: str | None = None, password: str | None = None) -> str:
        """A ``mysql://`` URL on this server; credentials are percent-encoded as needed."""
        if self._url is None:
            raise MyServerError("The MariaDB test server is not running: call start().")
        u = self._url
        if database is not None:
            u = u.set(database=database)
        if user is not None:
            u = u.set(username=user, password=password)
        return u.render_as_string(hide_password=False)

    def query(self, statement: str, database: str | None = None, params=None) -> list[tuple]:
        """Run one statement as superuser (in ``database``; autocommit); return rows."""
        return execute(self.url(database=database), statement, params)

    def server_version(self) -> str:
        """``SELECT VERSION()``, e.g. ``10.11.19-MariaDB-0+deb12u1``."""
        return str(self.query("SELECT VERSION()")[0][0])

    def create_database(self, name: str) -> str:
        """Create an empty database (the server's utf8mb4 default); return its superuser URL."""
        self.query(f"CREATE DATABASE {quote_identifier(_check_name(name))}")
        return self.url(database=name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting the sessions that use it first."""
        conn = connect(self.url())
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (name,)
                )
                for (session,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL CONNECTION {int(session)}")
                    except pymysql.err.InternalError:
                        pass  # 1094 Unknown thread id: it ended on its own
                # A session elsewhere that holds a lock on one of its tables
                # would block DROP DATABASE for a year by default.
                cur.execute("SET SESSION lock_wait_timeout = 30")
                cur.execute(f"DROP DATABASE IF EXISTS {quote_identifier(_check_name(name))}")
        finally:
            conn.close()

    def create_user(self, name: str, password: str, *grants: str, host: str = "%") -> str:
        """Create ``'name'@'host'`` with a password and the given grants; return its URL (no database).

        Each grant is what goes between GRANT and TO, for example
        ``"SELECT, INSERT ON `t_abc`.*"`` or ``"ALL PRIVILEGES ON `t_abc`.*"``;
        with none the account can log in and do nothing else.  The default
        host ``'%'`` matches the tests' connections from 127.0.0.1.
        """
        account = (_check_name(name), _check_host(host))
        self.query("CREATE USER %s@%s IDENTIFIED BY %s", params=(*account, password))
        for grant in grants:
            self.grant(name, grant, host=host)
        return self.url(user=name, password=password)

    def grant(self, name: str, grant: str, host: str = "%") -> None:
        """``GRANT <grant> TO 'name'@'host'`` (see create_user)."""
        self.query(f"GRANT {grant.replace('%', '%%')} TO %s@%s", params=(_check_name(name), _check_host(host)))

    def drop_user(self, name: str, host: str = "%") -> None:
        """Drop an account if it exists (its open sessions stay open)."""
        self.query("DROP USER IF EXISTS %s@%s", params=(_check_name(name), _check_host(host)))


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean, quick shutdown), then SIGKILL after STOP_TIMEOUT."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
