"""``migrate.py graph``: the revision graph as a picture, in Mermaid (the default) or Graphviz DOT (issue 26).

Alembic's ``history`` prints the graph as lines of text, one edge each: a
reviewer cannot see where the chain branches or joins.  Mermaid renders in a
GitHub pull request or README as it is pasted; DOT goes to ``dot -Tsvg``.

Each revision is a node labelled with its id and its message; an arrow goes
from a revision to the one that revises it (oldest at the top).  Marked:

- a merge point (it revises several revisions): a hexagon, ``merge`` in the label;
- a branch point (several revisions revise it): ``branch point`` in the label;
- the database's current revision(s): a thick border and ``current``;
- pending revisions (not yet applied to the database): dashed, ``pending``;
- ``depends_on``: a dotted arrow.
"""

from __future__ import annotations

import re
from typing import Any

#: The styles of the marks, shared by both formats' legends.
_MERMAID_CLASSES = (
    "    classDef applied fill:#e8f5e9,stroke:#2e7d32",
    "    classDef current fill:#c8e6c9,stroke:#1b5e20,stroke-width:4px",
    "    classDef pending fill:#fff8e1,stroke:#f57f17,stroke-dasharray:5 5",
)


def render(script: Any, current: tuple[str, ...], pending: tuple[str, ...] | list[str], fmt: str) -> list[str]:
    """The graph of Alembic's ScriptDirectory ``script`` as lines of ``fmt`` (``mermaid`` or ``dot``)."""
    nodes = _nodes(script, current, set(pending))
    return _mermaid(nodes) if fmt == "mermaid" else _dot(nodes)


class _Node:
    __slots__ = ("depends", "doc", "downs", "marks", "revision", "state")

    def __init__(self, revision: str, doc: str, downs: tuple[str, ...], depends: tuple[str, ...]) -> None:
        self.revision = revision
        self.doc = doc
        self.downs = downs
        self.depends = depends
        self.marks: list[str] = []
        self.state = "applied"


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _nodes(script: Any, current: tuple[str, ...], pending: set[str]) -> list[_Node]:
    # Oldest first: walk_revisions() goes from the heads down.
    found = list(reversed(list(script.walk_revisions())))
    nodes = [
        _Node(
            str(r.revision),
            (r.doc or "").strip().splitlines()[0] if r.doc else "",
            _tuple(r.down_revision),
            _tuple(r.dependencies),
        )
        for r in found
    ]
    children: dict[str, int] = {}
    for node in nodes:
        for down in node.downs:
            children[down] = children.get(down, 0) + 1
    for node in nodes:
        if len(node.downs) > 1:
            node.marks.append("merge")
        if children.get(node.revision, 0) > 1:
            node.marks.append("branch point")
        if node.revision in current:
            node.state = "current"
            node.marks.append("current")
        elif node.revision in pending:
            node.state = "pending"
            node.marks.append("pending")
    return nodes


def _id(revision: str) -> str:
    return "r_" + re.sub(r"[^A-Za-z0-9_]", "_", revision)


def _label(node: _Node, newline: str) -> str:
    text = node.revision + (f"{newline}{node.doc}" if node.doc and node.doc != node.revision else "")
    if node.marks:
        text += f"{newline}({', '.join(node.marks)})"
    return text


def _mermaid(nodes: list[_Node]) -> list[str]:
    lines = ["flowchart TD"]
    for node in nodes:
        label = _label(node, "<br/>").replace('"', "#quot;")
        shape = ('{{"', '"}}') if "merge" in node.marks else ('["', '"]')
        lines.append(f"    {_id(node.revision)}{shape[0]}{label}{shape[1]}")
    for node in nodes:
        lines.extend(f"    {_id(down)} --> {_id(node.revision)}" for down in node.downs)
        lines.extend(f"    {_id(dep)} -.-> {_id(node.revision)}" for dep in node.depends)
    lines.extend(_MERMAID_CLASSES)
    for state in ("applied", "current", "pending"):
        members = [_id(n.revision) for n in nodes if n.state == state]
        if members:
            lines.append(f"    class {','.join(members)} {state}")
    return lines


_DOT_STYLE = {
    "applied": 'style="filled", fillcolor="#e8f5e9", color="#2e7d32"',
    "current": 'style="filled,bold", fillcolor="#c8e6c9", color="#1b5e20", penwidth=3',
    "pending": 'style="filled,dashed", fillcolor="#fff8e1", color="#f57f17"',
}


def _dot(nodes: list[_Node]) -> list[str]:
    lines = ["digraph revisions {", "    rankdir=TB;", '    node [shape=box, fontname="monospace"];']
    for node in nodes:
        label = _label(node, "\\n").replace('"', '\\"')
        shape = ", shape=hexagon" if "merge" in node.marks else ""
        lines.append(f'    "{node.revision}" [label="{label}", {_DOT_STYLE[node.state]}{shape}];')
    for node in nodes:
        lines.extend(f'    "{down}" -> "{node.revision}";' for down in node.downs)
        lines.extend(f'    "{dep}" -> "{node.revision}" [style=dotted];' for dep in node.depends)
    lines.append("}")
    return lines
