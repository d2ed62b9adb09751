"""Faults a stranger puts in migrate-init's way, from outside the process (issues 12 and 13).

- ``stalled_pipe``: a pipe already full (64 KiB) that nobody reads, to give a
  child as its stderr: a log reader that stalled.
- ``start_stalled`` / ``wait_blocked``: start migrate.py (or any command) with
  that stderr and wait until it sits in a write/select/poll for good.
- ``silent_server``: a TCP server on 127.0.0.1 that accepts and never answers.
- ``sqlite_write_lock``: another process holding SQLite's write lock
  (``BEGIN IMMEDIATE`` or ``BEGIN EXCLUSIVE``), kept open.
- ``pg_table_locks``: a session of our own holding ``LOCK TABLE ... IN ACCESS
  EXCLUSIVE MODE`` in an open transaction.
- ``damage_page``: one damaged b-tree page in an otherwise valid SQLite file.
- ``secret_forms`` / ``assert_no_secret``: every form in which a password could
  leak (raw, percent-encoded, JSON, repr, backslash-doubled, fragments).
- ``entrypoint_shim``: run docker-entrypoint.sh on the host, with a ``python``
  on PATH that maps the image's /app/migrate.py to this repository's and
  records every call (so a test can prove that nothing was migrated).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, quote_plus

from . import MIGRATE, REPO
from .pgserver import connect
from .process import Env, child_env, kill_group

#: x86_64 system calls a process stuck behind a full pipe sits in: write, poll, select,
#: pselect6, ppoll, writev.  Elsewhere wait_blocked falls back to waiting a fixed time.
_BLOCKING_SYSCALLS = {"1", "7", "23", "270", "271", "20"}


# --- a stalled log reader -------------------------------------------------------------


def fill_pipe(write_fd: int) -> int:
    """Write into a pipe until it is full, through a file description of our own; return the bytes written.

    Opening /proc/self/fd/N gives a new open file description of the same
    pipe, so O_NONBLOCK is set on ours only, never on the one a child holds.
    """
    own = os.open(f"/proc/self/fd/{write_fd}", os.O_WRONLY | os.O_NONBLOCK)
    written = 0
    try:
        for size in (4096, 512, 1):
            chunk = b"x" * size
            while True:
                try:
                    written += os.write(own, chunk)
                except BlockingIOError:
                    break
    finally:
        os.close(own)
    return written


@contextlib.contextmanager
def stalled_pipe() -> Iterator[int]:
    """A pipe pre-filled to its capacity (64 KiB) whose read end is never read; yields the write end.

    Give the write end to a child as its stderr: every line it logs blocks,
    as behind a log shipper that stopped reading.
    """
    read_fd, write_fd = os.pipe()
    try:
        filled = fill_pipe(write_fd)
        assert filled >= 4096, f"the pipe took only {filled} bytes"
        yield write_fd
    finally:
        os.close(write_fd)
        os.close(read_fd)


def start_stalled(
    argv: Sequence[str], *, env: Env, stderr_fd: int, stdout: Path, cwd: str | Path = REPO
) -> subprocess.Popen:
    """Start ``argv`` in its own process group, stdout into a file, stderr on ``stderr_fd``."""
    with open(stdout, "wb") as out:
        return subprocess.Popen(
            list(map(str, argv)),
            env=child_env(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=stderr_fd,
            start_new_session=True,
        )


def migrate_argv(*args: object) -> list[str]:
    return [sys.executable, str(MIGRATE), *map(str, args)]


def _main_syscall(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return None


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (its main thread's)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_blocked(proc: subprocess.Popen, *, pid: int | None = None, steady: float = 0.6, timeout: float = 20) -> None:
    """Return once the main thread of ``pid`` (default: ``proc``) has sat in a write, select or poll
    for ``steady`` seconds: where a process whose stderr is a full pipe ends up.

    Fails if ``proc`` exits first.  Where /proc/PID/syscall is unreadable, waits 2 s.
    """
    deadline = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before it blocked on its stderr")
        call = _main_syscall(pid or proc.pid)
        if call is None:
            time.sleep(2)
            return
        if call in _BLOCKING_SYSCALLS:
            since = since or time.monotonic()
            if time.monotonic() - since >= steady:
                return
        else:
            since = None
        time.sleep(0.02)
    raise AssertionError(f"the process never blocked on its stderr within {timeout}s")


def wait_exit(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for ``proc``; return (exit code, seconds it took).  Kill its group and fail on timeout."""
    started = time.monotonic()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait(10)
        raise AssertionError(f"the process did not exit within {timeout}s") from None
    return code, time.monotonic() - started


