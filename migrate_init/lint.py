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

from . import guard, report

_DESTRUCTIVE_CALLS = {
    "drop_table": "drop table",
    "drop_column": "drop column",
    "rename_table": "rename table",
}
_CREATING_CALLS = {"create_table", "add_column", "create_index"}
_GUARDS = ("inspect", "has_table", "get_table_names", "get_columns", "get_indexes",
           "_if_missing", "table_exists", "column_exists", "if_not_exists")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str  # "destructive" or "non-idempotent"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.message}"


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
            findings.append(Finding(*where, "destructive", f"{name}(): {_DESTRUCTIVE_CALLS[name]}"))
        elif name == "alter_column":
            if "type_" in keywords:
                findings.append(Finding(*where, "destructive", "alter_column(type_=...): changes a column's type"))
            if "new_column_name" in keywords:
                findings.append(Finding(*where, "destructive", "alter_column(new_column_name=...): renames a column"))
            if _is_false(keywords.get("nullable")) and "server_default" not in keywords:
                findings.append(Finding(*where, "destructive", "alter_column(nullable=False) without a server_default"))
        elif name == "execute" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            found = guard.classify(node.args[0].value)
            if found:
                findings.append(Finding(*where, "destructive", f"execute(): {found[0]} {found[1]}"))
        elif name == "add_column":
            column = next((a for a in node.args if isinstance(a, ast.Call)), None)
            if column is not None:
                kw = {k.arg: k.value for k in column.keywords if k.arg}
                if _is_false(kw.get("nullable")) and "server_default" not in kw:
                    findings.append(Finding(*where, "destructive",
                                            "add_column(): NOT NULL column without a server_default"))
        if name in _CREATING_CALLS and not guarded and _is_op_call(node):
            findings.append(Finding(*where, "non-idempotent",
                                    f"op.{name}() without an existence check; use "
                                    f"migrate_init.ops.{_helper(name)} or inspect first"))
    return findings


def _is_op_call(node: ast.Call) -> bool:
    value = node.func.value
    return isinstance(value, ast.Name) and value.id in ("op", "batch_op")


def _helper(name: str) -> str:
    return {"create_table": "create_table_if_missing", "add_column": "add_column_if_missing",
            "create_index": "create_index_if_missing"}[name]


def _is_false(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def scan_sql(migrations_dir: Path, models: str | None) -> tuple[list[Finding], list[str]]:
    """Run the chain on a scratch SQLite file; classify what it sends.  Returns findings and the SQL."""
    from . import db, plan, scripts

    recorded: list = []
    with tempfile.TemporaryDirectory(prefix="migrate-init-lint-") as folder:
        target = db.parse(f"sqlite:///{folder}/lint.db")
        engine = db.create_engine(target, lock_timeout=5)
        config = scripts.alembic_config(migrations_dir, target, models=models)
        steps: list = []

        def current():
            return (steps[-1].revision, steps[-1].path) if steps else None

        guard.Guard(False, current, record=recorded).install(engine)
        try:
            with report.quiet():
                plan.dry_run(engine, config, ["heads"], steps=steps)
        except Exception as exc:
            return [Finding(str(migrations_dir), 1, "error",
                            f"the chain does not run on an empty SQLite database: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")], []
        finally:
            engine.dispose()
    sql = [statement + ";" for step in steps for statement in step.statements]
    findings = [
        Finding(path or str(migrations_dir), 1, "destructive", f"SQL of {revision}: {operation} {obj}: {text[:120]}")
        for revision, path, operation, obj, text in recorded
    ]
    return findings, sql


def squawk(sql: list[str]) -> list[str]:
    """squawk's findings on ``sql``, when the squawk tool is installed; else nothing."""
    executable = shutil.which("squawk")
    if executable is None or not sql:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write("\n".join(sql))
    result = subprocess.run([executable, handle.name], capture_output=True, text=True)
    Path(handle.name).unlink(missing_ok=True)
    return [line for line in result.stdout.splitlines() if line.strip()]
