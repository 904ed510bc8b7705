"""The teaching notebooks: their skeleton, the worked solutions of their exercises, a smoke-scale
execution of each (solutions included), and the package function tutorial 2 is built on
(:func:`tardiff.influence_check.loss_change_after_step`)."""

import copy
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from torch import nn

from tardiff.classifiers import per_sample_loss
from tardiff.errors import ParameterError
from tardiff.guidance import guidance_vector, influence_scores
from tardiff.influence_check import loss_change_after_step

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = ("tutorial_01_diffusion", "tutorial_02_influence", "tutorial_03_guidance")
FIGURES = {"tutorial_01_diffusion": 9, "tutorial_02_influence": 4, "tutorial_03_guidance": 5}  # outside the solutions
SOLUTION_FIGURES = {"tutorial_01_diffusion": 2, "tutorial_02_influence": 0, "tutorial_03_guidance": 0}
SOLUTION_TAGS = ("solution", "hide-cell")  # hide-cell: the book shows the cell (code and output) collapsed


# --------------------------------------------------------------------------------------
# loss_change_after_step
# --------------------------------------------------------------------------------------


def tiny_net(dropout: float = 0.0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # test-only: nn init takes no generator
        net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Dropout(dropout), nn.Linear(5, 1),
                            nn.Flatten(0))
    return net.double().eval()


def tiny_data():
    gen = torch.Generator().manual_seed(0)
    X_c = torch.randn(8, 3, 2, generator=gen, dtype=torch.float64)
    y_c = torch.arange(8) % 2
    X_g = torch.randn(10, 3, 2, generator=gen, dtype=torch.float64)
    y_g = (torch.arange(10) % 3 == 0).long()
    return X_c, y_c, X_g, y_g


def test_loss_change_matches_first_order_prediction_at_small_lr():
    net = tiny_net()
    X_c, y_c, X_g, y_g = tiny_data()
    s = influence_scores(net, guidance_vector(net, X_g, y_g), X_c, y_c)
    assert np.abs(s).min() > 1e-3  # no score so close to zero that a relative check means nothing
    lr = 1e-4
    actual = loss_change_after_step(net, X_c, y_c, X_g, y_g, lr=lr)
    assert actual.shape == (8,) and actual.dtype == np.float64
    np.testing.assert_allclose(actual, -lr * s, rtol=0.05)  # first-order theory: change ~= -lr * s
    # and not by accident: at a large rate the curvature term makes it miss
    big = 20.0
    assert np.max(np.abs(loss_change_after_step(net, X_c, y_c, X_g, y_g, lr=big) + big * s) / np.abs(big * s)) > 0.05


def test_loss_change_is_one_sgd_step_in_eval_mode_and_restores_the_module():
    net = tiny_net(dropout=0.5).train()  # in train mode dropout would make the result random
    X_c, y_c, X_g, y_g = tiny_data()
    before = copy.deepcopy(net.state_dict())
    lr = 0.3
    actual = loss_change_after_step(net, X_c, y_c, X_g, y_g, lr=lr, batch_size=3)  # uneven guidance batches

    assert net.training  # mode restored
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name])  # weights restored exactly

    expected = []
    for i in range(len(X_c)):  # by hand: copy, one SGD step on candidate i alone, guidance loss difference
        model = copy.deepcopy(net).eval()
        optimiser = torch.optim.SGD(model.parameters(), lr=lr)
        with torch.no_grad():
            start = per_sample_loss(model(X_g), y_g).mean()
        per_sample_loss(model(X_c[i:i + 1]), y_c[i:i + 1]).sum().backward()
        optimiser.step()
        with torch.no_grad():
            expected.append(float(per_sample_loss(model(X_g), y_g).mean() - start))
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-14)


def test_loss_change_rejects_a_bad_learning_rate():
    net = tiny_net()
    X_c, y_c, X_g, y_g = tiny_data()
    for lr in (0.0, -1e-3, float("nan")):
        with pytest.raises(ParameterError, match="lr must be a positive finite number"):
            loss_change_after_step(net, X_c, y_c, X_g, y_g, lr=lr)


