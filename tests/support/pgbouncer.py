"""A throwaway PgBouncer in front of the test PostgreSQL server, from Debian's ``pgbouncer`` package.

``PgBouncer(server_url, pool_mode="transaction").start()`` writes a config of
its own in a temp folder and runs ``/usr/sbin/pgbouncer`` in the foreground,
listening on 127.0.0.1 on a free port, as the ``postgres`` system user under
root (as :mod:`pgserver` runs the server).  Every database name is routed to
the server (``* = host=... port=...``); clients authenticate with SCRAM
against an auth_file made from the server URL's user and password, and
PgBouncer logs in to the server with the same.  Every other setting is what
the package ships (default_pool_size 20, max_client_conn 100, no
server_reset_query in transaction mode, ...): what an operator gets from
``apt-get install pgbouncer``.  ``url(database)`` is a URL through it;
``stop()`` (also registered with ``atexit``) kills it and deletes the folder.

A missing binary raises: these tests are never skipped (tests/run.sh installs
the package for the integration scope).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from .network import free_port
from .pgserver import SERVER_USER, PgServer

BINARY = Path("/usr/sbin/pgbouncer")
START_TIMEOUT = 15
POOL_MODES = ("transaction", "session")

_CONFIG = """\
;; Written by tests/support/pgbouncer.py.  Only what a test instance needs;
;; everything else stays at the packaged defaults.
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {folder}/userlist.txt
pool_mode = {pool_mode}
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


class PgBouncerError(RuntimeError):
    """The test PgBouncer could not be started."""


class PgBouncer:
    """One PgBouncer for a test module (see the module docstring)."""

    def __init__(self, server_url: str, pool_mode: str = "transaction") -> None:
        if pool_mode not in POOL_MODES:
            raise ValueError(f"pool_mode must be one of {POOL_MODES}, not {pool_mode!r}")
        self.pool_mode = pool_mode
        self._server = make_url(server_url)
        self._folder: Path | None = None
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> PgBouncer:
        if not BINARY.is_file():
            raise PgBouncerError(
                f"{BINARY} is missing: install Debian's pgbouncer package ('apt-get install -y "
                "pgbouncer'; tests/run.sh does so for the integration scope). These tests are never skipped."
            )
        atexit.register(self.stop)
        run_as = SERVER_USER if os.geteuid() == 0 else None
        self._folder = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir="/tmp"))
        user, password = self._server.username, self._server.password
        assert user and password is not None, "the server URL must carry a user and a password"
        # auth_file: "user" "password"; a double quote inside is doubled.
        quoted = '"{}" "{}"\n'.format(user.replace('"', '""'), password.replace('"', '""'))
        (self._folder / "userlist.txt").write_text(quoted)
        last = ""
        for _ in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            (self._folder / "pgbouncer.ini").write_text(
                _CONFIG.format(
                    host=self._server.host,
                    port=self._server.port,
                    listen_port=self.port,
                    folder=self._folder,
                    pool_mode=self.pool_mode,
                )
            )
            if run_as is not None:
                for path in (self._folder, *self._folder.iterdir()):
                    shutil.chown(path, user=run_as)
                (self._folder / "userlist.txt").chmod(0o600)
            argv = [str(BINARY), str(self._folder / "pgbouncer.ini")]
            if run_as is not None:
                argv = ["runuser", "-u", run_as, "--", *argv]
            self._proc = subprocess.Popen(
                argv,
                cwd=self._folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            if self._listening():
                return self
            last = self._log_tail()
            self._kill()
        self.stop()
        raise PgBouncerError(f"PgBouncer ({BINARY}) did not start:\n{last}")

    def _listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            time.sleep(0.05)
        return False

    def url(self, database: str | None = None) -> str:
        """The server's URL (same user and password, or ``database``'s), through PgBouncer."""
        u = self._server.set(host="127.0.0.1", port=self.port)
        if database is not None:
            u = u.set(database=database)
        return u.render_as_string(hide_password=False)

    def through(self, server_url: str) -> str:
        """``server_url`` (a database of the server) reached through PgBouncer instead."""
        return make_url(server_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def _log_tail(self, lines: int = 20) -> str:
        out = ""
        if self._proc is not None and self._proc.poll() is not None and self._proc.stdout is not None:
            out = self._proc.stdout.read()
        try:
            assert self._folder is not None
            text = (self._folder / "pgbouncer.log").read_text(errors="replace")
        except (OSError, AssertionError):
            text = ""
        return out + "\n".join(text.splitlines()[-lines:])

    def log(self) -> str:
        """PgBouncer's log so far (for a failing test's message)."""
        return self._log_tail(200)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        """Kill it and delete its folder; idempotent."""
        self._kill()
        folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def in_front_of(server: PgServer, pool_mode: str) -> PgBouncer:
    """A started PgBouncer in ``pool_mode`` in front of ``server``, as its superuser."""
    return PgBouncer(server.superuser_url, pool_mode).start()
