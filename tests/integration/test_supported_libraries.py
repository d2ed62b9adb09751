"""A SQLAlchemy or Alembic outside the range migrate-init runs on is exit 2 before anything runs (issue 22).

A derived image that installs a project's own pins replaces the image's SQLAlchemy and Alembic
(docs/image.md, "A project pinned to another SQLAlchemy"). Each venv here is migrate-init's
requirements.txt with one library then replaced, --no-deps, by a release outside
migrate_init.libraries.SUPPORTED, as such an image would: pip resolves nothing for it, so the
release really is what an import loads. Inside the range, the third-party tests run meltano's chain
on SQLAlchemy 2.0.58 and open-webui's on 2.0.50 (tests/integration/third_party.py).
"""

from __future__ import annotations

import pytest

from migrate_init.libraries import supported_range
from tests.integration.third_party import Venv, _runtime_requirements, migrate
from tests.support import REPO
from tests.support.dbstate import tables

# The first session builds each venv with pip (cached in build/thirdparty-venv/ afterwards).
pytestmark = pytest.mark.timeout(900)

OUTSIDE = {
    # Alembic 1.20 itself declares SQLAlchemy>=2.0: only a --no-deps pin gets 1.4 beside it.
    "SQLAlchemy": "sqlalchemy==1.4.54",
    "Alembic": "alembic==1.13.3",
}


@pytest.mark.parametrize("library", sorted(OUTSIDE))
def test_a_library_outside_the_supported_range_is_exit_2_naming_both_versions_before_the_database_is_touched(
    library, tmp_path
):
    pin = OUTSIDE[library]
    venv = Venv.cached(f"outside-{library.lower()}", _runtime_requirements(), (pin,))
    installed = pin.split("==")[1]
    database = tmp_path / "app.db"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "MIGRATIONS_DIR": str(REPO / "migrations"),
        "DATA_DIR": str(tmp_path / "data"),
        "REPORT_FILE": str(tmp_path / "report.json"),
    }

    for args in ((), ("alembic", "current")):
        result = migrate(venv, *args, env=env, cwd=workdir)

        assert result.code == 2, result.out
        summary = [line for line in result.out.splitlines() if "FAILED (exit 2)" in line]
        assert summary, result.out
        assert f"{library} {installed} is installed" in summary[-1], summary
        assert supported_range(library) in summary[-1] and "docs/image.md" in summary[-1], summary
        assert "Traceback" not in result.out, result.out
        # Refused before Alembic ran: no migration, no version table.
        assert not database.exists() or tables(f"sqlite:///{database}") == set(), result.out
