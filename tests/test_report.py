"""Verdicts, paired tables and figures: one function each, read by the chapters and the Results page alike."""

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from tardiff import book, registry
from tardiff.errors import DataError, ParameterError
from tardiff.experiment import summarise
from tardiff.plots import plot_alpha_curve, plot_comparisons, plot_results, plot_sweep, plot_utility
from tardiff.report import (
    CALLS,
    COMPARISON_CALLS,
    comparisons_table,
    gate_admonition,
    gates_table,
    load_results,
    paired_table,
    sweep_frame,
    utility_table,
    verdict_sentences,
    verdicts,
)

matplotlib.use("Agg")

TOY_COLOR = "#123456"


@pytest.fixture
def toy_method():
    """A baseline registered from outside the package, removed again whatever the test does."""
    entry = registry.register_method(registry.Method(
        "toy", "toy oversampler", "baseline", ("tsrtr", "rebalance"), factory=lambda ctx: None, color=TOY_COLOR,
        synthetic=True,
    ))
    try:
        yield entry
    finally:
        registry.unregister_method("toy")


def _records(scores: dict, *, seeds=(0, 1, 2), evaluator="cnn") -> list[dict]:
    """Evaluation records as ``Experiment.run()`` writes them: ``{(method, protocol, alpha): [auprc per seed]}``."""
    return [{"dataset": "simulated", "task": "mortality", "method": method, "protocol": protocol, "alpha": alpha,
             "evaluator": evaluator, "seed": seed, "auprc": values[i], "auroc": 0.8, "minority_f1": 0.3,
             "brier": 0.1}
            for (method, protocol, alpha), values in scores.items() for i, seed in enumerate(seeds)]


def _summary(rows: list[tuple]) -> pd.DataFrame:
    """A summary table from ``(method, protocol, alpha, auprc_mean, auprc_std)`` rows."""
    return pd.DataFrame([{"dataset": "simulated", "task": "mortality", "evaluator": "cnn", "method": m,
                          "protocol": p, "alpha": a, "n": 3, "auprc_mean": mean, "auprc_std": std,
                          "auroc_mean": 0.8, "auroc_std": 0.01, "minority_f1_mean": 0.3, "minority_f1_std": 0.01}
                         for m, p, a, mean, std in rows])


# ------------------------------------------------------------------ verdicts


@pytest.mark.parametrize("scores, call", [
    ({"tardiff": [0.50, 0.52, 0.51], "smote": [0.40, 0.41, 0.42]}, "beat"),
    ({"tardiff": [0.30, 0.31, 0.32], "smote": [0.40, 0.41, 0.42]}, "did not beat"),
    ({"tardiff": [0.30, 0.50, 0.40], "smote": [0.40, 0.41, 0.42]}, "no evidence"),  # gap 0.01, sd 0.1
])
def test_a_chapter_and_the_results_page_make_the_same_call(scores, call, tmp_path):
    records = _records({("real", "trtr", None): [0.35, 0.36, 0.37],
                        ("tardiff", "tstr", None): scores["tardiff"], ("smote", "rebalance", None): scores["smote"]})
    # the chapter: the notebook's summary of its own records
    chapter = summarise(records)
    # the Results page: the summary.csv the run wrote, gathered with every other experiment's
    folder = tmp_path / "experiments" / "simulated"
    folder.mkdir(parents=True)
    chapter.to_csv(folder / "summary.csv", index=False)
    results = book.collect_results(tmp_path / "experiments")

    (chapter_verdict,), (results_verdict,) = verdicts(chapter).to_dict("records"), verdicts(results).to_dict("records")
    assert chapter_verdict["call"] == results_verdict["call"] == call
    for key in ("tardiff", "baseline", "reference", "tardiff_protocol", "baseline_protocol"):
        assert chapter_verdict[key] == results_verdict[key]
    assert math.isclose(chapter_verdict["gap"], results_verdict["gap"])

    (chapter_text,), (results_text,) = verdict_sentences(chapter), verdict_sentences(results)
    assert chapter_text.startswith("**cnn evaluator**: TarDiff")
    assert results_text.startswith("**Simulated ICU cohort** (cnn evaluator): TarDiff")
    assert chapter_text.split(": ", 1)[1] == results_text.split(": ", 1)[1]  # the same words after the lead
    assert chapter_text.endswith(CALLS[call] + ".")
    assert f"- {results_text}" in book.results_markdown(results)


