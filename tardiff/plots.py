"""The figures the book shows. Each function draws on a new figure and returns it.

Every method's colour, label and place in an order come from :mod:`tardiff.registry`, so a
method looks the same in every figure; one the registry does not know is drawn in grey
under its own name rather than breaking the figure.
"""

from __future__ import annotations

# No matplotlib.use() here: it would switch a notebook's inline backend off. Without a
# display, matplotlib already falls back to the headless Agg backend by itself.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.errors import ParameterError
from tardiff.report import largest_alpha


def trajectory_bands(real: np.ndarray, real_y: np.ndarray, synthetic: dict[str, tuple[np.ndarray, np.ndarray]],
                     features: list[str], units: list[str], *, show: list[str] | None = None) -> pd.DataFrame:
    """The curves :func:`plot_trajectories` draws: quartiles over stays per source, class, feature and time step.

    All arrays are (N, T, F) in clinical units; ``synthetic`` maps a method name to its (X, y).
    ``show`` names the features (default: the first four). The table is small (a few
    thousand rows), so a stored run keeps it instead of the stays themselves
    (:mod:`tardiff.book.stored`).

    Returns
    -------
    pandas.DataFrame
        Columns ``method`` ("real" first), ``label`` (0, 1), ``feature``, ``unit``, ``t``,
        ``q25``, ``q50``, ``q75``; a class without stays has no rows.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(20, 6, 2)); y = np.arange(20) % 2
    >>> trajectory_bands(X, y, {"smote": (X, y)}, ["HR", "RR"], ["bpm", "/min"]).shape
    (48, 8)
    """
    show = list(show or features[: min(4, len(features))])
    sources = {"real": (real, real_y), **synthetic}
    frames = []
    for name in show:
        f = features.index(name)
        for label in (0, 1):
            for method, (X, y) in sources.items():
                sel = np.asarray(X)[np.asarray(y) == label, :, f]
                if len(sel) == 0:
                    continue
                q25, q50, q75 = np.nanpercentile(sel, [25, 50, 75], axis=0)
                frames.append(pd.DataFrame({"method": method, "label": label, "feature": name, "unit": units[f],
                                            "t": np.arange(sel.shape[1]), "q25": q25, "q50": q50, "q75": q75}))
    columns = ["method", "label", "feature", "unit", "t", "q25", "q50", "q75"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def plot_trajectory_bands(bands: pd.DataFrame):
    """Draw :func:`trajectory_bands`: one row of panels per feature, one column per class.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(20, 6, 2)); y = np.arange(20) % 2
    >>> fig = plot_trajectory_bands(trajectory_bands(X, y, {}, ["HR", "RR"], ["bpm", "/min"]))
    >>> len(fig.axes)
    4
    """
    show = list(dict.fromkeys(bands["feature"]))
    if not show:
        raise ParameterError("no trajectories to draw: the bands table is empty")
    units = dict(zip(bands["feature"], bands["unit"]))
    fig, axes = plt.subplots(len(show), 2, figsize=(10, 2.3 * len(show)), sharex=True, squeeze=False)
    for row, name in enumerate(show):
        for col, label in enumerate((0, 1)):
            ax = axes[row, col]
            part = bands[(bands["feature"] == name) & (bands["label"] == label)]
            for method, curve in part.groupby("method", sort=False):
                # the real stays are the yardstick: black and bold, whatever the reference method's colour
                color = "black" if method == "real" else registry.color(method)
                ax.plot(curve["t"], curve["q50"], color=color, lw=2 if method == "real" else 1.2,
                        label=registry.label(method))
                ax.fill_between(curve["t"], curve["q25"], curve["q75"], color=color, alpha=0.12)
            ax.set_title(f"{name} ({units[name]}), {'positive' if label else 'negative'} stays", fontsize=9)
            ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time step")
    axes[-1, 1].set_xlabel("time step")
    axes[0, 1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_trajectories(real: np.ndarray, real_y: np.ndarray, synthetic: dict[str, tuple[np.ndarray, np.ndarray]],
                      features: list[str], units: list[str], *, show: list[str] | None = None):
    """Median and inter-quartile band over stays, per class (columns) and feature (rows).

    All arrays are (N, T, F) in clinical units (apply ``scaler.inverse_transform`` first).
    ``synthetic`` maps a method name to its (X, y). The same as
    ``plot_trajectory_bands(trajectory_bands(...))``.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(20, 6, 2)); y = np.arange(20) % 2
    >>> fig = plot_trajectories(X, y, {"smote": (X, y)}, ["HR", "RR"], ["bpm", "/min"])
    """
    return plot_trajectory_bands(trajectory_bands(real, real_y, synthetic, features, units, show=show))


def plot_embedding(emb_real: np.ndarray | dict[str, np.ndarray], embeddings: dict[str, np.ndarray], *,
                   title: str = "PCA"):
    """Real (grey) against each method's synthetic rows (its registry colour), one panel per method.

    ``emb_real`` is one embedding of the real rows for every panel (PCA, fitted on the real
    rows) or, per method, the real rows' embedding fitted jointly with that method's rows (t-SNE).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fig = plot_embedding(rng.normal(size=(30, 2)), {"smote": rng.normal(size=(30, 2))})
    >>> fig.axes[0].get_title()
    'SMOTE'
    """
    methods = list(embeddings)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), squeeze=False)
    for ax, method in zip(axes[0], methods):
        real = emb_real[method] if isinstance(emb_real, dict) else emb_real
        ax.scatter(*np.asarray(real).T, s=4, c="0.6", alpha=0.5, label="real")
        ax.scatter(*np.asarray(embeddings[method]).T, s=4, color=registry.color(method), alpha=0.5, label="synthetic")
        ax.set_title(registry.label(method), fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].legend(fontsize=7, markerscale=3)
    fig.suptitle(f"{title} of real and synthetic stays", fontsize=10)
    fig.tight_layout()
    return fig


