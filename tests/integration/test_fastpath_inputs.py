"""Issue 25 N18: the fast path vouches only for what its manifest can see.

The manifest says "nothing to do" while the files it hashed are unchanged.
Three shapes of models and folders went past it (fast path exit 0, full path
exit 7): models installed in site-packages, which the manifest left out as a
library; a baked folder copied elsewhere, whose manifest hashed the original's
absolute paths; and models that read environment variables.  Each test makes
the change the manifest missed and expects the full path's verdict.
"""

from __future__ import annotations

import shutil

from tests.integration.test_fastpath import (
    NICKNAME,
    PHONE,
    STALE,
    assert_as_the_full_path,
    assert_fast,
    assert_slow,
    at_target,
    build_manifest,
    cache_folder,
    cached_manifests,
    data_dir,
    env_for,
    summary_line,
    traced_run,
)
from tests.support.chains import SHIPPED, Chain
from tests.support.process import run_migrate


def test_models_installed_in_site_packages_that_gain_a_column_send_the_run_down_the_full_path(sqlite_url, tmp_path):
    """MODELS names a package a pip upgrade changes: the manifest must see its files."""
    site = tmp_path / "lib" / "site-packages"
    (site / "appmodels").mkdir(parents=True)
    models = site / "appmodels" / "__init__.py"
    shutil.copy(SHIPPED / "models.py", models)
    copy = Chain(tmp_path / "migrations")
    extra = {"MODELS": "appmodels:Base", "PYTHONPATH": site}
    result = run_migrate("manifest", env={"MIGRATIONS_DIR": copy.path, **extra})
    assert result.code == 0, result.out
    assert run_migrate(env=env_for(sqlite_url, copy, **extra)).code == 0

    models.write_text(models.read_text().replace(PHONE, PHONE + NICKNAME))  # the app's next release
    result = traced_run(sqlite_url, copy, **extra)

    assert result.code == 7, result.out
    assert_slow(result, STALE)
    assert "table 'user' lacks columns: nickname" in summary_line(result.out)
    assert_as_the_full_path(result, sqlite_url, copy, **extra)


def test_a_baked_folder_copied_elsewhere_is_vouched_for_by_its_own_files_and_an_edit_there_is_seen(
    sqlite_url, tmp_path
):
    """The manifest travels with the folder: it names the files inside it relative to it."""
    original = Chain(tmp_path / "baked")
    build_manifest(original)
    moved = Chain(tmp_path / "moved")
    shutil.rmtree(moved.path)
    shutil.copytree(original.path, moved.path)  # the baked .manifest.marshal too
    at_target(sqlite_url, moved)
    for folder in (cache_folder(sqlite_url, moved), data_dir(moved), moved.path):
        for cache in cached_manifests(folder):
            cache.unlink()  # only the baked manifest answers, as in a new container

    unchanged = traced_run(sqlite_url, moved)
    moved.edit_models(PHONE, PHONE + NICKNAME)
    result = traced_run(sqlite_url, moved)

    assert unchanged.code == 0, unchanged.out
    assert_fast(unchanged)  # the copy's own files, hashed by their place in the folder, vouch for it

    assert result.code == 7, result.out
    assert_slow(result, STALE)
    assert_as_the_full_path(result, sqlite_url, moved)