def test_verdicts_compare_with_the_best_baseline_not_the_controls():
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("ros", "rebalance", np.nan, 0.90, 0.01),
                        ("tardiff", "tstr", np.nan, 0.45, 0.01), ("tardiff", "tsrtr", 1.0, 0.48, 0.01),
                        ("mcrage", "tstr", np.nan, 0.42, 0.01), ("smote", "tsrtr", 0.5, 0.44, 0.02)])
    (v,) = verdicts(summary).to_dict("records")
    assert (v["tardiff"], v["tardiff_protocol"], v["tardiff_alpha"]) == ("tardiff", "tsrtr", 1.0)
    assert (v["baseline"], v["baseline_protocol"], v["baseline_alpha"]) == ("smote", "tsrtr", 0.5)
    assert (v["reference"], v["reference_mean"]) == ("real", 0.40)
    assert math.isclose(v["gap"], 0.04) and math.isclose(v["spread"], 0.02) and v["call"] == "beat"
    (text,) = verdict_sentences(summary)
    assert ("TarDiff 0.480 ± 0.010 (TSRTR, α = 1) against the best baseline, "
            "SMOTE 0.440 ± 0.020 (TSRTR, α = 0.5)") in text


def test_no_verdict_without_tardiff_or_a_baseline():
    assert verdicts(_summary([("real", "trtr", np.nan, 0.4, 0.01), ("smote", "tstr", np.nan, 0.5, 0.01)])).empty
    no_baseline = _summary([("real", "trtr", np.nan, 0.4, 0.01), ("tardiff", "tstr", np.nan, 0.5, 0.01)])
    assert verdict_sentences(no_baseline) == []


def test_a_registered_baseline_joins_the_verdict(toy_method):
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("smote", "rebalance", np.nan, 0.45, 0.01),
                        ("toy", "rebalance", np.nan, 0.60, 0.01), ("tardiff", "tstr", np.nan, 0.50, 0.01)])
    (text,) = verdict_sentences(summary)
    assert "best baseline, toy oversampler 0.600 ± 0.010 (rebalance 1:1)" in text
    assert text.endswith(CALLS["did not beat"] + ".")


# ------------------------------------------------------------------ paired tables


def test_paired_table_pairs_each_method_with_real_data_by_seed():
    records = _records({("real", "trtr", None): [0.40, 0.42, 0.44],
                        ("tardiff", "tsrtr", 0.5): [0.45, 0.46, 0.50],
                        ("tardiff", "tsrtr", 1.0): [0.41, 0.43, 0.45],
                        ("smote", "rebalance", None): [0.40, 0.42, 0.44]})
    records.append({**records[-1], "evaluator": "gru", "auprc": 0.99})  # another evaluator is left out
    records[0]["test_predictions"] = [0.1, 0.9]  # what Experiment.run() keeps, ignored here
    table = paired_table(records, "cnn")
    assert list(table.columns) == ["method", "protocol", "alpha", "AUPRC minus real", "p (paired t)", "seeds"]
    assert table["method"].tolist() == ["SMOTE", "TarDiff", "TarDiff"]  # registry order, registry labels
    assert table["protocol"].tolist() == ["rebalance 1:1", "TSRTR", "TSRTR"]
    assert table["alpha"].tolist()[1:] == [0.5, 1.0]
    np.testing.assert_allclose(table["AUPRC minus real"], [0.0, 0.05, 0.01], atol=1e-12)
    assert table["p (paired t)"].iloc[0] == 1.0  # identical on every seed
    assert table["p (paired t)"].iloc[1] < 0.05 and table["seeds"].tolist() == [3, 3, 3]
    # the same table from results.json's records (a DataFrame) and only on the seeds both have
    frame = pd.DataFrame(records)
    frame = frame[~((frame["method"] == "real") & (frame["seed"] == 2))]
    assert paired_table(frame, "cnn")["seeds"].tolist() == [2, 2, 2]


# ------------------------------------------------------------------ figures read the registry


def _bar_colors(fig) -> list:
    return [patch.get_facecolor() for patch in fig.axes[0].patches]


