#!/usr/bin/env python3
"""The compose demo app: it starts only after `migrate` exited 0 and reads what it left.

It prints the database's Alembic revision and the row counts of `user` and
`chat`, then exits 0, or 1 when the schema is not there.  It runs in the
migrate-init image itself (docker-compose.yaml overrides the entrypoint), so
the demo needs no second image; a real application would be its own image
with the same `depends_on`.

`app.py serve` does the same check, then serves HTTP on PORT (8080) the way the
Kubernetes manifests probe an app: /healthz while the process runs, /readyz
while the database answers (503 when it does not).  The image tests play the
manifests with it (tests/image/test_kubernetes_play.py).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url


def database_url() -> str:
    path = os.environ.get("DATABASE_URL_FILE")
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    data_dir = os.environ.get("DATA_DIR", "/app/backend/data")
    return os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir}/webui.db"


def engine_url():
    url = make_url(database_url())
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        # SQLAlchemy 2.1 reads plain postgresql:// as psycopg 3; the image ships psycopg2
        url = url.set(drivername="postgresql+psycopg2")
    elif url.drivername in ("mysql", "mariadb") and importlib.util.find_spec("MySQLdb") is None:
        # plain mysql:// and mariadb:// mean mysqlclient to SQLAlchemy; the image ships PyMySQL
        url = url.set(drivername=f"{url.drivername}+pymysql")
    return url


def report(engine, safe: str) -> int:
    """Print what migrate-init left: 0, or 1 when the schema is not there."""
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            missing = {"alembic_version", "user", "chat"} - tables
            if missing:
                print(
                    f"app: {safe} lacks the tables {', '.join(sorted(missing))}; was migrate-init run?", file=sys.stderr
                )
                return 1
            revisions = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
            # "user" on SQLite and PostgreSQL, `user` on MySQL and MariaDB
            user_table = connection.dialect.identifier_preparer.quote_identifier("user")
            users = connection.execute(text(f"SELECT count(*) FROM {user_table}")).scalar_one()
            chats = connection.execute(text("SELECT count(*) FROM chat")).scalar_one()
    finally:
        engine.dispose()
    print(
        f"app: database {safe} is at revision {', '.join(sorted(revisions)) or '(none)'}; "
        f"user rows: {users}, chat rows: {chats}",
        flush=True,
    )
    return 0


def serve(engine) -> None:
    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                code = 200
            elif self.path == "/readyz":
                try:
                    with engine.connect() as connection:
                        connection.execute(text("SELECT 1"))
                    code = 200
                except Exception:
                    code = 503
            else:
                code = 404
            self.send_response(code)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # a probe every few seconds is not news

    # As PID 1 a process gets no default action for SIGTERM: without a handler every stop
    # would wait out the runtime's grace period and end in SIGKILL.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    port = int(os.environ.get("PORT", "8080"))
    print(f"app: serving /healthz and /readyz on port {port}", flush=True)
    ThreadingHTTPServer(("", port), Probes).serve_forever()


def main(argv: list[str]) -> int:
    url = engine_url()
    engine = create_engine(url)
    code = report(engine, url.render_as_string(hide_password=True))
    if code == 0 and argv[1:] == ["serve"]:
        serve(engine)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
