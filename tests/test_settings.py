"""Each run setting is declared once (its ExperimentConfig field): the command line, the notebook's
parameters cell and the command that repeats a stored run all follow that declaration."""

import ast
import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from tardiff.cli import build_parser
from tardiff.experiment import ExperimentConfig
from tardiff.experiment.settings import command_line, declared, parameter_default, values_from_args

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "experiment.ipynb"
#: Parameters of the notebook that are not run settings: how the chapter is made.
NOTEBOOK_ONLY = {"replicates", "results_dir", "store_dir"}


def parameters_cell() -> dict:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


def test_the_notebooks_parameters_cell_matches_the_declaration():
    cell = parameters_cell()
    declared_here = {f.name: parameter_default(f, meta) for f, meta, _ in declared() if meta.notebook}
    assert set(cell) - NOTEBOOK_ONLY == set(declared_here), "the parameters cell and ExperimentConfig disagree"
    for name, default in declared_here.items():
        assert cell[name] == default, f"notebook parameter {name} = {cell[name]!r}, declared default {default!r}"


def test_every_declared_flag_is_an_option_of_tardiff_run_with_the_declared_default():
    args = build_parser().parse_args(["run", "simulated"])
    for f, meta, flag in declared():
        if flag is not None:
            assert getattr(args, f.name) == parameter_default(f, meta), f.name
    config = ExperimentConfig.from_parameters(**values_from_args(args))
    assert config == ExperimentConfig(out_dir="runs/simulated")  # the command line's defaults are the config's


def run_config(**changes) -> ExperimentConfig:
    return ExperimentConfig(dataset="simulated", scale="smoke", methods=("real", "smote", "tardiff"), seeds=(3, 4),
                            guidance_scale=0.5, guidance_norm="unit", guide_last=2, sweep_raw=(), threads=2, **changes)


def test_the_provenance_command_repeats_the_run():
    """The command from results.json's config, parsed by `tardiff run`, gives back every setting that
    changes results; what the command line cannot set is named in a comment."""
    config = run_config()
    command = command_line(dataclasses.asdict(config))
    args = build_parser().parse_args(shlex.split(command)[1:])
    again = ExperimentConfig.from_parameters(**values_from_args(args))
    for f, meta, _ in declared():
        if meta.changes_results:
            assert getattr(again, f.name) == getattr(config, f.name), f.name
    assert "#" not in command
    assert command_line(dataclasses.asdict(run_config(similarity="cosine"))).endswith("# with similarity='cosine'")


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(ExperimentConfig)])
def test_every_config_field_is_declared_with_help(name):
    meta = dataclasses.fields(ExperimentConfig)[[f.name for f in dataclasses.fields(ExperimentConfig)].index(name)]
    assert meta.metadata["setting"].help.strip()