def test_a_registered_method_is_drawn_in_its_registry_colour(toy_method):
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("toy", "rebalance", np.nan, 0.50, 0.02),
                        ("toy", "tsrtr", 1.0, 0.45, 0.02), ("tardiff", "tstr", np.nan, 0.48, 0.01)])
    fig = plot_utility(summary, evaluator="cnn")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "toy oversampler (rebalance 1:1)" in labels and "toy oversampler (TSRTR +100%)" in labels
    colors = _bar_colors(fig)
    names = {"toy": "toy", "rea": "real", "Tar": "tardiff"}  # label prefix -> method
    for text, color in zip(labels, colors):
        assert color == pytest.approx(to_rgba(registry.color(names[text[:3]]), 0.85))
    assert registry.color("toy") == TOY_COLOR

    curve = plot_alpha_curve(summary, evaluator="cnn")
    handles, names = curve.axes[0].get_legend_handles_labels()
    toy_line = handles[names.index("toy oversampler")].lines[0]  # an errorbar container: its data line
    assert to_rgba(toy_line.get_color()) == to_rgba(TOY_COLOR)

    results = summary.assign(run="simulated", title="Simulated ICU cohort")
    overview = plot_results(results)
    assert "toy oversampler" in [t.get_text() for t in overview.axes[0].get_xticklabels()]
    table = utility_table(summary, {"prevalence": 0.1})
    expected = sorted(["real", "toy", "toy", "tardiff"], key=registry.order)  # reading order: the registry's
    assert table["method"].tolist()[:4] == [registry.label(m) for m in expected]


def test_a_method_the_registry_does_not_know_is_grey_under_its_own_name():
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("mystery", "rebalance", np.nan, 0.50, 0.02)])
    fig = plot_utility(summary, evaluator="cnn")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["real only (TRTR)", "mystery (rebalance 1:1)"]  # unknown methods sort last
    assert _bar_colors(fig)[1] == pytest.approx(to_rgba(registry.GREY, 0.85))
    overview = plot_results(summary.assign(run="simulated"))
    assert [t.get_text() for t in overview.axes[0].get_xticklabels()] == ["real only", "mystery"]
    assert overview.axes[0].get_title() == "simulated, cnn evaluator"  # no title column: the run's name


# ------------------------------------------------------------------ results.json: gates, comparisons, sweep

GATE = {"scale_ratio": [0.8, 1.25], "discriminative_score_max": 0.45, "description": "test gate"}


@pytest.fixture
def calibrated():
    """The calibrated TarDiff variant, registered as the runner registers it (when it is not already)."""
    if "tardiff_cal" in registry.method_names():
        yield registry.method("tardiff_cal")
        return
    entry = registry.register_method(registry.Method(
        "tardiff_cal", "TarDiff (calibrated)", "tardiff", ("tstr", "tsrtr", "rebalance"), factory=lambda ctx: None,
        synthetic=True, uses_guidance=True))
    try:
        yield entry
    finally:
        registry.unregister_method("tardiff_cal")


def _generator(method, seed, ratio_pos=1.0, disc=0.1, noise=0.02):
    failures = []
    if not 0.8 <= ratio_pos <= 1.25:
        failures.append(f"scale ratio of positives {ratio_pos:g} outside [0.8, 1.25]")
    if disc > 0.45:
        failures.append(f"discriminative score {disc:g} above 0.45")
    return {"method": method, "seed": seed, "scale_ratio_neg": 1.0, "scale_ratio_pos": ratio_pos,
            "discriminative_score": disc, "membership_auroc": 0.51, "dcr_ratio": 1.02, "noise_error": noise,
            "passes_quality_gate": not failures, "gate_failures": failures}


def _comparison(method, baseline, protocol, delta, half=0.01, alpha=None, evaluator="cnn", **extra):
    """A row of the replicated family (kind and Holm decision as the runner writes them)."""
    kind = ("vs_real" if baseline == "real" else "tardiff_vs_unguided" if baseline == "unguided"
            else "tardiff_vs_baseline")
    decision = "higher" if delta - half > 0 else "lower" if delta + half < 0 else "no evidence"
    return {"kind": kind, "method": method, "baseline": baseline, "protocol": protocol, "alpha": alpha,
            "baseline_protocol": "trtr" if baseline == "real" else protocol,
            "baseline_alpha": None if baseline == "real" else alpha, "evaluator": evaluator,
            "delta_auprc": delta, "ci_low": delta - half, "ci_high": delta + half, "p_value": 0.004,
            "p_holm": 0.012 if decision != "no evidence" else 0.6, "decision": decision, "n_replicates": 10,
            "replicate_sd": 0.014, "mde_auprc": 0.014, "test_noise_sd": 0.006, **extra}