# --- a server that accepts and never answers -------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte; yields its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            accepted.append(client)  # held open, never read from, never written to

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        for sock in [listener, *accepted]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        thread.join(5)


@contextlib.contextmanager
def paused(pid: int) -> Iterator[int]:
    """SIGSTOP ``pid`` (a database server process): it keeps its sockets and answers nothing, as
    across a network partition; SIGCONT afterwards, whatever happened."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


# --- locks held by someone else ----------------------------------------------------------

_SQLITE_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
conn.execute("BEGIN " + sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def sqlite_write_lock(path: Path, mode: str = "IMMEDIATE") -> Iterator[int]:
    """Another process holds SQLite's write lock on ``path`` in an open transaction; yields its pid.

    ``IMMEDIATE`` (a RESERVED lock) lets readers in and keeps writers out;
    ``EXCLUSIVE`` (in rollback-journal mode) keeps readers out as well, as a
    writer in the middle of its commit does.
    """
    assert mode in ("IMMEDIATE", "EXCLUSIVE")
    assert path.exists(), f"{path} must exist before its write lock can be held"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SQLITE_WRITER, str(path), mode],
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
        assert line.strip() == "held", f"the SQLite writer failed: {line}{proc.stdout.read()}"
        yield proc.pid
    finally:
        kill_group(proc)
        proc.wait(10)
        proc.stdout.close()


@contextlib.contextmanager
def pg_table_locks(url: str, *tables: str) -> Iterator[int]:
    """A session holds ``LOCK TABLE <t> IN ACCESS EXCLUSIVE MODE`` on each table, in an open transaction.

    Yields its backend pid; the transaction is rolled back at the end.
    """
    conn = connect(url, application_name="stranger-table-lock", autocommit=False)
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        yield conn.get_backend_pid()
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
        conn.close()


# --- a damaged SQLite page ------------------------------------------------------------------


def damage_page(path: Path, table: str, how: str = "garbage") -> int:
    """Damage the root page of ``table``; the file header and the schema (page 1) stay valid.

    ``garbage``: the whole page overwritten (PRAGMA quick_check raises "malformed");
    ``cell``: only its first cell pointer points past the page's end (quick_check
    reports it as a finding).  Either way the file opens and its tables can be
    listed; only reading that table, or a check, finds the damage.  Returns the page number.
    """
    assert how in ("garbage", "cell")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()[0]
    finally:
        conn.close()
    assert root > 1, f"{table} has root page {root}; page 1 holds the header and the schema"
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        page = bytearray(handle.read(page_size))
        if how == "garbage":
            page[:] = bytes([0xA5]) * page_size
        else:
            assert page[0] == 0x0D, f"page {root} is not a table leaf page (type {page[0]})"
            page[8:10] = (page_size + 100).to_bytes(2, "big")
        handle.seek((root - 1) * page_size)
        handle.write(page)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        assert Path(path).read_bytes()[:16] == b"SQLite format 3\x00"
        conn.execute("SELECT name FROM sqlite_master").fetchall()  # the schema still reads
        try:
            check = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError:
            check = [("malformed",)]
        assert check != [("ok",)], "the damaged page went unnoticed by PRAGMA quick_check"
    finally:
        conn.close()
    return root


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- passwords ----------------------------------------------------------------------------


def secret_forms(secret: str, fragments: Sequence[str] = ()) -> set[str]:
    """Every form in which ``secret`` (and each of ``fragments``) could leak into output."""
    forms: set[str] = set()
    for value in (secret, *fragments):
        forms.update(
            {
                value,
                quote(value, safe=""),
                quote(value, safe="@/#"),
                quote_plus(value),
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
                repr(value)[1:-1],
                ascii(value)[1:-1],
                value.replace("\\", "\\\\"),
                value.encode("unicode_escape").decode("ascii"),
            }
        )
    return {f for f in forms if len(f) >= 3}


def assert_no_secret(text: str, secret: str, where: str, fragments: Sequence[str] = ()) -> None:
    """No form of ``secret`` or of its ``fragments`` is in ``text``."""
    found = sorted(f for f in secret_forms(secret, fragments) if f in text)
    assert not found, f"{where} leaks the password as {found}:\n{text}"


# --- docker-entrypoint.sh on the host -----------------------------------------------------

_SHIM = """#!/bin/sh
# What docker-entrypoint.sh calls "python": records the call, maps /app/migrate.py to the repository's.
printf '%s\\n' "$*" >> "{log}"
if [ "$1" = /app/migrate.py ]; then
    shift
    exec "{python}" "{migrate}" "$@"
