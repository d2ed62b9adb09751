"""The documented commands, the release facts and the Kubernetes validation commands, as written.

- Every command of the ``sh``, ``bash`` and ``console`` blocks of README.md, CONTRIBUTING.md,
  deploy/kubernetes/README.md, docs/*.md and examples/**/README.md is either run by a test exactly as written, or marked
  in the document as an example that no test runs: a comment line ``# example: REASON`` above it
  covers the commands below it up to the next blank line or the end of the block (CONTRIBUTING.md,
  "Commands in the documents"). tests/image/test_docs_commands.py runs those that need Docker or a
  database, naming each with ``documented(...)``; this module runs the Kubernetes validation
  commands. A command that is neither, a marker with no reason or no command, and a command a test
  runs that no document shows (an edited document, a stale test) fail here.
- Every ``migrate-init:X.Y.Z`` tag that the README, docs/, deploy/, the Dockerfile and
  CONTRIBUTING.md show is the version in migrate_init/__init__.py, and CHANGELOG.md has an
  entry for it: a version bump that forgets one of them fails here.
- The commands under "Validating the manifests" in deploy/kubernetes/README.md run exactly
  as written, from the repository root, and pass (tests/run.sh installs their tools).
"""

from __future__ import annotations

import importlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate_init import __version__
from tests.support import REPO

KUBERNETES_README = REPO / "deploy" / "kubernetes" / "README.md"
VERSIONED_FILES = sorted(
    [
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
        REPO / "Dockerfile",
        KUBERNETES_README,
        *(REPO / "docs").glob("*.md"),
        *(REPO / "deploy").rglob("*.yaml"),
    ],
)
TAG = re.compile(r"\bmigrate-init:(\d+\.\d+\.\d+)\b")

# --- the documented commands ---------------------------------------------------------------