def _results(comparisons=None, generators=None, sweep=None) -> dict:
    out = {"records": [], "reference": {"prevalence": 0.1}}
    if comparisons is not None:
        out["comparisons"] = comparisons
    if generators is not None:
        out.update(generators=generators, quality_gate=GATE)
    if sweep is not None:
        out["sweep"] = sweep
    return out


def test_gates_table_means_over_seeds_and_names_the_failures():
    results = _results(generators=[_generator("tardiff", 0, 1.1), _generator("tardiff", 1, 3.0),
                                   _generator("smote", 0, 1.0, noise=None), _generator("smote", 1, 0.9, noise=None),
                                   _generator("unguided", 0, 1.0, disc=0.5)])
    table = gates_table(results)
    assert table["method"].tolist() == ["SMOTE", "unguided diffusion", "TarDiff"]  # registry order and labels
    assert list(table.columns) == ["method", "seeds", "scale ratio (negatives)", "scale ratio (positives)",
                                   "discriminative", "membership AUROC", "DCR ratio", "noise error", "passes"]
    row = table.set_index("method").loc["TarDiff"]
    assert row["seeds"] == 2 and row["scale ratio (positives)"] == pytest.approx(2.05)
    assert row["passes"] == "no: seed 1: scale ratio of positives 3 outside [0.8, 1.25]"
    assert table.set_index("method").loc["SMOTE", "passes"] == "yes"
    assert np.isnan(table.set_index("method").loc["SMOTE", "noise error"])  # not a diffusion model
    assert "discriminative score 0.5 above 0.45" in table.set_index("method").loc["unguided diffusion", "passes"]

    warning = gate_admonition(results)
    assert warning.startswith(":::{warning}") and warning.endswith(":::")
    assert "- **TarDiff**: seed 1: scale ratio of positives 3" in warning and "**SMOTE**" not in warning
    assert "scale ratio within [0.8, 1.25]" in warning


def test_a_results_json_without_the_new_fields_gives_empty_tables_and_a_note():
    old = _results()
    assert gates_table(old).empty and comparisons_table(old).empty and sweep_frame(old).empty
    assert "predates" in gate_admonition(old) and gate_admonition(old).startswith(":::{note}")
    passing = _results(generators=[_generator("smote", 0)])
    assert gate_admonition(passing).startswith(":::{note}\nEvery generator passes")