fi
exec "{python}" "$@"
"""


def entrypoint_shim(folder: Path) -> tuple[Path, Path]:
    """A bin folder whose ``python`` stands for the image's; returns (bin folder, log of its calls)."""
    bin_dir = folder / "shim-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = folder / "python-calls.log"
    log.touch()
    shim = bin_dir / "python"
    shim.write_text(_SHIM.format(log=log, python=sys.executable, migrate=MIGRATE))
    shim.chmod(0o755)
    return bin_dir, log


def entrypoint_argv(*args: str) -> list[str]:
    return ["bash", str(REPO / "docker-entrypoint.sh"), *args]


def entrypoint_env(bin_dir: Path, env: Env) -> dict[str, object]:
    """``env`` with the shim's folder first on PATH."""
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', os.defpath)}", **env}


# --- environments and a private /dev/termination-log ------------------------------------


def stranger_env(url: str, tmp_path: Path, **extra: object) -> dict[str, str]:
    """DATABASE_URL, short waits, an empty SEED_DIR and a DATA_DIR of the test's own (the fast
    path caches its manifest there, not in the repository)."""
    seeds = tmp_path / "no-seeds"
    seeds.mkdir(exist_ok=True)
    data = tmp_path / "data-dir"
    data.mkdir(exist_ok=True)
    env = {
        "DATABASE_URL": url,
        "DB_WAIT_TIMEOUT": "5",
        "SEED_DIR": str(seeds),
        "DATA_DIR": str(data),
        "REPORT_FILE": "-",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


_PRIVATE_DEV = """
set -e
d="$1"; shift
for n in null zero random urandom full tty; do
    touch "$d/$n"
    mount --bind "/dev/$n" "$d/$n"
done
touch "$d/termination-log"
mount --rbind "$d" /dev
exec "$@"
"""


def run_with_termination_log(
    argv: Sequence[str], *, env: Env, folder: Path, timeout: float = 60
) -> tuple[int, str, bytes]:
    """Run ``argv`` in a mount namespace of its own where /dev/termination-log exists and is writable,
    as in a Kubernetes container; return (exit code, output, the bytes written there).

    Needs root (unshare, mount); the host's /dev is never touched.
    """
    from . import mounts

    if os.geteuid() != 0:
        mounts._mount_unavailable("a private /dev/termination-log needs root (unshare --mount)")
    dev = folder / "private-dev"
    dev.mkdir()
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", _PRIVATE_DEV, "sh", str(dev), *map(str, argv)],
        env=child_env(env),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    if "mount: " in out and proc.returncode != 0 and not (dev / "termination-log").stat().st_size:
        mounts._mount_unavailable(f"cannot make a private /dev: {out.strip()[:300]}")
    return proc.returncode, out, (dev / "termination-log").read_bytes()
