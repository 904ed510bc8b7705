"""Build the whole book at smoke scale in a scratch copy and look at it in headless Chromium.

What a reader gets: the results page with its table and figure once experiments have run,
every experiment page that was executed showing tables and figures, and no JavaScript errors.
The build happens in a temporary copy of the book's sources, so the repository's own
``_build/`` and executed pages (perhaps from a ``cpu``-scale build) are left alone; with
``TARDIFF_TEST_BOOK=ROOT`` the tests open the smoke book already built there (CI's).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tardiff import book

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
GENERATED = ("experiments", "teaching", "figures", "results_table.md")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--virtual-time-budget=5000", "--window-size=1280,1600",
    "--enable-logging=stderr", "--v=0",
]

pytestmark = pytest.mark.slow


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    pytest.skip("Chromium is not installed (apt-get install -y chromium); the book was not opened in a browser")


def _open(chromium: str, page: Path, tmp_path: Path) -> tuple[str, list[str], Path]:
    """The page's DOM after its scripts ran, the console errors it logged, and a screenshot."""
    assert page.is_file(), f"{page} was not built"
    url = page.resolve().as_uri()
    profile = tmp_path / f"profile-{page.stem}"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-dom", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / f"{page.stem}.png"
    capture = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-shot", f"--screenshot={shot}", url],
                             capture_output=True, text=True, timeout=120)
    assert capture.returncode == 0, capture.stderr[-2000:]
    errors = [line for line in (dom.stderr + capture.stderr).splitlines()
              if "Uncaught" in line or "ERROR:CONSOLE" in line]
    return dom.stdout, errors, shot


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    # CI builds this very book (smoke scale, warnings as errors) just before `make test` and names
    # its root here, so the suite looks at that build instead of making a second one (7 minutes).
    prebuilt = os.environ.get("TARDIFF_TEST_BOOK")
    if prebuilt:
        root = Path(prebuilt)
        assert (root / "_build" / "html" / "book" / "results.html").is_file(), (
            f"TARDIFF_TEST_BOOK={prebuilt} holds no built book; unset it or run `tardiff book --scale smoke` there")
        return root
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book", ignore=lambda d, names: [
        n for n in names if Path(d).resolve() == (REPO / "book").resolve() and n in GENERATED])
    if (REPO / "notebooks").is_dir():
        shutil.copytree(REPO / "notebooks", root / "notebooks",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    data_dir = SHARED_DATA if SHARED_DATA.is_dir() else None
    book.build_book(scale="smoke", data_dir=data_dir, progress=False, warnings_as_errors=True, root=root)
    return root


def test_results_page_shows_its_table_and_figure(built_book, tmp_path):
    chromium = _chromium()
    # The simulated experiment needs no data, so every build executes it and gathers its results.
    assert (built_book / "book" / "experiments" / "simulated" / "summary.csv").is_file()
    html = built_book / "_build" / "html" / "book" / "results.html"
    dom, errors, shot = _open(chromium, html, tmp_path)
    assert errors == [], errors
    assert shot.stat().st_size > 10_000
    assert re.search(r"<h1[^>]*>\s*Results", dom)
    assert "<table" in dom, "the cross-dataset table is not on the results page"
    assert "TarDiff" in dom and "MCRAGE" in dom
    img = re.search(r'<img[^>]+src="([^"]*results_overview\.png)"', dom)
    assert img, "the results figure is not on the page"
    assert (html.parent / img.group(1)).is_file()


def test_experiment_pages_render(built_book, tmp_path):
    chromium = _chromium()
    pages = built_book / "_build" / "html" / "book" / "experiments"
    # Every experiment page exists: executed, or a note that the data is missing.
    for run in book.NOTEBOOK_RUNS:
        if run.kind == "experiment":
            assert (pages / f"{run.name}.html").is_file(), run.name
    executed = [run for run in book.NOTEBOOK_RUNS
                if run.kind == "experiment" and (built_book / run.output).is_file()]
    assert "simulated" in [run.name for run in executed], "the simulated experiment was not executed"
    for run in executed:
        dom, errors, _ = _open(chromium, pages / f"{run.name}.html", tmp_path)
        assert errors == [], (run.name, errors)
        assert "<table" in dom, f"{run.name}: no table"
        assert "<img" in dom, f"{run.name}: no figure"
        # the glued verdict: each TarDiff variant against each compared baseline, from the replicated comparison
        verdict = re.search(r"TarDiff[^<]{0,40} against [^<]{0,60}, paired AUPRC difference over \d+ replicates?"
                            r".{0,2000}?(<strong>higher</strong>|<strong>lower</strong>|no evidence either way|"
                            r"one replicate: no interval)", dom, re.S)
        assert verdict, f"{run.name}: no glued verdict"


def test_intro_page_has_no_script_errors(built_book, tmp_path):
    chromium = _chromium()
    dom, errors, _ = _open(chromium, built_book / "_build" / "html" / "book" / "intro.html", tmp_path)
    assert errors == [], errors
    assert "TarDiff compendium" in dom
    # citations resolved to the bibliography (the link's tooltip is the reference)
    assert re.search(r'href="references\.html#[^"]+" title="Bowen Deng', dom)


def test_equations_are_typeset_offline(built_book, tmp_path):
    """MathJax ships with the book (jupyter-server-mathjax): the methods chapter's equations are
    typeset in a browser that has no internet, instead of showing their LaTeX source."""
    chromium = _chromium()
    html = built_book / "_build" / "html" / "book" / "methods.html"
    assert (built_book / "_build" / "html" / "_static" / "mathjax" / "MathJax.js").is_file()
    dom, errors, _ = _open(chromium, html, tmp_path)
    assert errors == [], errors
    typeset = re.findall(r'id="MathJax-Element-\d+-Frame"', dom)
    assert len(typeset) > 50, f"only {len(typeset)} equations were typeset"


def test_no_page_shows_the_builders_folders(built_book):
    """Parameters name data as $TARDIFF_DATA_DIR/<sub-folder>: no page, nor the notebook a reader downloads,
    shows the repository, the data folder or the home folder of the machine that built the book."""
    import os

    folders = {str(REPO), str(REPO.resolve()), str(built_book), str(built_book.resolve()),
               os.path.expanduser("~") + "/"}
    if SHARED_DATA.is_dir():
        folders |= {str(SHARED_DATA), str(SHARED_DATA.resolve())}
    html = built_book / "_build" / "html"
    published = [*html.rglob("*.html"), *html.rglob("*.ipynb"), *(built_book / "book").rglob("*.ipynb")]
    assert published
    for page in published:
        text = page.read_text(encoding="utf-8", errors="replace")
        leaked = [folder for folder in folders if folder in text]
        assert not leaked, f"{page.relative_to(built_book)} shows {leaked}"
    injected = (built_book / "book" / "experiments" / "simulated.ipynb").read_text()
    assert '"data_dir": null' in injected or "data_dir = None" in injected
