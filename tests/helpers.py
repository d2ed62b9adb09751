"""Helpers for the tests: run migrate.py as a real process, query real databases.

migrate.py always runs with a minimal environment (PATH, HOME, LANG=C.UTF-8,
PYTHONDONTWRITEBYTECODE=1 plus what the test passes), so nothing from the
developer's or CI's environment, such as DATABASE_URL, can leak into a test.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sqlalchemy.engine import make_url

from pgserver import execute

REPO = Path(__file__).resolve().parent.parent
MIGRATE = REPO / "migrate.py"


@dataclass(frozen=True)
class Result:
    """How a finished process ended: exit code and stdout+stderr interleaved."""

    code: int
    out: str


def child_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The minimal environment plus ``env``; a ``None`` value removes a key."""
    merged: dict[str, str | None] = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    merged.update(env or {})
    return {k: str(v) for k, v in merged.items() if v is not None}


def start_python(*args: object, env: Mapping[str, str | None] | None = None,
                 cwd: str | Path = REPO) -> subprocess.Popen:
    """Start ``sys.executable *args`` in its own process group (see kill_group)."""
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
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


def run_python(*args: object, env: Mapping[str, str | None] | None = None,
               timeout: float = 120, cwd: str | Path = REPO) -> Result:
    """Run ``sys.executable *args`` to completion; fail the test on timeout."""
    proc = start_python(*args, env=env, cwd=cwd)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        raise AssertionError(
            f"{' '.join(map(str, args))} did not finish within {timeout}s; "
            f"output so far:\n{out}"
        ) from None
    return Result(code=proc.returncode, out=out)


def start_migrate(*args: object, env: Mapping[str, str | None] | None = None,
                  cwd: str | Path = REPO) -> subprocess.Popen:
    """Start migrate.py in its own process group; stdout+stderr on ``.stdout``."""
    return start_python(MIGRATE, *args, env=env, cwd=cwd)


def run_migrate(*args: object, env: Mapping[str, str | None] | None = None,
                timeout: float = 120, cwd: str | Path = REPO) -> Result:
    """Run migrate.py to completion and return its exit code and output."""
    return run_python(MIGRATE, *args, env=env, timeout=timeout, cwd=cwd)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group of a process from start_migrate."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def sqlite_path(url_or_path: str | Path) -> Path:
    """The file behind a ``sqlite:///`` URL, or the path itself."""
    text = str(url_or_path)
    if text.startswith("sqlite"):
        database = make_url(text).database
        if not database or database == ":memory:":
            raise ValueError(f"{text} does not name a database file")
        return Path(database)
    return Path(text)


def sqlite_query(url_or_path: str | Path, sql: str, params=(),
                 create: bool = False) -> list[tuple]:
    """Run one statement on a SQLite file and commit; return its rows.

    The file must exist unless ``create`` is true, so that a query can never
    create the database a test expects the product to create.
    """
    path = sqlite_path(url_or_path)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(f"SQLite database {path} does not exist")
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def pg_query(url: str, sql, params=None) -> list[tuple]:
    """Run one statement on a PostgreSQL URL (autocommit); return its rows."""
    return execute(url, sql, params)
