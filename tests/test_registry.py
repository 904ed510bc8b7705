"""The registries: a method, a protocol and an evaluator each live in one place that everything reads."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tardiff import registry
from tardiff.errors import ParameterError
from tardiff.experiment import Experiment, ExperimentConfig
from tardiff.samplers import BaseSampler

matplotlib.use("Agg")


class JitterOversampler(BaseSampler):
    """A toy baseline written outside the package: real minority rows plus Gaussian jitter."""

    def __init__(self, strategy="balance", ratio=1.0, alpha=1.0, noise=0.1, random_state=0):
        self.strategy = strategy
        self.ratio = ratio
        self.alpha = alpha
        self.noise = noise
        self.random_state = random_state

    def _fit(self, X, y):
        self.rows_ = {label: X[y == label] for label in (0, 1)}
        self.rng_ = np.random.default_rng(self.random_state)

    def _generate(self, n, label):
        rows = self.rows_[label][self.rng_.integers(0, len(self.rows_[label]), n)]
        return (rows + self.noise * self.rng_.standard_normal(rows.shape)).astype(np.float32)


@pytest.fixture
def jitter_method():
    entry = registry.register_method(registry.Method(
        "jitter", "jittered copies", "baseline", ("tstr", "rebalance"),
        lambda ctx: JitterOversampler(random_state=ctx.seed), synthetic=True,
    ))
    yield entry
    registry.unregister_method("jitter")


def test_a_method_registered_outside_the_package_runs_end_to_end(jitter_method, tmp_path):
    from tardiff.plots import plot_utility

    config = ExperimentConfig(dataset="simulated", scale="smoke", methods=("real", "jitter"), controls=False,
                              seeds=(0,), evaluators=("gbm",), progress=False, out_dir=str(tmp_path / "out"),
                              cache_dir=str(tmp_path / "cache"))
    Experiment(config).run()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {(r["method"], r["protocol"]) for r in results["records"]} == {
        ("real", "trtr"), ("jitter", "tstr"), ("jitter", "rebalance")}
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert set(summary.loc[summary["method"] == "jitter", "protocol"]) == {"tstr", "rebalance"}

    fig = plot_utility(summary, evaluator="gbm")
    colours = {matplotlib.colors.to_hex(bar.get_facecolor()) for bar in fig.axes[0].patches}
    assert jitter_method.color in colours  # the registry's colour, handed out on registration
    assert any("jittered copies" in tick.get_text() for tick in fig.axes[0].get_yticklabels())
    matplotlib.pyplot.close(fig)


def test_registered_methods_get_distinct_colours(jitter_method):
    colours = [m.color for m in registry.methods()]
    assert len(colours) == len(set(colours))
    # a baseline registered later still reads before TarDiff (roles first, then registration order)
    assert registry.order("unguided") < registry.order("jitter") < registry.order("tardiff")
    assert registry.label("not-registered") == "not-registered" and registry.color("not-registered") == registry.GREY


def _user(name, **kw):
    return registry.Method(name, name, "baseline", ("rebalance",), lambda ctx: None, **kw)


@pytest.mark.parametrize("user_first", [True, False])
def test_user_methods_never_take_or_change_a_builtin_colour(user_first, monkeypatch):
    """Issue #22: a colour handed out at registration could be one a built-in registered later
    claims. Built-ins keep their declared colours, whatever is registered before or after them."""
    builtins = [m for m in registry.methods() if m.name in registry.BUILTIN_COLORS]
    declared = {m.name: m.color for m in builtins}
    assert declared == registry.BUILTIN_COLORS and len(builtins) == len(registry.BUILTIN_METHODS)
    monkeypatch.setattr(registry, "_METHODS", {})
    users = [_user(f"user{i}") for i in range(25)]  # more than the palette holds
    order = users + builtins if user_first else builtins + users
    for entry in order:
        registry.register_method(entry)
    assert {name: registry.color(name) for name in declared} == declared
    colours = [m.color.lower() for m in registry.methods()]
    assert len(colours) == len(set(colours)) == len(order)
    assert not {registry.color(u.name) for u in users} & set(declared.values())
    # deterministic: the same registrations give the same colours
    first = {u.name: registry.color(u.name) for u in users}
    for entry in users:
        registry.unregister_method(entry.name)
    for entry in users:
        registry.register_method(entry)
    assert {u.name: registry.color(u.name) for u in users} == first
    # a built-in re-registered without a colour gets its own back; a user cannot claim a built-in's
    registry.register_method(registry._replace(registry.method("smote"), color=None), replace=True)
    assert registry.color("smote") == registry.BUILTIN_COLORS["smote"]
    with pytest.raises(ParameterError, match="colour .* is 'tardiff'"):
        registry.register_method(_user("thief", color=registry.BUILTIN_COLORS["tardiff"]))


def test_registry_refuses_bad_entries():
    with pytest.raises(ParameterError, match="already registered"):
        registry.register_method(registry.Method("real", "again", "reference", ("trtr",)))
    with pytest.raises(ParameterError, match="need a factory"):
        registry.Method("broken", "broken", "baseline", ("tstr",))
    with pytest.raises(ParameterError, match="protocols"):
        registry.Method("broken", "broken", "baseline", ("trts",), lambda ctx: None)
    with pytest.raises(ParameterError, match="method must be one of"):
        registry.method("gan")
    with pytest.raises(ParameterError, match="evaluator must be one of"):
        registry.evaluator("svm")


@pytest.mark.parametrize("evaluator", registry.evaluator_names())
def test_the_class_weighted_control_is_weighted_under_every_evaluator(evaluator, tmp_path, monkeypatch):
    """real_cw once ran unweighted under the GBM: every evaluator now gets the method's weighting."""
    built = []
    entry = registry.evaluator(evaluator)

    def spy(scale, **kwargs):
        model = entry.factory(scale, **kwargs)
        built.append((kwargs["class_weight"], model))
        return model

    monkeypatch.setitem(registry._EVALUATORS, evaluator, registry.Evaluator(evaluator, entry.label, spy))
    config = ExperimentConfig(dataset="simulated", scale="smoke", methods=("real",), seeds=(0,),
                              evaluators=(evaluator,), progress=False, out_dir=str(tmp_path / "out"),
                              cache_dir=str(tmp_path / "cache"))
    experiment = Experiment(config)
    experiment.run()
    weighted = [model for flag, model in built if flag]
    assert len(weighted) == 1  # real_cw, and only real_cw
    model = weighted[0]
    if evaluator == "gbm":
        assert model.model_.class_weight == "balanced"
    else:
        y = experiment.prepared.y_train
        assert model.pos_weight_ == pytest.approx((len(y) - y.sum()) / y.sum())


def test_protocol_labels_and_order():
    assert [registry.protocol_label(p) for p in registry.PROTOCOLS] == ["TRTR", "TSTR", "TSRTR", "rebalance 1:1"]
    assert registry.protocol_label("tsrtr", 1.0) == "TSRTR +100%"
    assert sorted(["rebalance", "trtr", "tstr"], key=registry.protocol_order) == ["trtr", "tstr", "rebalance"]
