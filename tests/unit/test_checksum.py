"""Issue 26: a revision's checksum follows what it does, not how it is written (migrate_init/checksum.py)."""

from __future__ import annotations

import pytest

from migrate_init import checksum
from tests.support.chains import SHIPPED

REVISION = '''"""add_note

Revision ID: 0001
Create Date: 2024-01-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    """Add the note table."""
    op.create_table("note", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.String(40)))


def downgrade() -> None:
    op.drop_table("note")
'''

SAME = {
    "a comment": REVISION.replace("def upgrade", "# reviewed on 2024-02-01\ndef upgrade"),
    "a docstring": REVISION.replace('"""Add the note table."""', '"""Add the note table, for the app\'s notes."""'),
    "the module docstring": REVISION.replace("Create Date: 2024-01-01", "Create Date: 2025-05-05"),
    "reformatting": REVISION.replace(
        'op.create_table("note", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.String(40)))',
        "op.create_table(\n        'note',\n        sa.Column('id', sa.Integer, primary_key=True),\n"
        "        sa.Column('body', sa.String(40)),\n    )",
    ),
    "line endings": REVISION.replace("\n", "\r\n"),
}

DIFFERENT = {
    "a constant": REVISION.replace("sa.String(40)", "sa.String(80)"),
    "a type": REVISION.replace("sa.String(40)", "sa.Text"),
    "a name": REVISION.replace('"note"', '"notes"', 1),
    "an argument": REVISION.replace("primary_key=True", "primary_key=True, autoincrement=False"),
    "a statement": REVISION.replace("sa.String(40)))\n", 'sa.String(40)))\n    op.execute("DELETE FROM note")\n'),
    "down_revision": REVISION.replace("down_revision = None", 'down_revision = "0000"'),
}


@pytest.mark.parametrize("edit", sorted(SAME))
def test_an_edit_that_changes_nothing_it_does_keeps_the_checksum(edit):
    assert checksum.of_source(SAME[edit]) == checksum.of_source(REVISION)


@pytest.mark.parametrize("edit", sorted(DIFFERENT))
def test_an_edit_that_changes_what_it_does_changes_the_checksum(edit):
    assert checksum.of_source(DIFFERENT[edit]) != checksum.of_source(REVISION)


def test_a_function_that_was_only_a_docstring_keeps_a_body_and_a_checksum():
    bare = 'def upgrade():\n    """Nothing yet."""\n'
    assert checksum.of_source(bare) == checksum.of_source("def upgrade():\n    pass\n")


def test_every_shipped_revision_has_a_checksum_of_this_recipe(tmp_path):
    files = sorted((SHIPPED / "versions").glob("*.py"))
    sums = {path.name: checksum.of_file(path) for path in files}
    assert all(value is not None and value.startswith(f"{checksum.RECIPE}:") for value in sums.values()), sums
    assert len(set(sums.values())) == len(files)
    broken = tmp_path / "broken.py"
    broken.write_text("def upgrade(:\n")
    assert checksum.of_file(broken) is None


@pytest.mark.parametrize("folder", ["m", "m/", "/srv/my dir#1/"])
def test_the_warning_about_an_edited_revision_names_the_versions_folder_with_one_slash(folder: str) -> None:
    from types import SimpleNamespace

    from migrate_init import history

    text = history.describe_edits(SimpleNamespace(migrations_dir=folder), ("0001",), ("0002",))  # type: ignore[arg-type]
    named = folder.rstrip("/") + "/versions"
    assert text.count(f" {named} ") == 1 and text.count(f" {named}.") == 1, text
    assert "//" not in text, text
