"""The checksum of a revision: a hash of what its module does, not of its bytes (issue 26).

Flyway keeps a CRC32 of each migration's whole file, so a reformatted line, a
fixed typo in a comment or a changed line ending fails ``validate``, and teams
learn to run ``repair`` without looking.  A checksum that cries wolf protects
nothing.  Here the module is parsed with Python's own parser, and the hash is
taken over its syntax tree:

- comments, blank lines, indentation, line breaks, quotes and parentheses are
  not in the tree, so they cannot change the checksum;
- docstrings (the module's, and every function's and class's) are dropped
  before hashing: Alembic's header (``Revision ID``, ``Create Date``) and the
  prose around a migration are documentation;
- every statement, call, argument, name and constant is in it: a changed
  column type, a renamed table, a new ``op.execute`` or a different default
  changes the checksum, and so does a changed ``revision`` or ``down_revision``.

The tree is written out by :func:`_canonical`, not by ``ast.dump``: a field
that is ``None`` or an empty list is left out, so a Python release that adds
an optional field to a node (3.12's ``type_params``) or changes ``ast.dump``'s
defaults (3.13) does not make every revision look edited after an image
update.  Only the revision's own file is hashed: a helper it imports
(``migrate_init.ops``, a module of yours) is not.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

#: Part of every checksum: a change of recipe makes old checksums visibly of another kind, not "edited".
RECIPE = "ast1"


def of_source(source: str | bytes, filename: str = "<revision>") -> str:
    """``ast1:<sha256>`` of ``source``'s syntax tree without docstrings.  SyntaxError when it does not parse."""
    tree = ast.parse(source, filename=filename)
    _strip_docstrings(tree)
    digest = hashlib.sha256(f"migrate-init checksum {RECIPE}\0".encode())
    digest.update(_canonical(tree).encode())
    return f"{RECIPE}:{digest.hexdigest()}"


def of_file(path: str | Path) -> str | None:
    """The checksum of the revision file ``path``; None when it cannot be read or parsed (it never ran then)."""
    try:
        return of_source(Path(path).read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def of_script(script: object) -> dict[str, str]:
    """``{revision: checksum}`` of every revision of Alembic's ScriptDirectory ``script`` whose file parses."""
    sums: dict[str, str] = {}
    for found in script.walk_revisions():  # type: ignore[attr-defined]
        value = of_file(found.path) if found.path else None
        if value is not None:
            sums[str(found.revision)] = value
    return sums


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                # A function whose body was only its docstring keeps a body: ``pass`` is what it did.
                node.body = body[1:] or [ast.Pass()]


def _canonical(node: object) -> str:
    """A stable text of the tree: node types and their non-empty fields, no positions."""
    if isinstance(node, ast.AST):
        parts = []
        for name in node._fields:
            value = getattr(node, name, None)
            if value is None or value == []:
                continue
            parts.append(f"{name}={_canonical(value)}")
        return f"{type(node).__name__}({','.join(parts)})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(item) for item in node) + "]"
    return repr(node)
