"""The experiment notebook: a thin page over the package, run at smoke scale like the book runs it."""

import ast
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from tardiff import book, registry
from tardiff.report import verdict_sentences

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / book.EXPERIMENT_NOTEBOOK


def _code(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_the_notebook_defines_no_functions():
    """Parameters, verdicts and tables come from the package: no def, no lambda, no class."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = _code(nb)
    assert "def " not in code and "lambda" not in code
    tree = ast.parse(code)
    defined = [type(n).__name__ for n in ast.walk(tree)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))]
    assert defined == []
    for name in ("ExperimentConfig.from_parameters", "load_results(", "verdict_sentences(", "comparisons_table(",
                 "gates_table(", "gate_admonition(", "plot_sweep(", "plot_comparisons(", "ExperimentChapter.load(",
                 "resolve_data_dir(", ".save(store_dir"):
        assert name in code, f"the notebook should call {name}"


def test_the_gate_warning_renders_as_myst_and_the_sections_are_there():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (warning,) = [c for c in nb.cells if c.cell_type == "code" and "gate_admonition(" in c.source]
    assert warning.metadata["mystnb"]["markdown_format"] == "myst"  # the admonition is a directive, not text
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert "## 4. Quality gates" in headings and "## 5. Replicated comparisons" in headings
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    for name in ("guidance_norm", "guide_last", "sweep_raw", "sweep_unit"):
        assert f"\n{name} = " in parameters.source, name


def test_the_notebook_follows_the_skeleton():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "**Objectives.**" in nb.cells[0].source and "**Prerequisites.**" in nb.cells[0].source
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    code = [c for c in nb.cells if c.cell_type == "code"]
    # the Colab install cell, then the parameters, then the cell that builds the config from them
    assert nb.cells.index(parameters) == 2 and code.index(parameters) == 1
    assert "ExperimentConfig.from_parameters" in code[2].source
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert headings[0].startswith("## 1.") and "## Summary" in headings and "## References" in headings


def test_the_first_code_cell_installs_the_package_on_colab_only():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata["tags"]  # the book hides it
    assert 'if "google.colab" in sys.modules:' in first.source
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert f"tardiff @ git+{url}" in first.source  # the repository the launch buttons point at
    namespace = {}
    exec(compile(first.source, "colab-cell", "exec"), namespace)  # elsewhere it does nothing (and installs nothing)
    assert "google.colab" not in namespace["sys"].modules


def test_the_parameters_offer_stored_runs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    for name in ("results_dir", "store_dir"):
        assert f"\n{name} = None  # " in parameters.source, name


def test_the_parameter_comment_offers_the_registered_evaluators():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    (line,) = [ln for ln in parameters.source.splitlines() if ln.startswith("evaluators =")]
    offered = line.split("#", 1)[1].split(":", 1)[1].split(";", 1)[0]
    assert [e.strip() for e in offered.split(",")] == list(registry.evaluator_names())


@pytest.mark.slow
def test_the_notebook_runs_at_smoke_scale_and_agrees_with_the_results_page(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill", reason="papermill is part of the book extra: pip install -e '.[book]'")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out_dir = tmp_path / "experiments" / "simulated"
    executed = tmp_path / "simulated.ipynb"
    stored_dir = tmp_path / "results" / "smoke" / "simulated"
    papermill.execute_notebook(str(NOTEBOOK), str(executed), kernel_name="python3", cwd=str(REPO),
                               progress_bar=False, parameters={
                                   "scale": "smoke", "out_dir": str(out_dir), "evaluators": "cnn",
                                   "sweep_raw": "0,100", "sweep_unit": "0.1", "store_dir": str(stored_dir)})
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    glued = {}
    for o in outputs:
        record = o.get("metadata", {}).get("scrapbook", {})
        if record.get("name"):
            glued[record["name"]] = next((v for k, v in o["data"].items() if k.endswith("text/markdown")), None)
    # the chapter's verdicts are the Results page's sentences, less the dataset's title: from the comparisons
    experiments = tmp_path / "experiments"
    sentences = verdict_sentences(book.collect_results(experiments),
                                  comparisons=book.collect_field(experiments, "comparisons"),
                                  generators=book.collect_field(experiments, "generators"))
    # one sentence per TarDiff variant and compared baseline (the unguided model, SMOTE, MCRAGE): none picked on test
    assert len(sentences) == len(registry.method_names("tardiff")) * 3
    assert all("replicate" in s and "Holm" in s for s in sentences)
    chapter = glued["verdict"]
    for sentence in sentences:
        assert sentence.split(": ", 1)[1] in chapter
    summary = pd.read_csv(out_dir / "summary.csv")
    assert {*registry.method_names("control"), *registry.method_names("tardiff")} <= set(summary["method"])
    assert "passes_quality_gate" in summary
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert ":::{warning}" in text or "Every generator passes" in text  # the gate's admonition was displayed

    # The run was stored: the chapter renders from it without loading data or training (an empty cache stays
    # empty), and shows the same tables and verdicts.
    assert {"results.json", "summary.csv", "provenance.json"} <= {p.name for p in stored_dir.iterdir()}
    assert {p.name for p in (stored_dir / "chapter").iterdir()} == set(book.CHAPTER_FILES.values())
    assert sum(f.stat().st_size for f in stored_dir.rglob("*") if f.is_file()) < 2_000_000
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    monkeypatch.setenv("TARDIFF_CACHE_DIR", str(cache))
    rendered = tmp_path / "stored.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(rendered), kernel_name="python3", cwd=str(tmp_path),
                               progress_bar=False, parameters={
                                   "scale": "cpu", "out_dir": str(tmp_path / "rendered"),
                                   "results_dir": str(stored_dir)})
    assert list(cache.iterdir()) == []
    assert not (tmp_path / "rendered" / "records").exists()  # nothing was evaluated
    live, stored = _tables(executed), _tables(rendered)
    assert set(live) == set(stored) and len(live) >= 6
    for source in live:
        assert stored[source] == live[source], source
    assert _glued(rendered)["verdict"] == glued["verdict"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "rendered" / "summary.csv"), summary)
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) for c in nbformat.read(rendered, as_version=4).cells
                     if c.cell_type == "code" for o in c.outputs)
    assert "Results from a stored run" in text and "`smoke` scale" in text


TABLE_CELLS = ("utility_table(", "gates_table(", "comparisons_table(", "chapter.cohort_summary()", "sweep_frame(",
               "chapter.fidelity_table()", "chapter.fairness_table()")


def _tables(path) -> dict:
    """The HTML and text of the tables each table cell displayed, by the cell's first line."""
    nb = nbformat.read(path, as_version=4)
    out = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and any(name in cell.source for name in TABLE_CELLS):
            out[cell.source.splitlines()[0]] = [
                {k: v for k, v in o.get("data", {}).items() if k in ("text/html", "text/markdown")}
                for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
    return out


def _glued(path) -> dict:
    nb = nbformat.read(path, as_version=4)
    glued = {}
    for c in nb.cells:
        for o in c.get("outputs", []):
            record = o.get("metadata", {}).get("scrapbook", {})
            if record.get("name"):
                glued[record["name"]] = next((v for k, v in o["data"].items() if k.endswith("text/markdown")), None)
    return glued
