"""The book's results page: summaries and comparisons collected from runs, tables, figures and verdicts."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tardiff import book, report
from tardiff.errors import DataError

# ------------------------------------------------------------------ results


def _write_summary(folder: Path, rows: list[dict], reference=None, title=None, **fields) -> None:
    """A run's folder: its summary.csv and, with a reference or other fields (comparisons, generators), results.json."""
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)
    if reference is not None or fields:
        (folder / "results.json").write_text(json.dumps({"reference": reference or {}, **fields}))
    if title is not None:
        (folder / "book_run.json").write_text(json.dumps({"title": title}))


def _row(method, protocol, auprc, alpha=None, evaluator="gru", **extra):
    return {"dataset": "x", "task": "mortality", "method": method, "protocol": protocol, "alpha": alpha,
            "evaluator": evaluator, "n": 3, "auprc_mean": auprc, "auprc_std": 0.01, "auroc_mean": 0.7,
            "auroc_std": 0.02, "minority_f1_mean": 0.2, "minority_f1_std": 0.03, **extra}


def test_collect_results_reads_summaries_references_and_titles(tmp_path):
    exp = tmp_path / "experiments"
    _write_summary(exp / "physionet2012", [_row("tardiff", "tstr", 0.5), _row("real", "trtr", 0.45)],
                   reference={"prevalence": 0.14})
    _write_summary(exp / "simulated", [_row("smote", "tstr", 0.3), _row("real", "trtr", 0.35)],
                   reference={"prevalence": 0.08, "bayes": {"auprc": 0.61}}, title="Simulated (custom)")
    (exp / "mimic3").mkdir()  # a run folder without a summary is ignored

    df = book.collect_results(exp)
    assert list(df["run"]) == ["simulated", "simulated", "physionet2012", "physionet2012"]  # book order
    assert list(df["method"]) == ["real", "smote", "real", "tardiff"]  # reference first
    assert list(df.columns[:3]) == ["run", "title", "dataset"]
    assert set(df["title"]) == {"Simulated (custom)", "PhysioNet/CinC Challenge 2012"}
    assert df["n_seeds"].tolist() == [3, 3, 3, 3]  # `n` read as n_seeds
    assert df.loc[df.run == "simulated", "bayes_auprc"].tolist() == [0.61, 0.61]
    assert df.loc[df.run == "physionet2012", "bayes_auprc"].isna().all()
    assert df.loc[df.run == "physionet2012", "prevalence"].tolist() == [0.14, 0.14]
    assert book.collect_results(tmp_path / "none").empty

    pd.DataFrame([{"dataset": "x", "method": "real"}]).to_csv(exp / "mimic3" / "summary.csv", index=False)
    with pytest.raises(DataError, match="lacks the column"):
        book.collect_results(exp)