#: The documents whose commands must be run or marked.
DOCUMENTS = [
    REPO / "README.md",
    REPO / "CONTRIBUTING.md",
    KUBERNETES_README,
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "examples").glob("**/README.md")),
]
#: The blocks that hold commands: shell scripts, and console transcripts (``$ `` prompts).
SHELL_LANGUAGES = {"sh", "bash", "console"}
#: The module that runs the documented commands that need Docker or a database.
RUNNER_MODULE = "tests.image.test_docs_commands"
#: Fewer than this many commands means the extraction broke, not that the documents lost them.
MIN_COMMANDS = 40
#: ```lang at any indentation (a block inside a list item), up to the closing fence at the same one.
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL
)
MARKER = re.compile(r"^# example: (?P<reason>\S.*)$")
#: What a misspelt marker looks like: it would leave its command unmarked, so it is refused.
NEAR_MARKER = re.compile(r"^#\s*example\b", re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    document: str  # relative to the repository
    line: int  # of the block's first line in the document
    language: str
    lines: tuple[str, ...]  # without the fence's indentation


@dataclass(frozen=True)
class Command:
    document: str
    line: int
    text: str  # as written: continuation lines joined with "\n", a trailing comment left out
    example: str  # the marker's reason; "" for a command a test must run

    def __str__(self) -> str:
        return f"{self.document}:{self.line}: {self.text}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        line = text.count("\n", 0, match.start("body")) + 1
        lines = tuple(
            raw[indent:] if raw.startswith(match["indent"]) else raw.lstrip() for raw in match["body"].splitlines()
        )
        found.append(Block(str(path.relative_to(REPO)), line, match["lang"], lines))
    return found


def strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` after a blank, outside quotes)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def _parse(block: Block) -> tuple[list[Command], list[str]]:
    """The commands of a shell or console block, and what is wrong with its markers."""
    console = block.language == "console"
    commands: list[Command] = []
    problems: list[str] = []
    reason, marker_line, marked = "", 0, 0
    index = 0

    def end_of_marker() -> None:
        if reason and not marked:
            problems.append(f"{block.document}:{marker_line}: '# example:' marks no command below it")

    while index < len(block.lines):
        raw = block.lines[index]
        number = block.line + index
        index += 1
        stripped = raw.strip()
        if not stripped:
            end_of_marker()
            reason, marked = "", 0
            continue
        if stripped.startswith("#"):
            marker = MARKER.match(stripped)
            if marker:
                end_of_marker()
                reason, marker_line, marked = marker["reason"].strip(), number, 0
            elif NEAR_MARKER.match(stripped):
                problems.append(
                    f"{block.document}:{number}: {stripped!r} is not a marker: write "
                    "'# example: REASON' on a line of its own"
                )
            continue
        if console:
            if not raw.startswith("$ "):
                continue  # output
            raw = raw[2:]
        parts = [strip_comment(raw)]
        while parts[-1].endswith("\\") and index < len(block.lines):
            following = block.lines[index]
            index += 1
            parts.append(strip_comment(following[2:] if console and following.startswith("> ") else following))
        commands.append(Command(block.document, number, "\n".join(parts), reason))
        marked += 1
    end_of_marker()
    return commands, problems


def documented_commands() -> tuple[list[Command], list[str]]:
    """Every command of the documents' shell and console blocks, and every marker problem."""
    commands: list[Command] = []
    problems: list[str] = []
    for path in DOCUMENTS:
        for block in blocks(path):
            if block.language in SHELL_LANGUAGES:
                found, wrong = _parse(block)
                commands += found
                problems += wrong
    return commands, problems


def transcript(document: str, first: str) -> list[tuple[str, list[str]]]:
    """The console block of ``document`` whose first command is ``first``: each command with the
    output lines the document shows for it."""
    for block in blocks(REPO / document):
        if block.language == "console" and block.lines and block.lines[0] == f"$ {first}":
            steps: list[tuple[str, list[str]]] = []
            for line in block.lines:
                if line.startswith("$ "):
                    steps.append((line[2:], []))
                else:
                    steps[-1][1].append(line)
            return steps
    raise AssertionError(f"{document} has no console block that starts with '$ {first}'")


COMMANDS, MARKER_PROBLEMS = documented_commands()


def runnable(text: str) -> bool:
    """Whether ``text`` is a command a document shows, exactly, and does not mark as an example."""
    return any(command.text == text and not command.example for command in COMMANDS)


def _run_by_tests() -> dict[str, str]:
    """Each command a test runs as written, and where."""
    runner = importlib.import_module(RUNNER_MODULE)
    run = {text: f"{RUNNER_MODULE.replace('.', '/')}.py" for text in runner.RUN}
    run.update({text: "tests/unit/test_docs_commands.py (Validating the manifests)" for text in KUBERNETES_COMMANDS})
    return run


def test_the_extraction_finds_the_commands_of_every_document():
    # Guards the tests below against passing because nothing matched.
    assert len(COMMANDS) >= MIN_COMMANDS, [str(c) for c in COMMANDS]
    by_document = {command.document for command in COMMANDS}
    for name in (
        "README.md",
        "CONTRIBUTING.md",
        "deploy/kubernetes/README.md",
        "docs/commands.md",
        "docs/image.md",
        "docs/air-gapped.md",
        "docs/troubleshooting.md",
        "docs/performance.md",
        "examples/fastapi/README.md",
        "examples/flask/README.md",
    ):
        assert name in by_document, f"no command found in {name}"
    # a block inside a list item, a continued line, a console transcript, a trailing comment
    texts = {command.text for command in COMMANDS}
    assert "kubectl create secret generic your-app-database --from-file=database-url=./database-url" in texts
    assert any(text.startswith("docker run --rm --user 1000650000:0") and "\n  -v " in text for text in texts)
    assert "python migrate.py current" in texts
    assert "docker-compose up --build" in texts
    assert sum(1 for command in COMMANDS if command.example) >= 10


def test_the_parser_reads_markers_continuations_comments_and_prompts():
    script = Block(
        "x.md",
        10,
        "sh",
        (
            "run me  # a comment, not part of the command",
            "# example: needs a cluster",
            "kubectl apply \\",
            "  -k folder",
            "rm file",
            "",
            "echo '# not a comment' \"a # b\"",
            "# example:",
            "#Example: misspelt",
            "# example: marks nothing",
        ),
    )
    commands, problems = _parse(script)
    assert [(c.line, c.text, c.example) for c in commands] == [
        (10, "run me", ""),
        (12, "kubectl apply \\\n  -k folder", "needs a cluster"),
        (14, "rm file", "needs a cluster"),
        (16, "echo '# not a comment' \"a # b\"", ""),
    ]
    assert len(problems) == 3, problems
    assert "x.md:17" in problems[0] and "x.md:18" in problems[1], problems
    assert "x.md:19: '# example:' marks no command" in problems[2], problems

    console = Block("y.md", 1, "console", ("$ python migrate.py status", "pending:  4", "$ echo $?", "1"))
    assert [c.text for c in _parse(console)[0]] == ["python migrate.py status", "echo $?"]


def test_every_example_marker_gives_a_reason_and_marks_a_command():
    assert MARKER_PROBLEMS == []


def test_a_prompt_appears_only_in_a_console_block():
    # a transcript in an unlabelled block would hide its commands from the extraction
    for path in DOCUMENTS:
        for block in blocks(path):
            if block.language not in SHELL_LANGUAGES:
                prompts = [line for line in block.lines if line.startswith("$ ")]
                assert not prompts, f"{block.document}:{block.line}: label this block ```console: {prompts}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.document}:{c.line}")
