"""What the tests share, one noun per module; nothing here is a test.

- ``process``: run migrate.py (or any Python) as a real process with a minimal
  environment, in its own process group; ``Runner`` for runs that are killed or
  signalled; ``run_unprivileged`` for a run held to file permissions.
- ``pgserver``: the throwaway PostgreSQL server behind the ``pg_*`` fixtures, and its hot standby.
- ``pgbouncer``: Debian's PgBouncer in front of it, in transaction or session pooling.
- ``dbstate``: what a real database holds, read back for assertions.
- ``chains``: an editable copy of migrations/ with revisions added, removed or
  rewritten (the one builder of such copies), and the fixture revisions.
- ``locks``: the migration lock, held or inspected from outside migrate.py.
- ``mounts``: tmpfs, dead network mounts and full disks (root only).
- ``network``: free ports and a database that comes up late.
- ``wheelhouse``: tiny real wheels for pip, with no index.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The repository root.
REPO = Path(__file__).resolve().parents[2]
#: The shim the image runs; the tests run it the same way.
MIGRATE = REPO / "migrate.py"
#: Data files the tests mount or read (seed files, migration folders for the image).
FIXTURES = REPO / "tests" / "fixtures"


def not_a_case(rule: Callable[[dict[str, Any]], bool]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a parametrized test whose combinations ``rule(callspec.params)`` names do not exist (an
    upstream chain that cannot run on that engine, proved by a test of its own): they are deselected
    at collection, never collected and skipped, and never passed by an early ``return``."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function.not_a_case = rule  # type: ignore[attr-defined]
        return function

    return mark
