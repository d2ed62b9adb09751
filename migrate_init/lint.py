"""Lint the migration scripts for destructive and non-idempotent patterns.  Read-only.

Two passes.  The source pass reads each script's ``upgrade()`` with ``ast``
and reports file:line.  The SQL pass runs the whole chain on a throwaway
SQLite database (the scripts inspect a live database, so offline mode cannot
render them) and classifies every statement with the same rules as the
upgrade guard; if ``squawk`` is installed, its PostgreSQL rules read that SQL
too.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import guard, report, url
from .effects import EffectGuard
from .errors import PreviewRefused

_DESTRUCTIVE_CALLS = {
    "drop_table": "drop table",
    "drop_column": "drop column",
    "rename_table": "rename table",
}
_CREATING_CALLS = {"create_table", "add_column", "create_index"}
_GUARDS = (
    "inspect",
    "has_table",
    "get_table_names",
    "get_columns",
    "get_indexes",
    "_if_missing",
    "table_exists",
    "column_exists",
    "if_not_exists",
)


#: How much a finding weighs: errors fail ``lint`` (exit 1); warnings and notes do not (issue 24).
#: An error is what ``run`` would refuse or fail on: a loss seen in the catalog, a chain that does not
#: run, a file that does not parse.  A warning is a text rule's hint (the effect decides).  A note is
#: advice that matters only somewhere (a re-run on MySQL/MariaDB).
SEVERITIES = ("error", "warning", "note")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str  # "destructive", "non-idempotent", "unpreviewed" or "error"
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.message} [{self.severity}]"


def scan_sources(versions: Path) -> list[Finding]:
    findings: list[Finding] = []
    for path in sorted(versions.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            findings.append(Finding(str(path), exc.lineno or 1, "error", f"syntax error: {exc.msg}"))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
                findings.extend(_scan_upgrade(path, node))
    return findings


def _scan_upgrade(path: Path, function: ast.FunctionDef) -> list[Finding]:
    findings = []
    source = ast.unparse(function)
    guarded = any(word in source for word in _GUARDS)
    for node in ast.walk(function):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        where = (str(path), node.lineno)
        if name in _DESTRUCTIVE_CALLS:
            findings.append(Finding(*where, "destructive", f"{name}(): {_DESTRUCTIVE_CALLS[name]}", _HINT))
        elif name == "alter_column":
            if "type_" in keywords:
                findings.append(
                    Finding(*where, "destructive", "alter_column(type_=...): changes a column's type", _HINT)
                )
            if "new_column_name" in keywords:
                findings.append(
                    Finding(*where, "destructive", "alter_column(new_column_name=...): renames a column", _HINT)
                )
            if _is_false(keywords.get("nullable")) and "server_default" not in keywords:
                findings.append(
                    Finding(*where, "destructive", "alter_column(nullable=False) without a server_default", _HINT)
                )
        elif (
            name == "execute"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found = guard.classify(node.args[0].value)
            if found:
                findings.append(Finding(*where, "destructive", f"execute(): {found[0]} {found[1]}", _HINT))
        elif name == "add_column":
            column = next((a for a in node.args if isinstance(a, ast.Call)), None)
            if column is not None:
                kw = {k.arg: k.value for k in column.keywords if k.arg}
                if _is_false(kw.get("nullable")) and "server_default" not in kw:
                    findings.append(
                        Finding(*where, "destructive", "add_column(): NOT NULL column without a server_default", _HINT)
                    )
        if name in _CREATING_CALLS and not guarded and _is_op_call(node):
            # What `alembic revision --autogenerate` writes: fine where a failed migration rolls back
            # whole (SQLite, PostgreSQL), so only a note (issue 24).
            findings.append(
                Finding(
                    *where,
                    "non-idempotent",
                    f"op.{name}() without an existence check; on MySQL/MariaDB, whose DDL "
                    "commits at once, a run interrupted after it cannot simply run again "
                    "(inspect first, e.g. sa.inspect(op.get_bind()).has_table(...))",
                    "note",
                )
            )
    return findings


#: The source pass's destructive rules read text: hints, the SQL pass's catalog verdict decides.
_HINT = "warning"


def _is_op_call(node: ast.Call) -> bool:
    value = getattr(node.func, "value", None)
    return isinstance(value, ast.Name) and value.id in ("op", "batch_op")


def _is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


# Rules the runtime already covers: DDL runs under DDL_LOCK_TIMEOUT and
# MIGRATION_TIMEOUT, and the helpers make statements re-runnable by
# inspecting the database first rather than with IF [NOT] EXISTS.
_SQUAWK_EXCLUDED = ("require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts")
_LINT_SCHEMA = "migrate_init_lint"


def scan_sql(loaded: Any, cfg: Any) -> tuple[list[Finding], list[Any], str]:
    """Run the whole chain from an empty database in a rolled-back transaction; classify its SQL.

    On PostgreSQL the chain runs in an empty scratch schema of DATABASE_URL's
    database, so the SQL is exact PostgreSQL for squawk; otherwise, or when
    that is not possible, on a throw-away SQLite file.  Returns the
    findings, the steps (revision, path, statements) and where the SQL came from.
    """

    database = cfg.database
    if database.engine.has_schemas:
        try:
            findings, steps = _scan_on(database, loaded, prepare=_scratch_schema)
            return findings, steps, f"PostgreSQL (scratch schema {_LINT_SCHEMA}, rolled back)"
        except Exception as exc:  # unreachable, or no right to create a schema
            note = f"SQLite: the PostgreSQL dry run was not possible ({report.first_line(exc)})"
    else:
        note = "SQLite (a throw-away file)"
    with tempfile.TemporaryDirectory(prefix="migrate-init-lint-") as folder:
        findings, steps = _scan_on(url.parse(f"sqlite:///{folder}/lint.db"), loaded)
    return findings, steps, note


def _scratch_schema(connection: Any) -> None:
    connection.exec_driver_sql(f"CREATE SCHEMA {_LINT_SCHEMA}")
    connection.exec_driver_sql(f"SET LOCAL search_path TO {_LINT_SCHEMA}")


def _no_scratch_schema_left(engine: Any) -> None:
    """The scratch schema lives and dies with the dry run's transaction; should anything have committed
    it (a commit through the bare driver, which the dry run finds but cannot stop), it goes (issue 25 N1)."""
    with engine.connect() as connection:
        if connection.exec_driver_sql("SELECT to_regnamespace(%(name)s) IS NOT NULL", {"name": _LINT_SCHEMA}).scalar():
            connection.exec_driver_sql(f"DROP SCHEMA {_LINT_SCHEMA} CASCADE")
            connection.commit()


class Step:
    def __init__(self, revision: str, path: str, statements: list[str]) -> None:
        self.revision = revision
        self.path = path
        self.statements = statements


def _scan_on(database: Any, loaded: Any, prepare: Any = None) -> tuple[list[Finding], list[Step]]:
    glue = loaded.glue
    engine = glue.create_engine(database, busy_timeout=5)
    config = glue.alembic_config(
        loaded.script.dir and Path(loaded.script.dir), database, models=loaded.config.attributes.get("models")
    )

    # From an empty database every table is empty, so judging by values would
    # find nothing: lint reports the candidates, what `run` judges by the data.
    effects = EffectGuard(False, record=True, judge_values=False)
    progress = glue.Progress(loaded.script, 0, guard=effects, dry_run=True)
    unpreviewed: list[Finding] = []
    try:
        with report.quiet():
            glue.dry_run(config, loaded.script, engine, ["heads"], progress, prepare=prepare)
    except PreviewRefused as exc:
        # `run` applies such a revision in a transaction of its own: a warning that the SQL pass stopped there.
        unpreviewed.append(
            Finding(
                progress.failed_path or str(loaded.script.dir),
                1,
                "unpreviewed",
                f"the SQL pass stopped at {exc.revision or 'env.py'} and did not run what "
                f"follows it: {exc.revision or 'env.py'} {exc.why} (a dry run cannot run "
                "that); `run` applies it in a transaction of its own",
                _HINT,
            )
        )
    except Exception as exc:
        if not progress.begun and prepare is not None:
            raise  # the scratch schema itself failed: the caller falls back to SQLite
        return [
            Finding(
                str(loaded.script.dir),
                1,
                "error",
                f"the chain does not run on an empty {database.backend} database: "
                f"{type(exc).__name__}: {report.first_line(exc)}",
            )
        ], _steps(progress)
    finally:
        if prepare is not None and progress.begun:
            _no_scratch_schema_left(engine)
        engine.dispose()
    # A warning, not an error: from an empty database lint sees what a revision may lose, and `run`
    # (and `plan`, on the real database) refuse it only where values would be lost (issues 22, 24).
    findings = unpreviewed + [
        Finding(
            f.path,
            1,
            "destructive",
            f"effect of {f.revision}: {loss.describe()}; `run` refuses it only if values "
            f"would be lost (allow it by name: ALLOW_DESTRUCTIVE={f.revision})",
            _HINT,
        )
        for f in effects.findings
        for loss in f.losses
    ]
    judged = {f.revision for f in effects.findings}
    for step in _steps(progress):
        for text in step.statements:
            found = guard.classify(text)
            if found and step.revision not in judged:
                # A text rule is a hint: the catalog's verdict above is the one `run` and `plan` act on.
                findings.append(
                    Finding(
                        step.path,
                        1,
                        "destructive",
                        f"SQL of {step.revision}: {found[0]} {found[1]}: {text[:120]}",
                        "note",
                    )
                )
    return findings, _steps(progress)


def _steps(progress: Any) -> list[Step]:
    return [Step(s.revision, s.path, progress.statements.get(s.revision, [])) for s in progress.begun]


def squawk(steps: list[Step]) -> list[str] | None:
    """squawk's advice on each revision's SQL, as ``file: revision: rule: message`` lines.

    None when the squawk tool is not installed.  Advisory: the destructive
    operations it knows are the ones this module already reports.
    """
    executable = shutil.which("squawk")
    if executable is None:
        return None
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="migrate-init-squawk-") as folder:
        files = {}
        for step in steps:
            if step.statements:
                path = Path(folder) / f"{step.revision}.sql"
                path.write_text("\n".join(s + ";" for s in step.statements) + "\n")
                files[str(path)] = step
        if not files:
            return lines
        result = subprocess.run(
            [
                executable,
                "--reporter",
                "gcc",
                "--assume-in-transaction",
                f"--exclude={','.join(_SQUAWK_EXCLUDED)}",
                *files,
            ],
            capture_output=True,
            text=True,
        )
    for line in result.stdout.splitlines():
        source, _, rest = line.partition(":")
        found = files.get(source)
        if found is not None:
            message = rest.split(": ", 1)[-1].strip()
            lines.append(f"{found.path}: {found.revision}: {message}")
    return lines
