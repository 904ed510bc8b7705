"""The book's configuration, table of contents, CI workflow, and builder (no Sphinx run here)."""

import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from tardiff import book
from tardiff.book import sphinx as book_sphinx
from tardiff.data import DATASETS
from tardiff.errors import DataError, ParameterError, TardiffError

REPO = Path(__file__).resolve().parents[1]


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ------------------------------------------------------------------ configuration and toc


def test_config_never_executes_and_excludes_non_pages():
    config = _yaml(REPO / "_config.yml")
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["sphinx"]["config"]["nb_execution_mode"] == "off"
    assert config["only_build_toc_files"] is True
    excluded = set(config["exclude_patterns"])
    for pattern in (".venv", "data", "tests", "notebooks", "benchmarks", "**.ipynb_checkpoints", "README.md",
                    "**.failed.ipynb"):
        assert pattern in excluded, pattern
    assert "tardiff.book.sphinx" in config["sphinx"]["extra_extensions"]
    assert all((REPO / bib).is_file() for bib in config["bibtex_bibfiles"])
    launch = config["launch_buttons"]
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert launch["colab_url"] == "https://colab.research.google.com"
    assert config["html"]["use_repository_button"] is True
    assert not (REPO / "_static").exists()  # the stylesheet lives in book/assets
    for folder in config["sphinx"]["config"]["html_static_path"]:
        for css in config["sphinx"]["config"]["html_css_files"]:
            assert (REPO / folder / css).is_file()


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file"):
                files.append(value)
            else:
                files += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += _toc_files(item)
    return files


def test_every_toc_entry_exists_or_is_generated():
    files = _toc_files(_yaml(REPO / "_toc.yml"))
    assert files[0] == "book/intro"
    assert len(files) == len(set(files)), "a page is listed twice"
    generated = {run.page for run in book.NOTEBOOK_RUNS}
    assert generated <= set(files), f"runs missing from the toc: {generated - set(files)}"
    for entry in files:
        assert not entry.endswith((".md", ".ipynb")), f"{entry}: toc entries omit the suffix"
        if entry not in generated:
            assert (REPO / f"{entry}.md").is_file(), f"{entry}.md is missing"


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (REPO / "book" / "references.bib").read_text(), flags=re.M))
    assert {"deng2025tardiff", "behal2023mcrage", "chawla2002smote", "ho2020ddpm", "song2021ddim"} <= keys
    cited = set()
    for page in (REPO / "book").glob("*.md"):
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited, "no page cites anything"
    assert cited <= keys, f"cited but not in references.bib: {cited - keys}"


def test_notebook_runs_are_consistent():
    names = [r.name for r in book.NOTEBOOK_RUNS]
    assert len(names) == len(set(names))
    for run in book.NOTEBOOK_RUNS:
        assert run.output.startswith(("book/experiments/", "book/teaching/")) and run.output.endswith(".ipynb")
        if run.kind == "experiment":
            assert run.source == book.EXPERIMENT_NOTEBOOK
            assert run.dataset in DATASETS and run.parameters["dataset"] == run.dataset
            assert run.parameters["task"] in DATASETS[run.dataset].tasks
            assert set(run.demo_subdirs) <= set(run.data_subdirs)
        # papermill parameters must be plain Python values
        assert all(isinstance(v, (str, int, float, bool, type(None))) for v in run.parameters.values())
    assert {r.name for r in book.NOTEBOOK_RUNS if r.kind == "teaching"} == {
        "tutorial_01_diffusion", "tutorial_02_influence", "tutorial_03_guidance"}
    with pytest.raises(ParameterError, match="unknown book notebook"):
        book.get_run("nope")
    with pytest.raises(ParameterError):
        book.NotebookRun("x", "X", "notebooks/x.ipynb", "book/x.md", "teaching")


