"""Verdicts, paired tables and figures: one function each, read by the chapters and the Results page alike."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from tardiff import book, registry
from tardiff.experiment import summarise
from tardiff.plots import plot_alpha_curve, plot_results, plot_utility
from tardiff.report import CALLS, paired_table, utility_table, verdict_sentences, verdicts

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
