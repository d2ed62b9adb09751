"""Text rules for destructive SQL: annotations in ``plan`` and findings in ``lint``, before a run.

These read statements, so they can miss a ``DO`` block or a multi-statement
string; they only help people read a plan.  What a run refuses is judged by
its effect on the catalog (:mod:`catalog`), not by these rules (issue 13).
"""

from __future__ import annotations

import re

_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w.]+)'
_RULES = [
    (re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>{_IDENT})", re.I), "drop table"),
    (
        re.compile(
            rf"^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?(?P<table>{_IDENT})\s+DROP\s+(?:COLUMN\s+)?(?!CONSTRAINT\b)(?P<column>{_IDENT})",
            re.I,
        ),
        "drop column",
    ),
    (
        re.compile(
            rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+(?:SET\s+DATA\s+)?TYPE\b",
            re.I,
        ),
        "change a column's type",
    ),
    (re.compile(rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+RENAME\b", re.I), "rename"),
    (
        re.compile(
            rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+SET\s+NOT\s+NULL",
            re.I,
        ),
        "add NOT NULL to an existing column",
    ),
    (
        re.compile(
            rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+ADD\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+(?![^;]*\bDEFAULT\b)[^;]*\bNOT\s+NULL\b",
            re.I,
        ),
        "add a NOT NULL column without a default",
    ),
    (re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?P<table>{_IDENT})", re.I), "truncate"),
]
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def classify(statement: str) -> tuple[str, str] | None:
    """``(operation, object)`` when ``statement`` is destructive, else None."""
    sql = _COMMENT.sub("", statement).strip()
    for pattern, operation in _RULES:
        match = pattern.match(sql)
        if match:
            table = _unquote(match.group("table"))
            column = match.groupdict().get("column")
            return operation, f"{table}.{_unquote(column)}" if column else table
    return None


def _unquote(name: str | None) -> str:
    return (name or "").strip('"`[]')