def test_pages_workflow_builds_uploads_and_deploys():
    wf = _yaml(REPO / ".github" / "workflows" / "book.yml")
    triggers = wf.get("on", wf.get(True))  # PyYAML reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"]
    build_steps = wf["jobs"]["build"]["steps"]
    uses = [s.get("uses", "") for s in build_steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    setup = next(s for s in build_steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert any(s.get("run", "").strip() == "make book" for s in build_steps)
    upload = next(s for s in build_steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    assert deploy["environment"]["name"] == "github-pages"


def test_pages_workflow_points_the_repository_link_at_its_own_repository():
    """The workflow's sed rewrites repository.url in _config.yml, and nothing else."""
    wf = _yaml(REPO / ".github" / "workflows" / "book.yml")
    steps = wf["jobs"]["build"]["steps"]
    names = [s.get("run", "").strip() for s in steps]
    rewrite = next(i for i, run in enumerate(names) if run.startswith("sed ") and "_config.yml" in run)
    assert rewrite < names.index("make book")
    pattern, replacement = re.search(r'"s\|(.+?)\|(.+?)\|"', names[rewrite]).groups()
    assert "${{ github.repository }}" in replacement
    text = (REPO / "_config.yml").read_text()
    rewritten = re.sub(pattern, replacement.replace("${{ github.repository }}", "someone/fork"),
                       text, flags=re.MULTILINE)
    before, after = yaml.safe_load(text), yaml.safe_load(rewritten)
    assert after["repository"]["url"] == "https://github.com/someone/fork"
    after["repository"]["url"] = before["repository"]["url"]
    assert after == before


# ------------------------------------------------------------------ building (Sphinx stubbed out)


def _fake_root(tmp_path: Path, with_experiment_notebook: bool = True) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    if with_experiment_notebook:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        (root / "notebooks").mkdir()
        nbformat.write(nb, root / book.EXPERIMENT_NOTEBOOK)
    return root


@pytest.fixture
def no_sphinx(monkeypatch):
    calls = []

    def fake_build(root=".", warnings_as_errors=False, progress=True):
        calls.append((Path(root), warnings_as_errors))
        return Path(root) / "_build" / "html"

    monkeypatch.setattr(book.build, "run_jupyter_book", fake_build)
    return calls


def test_build_book_writes_a_data_absent_page(tmp_path, no_sphinx, monkeypatch):
    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    root = _fake_root(tmp_path)
    empty = tmp_path / "no-data"
    empty.mkdir()
    stale = root / "book" / "experiments" / "physionet2012"
    stale.mkdir(parents=True)
    (stale / "summary.csv").write_text("stale")
    (root / "book" / "experiments" / "physionet2012.ipynb").write_text("{}")  # an old executed page

    html = book.build_book(scale="smoke", data_dir=empty, only=["physionet2012"], progress=False,
                           warnings_as_errors=True, root=root)

    assert html == root / "_build" / "html" and no_sphinx == [(root, True)]
    page = root / "book" / "experiments" / "physionet2012.md"
    text = page.read_text()
    assert text.startswith("# PhysioNet/CinC Challenge 2012: data not found")
    assert "`$TARDIFF_DATA_DIR/physionet2012`" in text  # where it looked, without the builder's folder names
    assert str(empty) not in text
    assert DATASETS["physionet2012"].how_to_get in text
    assert DATASETS["physionet2012"].license in text
    assert "tardiff book --data-dir /path/to/data --only physionet2012" in text
    assert "-p dataset physionet2012 -p task mortality -p data_dir /path/to/data/physionet2012" in text
    assert not (root / "book" / "experiments" / "physionet2012.ipynb").exists()
    assert not (stale / "summary.csv").exists()  # results must not outlive their page
    # every other toc page exists as a placeholder, so the toc resolves
    for run in book.NOTEBOOK_RUNS:
        if run.name != "physionet2012":
            placeholder = (root / f"{run.page}.md").read_text()
            assert "was not selected in this build" in placeholder
    assert "No experiment has produced results" in (root / book.RESULTS_TABLE).read_text()
    assert not (root / book.RESULTS_FIGURE).exists()


def test_build_book_default_data_folder_and_missing_sources(tmp_path, no_sphinx, monkeypatch):
    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    root = _fake_root(tmp_path)
    book.build_book(scale="cpu", only=["mimic3", "tutorial_01_diffusion"], progress=False, root=root, download=False)
    text = (root / "book" / "experiments" / "mimic3.md").read_text()
    assert "- `$TARDIFF_DATA_DIR/mimic3`\n- `$TARDIFF_DATA_DIR/mimic3_demo`" in text  # symbolic, wherever it is
    tutorial = (root / "book" / "teaching" / "tutorial_01_diffusion.md").read_text()
    assert "that notebook is not in this copy of the repository" in tutorial

    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path / "elsewhere"))
    book.build_book(scale="cpu", only=["eicu"], progress=False, root=root, download=False)
    page = (root / "book" / "experiments" / "eicu.md").read_text()
    assert "`$TARDIFF_DATA_DIR/eicu`" in page and str(tmp_path) not in page

    with pytest.raises(TardiffError, match="tutorial_02_influence.ipynb is missing"):
        book.build_book(only=["tutorial_02_influence"], strict=True, progress=False, root=root)
    with pytest.raises(ParameterError, match="scale"):
        book.build_book(scale="huge", root=root)
    with pytest.raises(ParameterError, match="unknown book notebook"):
        book.build_book(only=["nope"], root=root)
    with pytest.raises(ParameterError, match="_config.yml"):
        book.build_book(root=tmp_path)


def test_build_book_fetches_missing_open_data_into_the_default_folder_only(tmp_path, no_sphinx, monkeypatch, capsys):
    """Without --data-dir the book downloads a chapter's open data first; offline, the chapter says so."""
    import tardiff.book.build as build

    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    root = _fake_root(tmp_path)
    asked = []

    def offline(subdirs, data_root, progress=True):
        asked.append((tuple(subdirs), Path(data_root)))
        raise DataError("could not reach physionet.org (offline)")

    monkeypatch.setattr(build, "fetch_open_data", offline)
    book.build_book(scale="smoke", only=["mimic3"], progress=False, root=root)
    assert asked == [(("mimic3", "mimic3_demo"), root / "data")]
    assert "could not be downloaded: could not reach physionet.org" in capsys.readouterr().err
    assert "`$TARDIFF_DATA_DIR/mimic3_demo`" in (root / "book" / "experiments" / "mimic3.md").read_text()
    asked.clear()
    book.build_book(scale="smoke", data_dir=tmp_path / "named", only=["mimic3"], progress=False, root=root)
    assert asked == []  # a folder the user named is never a download target


def test_build_book_renders_stored_runs_and_executes_the_rest(tmp_path, no_sphinx, monkeypatch):
    """--results: a chapter with a stored run gets results_dir (relative, no data needed); others run as before."""
    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    root = _fake_root(tmp_path)
    stored = root / "results" / "paper"
    for name, data_dir in (("physionet2012", "$TARDIFF_DATA_DIR/physionet2012"), ("mimic3", "$TARDIFF_DATA_DIR/mimic3_demo")):
        (stored / name).mkdir(parents=True)
        (stored / name / "results.json").write_text(json.dumps({"config": {"dataset": name, "data_dir": data_dir}}))
    (stored / "eicu").mkdir()  # no results.json: not a stored run
    data = tmp_path / "data"
    data.mkdir()
    pending = []
    monkeypatch.setattr(book.build, "execute_runs", lambda runs, root, jobs, progress: pending.extend(runs) or [])
    book.build_book(scale="smoke", data_dir=data, only=["simulated", "physionet2012", "mimic3", "eicu"],
                    progress=False, root=root, results=stored)
    params = {run.name: (p, title) for run, p, title in pending}
    assert set(params) == {"simulated", "physionet2012", "mimic3"}  # eicu: no data, no stored run
    assert params["physionet2012"][0]["results_dir"] == "results/paper/physionet2012"
    assert params["physionet2012"][0]["data_dir"] is None
    assert params["mimic3"][1] == "MIMIC-III demo (open, 100 patients)"  # the stored run's data was the demo
    assert "results_dir" not in params["simulated"][0]
    assert (root / "book" / "experiments" / "eicu.md").read_text().count("data not found") == 1
    with pytest.raises(ParameterError, match="no such folder"):
        book.build_book(scale="smoke", root=root, results=tmp_path / "nope")


def test_the_kernels_get_the_data_folder_the_parameters_name(tmp_path, no_sphinx, monkeypatch):
    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    root = _fake_root(tmp_path)
    seen = []
    monkeypatch.setattr(book.build, "execute_runs",
                        lambda runs, root, jobs, progress: seen.append(os.environ.get("TARDIFF_DATA_DIR")) or [])
    book.build_book(scale="smoke", data_dir=tmp_path / "d", only=["simulated"], progress=False, root=root)
    assert seen == [str((tmp_path / "d").resolve())] and "TARDIFF_DATA_DIR" not in os.environ


def test_locate_data_prefers_the_full_dataset_and_labels_demos(tmp_path):
    run = book.get_run("mimic3")
    for sub in ("mimic3", "mimic3_demo"):
        folder = tmp_path / sub
        folder.mkdir()
        for table in ("PATIENTS", "ADMISSIONS", "ICUSTAYS", "CHARTEVENTS"):
            (folder / f"{table}.csv.gz").write_bytes(b"")
    present, folder, looked = book.locate_data(run, tmp_path)
    assert present and folder == tmp_path / "mimic3" and looked == [str(tmp_path / "mimic3")]
    assert book.run_title(run, folder) == "MIMIC-III"
    shutil.rmtree(tmp_path / "mimic3")
    present, folder, looked = book.locate_data(run, tmp_path)
    assert present and folder == tmp_path / "mimic3_demo" and len(looked) == 2
    assert book.run_title(run, folder) == "MIMIC-III demo (open, 100 patients)"
    assert book.locate_data(book.get_run("simulated"), tmp_path) == (True, None, [])


def test_run_parameters_are_plain_and_name_the_data_symbolically(tmp_path, monkeypatch):
    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    root = tmp_path
    params = book.run_parameters(book.get_run("physionet2012"), "smoke", root / "data" / "physionet2012", root)
    assert params == {"dataset": "physionet2012", "task": "mortality", "scale": "smoke",
                      "data_dir": "$TARDIFF_DATA_DIR/physionet2012", "out_dir": "book/experiments/physionet2012"}
    elsewhere = tmp_path / "shared" / "data"
    params = book.run_parameters(book.get_run("eicu_demo"), "cpu", elsewhere / "yaib_demo" / "mortality24" / "eicu_demo",
                                 root, data_dir=elsewhere)
    assert params["data_dir"] == "$TARDIFF_DATA_DIR/yaib_demo/mortality24/eicu_demo"
    stored = book.run_parameters(book.get_run("physionet2012"), "cpu", None, root,
                                 results_dir=root / "results" / "paper" / "physionet2012")
    assert stored["results_dir"] == "results/paper/physionet2012" and stored["data_dir"] is None
    outside = book.run_parameters(book.get_run("simulated"), "cpu", None, root)
    assert outside["data_dir"] is None
    assert book.run_parameters(book.get_run("tutorial_03_guidance"), "cpu", None, root) == {"scale": "cpu"}


# ------------------------------------------------------------------ notebooks and Sphinx hooks


def test_retitle_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("# Experiment: A vs B\n\nText.")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert book.retitle_notebook(path, "PhysioNet 2012")
    source = nbformat.read(path, as_version=4).cells[1].source
    assert source == "# PhysioNet 2012\n\n*Experiment: A vs B*\n\nText."
    assert book.retitle_notebook(path, "PhysioNet 2012")  # idempotent
    assert nbformat.read(path, as_version=4).cells[1].source == source


def test_launch_buttons_point_at_the_source_notebook():
    run = book.get_run("physionet2012")
    url = f"https://colab.research.google.com/github/o/r/blob/main/{run.output}"
    context = {"header_buttons": [
        {"label": "launch-buttons", "buttons": [{"url": url}]},
        {"label": "download-buttons", "buttons": [{"url": f"_sources/{run.output}"}]},
    ]}
    book_sphinx._point_launch_buttons_at_sources(None, run.page, "page.html", context, None)
    assert context["header_buttons"][0]["buttons"][0]["url"].endswith("/blob/main/notebooks/experiment.ipynb")
    assert context["header_buttons"][1]["buttons"][0]["url"] == f"_sources/{run.output}"  # downloads untouched


def test_duplicate_inline_scripts_are_dropped():
    from sphinx.builders.html._assets import _JavaScript

    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("_static/x.js"), _JavaScript("", body="const A = 1"),
               _JavaScript("", body="const B = 2")]
    context = {"script_files": scripts}
    book_sphinx._drop_duplicate_scripts(None, "p", "page.html", context, None)
    assert context["script_files"] == [scripts[0], scripts[1], scripts[3]]


