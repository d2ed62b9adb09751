#!/usr/bin/env python3
"""The performance benchmark of issues 7 and 14: our figures against their baselines and goals.

    .venv/bin/python bench/bench.py              # everything (several minutes)
    .venv/bin/python bench/bench.py --quick      # fewer rounds, smaller tables (a smoke run)
    .venv/bin/python bench/bench.py --only 1,6   # some measurements only

Every timed measurement runs all its sides in the same invocation, one
after the other within a round and in a rotating order from round to
round, so that drift in the machine's load hits every side alike.  Each
side is a whole process (or a whole `docker run`), timed from start to
exit.  For every side it prints n, min, median and max; the ratio is of
the medians; the goal is issue 14's.  It ends with one table.

| # | Measurement                                                             | Goal          |
|---|-------------------------------------------------------------------------|---------------|
| 1 | a run with nothing to do, against the floor: python + one version query | <= 1.25x      |
|   | with the same bare driver (sqlite3, psycopg2); beside it, for reference, | info          |
|   | plain alembic with a stock env.py, and dbmate when its binary is there  |               |
| 2 | a fresh full chain, against plain alembic with a stock env.py           | <= 1.0x       |
| 3 | an update deploy from 70c7b727736e, 1,000,000 users and chats, against 1,000 | <= 1.5x  |
| 4 | bytes the image adds above its base (against a naive venv, measured)    | <= 40 MB      |
| 5 | `docker run` of the image at target, against `docker run` of `true`     | <= 1.3x       |
| 6 | 16 runners at once to the head, against 1 runner (wall time)            | <= 2x         |
| 7 | generated linear chains of 10/100/500/1,000 revisions, stock env.py:     |               |
|   | fresh, +1 and a no-op, against plain alembic (no-op: against the floor) | <= 1.0x / <= 1.25x |
| 8 | a run with nothing to do at 1,000,000 rows, against the floor           | <= 1.25x      |
| 9 | 16 runners through PgBouncer (transaction, session), against direct     | info          |

Row 1 runs twice per engine: with the manifest baked into the folder (``migrate.py manifest``, as a
derived image does) and with a mounted folder that has none, answered from the manifest the first
full run cached.  "Plain alembic with a stock env.py" is ``alembic init``'s generic template in a
temporary folder, with ``target_metadata`` set to the shipped models, a copy of the shipped
``versions/`` and the same database.  dbmate (``npm install @dbmate/linux-x64``; set DBMATE to its
binary, or put it on PATH) gets 10 SQL migrations, the first holding the migrated schema.

PostgreSQL rows start a throw-away server (tests/support/pgserver.py), or use TEST_DATABASE_URL;
MariaDB rows (1, 2 and 6; row 3 is SQLite and PostgreSQL) likewise (tests/support/myserver.py).
Row 7 (issue 27) generates the chains in a folder made by ``alembic init`` (generic template): every
10th revision creates a table, the others add a nullable column to it; migrate-init runs that folder
as a user's (no MODELS), alembic runs it with the same ini.  It prints the per-revision slope of each
side (ms per revision between the shortest and the longest chain), and the same chain written as
plain SQL (``op.execute``) for alembic, the harder baseline, as information.

Rows 4 and 5 need Docker and the image (IMAGE, default migrate-init:latest); without them they
print "skipped: no image".  The benchmark is not a test: tests carry no timings.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MIGRATE = REPO / "migrate.py"
ALEMBIC = Path(PYTHON).with_name("alembic")
FROM_REVISION = "70c7b727736e"
TARGET = "merge_heads_final"
IMAGE_LIMIT = 40_000_000
FLOOR_DRIVERS = {"SQLite": "sqlite3", "PostgreSQL": "psycopg2", "MariaDB": "PyMySQL"}

sys.path.insert(0, str(REPO))

# The floor of row 1: an interpreter start, the bare driver, one query of the version table.
FLOOR_SQLITE = """import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
print(connection.execute("SELECT version_num FROM alembic_version").fetchall())
"""
FLOOR_POSTGRESQL = """import psycopg2, sys
connection = psycopg2.connect(sys.argv[1])
cursor = connection.cursor()
cursor.execute("SELECT version_num FROM alembic_version")
print(cursor.fetchall())
"""
FLOOR_MARIADB = """import pymysql, sys
from urllib.parse import unquote, urlsplit
url = urlsplit(sys.argv[1])
connection = pymysql.connect(host=url.hostname, port=url.port or 3306, user=unquote(url.username or ""),
                             password=unquote(url.password or ""), database=url.path.lstrip("/"))