def _label(row) -> str:
    """``"SMOTE (TSRTR +100%)"``: the method's and the protocol's registry labels."""
    return f"{registry.label(row['method'])} ({registry.protocol_label(row['protocol'], row.get('alpha'))})"


def plot_utility(summary: pd.DataFrame, *, metric: str = "auprc", evaluator: str = "cnn",
                 prevalence: float | None = None, bayes: float | None = None, alpha: float = 1.0):
    """Horizontal bars of ``metric`` (mean +/- std over seeds) per method and protocol.

    TSRTR is shown at one ``alpha`` (the full curve is :func:`plot_alpha_curve`); reference
    lines mark the prevalence (a random ranking) and, on simulated data, the Bayes ceiling.
    Bars are in protocol order, then method order (both the registry's), in each method's colour.

    Examples
    --------
    >>> summary = pd.DataFrame({"method": ["real", "tardiff"], "protocol": ["trtr", "tstr"], "alpha": np.nan,
    ...                         "evaluator": "cnn", "auprc_mean": [0.4, 0.5], "auprc_std": [0.01, 0.02]})
    >>> [t.get_text() for t in plot_utility(summary, prevalence=0.1).axes[0].get_yticklabels()]
    ['real only (TRTR)', 'TarDiff (TSTR)']
    """
    df = summary[summary["evaluator"] == evaluator].copy()
    df = df[(df["protocol"] != "tsrtr") | np.isclose(df["alpha"].fillna(-1), alpha)]
    df["_protocol"] = df["protocol"].map(registry.protocol_order)
    df["_method"] = df["method"].map(registry.order)
    df = df.sort_values(["_protocol", "_method"], kind="stable")
    labels = [_label(r) for _, r in df.iterrows()]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(df) + 1.2))
    y = np.arange(len(df))
    ax.barh(y, df[f"{metric}_mean"], xerr=df[f"{metric}_std"].fillna(0),
            color=[registry.color(m) for m in df["method"]], alpha=0.85, capsize=2)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    if prevalence is not None and metric == "auprc":
        ax.axvline(prevalence, color="0.4", ls="--", lw=1, label=f"prevalence {prevalence:.3f}")
    if bayes is not None:
        ax.axvline(bayes, color="crimson", ls=":", lw=1.5, label=f"Bayes ceiling {bayes:.3f}")
    ax.set_xlabel(f"{metric.upper()} on the test split ({evaluator} evaluator; mean ± sd over seeds)")
    if prevalence is not None or bayes is not None:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_alpha_curve(summary: pd.DataFrame, *, metric: str = "auprc", evaluator: str = "cnn",
                     reference: float | None = None):
    """TSRTR: ``metric`` against the synthetic share alpha, one line per method (registry order and colours).

    Examples
    --------
    >>> summary = pd.DataFrame({"method": "tardiff", "protocol": "tsrtr", "alpha": [0.5, 1.0], "evaluator": "cnn",
    ...                         "auprc_mean": [0.45, 0.5], "auprc_std": 0.01})
    >>> plot_alpha_curve(summary, reference=0.4).axes[0].get_legend_handles_labels()[1]
    ['real only', 'TarDiff']
    """
    df = summary[(summary["protocol"] == "tsrtr") & (summary["evaluator"] == evaluator)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    methods = sorted(df["method"].unique(), key=registry.order)
    alphas = np.sort(df["alpha"].dropna().unique())
    # methods side by side around each alpha, so that error bars do not hide one another
    # (and a single alpha, as at cpu scale, is not one stack of points)
    spacing = float(np.diff(alphas).min()) if len(alphas) > 1 else 1.0
    step = 0.5 * spacing / max(1, len(methods))
    for k, method in enumerate(methods):
        part = df[df["method"] == method].sort_values("alpha")
        shift = (k - (len(methods) - 1) / 2) * step
        ax.errorbar(part["alpha"] + shift, part[f"{metric}_mean"], yerr=part[f"{metric}_std"].fillna(0), marker="o",
                    capsize=2, color=registry.color(method), label=registry.label(method))
    if reference is not None:
        ax.axhline(reference, color="black", lw=1, ls="--", label="real only")
    ax.set_xticks(alphas)
    ax.set_xticklabels([f"{a:g}" for a in alphas])
    ax.set_xlabel("synthetic rows added, as a share of the real training set (alpha)")
    ax.set_ylabel(f"{metric.upper()} (test)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_results(results: pd.DataFrame):
    """The Results page's overview: test AUPRC of every method, one panel per dataset and evaluator.

    Bars (mean ± standard deviation over seeds) are grouped by method, one colour per
    protocol; TSRTR is shown at its largest synthetic-to-real ratio. A dashed line marks the
    test prevalence (a random ranking) and a dotted one, where known, the Bayes optimum.
    Drawn on a :class:`matplotlib.figure.Figure` without pyplot (the book saves it from a
    build process, where no figure should linger in pyplot's global state).

    Parameters
    ----------
    results : DataFrame
        :func:`tardiff.book.collect_results`: one row per run x method x protocol (x ratio) x
        evaluator with ``auprc_mean``, ``auprc_std`` and optionally ``title`` (the panel
        titles; the run's name otherwise), ``alpha``, ``prevalence`` and ``bayes_auprc``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> df = pd.DataFrame({"run": "simulated", "method": ["real", "tardiff"], "protocol": ["trtr", "tstr"],
    ...     "evaluator": "gru", "auprc_mean": [0.3, 0.4], "auprc_std": [0.02, 0.03]})
    >>> [t.get_text() for t in plot_results(df).axes[0].get_xticklabels()]
    ['real only', 'TarDiff']
    """
    from matplotlib.figure import Figure

    df = largest_alpha(results.copy())
    titles = dict(zip(df["run"], df["title"])) if "title" in df else {run: run for run in df["run"]}
    runs = list(dict.fromkeys(df["run"]))
    evaluators = list(dict.fromkeys(df["evaluator"]))
    protocols = sorted(dict.fromkeys(df["protocol"]), key=lambda p: (registry.protocol_order(p), p))
    all_methods = sorted(dict.fromkeys(df["method"]), key=lambda m: (registry.order(m), m))
    fig = Figure(figsize=(max(6.4, 4.6 * len(evaluators) + 0.6), 2.9 * len(runs) + 1.1), layout="constrained")
    axes = fig.subplots(len(runs), len(evaluators), squeeze=False, sharey=True)
    width = 0.8 / max(len(protocols), 1)
    labelled = set()

    def once(label):  # one legend entry per label across panels
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for r, run in enumerate(runs):
        for c, evaluator in enumerate(evaluators):
            ax = axes[r, c]
            sub = df[(df["run"] == run) & (df["evaluator"] == evaluator)]
            methods = [m for m in all_methods if m in set(sub["method"])]
            for k, protocol in enumerate(protocols):
                part = sub[sub["protocol"] == protocol].drop_duplicates("method").set_index("method")
                ms = [m for m in methods if m in part.index]
                if not ms:
                    continue
                xs = np.array([methods.index(m) for m in ms]) + (k - (len(protocols) - 1) / 2) * width
                ax.bar(xs, part.loc[ms, "auprc_mean"], width, yerr=part.loc[ms, "auprc_std"].fillna(0),
                       capsize=2, color=f"C{k}", label=once(registry.protocol_label(protocol)))
            if "prevalence" in sub and sub["prevalence"].notna().any():
                ax.axhline(sub["prevalence"].dropna().iloc[0], color="0.3", ls="--", lw=1, label=once("prevalence"))
            if "bayes_auprc" in sub and sub["bayes_auprc"].notna().any():
                ax.axhline(sub["bayes_auprc"].dropna().iloc[0], color="C3", ls=":", lw=1.5, label=once("Bayes optimum"))
            ax.set_xticks(range(len(methods)), [registry.label(m) for m in methods], rotation=25, ha="right",
                          fontsize=8)
            ax.set_title(f"{titles[run]}, {evaluator} evaluator", fontsize=9)
            if c == 0:
                ax.set_ylabel("test AUPRC")
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
    # on top, where a reader meets the colours first; at most three entries per row and evaluator
    # column, so the legend never outgrows the figure
    fig.legend(loc="outside upper center", ncols=min(len(labelled), 3 * len(evaluators)), fontsize=8, frameon=False)
    return fig


#: How :func:`plot_sweep` draws each guidance norm (colour and legend text).
SWEEP_NORMS = {"raw": ("#d55e00", "raw: w ∇s (the paper)"), "unit": ("#0173b2", "unit: w σ_t √D ∇s/‖∇s‖")}
_SWEEP_AXES = {
    "scale_ratio_pos": ("scale ratio of positive stays (synthetic over real row norm)", "scale_ratio"),
    "scale_ratio_neg": ("scale ratio of negative stays (synthetic over real row norm)", "scale_ratio"),
    "discriminative_score": ("discriminative score |accuracy − 0.5| (0 is best)", "discriminative_score_max"),
}


def plot_sweep(sweep: pd.DataFrame, *, x: str = "scale_ratio_pos", metric: str = "auprc",
               evaluator: str | None = None, gate: dict | None = None):
    """Utility against fidelity over the guidance sweep: one point per guidance norm and scale.

    Parameters
    ----------
    sweep : DataFrame
        ``results.json``'s ``sweep``: ``guidance_norm`` (``raw`` or ``unit``), ``guidance_scale``,
        ``seed``, ``evaluator``, the TSTR ``metric``, ``scale_ratio_neg``, ``scale_ratio_pos``,
        ``discriminative_score`` and ``passes_quality_gate``.
    x : {"scale_ratio_pos", "scale_ratio_neg", "discriminative_score"}
        The fidelity on the horizontal axis.
    metric : str
        The utility on the vertical axis (TSTR, test split).
    evaluator : str, optional
        The evaluator whose scores are drawn (None: the first in the table).
    gate : dict, optional
        ``results.json``'s ``quality_gate``; its band on ``x`` is shaded (default
        :data:`tardiff.report.DEFAULT_GATE`).

    Returns
    -------
    matplotlib.figure.Figure
        Means over seeds; colours by norm, each point labelled with its scale ``w``; points
        whose generator fails the quality gate on any seed are hollow. A log axis is used when
        the scale ratios and the gate band span more than a factor of ten.

    Examples
    --------
    >>> sweep = pd.DataFrame({"guidance_norm": ["raw", "raw", "unit"], "guidance_scale": [0.0, 100.0, 0.1],
    ...     "seed": 0, "evaluator": "cnn", "auprc": [0.3, 0.2, 0.35], "scale_ratio_neg": 1.0,
    ...     "scale_ratio_pos": [1.0, 4.0, 1.1], "discriminative_score": [0.1, 0.4, 0.1],
    ...     "passes_quality_gate": [True, False, True]})
    >>> fig = plot_sweep(sweep)
    >>> sorted(t.get_text() for t in fig.axes[0].texts)
    ['w=0', 'w=0.1', 'w=100']
    """
    from tardiff.report import DEFAULT_GATE

    if x not in _SWEEP_AXES:
        raise ParameterError(f"x must be one of {', '.join(_SWEEP_AXES)}; got {x!r}")
    gate = gate or DEFAULT_GATE
    df = sweep.copy()
    if "evaluator" in df and len(df):
        df = df[df["evaluator"] == (evaluator or df["evaluator"].iloc[0])]
    if "passes_quality_gate" not in df:
        df["passes_quality_gate"] = True
    points = df.groupby(["guidance_norm", "guidance_scale"], sort=True).agg(
        x=(x, "mean"), y=(metric, "mean"), passes=("passes_quality_gate", "all")).reset_index()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xlabel, gate_key = _SWEEP_AXES[x]
    if gate_key == "scale_ratio":
        low, high = gate.get("scale_ratio", DEFAULT_GATE["scale_ratio"])
    else:
        low, high = 0.0, gate.get("discriminative_score_max", DEFAULT_GATE["discriminative_score_max"])
    ax.axvspan(low, high, color="0.85", alpha=0.6, lw=0, label="quality gate")
    for norm, part in points.groupby("guidance_norm", sort=False):
        color, text = SWEEP_NORMS.get(norm, (registry.GREY, str(norm)))
        part = part.sort_values("guidance_scale")
        ax.plot(part["x"], part["y"], color=color, lw=0.8, alpha=0.5)
        ax.scatter(part["x"], part["y"], s=45, color=color, zorder=3, label=text,
                   facecolors=[color if ok else "none" for ok in part["passes"]], edgecolors=color, linewidths=1.5)
        for _, row in part.iterrows():
            ax.annotate(f"w={row['guidance_scale']:g}", (row["x"], row["y"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color=color)
    if gate_key == "scale_ratio" and len(points):  # log when the points and the gate band span a factor of ten
        span = max(points["x"].max(), high) / max(min(points["x"].min(), low), 1e-9)
        if span > 10:
            ax.set_xscale("log")
    if not points["passes"].all():
        ax.scatter([], [], s=45, facecolors="none", edgecolors="0.3", label="fails the gate (hollow)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"TSTR {metric.upper()} (test; mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _comparison_label(row) -> str:
    """``"TarDiff vs SMOTE, TSRTR +100%"``."""
    return (f"{registry.label(row['method'])} vs {registry.label(row['baseline'])}, "
            f"{registry.protocol_label(row['protocol'], row.get('alpha'))}")


def plot_comparisons(comparisons: pd.DataFrame, *, evaluator: str | None = None, facet: str | None = None):
    """The reader's summary figure: paired AUPRC differences with 95% intervals, a forest plot per dataset.

    Columns of panels: each method against real data alone, then each TarDiff variant
    against each baseline; one row of panels per dataset (``facet``, its title above the row,
    one symmetric scale per row). TSRTR is shown at its largest synthetic-to-real ratio. Each point is the mean over seeds of the paired
    difference, its bar the paired-bootstrap 95% interval, in the method's registry colour;
    the vertical line is no difference. Drawn without pyplot (the book saves it from a build
    process).

    Parameters
    ----------
    comparisons : DataFrame
        Rows of :func:`tardiff.evaluation.replicates.replicated_comparisons` (``results.json``'s
        ``comparisons``), optionally with ``run`` and ``title`` (across datasets).
    evaluator : str, optional
        The evaluator drawn (None: the first in the table).
    facet : str, optional
        The column that splits panels into rows (default ``title``, else ``run``, else none).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> rows = pd.DataFrame({"method": ["tardiff", "tardiff"], "baseline": ["real", "smote"],
    ...     "protocol": "rebalance", "alpha": None, "evaluator": "cnn", "delta_auprc": [0.02, -0.01],
    ...     "ci_low": [0.0, -0.03], "ci_high": [0.04, 0.01], "p_value": 0.2, "n_seeds": 3, "seed_sd": 0.01})
    >>> [ax.get_title() for ax in plot_comparisons(rows).axes]
    ['each method vs real only', 'TarDiff vs each baseline']
    """
    from matplotlib.figure import Figure

    df = comparisons.copy()
    for bound in ("ci_low", "ci_high"):  # one replicate has no interval: draw its point alone
        df[bound] = pd.to_numeric(df[bound], errors="coerce").fillna(pd.to_numeric(df["delta_auprc"]))
    if "evaluator" in df and len(df):
        evaluator = evaluator or df["evaluator"].iloc[0]
        df = df[df["evaluator"] == evaluator]
    df = largest_alpha(df.assign(run=df[facet] if facet else df.get("run", "")))
    facet = facet or ("title" if "title" in df else "run" if "run" in comparisons else None)
    panels = list(dict.fromkeys(df[facet])) if facet else [None]
    reference = set(registry.method_names("reference"))
    kinds = [("each method vs real only", df["baseline"].isin(reference)),
             ("TarDiff vs each baseline", ~df["baseline"].isin(reference))]
    kinds = [(title, mask) for title, mask in kinds if mask.any()] or kinds[:1]
    rows_per_panel = [max(max(int((((df[facet] == p) if facet else True) & mask).sum()) for _, mask in kinds), 1)
                      for p in panels]
    fig = Figure(figsize=(5.6 * len(kinds), sum(0.2 * n + 1.1 for n in rows_per_panel)), layout="constrained")
    subfigs = fig.subfigures(len(panels), 1, squeeze=False, height_ratios=[0.2 * n + 1.1 for n in rows_per_panel])
    for r, panel in enumerate(panels):
        sub = subfigs[r, 0]
        axes = sub.subplots(1, len(kinds), squeeze=False)[0]
        in_panel = (df[facet] == panel) if facet else pd.Series(True, index=df.index)
        if panel is not None:
            sub.suptitle(str(panel), fontsize=10, fontweight="bold")
        span = df.loc[in_panel, ["ci_low", "ci_high"]].abs().to_numpy()
        limit = 1.1 * max(float(np.nanmax(span)) if span.size else 0.0, 1e-3)  # one symmetric scale per dataset
        for c, (title, mask) in enumerate(kinds):
            ax = axes[c]
            part = df[mask & in_panel]
            keys = pd.DataFrame({"b": part["baseline"].map(registry.order), "m": part["method"].map(registry.order),
                                 "p": part["protocol"].map(registry.protocol_order)}, index=part.index)
            part = part.loc[keys.sort_values(["b", "m", "p"], kind="stable").index]
            y = np.arange(len(part))
            for yi, (_, row) in zip(y, part.iterrows()):
                ax.errorbar(row["delta_auprc"], yi, xerr=[[row["delta_auprc"] - row["ci_low"]],
                                                          [row["ci_high"] - row["delta_auprc"]]],
                            fmt="o", color=registry.color(row["method"]), ms=4, capsize=2, lw=1.2)
            ax.axvline(0, color="0.3", lw=0.8)
            ax.set_yticks(y, [_comparison_label(row) for _, row in part.iterrows()], fontsize=7)
            ax.set_ylim(rows_per_panel[r] - 0.5, -0.5)  # the same row height in both columns
            ax.set_xlim(-limit, limit)
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(f"ΔAUPRC, 95% t-interval over replicates ({evaluator})", fontsize=7)
    return fig
