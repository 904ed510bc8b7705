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


# ---------------------------------------------------------------- the cache keys follow the declaration
#: A second valid value of every setting that changes results. A new such setting must be added here,
#: so the test below shows that changing it changes what its declared route puts into the cache keys.
OTHER_VALUE = {
    "dataset": "physionet2012", "task": "mortality", "sets": "a", "test_sets": "c", "scale": "cpu",
    "methods": ("real", "smote"), "controls": False, "seeds": (3, 5), "split_seed": 1, "evaluators": ("gru",),
    "guidance_scale": 2.0, "guidance_set": "train", "evaluate_at": "x0_hat", "similarity": "cosine",
    "guidance_norm": "raw", "guide_last": 1, "sweep_raw": (1.0,), "sweep_unit": (0.2,), "device": "cpu",
    "threads": 3,
}


def _route(name: str) -> str | None:
    return {f.name: meta.key for f, meta, _ in declared()}[name]


def test_every_setting_that_changes_results_names_its_route_to_the_cache_keys():
    routes = {f.name: meta.key for f, meta, _ in declared()}
    assert {n for n, r in routes.items() if r is not None} == set(OTHER_VALUE)
    assert {n for n, r in routes.items() if r is None} == {f.name for f, m, _ in declared() if not m.changes_results}
    with pytest.raises(ValueError, match="reaches the cache keys"):
        from tardiff.experiment.config import Setting
        Setting(help="x", key=None)  # changes results, but names no route
    # the guidance route is exactly GuidanceOptions' fields: the options are built from the declaration
    from tardiff.guidance import GuidanceOptions
    assert {n for n, r in routes.items() if r == "guidance"} == {f.name for f in dataclasses.fields(GuidanceOptions)}


@pytest.mark.parametrize("name", [n for n in OTHER_VALUE if _route(n) in ("data", "guidance", "tasks")])
def test_changing_a_setting_changes_what_its_route_keys(name):
    from tardiff.data.cache import hash_key
    from tardiff.experiment.tasks import build_graph

    base = dict(dataset="simulated", scale="smoke", methods=("real", "smote", "tardiff", "tardiff_cal"), seeds=(3, 4),
                guidance_scale=0.5, guidance_norm="unit", guide_last=0, sweep_raw=(), sweep_unit=(0.1,), threads=1,
                device="auto")
    if name == "device":
        base["device"], changed = "auto", {"device": "cpu"}  # auto resolves to cpu here: the same key
    else:
        changed = {name: OTHER_VALUE[name]}
    before, after = ExperimentConfig(**base), ExperimentConfig(**{**base, **changed})
    route = _route(name)
    if route == "data":
        same = hash_key(before.key_values("data")) == hash_key(after.key_values("data"))
        assert same == (name == "device"), name
    elif route == "guidance":
        assert before.guidance.key() != after.guidance.key()
    else:
        assert {t.key for t in build_graph(before)} != {t.key for t in build_graph(after)}


def test_the_data_key_holds_the_data_settings_and_the_content_settings(tmp_path):
    """The data key (every artifact's key starts from it) changes with a key="data" setting (threads)
    and with a key="content" setting (split_seed: another split, other content)."""
    from tardiff.experiment.runner import Experiment

    def data_key(**changes):
        config = ExperimentConfig(dataset="simulated", scale="smoke", methods=("real",), seeds=(0,),
                                  out_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), **changes)
        return Experiment(config).data_key(0)

    base = data_key(split_seed=0)
    assert data_key(split_seed=0) == base
    assert data_key(split_seed=0, threads=2) != base
    assert data_key(split_seed=1) != base


# ---------------------------------------------------------------- adding a setting end to end
def test_a_new_run_setting_reaches_every_surface_from_its_declaration(tmp_path):
    """Adding a run setting is its declaration, the notebook's parameters cell and the code that uses it
    (three files): from the declaration alone it becomes a `tardiff run` option with its help, is read
    as its kind from a command line or a notebook, is repeated by the provenance command, is checked
    in the notebook's parameters and reaches the cache keys by its route."""
    import argparse

    from tardiff.errors import ParameterError
    from tardiff.experiment.config import setting
    from tardiff.experiment.runner import Experiment
    from tardiff.experiment.settings import add_run_options, notebook_parameters

    # the one declaration (in the project: a field of ExperimentConfig)
    WithSetting = dataclasses.make_dataclass(
        "WithSetting", [("label_noise", float, setting(0.0, "flip this share of training labels", kind="float",
                                                       key="data"))],
        bases=(ExperimentConfig,))

    parser = argparse.ArgumentParser()
    add_run_options(parser, config_class=WithSetting)
    assert "flip this share of training labels" in parser.format_help()
    args = parser.parse_args(["simulated", "--scale", "smoke", "--methods", "real", "--seeds", "0",
                              "--label-noise", "0.25", "--out", str(tmp_path / "run"),
                              "--cache-dir", str(tmp_path / "cache")])
    config = WithSetting.from_parameters(**values_from_args(args, WithSetting))
    assert config.label_noise == 0.25
    assert WithSetting.from_parameters(scale="smoke", label_noise="0.5").label_noise == 0.5  # papermill's text
    with pytest.raises(ParameterError, match="label_noise must be a number"):
        WithSetting.from_parameters(scale="smoke", label_noise="a lot")

    # the provenance command gives it when it differs from its default, and parses back to it
    command = command_line(dataclasses.asdict(config), WithSetting)
    assert "--label-noise 0.25" in command
    again = parser.parse_args(shlex.split(command)[2:])
    assert WithSetting.from_parameters(**values_from_args(again, WithSetting)).label_noise == 0.25
    assert "--label-noise" not in command_line(dataclasses.asdict(WithSetting(scale="smoke")), WithSetting)

    # the notebook's parameters: read when the cell has it, a one-line error when the cell is behind
    cell = {f.name: parameter_default(f, meta) for f, meta, _ in declared(WithSetting) if meta.notebook}
    assert notebook_parameters({**cell, "label_noise": 0.1}, WithSetting)["label_noise"] == 0.1
    del cell["label_noise"]
    with pytest.raises(ParameterError, match="lacks the run setting.*label_noise"):
        notebook_parameters(cell, WithSetting)

    # the cache keys: its route (data) holds it, so every artifact trained under another value is another
    assert config.key_values("data")["label_noise"] == 0.25
    clean = dataclasses.replace(config, label_noise=0.0)
    assert Experiment(config).data_key(0) != Experiment(clean).data_key(0)