cursor = connection.cursor()
cursor.execute("SELECT version_num FROM alembic_version")
print(cursor.fetchall())
"""


@dataclass
class Side:
    """One side of a measurement: its label and its times (seconds), or a size (bytes)."""

    label: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, unit: str) -> str:
        if unit == "MB":
            return f"{self.values[0] / 1e6:.1f} MB"
        low, mid, high = (v * 1000 for v in (min(self.values), self.median, max(self.values)))
        return f"{low:.0f} / {mid:.0f} / {high:.0f} ms"


@dataclass
class Row:
    number: int
    name: str
    ours: Side | None
    baseline: Side | None
    goal: str
    limit: float | None  # on the ratio; None: information only
    unit: str = "ms"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or not self.baseline.median:
            return None
        return self.ours.median / self.baseline.median

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "skipped"
        if self.limit is None:
            return "info"
        return "PASS" if self.ratio <= self.limit else "MISS"


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.quick = args.quick
        self.rounds = args.rounds or (3 if self.quick else 11)
        self.work = Path(tempfile.mkdtemp(prefix="migrate-init-bench-"))
        self.rows: list[Row] = []
        self.pg = None
        self.pg_error = None
        self.my = None
        self.my_error = None
        self.dbmate = os.environ.get("DBMATE") or shutil.which("dbmate")
        # Baked: a copy of migrations/ with its manifest, as a derived image has it.
        self.migrations = self.work / "migrations"
        shutil.copytree(
            REPO / "migrations",
            self.migrations,
            ignore=shutil.ignore_patterns("__pycache__", ".manifest.marshal", ".manifest.json"),
        )
        out = self.check([PYTHON, MIGRATE, "manifest"], self.ours_env("sqlite:///unused.db"))
        self.note(out.strip().splitlines()[-1])
        # Mounted: a copy with no manifest; the first full run caches one.
        self.mounted = self.work / "mounted" / "migrations"
        shutil.copytree(
            REPO / "migrations",
            self.mounted,
            ignore=shutil.ignore_patterns("__pycache__", ".manifest.marshal", ".manifest.json"),
        )
        self.floors = {
            "SQLite": self.work / "floor_sqlite.py",
            "PostgreSQL": self.work / "floor_postgresql.py",
            "MariaDB": self.work / "floor_mariadb.py",
        }
        self.floors["SQLite"].write_text(FLOOR_SQLITE)
        self.floors["PostgreSQL"].write_text(FLOOR_POSTGRESQL)
        self.floors["MariaDB"].write_text(FLOOR_MARIADB)
        self._stock: Path | None = None

    # -- plumbing -----------------------------------------------------------

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def base_env(self, url: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": "C.UTF-8",
            "DATABASE_URL": url,
        }

    def ours_env(self, url: str, migrations: Path | None = None, **extra: str) -> dict[str, str]:
        folder = migrations or self.migrations
        return {
            **self.base_env(url),
            "MIGRATIONS_DIR": str(folder),
            "MODELS": "models:Base",
            "DATA_DIR": str(folder.parent / "data"),
            "REPORT_FILE": "off",
            "DB_WAIT_TIMEOUT": "30",
            **extra,
        }

    def check(self, argv, env, cwd=REPO) -> str:
        result = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise SystemExit(f"bench: {' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}")
        return result.stdout

    def timed(self, argv, env, cwd=REPO) -> float:
        started = time.perf_counter()
        self.check(argv, env, cwd)
        return time.perf_counter() - started

    def alternate(self, sides: dict, rounds: int, before=None) -> dict[str, list[float]]:
        """Run each side ``rounds`` times, in a rotating order; return every time (seconds)."""
        times: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                context = before(name) if before else None
                times[name].append(sides[name](context))
        return times

    def engines(self, mariadb: bool = True):
        yield "SQLite", None
        if self.args.sqlite_only:
            return
        server = self.postgres()
        if server is None:
            self.note(f"PostgreSQL rows skipped: {self.pg_error}")
        else:
            yield "PostgreSQL", server
        if not mariadb:
            return
        server = self.mariadb()
        if server is None:
            self.note(f"MariaDB rows skipped: {self.my_error}")
        else:
            yield "MariaDB", server

    def mariadb(self):
        if self.my is None and self.my_error is None:
            try:
                from tests.support.myserver import MyServer

                self.my = MyServer().start()
            except Exception as exc:
                self.my_error = str(exc).splitlines()[0]
        return self.my

    def postgres(self):
        if self.pg is None and self.pg_error is None:
            try:
                from tests.support.pgserver import PgServer

                self.pg = PgServer().start()
            except Exception as exc:
                self.pg_error = str(exc).splitlines()[0]
        return self.pg

    def fresh(self, engine: str, server) -> str:
        """A URL of a new, empty database (its folder exists, as a volume's does)."""
        name = f"b_{uuid.uuid4().hex[:12]}"
        if server is None:
            folder = self.work / name
            folder.mkdir()
            return f"sqlite:///{folder / 'webui.db'}"
        return server.create_database(name)

    def drop(self, url: str, server) -> None:
        if server is None:
            shutil.rmtree(Path(url[len("sqlite:///") :]).parent, ignore_errors=True)
        else:
            server.drop_database(url.rsplit("/", 1)[1])

    def add(self, row: Row) -> None:
        self.rows.append(row)
        for side in (row.ours, row.baseline):
            if side is None:
                continue
            if row.unit == "MB":
                print(f"     {side.label:<62} {side.spread(row.unit)}", flush=True)
            else:
                print(
                    f"     {side.label:<62} n={len(side.values):<3} min / median / max: {side.spread(row.unit)}",
                    flush=True,
                )
        if row.ratio is not None:
            print(f"  -> {row.name}: {row.ratio:.2f}x (goal {row.goal}): {row.verdict}", flush=True)

    def skip(self, number, name, why):
        self.rows.append(Row(number, name, None, None, "", None, note=why))
        print(f"  -> {name}: {why}", flush=True)

    # -- plain alembic with a stock env.py ----------------------------------------

    def stock(self) -> Path:
        """``alembic init``'s generic template, pointed at the shipped models and a copy of versions/."""
        if self._stock is None:
            folder = self.work / "stock"
            folder.mkdir()
            self.check([ALEMBIC, "init", "--template", "generic", "migrations"], self.base_env(""), cwd=folder)
            scripts = folder / "migrations"
            shutil.rmtree(scripts / "versions")
            shutil.copytree(
                REPO / "migrations" / "versions", scripts / "versions", ignore=shutil.ignore_patterns("__pycache__")
            )
            shutil.copy(REPO / "migrations" / "models.py", scripts / "models.py")
            env_py = scripts / "env.py"
            text = env_py.read_text()
            if "\ntarget_metadata = None\n" not in text:
                raise SystemExit("bench: alembic's generic env.py has no 'target_metadata = None' line to set")
            env_py.write_text(
                text.replace(
                    "\ntarget_metadata = None\n", "\nfrom models import Base\n\ntarget_metadata = Base.metadata\n"
                )
            )
            self._stock = folder
        return self._stock

    def stock_ini(self, url: str) -> Path:
        """The stock alembic.ini of :meth:`stock`, with this database's URL (one file per database)."""
        folder = self.stock()
        template = (folder / "alembic.ini").read_text()
        lines = []
        for line in template.splitlines():
            if line.startswith("sqlalchemy.url"):
                # SQLAlchemy 2.1 reads postgresql:// as psycopg (3) and mysql:// as mysqlclient;
                # the image ships psycopg2 and PyMySQL.
                sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg2://", 1).replace(
                    "mysql://", "mysql+pymysql://", 1
                )
                line = "sqlalchemy.url = " + sqlalchemy_url.replace("%", "%%")
            elif line.startswith("prepend_sys_path"):
                # models.py beside env.py; the shipped versions import migrate_init.ops.
                line = f"prepend_sys_path = {folder / 'migrations'}{os.pathsep}{REPO}"
            lines.append(line)
        ini = folder / f"alembic-{uuid.uuid4().hex[:8]}.ini"
        ini.write_text("\n".join(lines) + "\n")
        return ini

    def alembic_argv(self, url: str) -> list:
        return [ALEMBIC, "-c", self.stock_ini(url), "upgrade", "head"]

    # -- dbmate (a reference, when installed) ----------------------------------------

    def dbmate_folder(self, engine: str, server) -> Path:
        """10 SQL migrations, as many as the chain has; the first holds the schema the chain builds."""
        folder = self.work / f"dbmate-{engine}"
        if folder.exists():
            return folder
        url = self.fresh(engine, server)
        self.check([PYTHON, MIGRATE], self.ours_env(url))
        if server is None:
            connection = sqlite3.connect(url[len("sqlite:///") :])
            statements = [
                sql
                for (sql,) in connection.execute(
                    "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                    "AND name NOT IN ('alembic_version', 'migrate_init_seed') ORDER BY rowid"
                )
            ]
            connection.close()
            schema = ";\n".join(statements) + ";\n"
        else:
            from tests.support.pgserver import newest_bin_dir

            dump = subprocess.run(
                [
                    newest_bin_dir() / "pg_dump",
                    "--schema-only",
                    "--no-owner",
                    "--no-privileges",
                    "--exclude-table=alembic_version",
                    "--exclude-table=migrate_init_seed",
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            schema = "\n".join(
                line for line in dump.splitlines() if not line.startswith(("SET ", "SELECT pg_catalog.", "--", "\\"))
            )
        self.drop(url, server)
        folder.mkdir()
        for index in range(10):
            body = schema if index == 0 else "SELECT 1;\n"
            (folder / f"2026010100{index:04d}_step_{index}.sql").write_text(f"-- migrate:up\n{body}\n-- migrate:down\n")
        return folder

    def dbmate_argv(self, engine: str, server, url: str) -> list:
        if server is None:
            target = "sqlite:" + url[len("sqlite://") :]
        else:
            target = url.replace("postgresql://", "postgres://", 1) + "?sslmode=disable"
        return [
            self.dbmate,
            "--url",
            target,
            "--migrations-dir",
            self.dbmate_folder(engine, server),
            "--no-dump-schema",
            "up",
        ]

    # -- 1: a run with nothing to do ------------------------------------------------

    def m1(self):
        for engine, server in self.engines():
            for where, folder in (
                ("baked manifest", self.migrations),
                ("mounted folder, cached manifest", self.mounted),
            ):
                url = self.fresh(engine, server)
                self.check([PYTHON, MIGRATE], self.ours_env(url, folder))
                out = self.check([PYTHON, MIGRATE], self.ours_env(url, folder, LOG_LEVEL="DEBUG"))
                if "Fast path: the database is at" not in out:
                    raise SystemExit(f"bench: the run at target did not take the fast path:\n{out}")
                # The floor reads what ours reads: the version table, with the same driver.
                floor_target = url[len("sqlite:///") :] if server is None else url
                sides = {
                    "ours": lambda _c, url=url, folder=folder: self.timed(
                        [PYTHON, MIGRATE], self.ours_env(url, folder)
                    ),
                    "floor": lambda _c, url=floor_target: self.timed(
                        [PYTHON, self.floors[engine], url], self.base_env("")
                    ),
                }
                if where == "baked manifest":
                    self.check(self.alembic_argv(url), self.base_env(url))
                    ini = self.stock_ini(url)
                    sides["alembic"] = lambda _c, ini=ini: self.timed(
                        [ALEMBIC, "-c", ini, "upgrade", "head"], self.base_env("")
                    )
                    if self.dbmate and engine != "MariaDB":
                        dbmate_url = self.fresh(engine, server)
                        argv = self.dbmate_argv(engine, server, dbmate_url)
                        self.check(argv, self.base_env(""))
                        sides["dbmate"] = lambda _c, argv=argv: self.timed(argv, self.base_env(""))
                times = self.alternate(sides, self.rounds * 2)
                ours = Side(f"migrate.py at target ({where})", times["ours"])
                name = f"no-op run, {engine}, {where}"
                self.add(
                    Row(
                        1,
                        f"{name}, vs the floor",
                        ours,
                        Side(f"floor: python + {FLOOR_DRIVERS[engine]} version query", times["floor"]),
                        "<= 1.25x",
                        1.25,
                        note="floor: python + one version query with the same bare driver",
                    )
                )
                if "alembic" in times:
                    self.add(
                        Row(
                            1,
                            f"{name}, vs plain alembic",
                            ours,
                            Side("alembic upgrade head, stock env.py", times["alembic"]),
                            "info",
                            None,
                            note="plain alembic: alembic init's generic env.py, the shipped models and versions/",
                        )
                    )
                if "dbmate" in times:
                    self.add(
                        Row(
                            1,
                            f"{name}, vs dbmate",
                            ours,
                            Side("dbmate up at target", times["dbmate"]),
                            "info",
                            None,
                            note="dbmate: 10 SQL migrations, the schema in the first",
                        )
                    )
                self.drop(url, server)
            if not self.dbmate:
                self.note("dbmate reference skipped: no dbmate binary (set DBMATE, or npm install @dbmate/linux-x64)")

    # -- 2: a fresh full chain --------------------------------------------------------

    def m2(self):
        for engine, server in self.engines():

            def run(argv_env):
                def side(url):
                    argv, env = argv_env(url)
                    try:
                        return self.timed(argv, env)
                    finally:
                        self.drop(url, server)

                return side

            # The ini is written before the clock starts: one per database.
            inis: dict[str, Path] = {}

            def fresh(name, engine=engine, server=server):
                url = self.fresh(engine, server)
                if name == "alembic":
                    inis[url] = self.stock_ini(url)
                return url

            ours = run(lambda url: ([PYTHON, MIGRATE], self.ours_env(url)))
            base = run(lambda url: ([ALEMBIC, "-c", inis[url], "upgrade", "head"], self.base_env("")))
            # One untimed round first: each side's first run compiles its copy of the scripts.
            self.alternate({"ours": ours, "alembic": base}, 1, before=fresh)
            times = self.alternate({"ours": ours, "alembic": base}, self.rounds, before=fresh)
            # MySQL/MariaDB commit DDL at once, so migrate-init judges each statement before it runs
            # (sqlglot) and records the revision in progress: safety plain alembic does not have.
            # Issue 14's goal 2 names SQLite and PostgreSQL; MariaDB's row is information.
            graded = engine != "MariaDB"
            self.add(
                Row(
                    2,
                    f"fresh full chain, {engine}",
                    Side("migrate.py on an empty database", times["ours"]),
                    Side("alembic upgrade head, stock env.py", times["alembic"]),
                    "<= 1.0x" if graded else "info",
                    1.0 if graded else None,
                    note="plain alembic: alembic init's generic env.py, the shipped models and versions/"
                    if graded
                    else "MariaDB: each DDL statement is judged before it runs (sqlglot), "
                    "and the revision in progress is recorded; plain alembic does neither",
                )
            )

    # -- 3: an update deploy, big against small --------------------------------------

    def m3(self):
        big = self.args.rows or (50_000 if self.quick else 1_000_000)
        small = 1_000
        rounds = max(2, self.rounds // 3)
        for engine, server in self.engines(mariadb=False):
            templates = {}
            for size in (big, small):
                started = time.perf_counter()
                templates[size] = self.template(engine, server, size)
                self.note(
                    f"{engine}: {size:,} users and {size:,} chats at {FROM_REVISION} "
                    f"loaded in {time.perf_counter() - started:.1f}s"
                )
            variants = [("", {})]
            if server is None:
                # SQLite takes a backup before it applies migrations (issue 5). That copy
                # grows with the data by design, as fast as a plain copy (issue 27): the default
                # (BACKUP_KEEP=3, with the backup) is graded, and the migrations alone beside it.
                variants = [
                    (" (BACKUP_KEEP=0)", {"BACKUP_KEEP": "0"}),
                    (" (default BACKUP_KEEP=3, with the backup)", {}),
                ]
            for label, extra in variants:

                def side(url, extra=extra):
                    try:
                        return self.timed([PYTHON, MIGRATE], self.ours_env(url, **extra))
                    finally:
                        self.drop(url, server)

                times = self.alternate(
                    {big: side, small: side}, rounds, before=lambda size: self.copy(engine, server, templates[size])
                )
                self.add(
                    Row(
                        3,
                        f"update deploy {big:,} vs {small:,} rows, {engine}{label}",
                        Side(f"migrate.py from {FROM_REVISION}, {big:,} users and chats", times[big]),
                        Side(f"the same, {small:,} users and chats", times[small]),
                        "<= 1.5x",
                        1.5,
                        note=f"from {FROM_REVISION}; baseline: the same on {small:,} rows",
                    )
                )
            for url in templates.values():
                self.drop(url, server)

    def template(self, engine, server, rows: int) -> str:
        url = self.fresh(engine, server)
        self.check([PYTHON, MIGRATE, "upgrade", FROM_REVISION], self.ours_env(url))
        if server is None:
            connection = sqlite3.connect(url[len("sqlite:///") :])
            with connection:
                connection.executemany(
                    'INSERT INTO "user" (id, name, email, role, created_at, updated_at, last_active_at) '
                    "VALUES (?, ?, ?, 'user', ?, ?, ?)",
                    (
                        (
                            f"u{i}",
                            f"User {i}",
                            f"user{i}@example.com",
                            1_700_000_000 + i,
                            1_700_000_000 + i,
                            1_700_000_000 + i,
                        )
                        for i in range(rows)
                    ),
                )
                connection.executemany(
                    "INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived) "
                    "VALUES (?, ?, ?, '{\"messages\": []}', ?, ?, 0)",
                    ((f"c{i}", f"u{i % rows}", f"Chat {i}", 1_700_000_000 + i, 1_700_000_000 + i) for i in range(rows)),
                )
            connection.close()
        else:
            from tests.support.pgserver import execute

            execute(
                url,
                'INSERT INTO "user" (id, name, email, role, created_at, updated_at, last_active_at) '
                "SELECT 'u' || g, 'User ' || g, 'user' || g || '@example.com', 'user', "
                "1700000000 + g, 1700000000 + g, 1700000000 + g FROM generate_series(1, %s) AS g",
                (rows,),
            )
            execute(
                url,
                "INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived) "
                "SELECT 'c' || g, 'u' || (g %% %s + 1), 'Chat ' || g, '{\"messages\": []}', "
                "1700000000 + g, 1700000000 + g, false FROM generate_series(1, %s) AS g",
                (rows, rows),
            )
            execute(url, "VACUUM (FREEZE, ANALYZE)")
        return url

    def copy(self, engine, server, template: str) -> str:
        if server is None:
            url = self.fresh(engine, server)
            shutil.copyfile(template[len("sqlite:///") :], url[len("sqlite:///") :])
            return url
        name = f"b_{uuid.uuid4().hex[:12]}"
        server.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template.rsplit("/", 1)[1]}"')
        return server.url(database=name)

    # -- 4 and 5: the image ---------------------------------------------------------

    def image(self) -> str | None:
        image = os.environ.get("IMAGE", "migrate-init:latest")
        if shutil.which("docker") is None:
            return None
        found = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
        return image if found.returncode == 0 else None

    def m4(self):
        image = self.image()
        if image is None:
            self.skip(4, "image bytes above its base", "skipped: no image")
            return
        layers = self._layers(image)
        base, base_layers = None, []
        hint = os.environ.get("BASE_IMAGE")
        candidates = [hint] if hint else []
        listed = subprocess.run(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True
        ).stdout.split()
        candidates += [name for name in listed if "<none>" not in name]
        for name in candidates:
            theirs = self._layers(name)
            if (
                theirs
                and len(theirs) < len(layers)
                and layers[: len(theirs)] == theirs
                and len(theirs) > len(base_layers)
            ):
                base, base_layers = name, theirs
        if base is None:
            self.skip(4, "image bytes above its base", "skipped: the base image is not present")
            return
        added = self._size(image) - self._size(base)
        naive = self.naive_venv_bytes()
        self.add(
            Row(
                4,
                "image bytes above its base",
                Side(f"{image} above {base}", [added]),
                Side("naive venv: python -m venv + pip install -r requirements.txt", [naive]),
                "<= 40 MB",
                IMAGE_LIMIT / naive,
                unit="MB",
                note="baseline: a naive venv with pip and the same requirements, built and measured now",
            )
        )

    def naive_venv_bytes(self) -> int:
        """What a naive image copies: a venv with pip, and requirements.txt installed the ordinary way."""
        venv = self.work / "naive-venv"
        self.check([PYTHON, "-m", "venv", venv], dict(os.environ))
        wheels = REPO / "wheels"
        source = ["--no-index", "--find-links", wheels] if any(wheels.glob("*.whl")) else []
        self.check(
            [
                venv / "bin" / "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                *source,
                "-r",
                REPO / "requirements.txt",
            ],
            dict(os.environ),
        )
        total = 0
        for folder, _dirs, files in os.walk(venv):
            for name in files:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    total += os.path.getsize(path)
        return total

    def _layers(self, image: str) -> list[str]:
        import json

        result = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", image], capture_output=True, text=True
        )
        return json.loads(result.stdout) if result.returncode == 0 and result.stdout.strip() else []

    def _size(self, image: str) -> int:
        result = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True, check=True
        )
        return int(result.stdout.strip())

    def m5(self):
        image = self.image()
        if image is None:
            self.skip(5, "docker run at target", "skipped: no image")
            return
        volume = f"migrate-init-bench-{uuid.uuid4().hex[:8]}"
        subprocess.run(["docker", "volume", "create", volume], check=True, capture_output=True)
        try:
            run = ["docker", "run", "--rm", "--network", "none", "-v", f"{volume}:/app/backend/data"]
            env = dict(os.environ)
            self.check([*run, image], env)
            out = self.check([*run, "-e", "LOG_LEVEL=DEBUG", image], env)
            if "Fast path: the database is at" not in out:
                self.note("the image's run at target did not take the fast path:\n" + out)
            ours = lambda _c: self.timed([*run, image], env)  # noqa: E731
            # `true` as the entrypoint: the container's own cost (as a command, our
            # entrypoint would run the init sequence first: wrapper mode).
            base = lambda _c: self.timed([*run, "--entrypoint", "true", image], env)  # noqa: E731
            times = self.alternate({"ours": ours, "true": base}, self.rounds)
            self.add(
                Row(
                    5,
                    "docker run at target vs true",
                    Side("docker run IMAGE, at target", times["ours"]),
                    Side("docker run --entrypoint true IMAGE", times["true"]),
                    "<= 1.3x",
                    1.3,
                    note="SQLite volume; baseline: docker run --entrypoint true",
                )
            )
        finally:
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)

    # -- 6: sixteen runners at once ---------------------------------------------------

    def runners(self, server, count: int, through=None):
        """A side: ``count`` runners at once on a fresh database (through ``through(url)``), wall time."""

        def run(url):
            env = self.ours_env(through(url) if through else url)
            try:
                started = time.perf_counter()
                procs = [
                    subprocess.Popen(
                        [PYTHON, MIGRATE],
                        env=env,
                        cwd=REPO,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                    for _ in range(count)
                ]
                outs = [proc.communicate()[0] for proc in procs]
                elapsed = time.perf_counter() - started
                for proc, out in zip(procs, outs, strict=True):
                    if proc.returncode != 0:
                        raise SystemExit(f"bench: a runner exited {proc.returncode}:\n{out}")
                upgraded = sum("Upgraded base (empty)" in out for out in outs)
                if upgraded != 1:
                    raise SystemExit(f"bench: {upgraded} runners upgraded, not 1")
                return elapsed
            finally:
                self.drop(url, server)

        return run

    def m6(self):
        rounds = max(2, self.rounds // 2)
        for engine, server in self.engines():
            times = self.alternate(
                {16: self.runners(server, 16), 1: self.runners(server, 1)},
                rounds,
                before=lambda _n, engine=engine, server=server: self.fresh(engine, server),
            )
            self.add(
                Row(
                    6,
                    f"16 runners at once vs 1, {engine}",
                    Side("16 runners, until the last exits", times[16]),
                    Side("1 runner", times[1]),
                    "<= 2x",
                    2.0,
                    note="fresh database, wall time until the last exits",
                )
            )

    # -- 7: long chains -------------------------------------------------------------------

    def chain(self, length: int, flavour: str = "ops") -> Path:
        """``alembic init``'s generic folder with a generated linear chain of ``length`` revisions."""
        folder = self.work / f"chain-{flavour}-{length}"
        if folder.exists():
            return folder
        folder.mkdir()
        self.check([ALEMBIC, "init", "--template", "generic", "migrations"], self.base_env(""), cwd=folder)
        versions = folder / "migrations" / "versions"
        previous = None
        for index in range(length):
            table = f"t{index // 10}"
            if index % 10 == 0:
                body = (
                    f"op.execute('CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40))')"
                    if flavour == "sql"
                    else f"op.create_table('{table}', sa.Column('id', sa.Integer, primary_key=True), "
                    "sa.Column('name', sa.String(40)))"
                )
            else:
                body = (
                    f"op.execute('ALTER TABLE {table} ADD COLUMN c{index} VARCHAR(40)')"
                    if flavour == "sql"
                    else f"op.add_column('{table}', sa.Column('c{index}', sa.String(40), nullable=True))"
                )
            revision = f"r{index:05d}"
            (versions / f"{revision}.py").write_text(
                f'"""step {index}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
                f"revision = {revision!r}\ndown_revision = {previous!r}\nbranch_labels = None\n"
                f"depends_on = None\n\n\ndef upgrade():\n    {body}\n\n\ndef downgrade():\n    pass\n"
            )
            previous = revision
        return folder

    def chain_ini(self, folder: Path, url: str) -> Path:
        sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
        text = (folder / "alembic.ini").read_text()
        lines = [
            "sqlalchemy.url = " + sqlalchemy_url.replace("%", "%%") if line.startswith("sqlalchemy.url") else line
            for line in text.splitlines()
        ]
        ini = folder / f"alembic-{uuid.uuid4().hex[:8]}.ini"
        ini.write_text("\n".join(lines) + "\n")
        return ini

    def chain_env(self, folder: Path, url: str) -> dict[str, str]:
        env = self.ours_env(url, folder / "migrations")
        del env["MODELS"]
        return env

    def m7(self):
        lengths = (10, 100) if self.quick else (10, 100, 500, 1000)
        rounds = max(2, self.rounds // 3)
        for engine, server in self.engines(mariadb=False):
            slopes: dict[str, list[tuple[int, float]]] = {}
            for length in lengths:
                folder = self.chain(length)
                inis: dict[str, Path] = {}

                def fresh(name, folder=folder, engine=engine, server=server, length=length):
                    url = self.fresh(engine, server)
                    inis[url] = self.chain_ini(folder, url)
                    if name.startswith("+1"):
                        self.check([ALEMBIC, "-c", inis[url], "upgrade", f"r{length - 2:05d}"], self.base_env(""))
                    return url

                def side(make_argv):
                    def run(url):
                        argv, env = make_argv(url)
                        try:
                            return self.timed(argv, env)
                        finally:
                            self.drop(url, server)

                    return run

                ours = side(lambda url, folder=folder: ([PYTHON, MIGRATE], self.chain_env(folder, url)))
                base = side(lambda url: ([ALEMBIC, "-c", inis[url], "upgrade", "head"], self.base_env("")))
                sides = {"fresh ours": ours, "fresh alembic": base, "+1 ours": ours, "+1 alembic": base}
                self.alternate(sides, 1, before=fresh)
                times = self.alternate(sides, rounds, before=fresh)
                for kind in ("fresh", "+1"):
                    self.add(
                        Row(
                            7,
                            f"{kind} chain of {length}, {engine}",
                            Side(f"migrate.py, {kind}", times[f"{kind} ours"]),
                            Side(f"alembic upgrade head, {kind}", times[f"{kind} alembic"]),
                            "<= 1.0x",
                            1.0,
                            note="generated chain, stock env.py; baseline: plain alembic on the same folder",
                        )
                    )
                    for who in ("ours", "alembic"):
                        slopes.setdefault(f"{kind} {who}", []).append(
                            (length, statistics.median(times[f"{kind} {who}"]))
                        )
                # The no-op at this length, against the floor.
                url = self.fresh(engine, server)
                self.check([PYTHON, MIGRATE], self.chain_env(folder, url))
                self.check([PYTHON, MIGRATE], self.chain_env(folder, url))
                floor_target = url[len("sqlite:///") :] if server is None else url
                noop = self.alternate(
                    {
                        "ours": lambda _c, url=url, folder=folder: self.timed(
                            [PYTHON, MIGRATE], self.chain_env(folder, url)
                        ),
                        "floor": lambda _c, url=floor_target: self.timed(
                            [PYTHON, self.floors[engine], url], self.base_env("")
                        ),
                    },
                    self.rounds,
                )
                self.drop(url, server)
                self.add(
                    Row(
                        7,
                        f"no-op at a chain of {length}, {engine}",
                        Side("migrate.py at target", noop["ours"]),
                        Side(f"floor: python + {FLOOR_DRIVERS[engine]} version query", noop["floor"]),
                        "<= 1.25x",
                        1.25,
                        note="floor: python + one version query with the same bare driver",
                    )
                )
                slopes.setdefault("no-op ours", []).append((length, statistics.median(noop["ours"])))
            # The harder baseline: the longest chain written as plain SQL, for alembic.
            longest = lengths[-1]
            sql = self.chain(longest, "sql")
            inis = {}

            def fresh_sql(_name, engine=engine, server=server, sql=sql):
                url = self.fresh(engine, server)
                inis[url] = self.chain_ini(sql, url)
                return url

            def sql_alembic(url, server=server):
                try:
                    return self.timed([ALEMBIC, "-c", inis[url], "upgrade", "head"], self.base_env(""))
                finally:
                    self.drop(url, server)

            def sql_ours(url, server=server, sql=sql):
                try:
                    return self.timed([PYTHON, MIGRATE], self.chain_env(sql, url))
                finally:
                    self.drop(url, server)

            times = self.alternate({"ours": sql_ours, "alembic": sql_alembic}, rounds, before=fresh_sql)
            self.add(
                Row(
                    7,
                    f"fresh chain of {longest} as plain SQL, {engine}",
                    Side("migrate.py", times["ours"]),
                    Side("alembic upgrade head", times["alembic"]),
                    "info",
                    None,
                    note="the chain written as op.execute(SQL): the harder baseline",
                )
            )
            for name, points in slopes.items():
                (short, low), (long_, high) = points[0], points[-1]
                self.note(
                    f"{engine} slope, {name}: {(high - low) * 1000 / (long_ - short):.2f} ms per revision "
                    f"({short} -> {long_})"
                )

    # -- 8: a no-op on a big table --------------------------------------------------------

    def m8(self):
        big = self.args.rows or (50_000 if self.quick else 1_000_000)
        for engine, server in self.engines(mariadb=False):
            url = self.template(engine, server, big)
            self.check([PYTHON, MIGRATE], self.ours_env(url))
            self.check([PYTHON, MIGRATE], self.ours_env(url))
            floor_target = url[len("sqlite:///") :] if server is None else url
            times = self.alternate(
                {
                    "ours": lambda _c, url=url: self.timed([PYTHON, MIGRATE], self.ours_env(url)),
                    "floor": lambda _c, url=floor_target: self.timed(
                        [PYTHON, self.floors[engine], url], self.base_env("")
                    ),
                },
                self.rounds,
            )
            self.drop(url, server)
            self.add(
                Row(
                    8,
                    f"no-op at {big:,} rows, {engine}",
                    Side("migrate.py at target", times["ours"]),
                    Side(f"floor: python + {FLOOR_DRIVERS[engine]} version query", times["floor"]),
                    "<= 1.25x",
                    1.25,
                    note="floor: python + one version query with the same bare driver",
                )
            )

    # -- 9: sixteen runners through PgBouncer -----------------------------------------------

    def m9(self):
        server = None if self.args.sqlite_only else self.postgres()
        if server is None:
            self.skip(9, "16 runners through PgBouncer vs direct", "skipped: no PostgreSQL")
            return
        try:
            from tests.support.pgbouncer import in_front_of
        except ImportError as exc:
            self.skip(9, "16 runners through PgBouncer vs direct", f"skipped: {exc}")
            return
        for mode in ("transaction", "session"):
            try:
                bouncer = in_front_of(server, mode)
            except Exception as exc:
                self.skip(9, f"16 runners through PgBouncer ({mode}) vs direct", f"skipped: {exc}")
                return
            try:
                times = self.alternate(
                    {"pgbouncer": self.runners(server, 16, bouncer.through), "direct": self.runners(server, 16)},
                    max(2, self.rounds // 2),
                    before=lambda _n: self.fresh("PostgreSQL", server),
                )
            finally:
                bouncer.stop()
            self.add(
                Row(
                    9,
                    f"16 runners through PgBouncer ({mode}) vs direct",
                    Side(f"16 runners through PgBouncer, pool_mode={mode}", times["pgbouncer"]),
                    Side("16 runners, direct", times["direct"]),
                    "info",
                    None,
                    note="fresh database, Debian's pgbouncer with its packaged pool sizes (issue 23)",
                )
            )

    # -- the table ----------------------------------------------------------------------

    def table(self) -> str:
        header = ("#", "measurement", "n", "ours min/med/max", "baseline min/med/max", "ratio", "goal", "result")
        lines = []
        for r in self.rows:
            n = "-" if r.ours is None or r.unit == "MB" else str(len(r.ours.values))
            lines.append(
                (
                    str(r.number),
                    r.name,
                    n,
                    r.ours.spread(r.unit) if r.ours else "-",
                    r.baseline.spread(r.unit) if r.baseline else "-",
                    "-" if r.ratio is None else f"{r.ratio:.2f}x",
                    r.goal or "-",
                    r.verdict,
                )
            )
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
        render = lambda row: "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()  # noqa: E731
        out = [render(header), render(tuple("-" * w for w in widths))]
        out += [render(row) for row in lines]
        notes = list(dict.fromkeys(f"  {r.number}: {r.note}" for r in self.rows if r.note))
        return "\n".join(out + (["", *notes] if notes else []))

    def close(self):
        if self.pg is not None:
            self.pg.stop()
        if self.my is not None:
            self.my.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The issue 14 benchmark: ours against the baselines.")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller tables (a smoke run)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8,9", help="the measurements to run, e.g. 1,6")
    parser.add_argument("--sqlite-only", action="store_true", help="skip the PostgreSQL and MariaDB rows")
    parser.add_argument("--rounds", type=int, default=0, help="rounds per measurement (row 1 runs twice as many)")
    parser.add_argument("--rows", type=int, default=0, help="users and chats of measurement 3's big side")
    args = parser.parse_args(argv)
    wanted = {int(part) for part in args.only.split(",") if part.strip()}
    bench = Bench(args)
    try:
        print(
            f"migrate-init benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC: "
            f"python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()}), "
            f"load {os.getloadavg()[0]:.2f}, {bench.rounds} rounds{' (quick)' if args.quick else ''}",
            flush=True,
        )
        for number in sorted(wanted):
            print(f"[{number}]", flush=True)
            getattr(bench, f"m{number}")()
        print()
        print(f"load at the end: {os.getloadavg()[0]:.2f}")
        print(bench.table())
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
