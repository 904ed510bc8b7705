"""Shared fixtures: where the real open ICU data lies (../shared/data beside the repo)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real open data not found at {SHARED_DATA} (CI and developers have it beside the repo)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's parsed-cohort cache out of the repository's data/ folder."""
    monkeypatch.setenv("TARDIFF_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cohort-cache"))