def test_every_documented_command_is_run_by_a_test_or_marked_as_an_example(command):
    run = _run_by_tests()
    if command.example:
        assert command.text not in run, (
            f"{command}\nis marked '# example: {command.example}', but {run[command.text]} runs it: remove the marker"
        )
    else:
        assert command.text in run, (
            f"{command}\nis run by no test. Run it, exactly as written, from {RUNNER_MODULE.replace('.', '/')}.py "
            "(documented(...)), or mark it in the document with a line '# example: REASON' above it "
            "(CONTRIBUTING.md, 'Commands in the documents')."
        )


def test_every_command_a_test_runs_is_documented_as_written():
    stale = [text for text in _run_by_tests() if not runnable(text)]
    assert stale == [], (
        f"these commands are run by tests but no document shows them as written (or it marks them as examples): {stale}"
    )


def test_the_runner_names_each_command_once():
    runner = importlib.import_module(RUNNER_MODULE)
    assert len(runner.RUN) == len(set(runner.RUN)), sorted(runner.RUN)
    assert len(runner.RUN) >= 15, runner.RUN


# --- the release tag -----------------------------------------------------------------------


@pytest.mark.parametrize("path", VERSIONED_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_documented_image_tag_is_the_package_version(path):
    tags = set(TAG.findall(path.read_text()))
    assert tags <= {__version__}, f"{path.name} shows migrate-init:{tags - {__version__}}; the release is {__version__}"


def test_the_documents_do_show_the_release_tag():
    # Guards the test above against passing because nothing matched.
    shown = [path for path in VERSIONED_FILES if f"migrate-init:{__version__}" in path.read_text()]
    assert REPO / "Dockerfile" in shown and KUBERNETES_README in shown, shown


def test_the_changelog_has_an_entry_for_the_release():
    changelog = (REPO / "CHANGELOG.md").read_text()
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, flags=re.MULTILINE)
    assert entries and entries[0] == __version__, f"CHANGELOG.md's newest entry is {entries[:1]}, not {__version__}"


# --- the Kubernetes validation commands ----------------------------------------------------


def _section_commands(path, heading: str) -> list[str]:
    """The commands of the shell blocks under ``## heading``, up to the next ``## ``."""
    text = path.read_text()
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    first, last = text.count("\n", 0, start) + 1, text.count("\n", 0, end if end != -1 else len(text)) + 1
    document = str(path.relative_to(REPO))
    return [
        command.text
        for command in COMMANDS
        if command.document == document and first <= command.line <= last and not command.example
    ]


KUBERNETES_COMMANDS = _section_commands(KUBERNETES_README, "Validating the manifests")


def test_the_kubernetes_readme_shows_validation_commands():
    assert len(KUBERNETES_COMMANDS) >= 3, KUBERNETES_COMMANDS


@pytest.mark.parametrize(
    "command",
    KUBERNETES_COMMANDS,
    ids=[f"{i}-{c.split('|')[-1].split()[0].rsplit('/', 1)[-1]}" for i, c in enumerate(KUBERNETES_COMMANDS, 1)],
)
def test_kubernetes_validation_command_passes_as_written(command):
    # pipefail: a kubectl that fails must not hide behind a validator that read nothing
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"{command}\nexit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