@pytest.mark.slow
def test_execute_run_keeps_a_failed_notebook_and_names_it(tmp_path):
    root = tmp_path
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("scale = 'cpu'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), params,
                nbformat.v4.new_code_cell("assert scale == 'smoke', 'wrong scale'\nprint('ran at', scale)")]
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "t.ipynb")
    run = book.NotebookRun("t", "T", "notebooks/t.ipynb", "book/teaching/t.ipynb", "teaching")

    out = book.execute_run(run, {"scale": "smoke"}, root=root, progress=False)
    executed = nbformat.read(out, as_version=4)
    assert "ran at smoke" in executed.cells[-1].outputs[0]["text"]
    assert not list(out.parent.glob(".*"))  # no temporary file left behind

    with pytest.raises(TardiffError, match=r"raised AssertionError: wrong scale.*book/teaching/t\.failed\.ipynb"):
        book.execute_run(run, {"scale": "cpu"}, root=root, progress=False)
    failed = nbformat.read(root / "book" / "teaching" / "t.failed.ipynb", as_version=4)
    assert failed.cells[-1].outputs[0]["ename"] == "AssertionError"
    assert out.exists()  # the last good output is kept
    assert not list(out.parent.glob(".*"))


def _threads_notebook(root: Path, name: str) -> book.NotebookRun:
    """A notebook that records its kernel's OMP_NUM_THREADS and fails when told to."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("fail = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), params,
                nbformat.v4.new_code_cell("import os\nassert not fail, 'told to fail'\nprint('threads', os.environ.get('OMP_NUM_THREADS'))")]
    (root / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")
    return book.NotebookRun(name, name, f"notebooks/{name}.ipynb", f"book/teaching/{name}.ipynb", "teaching")


def test_execute_runs_in_parallel_finishes_every_notebook_before_raising(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(book.execute, "available_cpus", lambda: 4)
    runs = [_threads_notebook(tmp_path, name) for name in ("a", "b", "c")]
    pending = [(runs[0], {}, "a"), (runs[1], {"fail": True}, "b"), (runs[2], {}, "c")]
    with pytest.raises(TardiffError, match=r"notebooks/b\.ipynb failed for 'b'.*told to fail"):
        book.execute_runs(pending, tmp_path, jobs=2, progress=False)
    for name in ("a", "c"):  # the failure of b stopped neither
        executed = nbformat.read(tmp_path / "book" / "teaching" / f"{name}.ipynb", as_version=4)
        assert executed.cells[-1].outputs[0]["text"].strip() == "threads 2"  # 4 cores / 2 jobs
    assert (tmp_path / "book" / "teaching" / "b.failed.ipynb").is_file()
    assert "OMP_NUM_THREADS" not in os.environ  # the parent's environment is restored

    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a user's own choice wins
    (out,) = book.execute_runs([(runs[0], {}, "a")], tmp_path, jobs=2, progress=False)
    assert nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"].strip() == "threads 3"


def test_default_jobs_follow_the_cores_and_the_scale(monkeypatch):
    monkeypatch.setattr(book.execute, "available_cpus", lambda: 2)
    assert book.default_jobs("cpu") == 2 and book.default_jobs("smoke") == 2
    assert book.default_jobs("paper") == 1  # one GPU, one notebook at a time
    monkeypatch.setattr(book.execute, "available_cpus", lambda: 16)
    assert book.default_jobs("cpu") == 4
    with pytest.raises(ParameterError, match="jobs must be at least 1"):
        book.build_book(scale="smoke", root=REPO, jobs=0)


def test_mathjax_is_bundled_and_used_unless_configured():
    from types import SimpleNamespace

    source = book_sphinx.bundled_mathjax()
    assert source is not None and (source / "MathJax.js").is_file(), "jupyter-server-mathjax is a book dependency"
    config = SimpleNamespace(mathjax_path="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js")
    book_sphinx._use_bundled_mathjax(None, config)
    assert config.mathjax_path.startswith(book_sphinx.MATHJAX_STATIC + "/MathJax.js?config=")
    mine = SimpleNamespace(mathjax_path="my/mathjax.js")  # a path set in _config.yml is kept
    book_sphinx._use_bundled_mathjax(None, mine)
    assert mine.mathjax_path == "my/mathjax.js"


@pytest.mark.slow
def test_a_sphinx_warning_fails_the_build_with_one_line(tmp_path):
    root = tmp_path
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("experiments", "teaching", "figures",
                                                                                "results_table.md"))
    for run in book.NOTEBOOK_RUNS:
        book.write_not_executed_page(run, "not in this test.", root)
    book.write_results_page(root)
    assert book.run_jupyter_book(root, warnings_as_errors=True, progress=False) == root / "_build" / "html"
    assert (root / "_build" / "html" / "book" / "results.html").is_file()

    with open(root / "book" / "intro.md", "a") as fh:
        fh.write("\nSee {ref}`no-such-label`.\n")
    with pytest.raises(TardiffError, match=r"jupyter-book build failed with 1 warning.*no-such-label.*jupyter-book\.log"):
        book.run_jupyter_book(root, warnings_as_errors=True, progress=False)


def test_the_pool_starts_the_longest_notebooks_first(monkeypatch):
    from tardiff.book.execute import longest_first

    pending = [(run, {}, run.title) for run in book.NOTEBOOK_RUNS]
    order = [pending[i][0].name for i in longest_first(pending)]
    assert order.index("physionet2012") < order.index("simulated") < order.index("eicu_demo") < order.index("mimic3")
    assert all(name.startswith("tutorial") for name in order[-3:])  # the short ones fill the gaps at the end
    assert all(run.cpu_minutes > 0 for run in book.NOTEBOOK_RUNS)

    submitted = []  # and the pool receives them in that order

    class RecordingPool:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, run, *args):
            from concurrent.futures import Future

            submitted.append(run.name)
            future = Future()
            future.set_result(Path(run.output))
            return future

    monkeypatch.setattr(book.execute, "ProcessPoolExecutor", RecordingPool)
    out = book.execute_runs(pending, ".", jobs=2, progress=False)
    assert submitted == order
    assert out == [Path(run.output) for run in book.NOTEBOOK_RUNS]  # results in table order
