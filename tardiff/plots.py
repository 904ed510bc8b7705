"""The figures the book shows. Each function draws on a new figure and returns it."""

from __future__ import annotations

# No matplotlib.use() here: it would switch a notebook's inline backend off. Without a
# display, matplotlib already falls back to the headless Agg backend by itself.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

METHOD_ORDER = ["real", "real_cw", "ros", "smote", "mcrage", "unguided", "tardiff"]
METHOD_LABELS = {
    "real": "real only", "real_cw": "real, class-weighted", "ros": "random oversampling", "smote": "SMOTE",
    "mcrage": "MCRAGE", "unguided": "diffusion (unguided)", "tardiff": "TarDiff",
}
PALETTE = dict(zip(METHOD_ORDER, sns.color_palette("colorblind", len(METHOD_ORDER))))


def plot_trajectories(real: np.ndarray, real_y: np.ndarray, synthetic: dict[str, tuple[np.ndarray, np.ndarray]],
                      features: list[str], units: list[str], *, show: list[str] | None = None):
    """Median and inter-quartile band over stays, per class (columns) and feature (rows).

    All arrays are (N, T, F) in clinical units (apply ``scaler.inverse_transform`` first).
    ``synthetic`` maps a method name to its (X, y).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(20, 6, 2)); y = np.arange(20) % 2
    >>> fig = plot_trajectories(X, y, {"smote": (X, y)}, ["HR", "RR"], ["bpm", "/min"])
    """
    show = show or features[: min(4, len(features))]
    fig, axes = plt.subplots(len(show), 2, figsize=(10, 2.3 * len(show)), sharex=True, squeeze=False)
    sources = {"real": (real, real_y), **synthetic}
    for row, name in enumerate(show):
        f = features.index(name)
        for col, label in enumerate((0, 1)):
            ax = axes[row, col]
            for method, (X, y) in sources.items():
                sel = X[y == label, :, f]
                if len(sel) == 0:
                    continue
                t = np.arange(sel.shape[1])
                q25, q50, q75 = np.nanpercentile(sel, [25, 50, 75], axis=0)
                color = "black" if method == "real" else PALETTE.get(method)
                ax.plot(t, q50, color=color, lw=2 if method == "real" else 1.2, label=METHOD_LABELS.get(method, method))
                ax.fill_between(t, q25, q75, color=color, alpha=0.12)
            ax.set_title(f"{name} ({units[f]}), {'positive' if label else 'negative'} stays", fontsize=9)
            ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time step")
    axes[-1, 1].set_xlabel("time step")
    axes[0, 1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_embedding(emb_real: np.ndarray, embeddings: dict[str, np.ndarray], *, title: str = "PCA"):
    """Real (grey) against each method's synthetic rows (colour), one panel per method."""
    methods = list(embeddings)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), squeeze=False)
    for ax, method in zip(axes[0], methods):
        ax.scatter(*emb_real.T, s=4, c="0.6", alpha=0.5, label="real")
        ax.scatter(*embeddings[method].T, s=4, color=PALETTE.get(method), alpha=0.5, label="synthetic")
        ax.set_title(f"{METHOD_LABELS.get(method, method)}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].legend(fontsize=7, markerscale=3)
    fig.suptitle(f"{title} of real and synthetic stays", fontsize=10)
    fig.tight_layout()
    return fig


def _label(row) -> str:
    base = METHOD_LABELS.get(row["method"], row["method"])
    if row["protocol"] == "tsrtr":
        return f"{base} +{row['alpha']:.0%}"
    return f"{base} ({row['protocol'].upper()})"


def plot_utility(summary: pd.DataFrame, *, metric: str = "auprc", evaluator: str = "cnn",
                 prevalence: float | None = None, bayes: float | None = None, alpha: float = 1.0):
    """Horizontal bars of ``metric`` (mean +/- std over seeds) per method and protocol.

    TSRTR is shown at one ``alpha`` (the full curve is :func:`plot_alpha_curve`); reference
    lines mark the prevalence (a random ranking) and, on simulated data, the Bayes ceiling.
    """
    df = summary[summary["evaluator"] == evaluator].copy()
    df = df[(df["protocol"] != "tsrtr") | np.isclose(df["alpha"].fillna(-1), alpha)]
    df["order"] = df["method"].map({m: i for i, m in enumerate(METHOD_ORDER)})
    df = df.sort_values(["protocol", "order"], key=lambda s: s.map(
        {"trtr": 0, "rebalance": 1, "tsrtr": 2, "tstr": 3}) if s.name == "protocol" else s)
    labels = [_label(r) for _, r in df.iterrows()]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(df) + 1.2))
    y = np.arange(len(df))
    ax.barh(y, df[f"{metric}_mean"], xerr=df[f"{metric}_std"].fillna(0), color=[PALETTE[m] for m in df["method"]],
            alpha=0.85, capsize=2)
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
    """TSRTR: ``metric`` against the synthetic share alpha, one line per method."""
    df = summary[(summary["protocol"] == "tsrtr") & (summary["evaluator"] == evaluator)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method, part in df.groupby("method"):
        part = part.sort_values("alpha")
        ax.errorbar(part["alpha"], part[f"{metric}_mean"], yerr=part[f"{metric}_std"].fillna(0), marker="o",
                    capsize=2, color=PALETTE.get(method), label=METHOD_LABELS.get(method, method))
    if reference is not None:
        ax.axhline(reference, color="black", lw=1, ls="--", label="real only")
    ax.set_xlabel("synthetic rows added, as a share of the real training set (alpha)")
    ax.set_ylabel(f"{metric.upper()} (test)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_guidance_sweep(sweep: pd.DataFrame, *, metric: str = "auprc"):
    """Guidance scale w against the TSTR ``metric`` and the mean influence score."""
    sweep = sweep.sort_values("guidance_scale")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.3))
    a1.plot(sweep["guidance_scale"], sweep[metric], marker="o", color=PALETTE["tardiff"])
    a1.set_xscale("symlog", linthresh=1.0)
    a1.set_xlabel("guidance scale w")
    a1.set_ylabel(f"TSTR {metric.upper()} (test)")
    a1.axvline(0, color="0.5", lw=0.8)
    a2.plot(sweep["guidance_scale"], sweep["mean_influence"], marker="o", color="0.3")
    a2.set_xscale("symlog", linthresh=1.0)
    a2.set_xlabel("guidance scale w")
    a2.set_ylabel("mean influence score s(x, y)")
    a2.axvline(0, color="0.5", lw=0.8)
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
