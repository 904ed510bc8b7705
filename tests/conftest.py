"""Shared fixtures: where the real open ICU data lies (../shared/data beside the repo)."""

import os
from pathlib import Path

# The suite's models are tiny: one thread each is faster than two competing OpenMP threads,
# and notebooks executed by the tests inherit the setting through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real open data not found at {SHARED_DATA} (CI and developers have it beside the repo)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One torch thread for every test module, module-scoped fixtures (trained models) included.

    Tiny models gain nothing from intra-op threads and lose a lot on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's parsed-cohort cache out of the repository's data/ folder."""
    monkeypatch.setenv("TARDIFF_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cohort-cache"))