def test_load_results_reads_a_file_or_its_folder(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_results(comparisons=[])))
    assert load_results(tmp_path) == load_results(tmp_path / "results.json")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{")
    with pytest.raises(DataError, match="not readable JSON"):
        load_results(tmp_path / "bad")
    with pytest.raises(DataError, match="does not exist"):
        load_results(tmp_path / "none")


def test_comparisons_table_is_readable_and_in_reading_order():
    rows = [_comparison("tardiff", "smote", "tsrtr", 0.02, alpha=1.0), _comparison("tardiff", "real", "tstr", -0.03),
            _comparison("smote", "real", "rebalance", 0.01), _comparison("smote", "real", "rebalance", 0.5,
                                                                         evaluator="gbm")]
    table = comparisons_table(_results(comparisons=rows), evaluator="cnn")
    assert list(table.columns) == ["method", "against", "protocol", "ΔAUPRC [95% CI]", "p (Holm)", "decision",
                                   "replicates", "sd", "detectable", "test noise"]
    assert table[["method", "against", "protocol"]].values.tolist() == [
        ["SMOTE", "real only", "rebalance 1:1"], ["TarDiff", "real only", "TSTR"],
        ["TarDiff", "SMOTE", "TSRTR, α = 1"]]
    assert table["ΔAUPRC [95% CI]"].tolist()[1] == "-0.030 [-0.040, -0.020]"
    assert table["decision"].tolist()[1] == "lower" and table["replicates"].tolist() == [10, 10, 10]
    assert len(comparisons_table(rows)) == 4 and "evaluator" in comparisons_table(rows)


@pytest.mark.parametrize("delta, call", [(0.03, "beat"), (-0.03, "did not beat"), (0.005, "no evidence")])
def test_verdicts_from_comparisons_take_the_holm_decision(delta, call):
    comparisons = [_comparison("smote", "real", "rebalance", 0.02), _comparison("unguided", "real", "tstr", 0.01),
                   _comparison("tardiff", "real", "rebalance", 0.02 + delta),
                   _comparison("tardiff", "smote", "rebalance", delta), _comparison("tardiff", "unguided", "tstr", 0.2)]
    table = verdicts(comparisons=comparisons)
    # every baseline of the family is a verdict of its own: none is picked as the best on the test split
    assert table[["baseline", "protocol"]].values.tolist() == [["smote", "rebalance"], ["unguided", "tstr"]]
    v = table.set_index("baseline").loc["smote"]
    assert v["call"] == call and v["gap"] == pytest.approx(delta) and v["reference_gap"] == pytest.approx(0.02 + delta)
    assert table.set_index("baseline").loc["unguided", "call"] == "beat"
    smote, unguided = verdict_sentences(comparisons=comparisons)
    assert smote.startswith("**cnn evaluator**: TarDiff against SMOTE, paired AUPRC difference over 10 replicates "
                            "(95% t-interval; Holm over the 5 comparisons fixed in advance): rebalance 1:1 "
                            f"{delta:+.3f} [")
    expected = {"beat": "**higher**", "did not beat": "**lower**", "no evidence": "no evidence either way (80% power "
                "to detect ±0.014)"}[call]
    assert smote.endswith(expected + ".")
    assert "TarDiff against unguided diffusion" in unguided


def test_each_tardiff_variant_gets_a_verdict_and_a_failing_generator_is_named(calibrated):
    comparisons = [_comparison("smote", "real", "rebalance", 0.02),
                   _comparison("tardiff", "smote", "rebalance", -0.05),
                   _comparison("tardiff_cal", "smote", "rebalance", 0.04)]
    generators = [_generator("smote", 0), _generator("tardiff", 0, ratio_pos=30.0), _generator("tardiff_cal", 0)]
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("tardiff", "tstr", np.nan, 0.9, 0.01),
                        ("smote", "rebalance", np.nan, 0.41, 0.01)])
    table = verdicts(summary, comparisons=comparisons, generators=generators)
    assert table["tardiff"].tolist() == ["tardiff", "tardiff_cal"]
    assert table["call"].tolist() == ["did not beat", "beat"]
    assert set(table["source"]) == {"comparisons"}  # the comparisons take the call, not the summary
    paper, cal = verdict_sentences(summary, comparisons=comparisons, generators=generators)
    assert "Caution: TarDiff fails the quality gate (seed 0: scale ratio of positives 30 outside [0.8, 1.25])" in paper
    assert cal.endswith("**higher**.") and "Caution" not in cal


def test_results_from_before_replicated_verdicts_fall_back_on_the_summary():
    old_style = [{k: v for k, v in _comparison("tardiff", "smote", "rebalance", 0.05).items()
                  if k not in ("kind", "decision", "p_holm", "n_replicates")}]
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("tardiff", "tstr", np.nan, 0.45, 0.01),
                        ("smote", "rebalance", np.nan, 0.41, 0.01)])
    assert verdicts(summary, comparisons=old_style)["source"].tolist() == ["summary"]
    assert comparisons_table({"comparisons": old_style}).empty


def test_a_baseline_failing_the_quality_gate_is_still_compared_and_named():
    comparisons = [_comparison("smote", "real", "rebalance", 0.01), _comparison("mcrage", "real", "rebalance", 0.03),
                   _comparison("tardiff", "smote", "rebalance", 0.02), _comparison("tardiff", "mcrage", "rebalance", 0.0)]
    broken = [_generator("smote", 0), _generator("mcrage", 0, ratio_pos=200.0), _generator("tardiff", 0)]
    table = verdicts(comparisons=comparisons, generators=broken).set_index("baseline")
    assert table.loc["smote", "call"] == "beat" and table.loc["smote", "baseline_gate"] == ""
    assert "scale ratio" in table.loc["mcrage", "baseline_gate"]
    mcrage = [t for t in verdict_sentences(comparisons=comparisons, generators=broken) if "against MCRAGE" in t]
    assert mcrage and "Caution: MCRAGE fails the quality gate" in mcrage[0]


