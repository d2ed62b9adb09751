"""Run migrate.py (or any Python) as a real process, the way the image runs it.

Every child runs with a minimal environment (PATH, HOME, LANG=C.UTF-8,
PYTHONDONTWRITEBYTECODE=1 plus what the test passes), so nothing from the
developer's or CI's environment, such as DATABASE_URL, can leak into a test;
and in a process group of its own, so that a kill reaches everything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import MIGRATE, REPO

#: The UID a container's non-root user stands for in run_unprivileged: nobody.
UNPRIVILEGED = 65534

Env = Mapping[str, object]


@dataclass(frozen=True)
class Result:
    """How a finished process ended: exit code and stdout+stderr interleaved."""

    code: int
    out: str


def child_env(env: Env | None = None) -> dict[str, str]:
    """The minimal environment plus ``env``; a ``None`` value removes a key."""
    merged: dict[str, object] = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    merged.update(env or {})
    return {k: str(v) for k, v in merged.items() if v is not None}


def start_python(
    *args: object, env: Env | None = None, cwd: str | Path = REPO, prefix: Sequence[str] = ()
) -> subprocess.Popen:
    """Start ``[*prefix, sys.executable, *args]`` in its own process group (see kill_group)."""
    return subprocess.Popen(
        [*prefix, sys.executable, *map(str, args)],
        env=child_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )


def run_python(
    *args: object, env: Env | None = None, timeout: float = 120, cwd: str | Path = REPO, prefix: Sequence[str] = ()
) -> Result:
    """Run ``sys.executable *args`` to completion; fail the test on timeout."""
    proc = start_python(*args, env=env, cwd=cwd, prefix=prefix)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        raise AssertionError(
            f"{' '.join(map(str, args))} did not finish within {timeout}s; output so far:\n{out}"
        ) from None
    return Result(code=proc.returncode, out=out)


def start_migrate(*args: object, env: Env | None = None, cwd: str | Path = REPO) -> subprocess.Popen:
    """Start migrate.py in its own process group; stdout+stderr on ``.stdout``."""
    return start_python(MIGRATE, *args, env=env, cwd=cwd)


def run_migrate(*args: object, env: Env | None = None, timeout: float = 120, cwd: str | Path = REPO) -> Result:
    """Run migrate.py to completion and return its exit code and output."""
    return run_python(MIGRATE, *args, env=env, timeout=timeout, cwd=cwd)


def run_split(*args: object, env: Env, timeout: float = 120) -> tuple[int, str, str]:
    """Run migrate.py; return (exit code, stdout, stderr) kept apart."""
    proc = subprocess.run(
        [sys.executable, str(MIGRATE), *map(str, args)],
        env=child_env(env),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group of a process started here."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def run_unprivileged(*args: object, env: Env, timeout: float = 120) -> Result:
    """Run migrate.py held to file permissions, as a container's non-root user is.

    Under root it runs as UID 65534 (nobody), with no supplementary groups: root
    passes every permission check, and root with its capabilities dropped would
    still be UID 0 in the product's messages.  Any other user already is held to
    file permissions and runs as itself.  The folders such a run writes to must
    be reachable by that UID: see the ``shared_tmp`` fixture and give_away().
    """
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        prefix = ("setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups")
        check = run_python("-c", "import sqlalchemy, alembic, migrate_init", prefix=prefix, timeout=60)
        assert check.code == 0, (
            f"UID {UNPRIVILEGED} cannot run the repository's Python ({sys.executable}); the repo "
            f"and its venv must be readable by every user:\n{check.out}"
        )
    return run_python(MIGRATE, *args, env=env, timeout=timeout, prefix=prefix)


def give_away(*paths: Path) -> None:
    """Make ``paths`` owned by the user run_unprivileged runs as (a no-op unless root)."""
    if os.geteuid() == 0:
        for path in paths:
            os.chown(path, UNPRIVILEGED, UNPRIVILEGED)


# --- what a run printed and wrote -------------------------------------------------


def summary_line(out: str) -> str:
    """The last summary line: 'OK (exit 0): ...' or 'FAILED (exit N): ...'."""
    lines = [line for line in out.splitlines() if "(exit " in line]
    assert lines, f"no summary line in:\n{out}"
    return lines[-1]


def report_of(path: Path) -> dict:
    """The JSON summary migrate.py wrote to REPORT_FILE."""
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 1, f"REPORT_FILE should hold one JSON line:\n{text}"
    return json.loads(text)


# --- environments -----------------------------------------------------------------


def operator_env(url: str, tmp_path: Path, **extra: object) -> dict[str, str]:
    """DATABASE_URL, short waits, an empty SEED_DIR and no REPORT_FILE unless given."""
    seeds = tmp_path / "no-seeds"
    seeds.mkdir(exist_ok=True)
    env = {"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "5", "SEED_DIR": str(seeds)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def migrate_env(url: str, migrations: Path | None = None, **extra: object) -> dict[str, str]:
    """The environment of one Runner: the report on stdout, and a Chain's folder if given."""
    env = {"DATABASE_URL": url, "REPORT_FILE": "-", "DB_WAIT_TIMEOUT": "10"}
    if migrations is not None:
        env.update(MIGRATIONS_DIR=str(migrations), MODELS="models:Base")
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --- runs that are killed, signalled or raced -----------------------------------------


class Runner:
    """One migrate.py process, its output in a file (safe to kill at any moment)."""

    #: Every runner started, so that a failed test leaves none behind (kill_all).
    started: list[Runner] = []  # noqa: RUF012  (a registry, shared on purpose)

    def __init__(self, env: Env, log: Path, *args: str):
        self.log = log
        with open(log, "w", encoding="utf-8") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(MIGRATE), *args],
                env=child_env(env),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        Runner.started.append(self)

    @classmethod
    def kill_all(cls) -> None:
        while cls.started:
            cls.started.pop().kill()

    @property
    def out(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"migrate.py did not finish within {timeout}s:\n{self.out}") from None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the run's process group; nothing once it was reaped (its id may be reused)."""
        if self.proc.poll() is None:
            kill_group(self.proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, runner: Runner | None = None, interval: float = 0.05
):
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if runner is not None and not runner.alive():
            raise AssertionError(f"migrate.py exited ({runner.proc.returncode}) before {what}:\n{runner.out}")
        if time.monotonic() >= deadline:
            detail = f"\n{runner.out}" if runner is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)
