"""The private Alembic names migrate-init relies on, pinned (issue 21, item 4).

``ScriptDirectory._upgrade_revs`` and ``ScriptDirectory._stamp_revs`` have no
public equivalent: they are what ``alembic.command.upgrade`` and
``alembic.command.stamp`` hand to ``EnvironmentContext(fn=...)`` themselves.
migrate-init calls them the same way (alembic_glue.upgrade and .stamp) so that
it can run the user's env.py on its own connection and see each step before
it runs.  This test fails on an Alembic whose own commands stop calling them,
or outside the versions migrate-init was tested with: then read the new
``alembic/command.py`` and follow what it does.
"""

from __future__ import annotations

import inspect

import alembic
from alembic import command
from alembic.script import ScriptDirectory
from packaging.version import Version

#: The Alembic versions requirements.txt has pinned while these calls were tested.
TESTED = (Version("1.13"), Version("1.21"))


def test_alembic_is_a_version_the_private_calls_were_tested_with():
    low, high = TESTED
    assert low <= Version(alembic.__version__) < high, (
        f"alembic {alembic.__version__}: check that command.upgrade/stamp still call "
        "ScriptDirectory._upgrade_revs/_stamp_revs, then widen TESTED"
    )


def test_alembics_own_upgrade_and_stamp_commands_call_the_same_private_methods():
    assert "script._upgrade_revs(revision, rev)" in inspect.getsource(command.upgrade)
    assert "script._stamp_revs(" in inspect.getsource(command.stamp)


def test_the_private_methods_take_the_arguments_migrate_init_passes():
    assert list(inspect.signature(ScriptDirectory._upgrade_revs).parameters) == ["self", "destination", "current_rev"]
    assert list(inspect.signature(ScriptDirectory._stamp_revs).parameters)[:3] == ["self", "revision", "heads"]


def test_the_migration_contexts_transaction_flags_the_guard_reads_still_exist():
    """alembic_glue._commit_follows reads MigrationContext._transaction_per_migration and
    ._in_external_transaction to skip a RELEASE SAVEPOINT that the migration's COMMIT makes moot
    (issue 27).  Were they renamed it would read False and release as before (slower, not wrong);
    this says so first."""
    from alembic.runtime.migration import MigrationContext

    source = inspect.getsource(MigrationContext.__init__)
    assert "self._transaction_per_migration = " in source
    assert "self._in_external_transaction = " in source
