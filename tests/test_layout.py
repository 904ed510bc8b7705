"""The package's layout: one job per module, and no module so long that it holds several (issue #22)."""

from conftest import REPO

#: The most lines a module of the package may have; a longer one is split along its jobs.
MAX_MODULE_LINES = 600


def test_no_module_exceeds_the_line_limit():
    too_long = {}
    for path in sorted((REPO / "tardiff").rglob("*.py")):
        with path.open(encoding="utf-8") as fh:
            n = sum(1 for _ in fh)
        if n > MAX_MODULE_LINES:
            too_long[path.relative_to(REPO).as_posix()] = n
    assert not too_long, (
        f"modules over {MAX_MODULE_LINES} lines (split each along its jobs): "
        + ", ".join(f"{name} ({n} lines)" for name, n in too_long.items()))