# --------------------------------------------------------------------------------------
# the notebooks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_source_follows_the_skeleton(name):
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert 'scale = "cpu"' in tagged[0].source and "seed = 0" in tagged[0].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)  # committed without outputs
    assert not any("class " in line and line.rstrip().endswith(":") for c in code for line in c.source.splitlines())
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    for part in ("## Summary", "## Exercises", "## Solutions", "## References"):
        assert part in headings


def _is_solution(cell) -> bool:
    return cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])


def _exercises(nb) -> list[tuple[str, str]]:
    """(number, title) of each exercise, from the numbered list under "## Exercises"."""
    text = next(c.source for c in nb.cells if c.cell_type == "markdown" and "## Exercises" in c.source)
    return re.findall(r"^(\d+)\. \*\*(.+?)\*\*", text.split("## Exercises", 1)[1], flags=re.M)


@pytest.mark.parametrize("name", TUTORIALS)
def test_every_exercise_has_a_hidden_worked_solution(name):
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    exercises = _exercises(nb)
    assert len(exercises) >= 3
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Solutions" in c.source)
    refs = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## References"))
    exercises_at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    assert exercises_at < first < refs == len(nb.cells) - 1  # solutions after the exercises, references last
    cells = nb.cells[first + 1:refs]
    assert len(cells) == 2 * len(exercises)
    for (number, title), prose, code in zip(exercises, cells[0::2], cells[1::2]):
        # the reasoning: a MyST dropdown (sphinx-design, loaded by Jupyter Book 1), closed until clicked
        assert prose.cell_type == "markdown"
        assert prose.source.startswith(f"```{{dropdown}} Solution to exercise {number}: {title.rstrip('.')}\n")
        assert prose.source.rstrip().endswith("```") and len(prose.source) > 300
        # the code: executed with the notebook, collapsed in the book and in JupyterLab
        assert _is_solution(code) and code.source.startswith(f"# Solution to exercise {number}:")
        assert all(tag in code.metadata["tags"] for tag in SOLUTION_TAGS)
        assert code.metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    assert sum(_is_solution(c) for c in nb.cells) == len(exercises)  # none elsewhere


def _python3_kernel_or_skip():
    from jupyter_client.kernelspec import find_kernel_specs

    if "python3" not in find_kernel_specs():
        pytest.skip("no Jupyter kernel named python3; register it with "
                    "`.venv/bin/python -m ipykernel install --sys-prefix --name python3`")


@pytest.mark.slow
@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs_at_smoke_scale(name, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill", reason="papermill is part of the book extra: pip install -e '.[book]'")
    _python3_kernel_or_skip()
    # One thread (the kernel inherits the variable; torch_threads sets torch's): the models are tiny
    # and extra threads only contend on a busy 2-core machine.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(out),
                               parameters={"scale": "smoke", "torch_threads": 1}, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, f"the notebook wrote to stderr (warnings?): {stderr[:2]}"

    def images(cells):
        return [o for c in cells for o in c.outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]

    assert len(images(c for c in nb.cells if c.cell_type == "code" and not _is_solution(c))) == FIGURES[name]
    # every worked solution ran, without error, and showed its answer (a table, a figure or a printed verdict)
    solutions = [c for c in nb.cells if _is_solution(c)]
    assert len(solutions) == len(_exercises(nb))
    for cell in solutions:
        assert cell.execution_count is not None, cell.source.splitlines()[0]
        assert cell.outputs and not [o for o in cell.outputs if o.output_type == "error"], cell.source.splitlines()[0]
        shown = [o for o in cell.outputs if o.output_type in ("execute_result", "display_data")
                 or (o.output_type == "stream" and o.name == "stdout")]
        assert shown, f"{cell.source.splitlines()[0]} showed nothing"
        assert cell.metadata["papermill"]["duration"] < 30, cell.source.splitlines()[0]  # seconds at smoke scale
    assert len(images(solutions)) == SOLUTION_FIGURES[name]
    assert not list(tmp_path.glob("*.pt")) and not (tmp_path / "data").exists()  # nothing written beside it


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_installs_the_package_on_colab_only(name):
    """The Colab launch button opens a notebook whose first code cell installs tardiff there (hidden in the book)."""
    import yaml

    from conftest import REPO

    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", [])
    assert 'if "google.colab" in sys.modules:' in first.source
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert f"tardiff @ git+{url}" in first.source
    namespace = {}
    exec(first.source, namespace)  # elsewhere it does nothing (no Colab here): no pip call, no error