def test_results_markdown_table_and_figure(tmp_path):
    exp = tmp_path / "experiments"
    _write_summary(exp / "simulated", [
        _row("real", "trtr", 0.40),
        _row("tardiff", "tstr", 0.42), _row("smote", "tstr", 0.38),
        _row("tardiff", "tsrtr", 0.30, alpha=0.2), _row("tardiff", "tsrtr", 0.44, alpha=1.0),
        _row("smote", "tsrtr", 0.41, alpha=1.0),
    ], reference={"prevalence": 0.08, "bayes": {"auprc": 0.6}})
    df = book.collect_results(exp)
    text = book.results_markdown(df)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Dataset | Evaluator"))
    assert header == "| Dataset | Evaluator | Protocol | Real only (TRTR) | SMOTE | TarDiff |"  # registry order
    assert "| Simulated ICU cohort | gru | TSTR | 0.400 ± 0.010 | 0.380 ± 0.010 | **0.420 ± 0.010** |" in lines
    assert "| Simulated ICU cohort | gru | TSRTR, α = 1 | 0.400 ± 0.010 | 0.410 ± 0.010 | **0.440 ± 0.010** |" in lines
    assert "α = 0.2" not in text  # the cross-dataset table shows TSRTR at its largest ratio
    assert "| Simulated ICU cohort | mortality | 0.080 | 0.600 | 3 |" in lines
    assert "```{figure} figures/results_overview.png" in text and "```{dropdown} AUROC" in text

    png = book.write_results_figure(df, tmp_path / "fig" / "overview.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not list((tmp_path / "fig").glob("*.part"))


def test_verdicts_compare_tardiff_with_the_best_baseline_and_respect_the_spread(tmp_path):
    exp = tmp_path / "experiments"
    _write_summary(exp / "simulated", [  # TarDiff's best (TSRTR 0.44) clearly above SMOTE's best (0.41)
        _row("real", "trtr", 0.40), _row("tardiff", "tstr", 0.42), _row("tardiff", "tsrtr", 0.44, alpha=0.5),
        _row("smote", "tsrtr", 0.41, alpha=1.0), _row("ros", "rebalance", 0.90),  # a control, not a baseline
    ])
    _write_summary(exp / "physionet2012", [  # MCRAGE ahead by more than the spread
        _row("real", "trtr", 0.40), _row("tardiff", "tstr", 0.30), _row("mcrage", "rebalance", 0.50),
    ])
    noisy = [_row("real", "trtr", 0.40), _row("tardiff", "tstr", 0.45), _row("unguided", "tstr", 0.44)]
    noisy[1]["auprc_std"] = 0.05
    _write_summary(exp / "mimic3", noisy)
    _write_summary(exp / "eicu_demo", [_row("real", "trtr", 0.40), _row("smote", "rebalance", 0.45)])  # no TarDiff
    simulated, physionet, mimic = report.verdict_sentences(book.collect_results(exp))
    assert simulated.startswith("**Simulated ICU cohort** (gru evaluator): TarDiff 0.440 ± 0.010 (TSRTR, α = 0.5)")
    assert "best baseline, SMOTE 0.410 ± 0.010 (TSRTR, α = 1); real data alone 0.400 ± 0.010" in simulated
    assert simulated.endswith("TarDiff **beat** it.")
    assert "MCRAGE 0.500" in physionet and physionet.endswith("TarDiff **did not beat** it.")
    assert mimic.endswith("no evidence either way.")
    assert "### At a glance" in book.results_markdown(book.collect_results(exp))


def test_write_results_page_generates_include_and_figure(tmp_path):
    _write_summary(tmp_path / "book" / "experiments" / "simulated", [_row("real", "trtr", 0.4), _row("tardiff", "tstr", 0.5)])
    df = book.write_results_page(tmp_path)
    assert len(df) == 2
    assert (tmp_path / book.RESULTS_FIGURE).is_file()
    assert "**0.500 ± 0.010**" in (tmp_path / book.RESULTS_TABLE).read_text()


def test_the_results_page_says_which_scale_and_device_each_dataset_comes_from(tmp_path):
    exp = tmp_path / "book" / "experiments"
    _write_summary(exp / "simulated", [_row("real", "trtr", 0.4)], reference={"prevalence": 0.1},
                   config={"scale": "smoke"}, device="cpu")
    _write_summary(exp / "physionet2012", [_row("real", "trtr", 0.5)], reference={"prevalence": 0.14},
                   config={"scale": "paper"}, device="cuda")
    (exp / "physionet2012" / "provenance.json").write_text(json.dumps({
        "scale": "paper", "device": "cuda", "device_name": "NVIDIA H200", "git_commit": "0123456789abcdef",
        "run_date": "2026-01-02T03:04:05+00:00"}))
    origins = book.run_origins(exp)
    assert origins.set_index("run")["stored"].to_dict() == {"physionet2012": True, "simulated": False}
    book.write_results_page(tmp_path)
    text = (tmp_path / book.RESULTS_TABLE).read_text()
    assert "| Scale | Computed on |" in text
    assert "| `paper` | NVIDIA H200 (stored run, 2026-01-02, commit `0123456789`) |" in text
    assert "| `smoke` | cpu (this build) |" in text


def _comparison(method, baseline, protocol, delta, half=0.01, alpha=None, evaluator="gru"):
    """A row of the replicated family, as the runner writes it."""
    decision = "higher" if delta - half > 0 else "lower" if delta + half < 0 else "no evidence"
    return {"kind": "vs_real" if baseline == "real" else "tardiff_vs_baseline", "method": method,
            "baseline": baseline, "protocol": protocol, "alpha": alpha, "evaluator": evaluator,
            "baseline_protocol": "trtr" if baseline == "real" else protocol, "baseline_alpha": None,
            "delta_auprc": delta, "ci_low": delta - half, "ci_high": delta + half, "p_value": 0.01, "p_holm": 0.03,
            "decision": decision, "n_replicates": 10, "replicate_sd": 0.014, "mde_auprc": 0.014,
            "test_noise_sd": 0.004}


def _gate(method, seed=0, ok=True):
    return {"method": method, "seed": seed, "scale_ratio_neg": 1.0, "scale_ratio_pos": 1.0 if ok else 40.0,
            "discriminative_score": 0.1, "membership_auroc": 0.5, "dcr_ratio": 1.0, "noise_error": None,
            "passes_quality_gate": ok, "gate_failures": [] if ok else ["positive rows are 40.0 times the real scale"]}


def _new_and_old_runs(exp: Path) -> None:
    """The simulated run has comparisons and gates (TarDiff fails it); the PhysioNet run predates both."""
    _write_summary(exp / "simulated", [
        _row("real", "trtr", 0.40), _row("smote", "rebalance", 0.45, passes_quality_gate=True),
        _row("tardiff", "rebalance", 0.50, passes_quality_gate=False),
    ], reference={"prevalence": 0.08}, comparisons=[
        _comparison("smote", "real", "rebalance", 0.05), _comparison("tardiff", "real", "rebalance", 0.10),
        _comparison("tardiff", "smote", "rebalance", 0.05),
    ], generators=[_gate("smote"), _gate("tardiff", ok=False)])
    _write_summary(exp / "physionet2012", [_row("real", "trtr", 0.40), _row("tardiff", "tstr", 0.30),
                                           _row("mcrage", "rebalance", 0.50)])


def test_collect_field_gathers_results_json_rows_per_run(tmp_path):
    exp = tmp_path / "experiments"
    _new_and_old_runs(exp)
    comparisons = book.collect_field(exp, "comparisons")
    assert list(comparisons.columns[:4]) == ["run", "title", "kind", "method"] and set(comparisons["run"]) == {"simulated"}
    assert len(comparisons) == 3 and comparisons["title"].iloc[0] == "Simulated ICU cohort"
    assert book.collect_field(exp, "sweep").empty  # no run has it: an empty table, not an error
    (exp / "simulated" / "results.json").write_text("{")
    with pytest.raises(DataError, match="not readable JSON"):
        book.collect_field(exp, "comparisons")


def test_the_results_page_takes_its_verdicts_from_the_comparisons_and_names_failing_generators(tmp_path):
    _new_and_old_runs(tmp_path / "book" / "experiments")
    book.write_results_page(tmp_path)
    text = (tmp_path / book.RESULTS_TABLE).read_text()
    simulated = next(line for line in text.splitlines() if line.startswith("- **Simulated ICU cohort**"))
    assert ("TarDiff against SMOTE, paired AUPRC difference over 10 replicates (95% t-interval; Holm over the 3 "
            "comparisons fixed in advance): rebalance 1:1 +0.050 [+0.040, +0.060], p (Holm) 0.030: **higher**."
            in simulated)
    assert "Caution: TarDiff fails the quality gate" in simulated
    physionet = next(line for line in text.splitlines() if line.startswith("- **PhysioNet/CinC Challenge 2012**"))
    assert physionet.endswith("TarDiff **did not beat** it.")  # no comparisons there: the summary's call
    assert ":::{warning} Generators that fail the quality gate" in text
    assert "- **Simulated ICU cohort**, TarDiff: seed 0: positive rows are 40.0 times the real scale" in text
    assert "**0.500 ± 0.010** †" in text and "0.450 ± 0.010 †" not in text  # the failing generator is marked
    assert "```{figure} figures/results_comparisons.png" in text and "Every paired comparison" in text
    assert "| p (Holm) | decision | replicates |" in text  # the dropdown's table of the family
    figure = tmp_path / book.COMPARISONS_FIGURE
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # results that predate the comparisons: no figure (an old one is removed) and a note
    for run in ("simulated", "physionet2012"):
        (tmp_path / "book" / "experiments" / run / "results.json").unlink(missing_ok=True)
    book.write_results_page(tmp_path)
    text = (tmp_path / book.RESULTS_TABLE).read_text()
    assert not figure.exists() and "predates them" in text and "Generators that fail" not in text