def test_without_comparisons_the_summary_makes_the_call_and_names_a_failing_generator():
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("tardiff", "tstr", np.nan, 0.50, 0.01),
                        ("smote", "rebalance", np.nan, 0.41, 0.01)])
    assert verdicts(summary, comparisons=[])["source"].tolist() == ["summary"]
    (text,) = verdict_sentences(summary, generators=[_generator("tardiff", 0, ratio_pos=5.0)])
    assert text.startswith("**cnn evaluator**: TarDiff 0.500 ± 0.010 (TSTR)") and "TarDiff **beat** it." in text
    assert text.endswith("Caution: TarDiff fails the quality gate (seed 0: scale ratio of positives 5 outside "
                         "[0.8, 1.25]), so this comparison says little about the method.")
    flagged = summary.assign(passes_quality_gate=["", "False", "True"])  # summary.csv's own column
    assert "TarDiff fails the quality gate" in verdict_sentences(flagged)[0]


def test_a_generator_failing_in_many_replicates_is_counted_not_listed_in_full():
    summary = _summary([("real", "trtr", np.nan, 0.40, 0.01), ("tardiff", "tstr", np.nan, 0.50, 0.01),
                        ("smote", "rebalance", np.nan, 0.41, 0.01)])
    generators = [_generator("tardiff", seed, ratio_pos=5.0 + seed) for seed in range(10)]
    (text,) = verdict_sentences(summary, generators=generators)
    assert "TarDiff fails the quality gate (in 10 replicates, e.g. seed 0: scale ratio of positives 5 outside" in text
    assert "seed 9" not in text  # the chapter's gate table has every replicate; the verdict stays one sentence


def test_the_sweep_figure_and_the_forest_plot():
    sweep = [{"guidance_norm": norm, "guidance_scale": w, "seed": s, "evaluator": ev, "auprc": 0.3 - 0.001 * w,
              "auroc": 0.7, "val_auprc": 0.3, "scale_ratio_neg": 1.0, "scale_ratio_pos": r,
              "discriminative_score": 0.1, "passes_quality_gate": r <= 1.25}
             for norm, w, r in (("raw", 0.0, 1.0), ("raw", 100.0, 40.0), ("unit", 0.1, 1.1)) for s in (0, 1)
             for ev in ("cnn", "gbm")]
    fig = plot_sweep(sweep_frame(_results(sweep=sweep)), gate=GATE)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["w=0", "w=0.1", "w=100"]
    assert ax.get_xscale() == "log"  # scale ratios from 1 to 40
    raw = next(c for c in ax.collections if c.get_label().startswith("raw"))
    faces = raw.get_facecolors()
    assert faces[0][3] == 1.0 and faces[1][3] == 0.0  # w = 100 fails the gate: hollow
    assert "quality gate" in ax.get_legend_handles_labels()[1]
    with pytest.raises(ParameterError):
        plot_sweep(pd.DataFrame(sweep), x="nope")
    assert plot_sweep(pd.DataFrame(sweep), x="discriminative_score").axes[0].get_xscale() == "linear"

    rows = [_comparison("tardiff", "real", "tstr", 0.02, run=run, title=title)
            for run, title in (("simulated", "Simulated"), ("physionet2012", "PhysioNet"))]
    rows += [_comparison("tardiff", "smote", "tsrtr", 0.01, alpha=a, run="simulated", title="Simulated")
             for a in (0.5, 1.0)]
    forest = plot_comparisons(pd.DataFrame(rows))
    titles = [ax.get_title() for ax in forest.axes]
    assert titles == ["each method vs real only", "TarDiff vs each baseline"] * 2
    assert [sub.get_suptitle() for sub in forest.subfigs] == ["Simulated", "PhysioNet"]  # one row per dataset
    labels = [t.get_text() for t in forest.axes[1].get_yticklabels()]
    assert labels == ["TarDiff vs SMOTE, TSRTR +100%"]  # TSRTR at its largest ratio
    line = forest.axes[0].lines[0]
    assert to_rgba(line.get_color()) == to_rgba(registry.color("tardiff"))
