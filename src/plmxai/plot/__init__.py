"""The figures of the report, as matplotlib Figures: the report embeds these functions, and a
notebook calls them on the same tables (a finished run's, through plmxai.Run, or its own).

    import plmxai as px
    run = px.Run("results/demo")
    px.plot.preservation(run.table("preservation", variant="finetuned"))
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless jobs; a notebook's own backend is set before this import
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from plmxai.sites import SITES  # noqa: E402

COLORS = {
    "activation": "#1f77b4",
    "knowledge_attribution": "#d62728",
    "conductance": "#9467bd",
    "weight_change": "#2ca02c",
}
MODE_TEXT = {
    "preserve": "preservation (selected keep fine-tuned weights, others revert)",
    "ablate_revert": "ablation (selected revert)",
    "ablate_zero": "ablation (selected zeroed)",
    "ablate_mean": "ablation (selected at mean activation)",
}


def training(history: pd.DataFrame) -> Figure:
    """Loss and accuracy per epoch, train and validation; dotted: the epoch kept."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].plot(history["epoch"], history["train_loss"], label="train")
    axes[0].plot(history["epoch"], history["val_loss"], label="validation")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    axes[1].plot(history["epoch"], history["train_accuracy"], label="train accuracy")
    axes[1].plot(history["epoch"], history["val_accuracy"], label="validation accuracy")
    axes[1].plot(history["epoch"], history["val_macro_f1"], label="validation macro-F1", ls="--")
    kept = history.loc[history["kept"], "epoch"]
    for ax in axes:
        for e in kept:
            ax.axvline(e, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=8)
    axes[1].set(xlabel="epoch", ylim=(0, 1.02), title="Accuracy (dotted: kept epoch)")
    return fig


def confusion(cm: np.ndarray, labels: list[str]) -> Figure:
    """A confusion matrix (rows: true class), counts in the cells."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(labels), 1.0 + 0.5 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                int(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted class", ylabel="true class", title="Test confusion matrix")
    return fig


def neuron_summary(summary: pd.DataFrame) -> Figure:
    """Layer x site mean |activation score| and median class selectivity (sites.site_summary)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.9 + 0.5 * summary["layer"].nunique() + 1.5))
    for ax, col, title in zip(
        axes,
        ["mean_abs_score", "median_selectivity"],
        ["mean |activation score|", "median class selectivity"],
    ):
        grid = summary.pivot(index="layer", columns="site", values=col)
        grid = grid.reindex(columns=[s for s in SITES if s in grid.columns])
        im = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis")
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30)
        ax.set_yticks(range(grid.shape[0]), grid.index)
        ax.set(xlabel="site", ylabel="layer", title=title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def relevance_track(rel: pd.DataFrame, ann: pd.DataFrame, title: str = "") -> Figure:
    """One protein's relevance per residue, its annotations shaded."""
    rel = rel.sort_values("position")
    fig, ax = plt.subplots(figsize=(10, 2.0))
    colors = {"active_site": "#d62728", "binding_site": "#1f77b4", "site": "#9467bd"}
    for rec in ann.itertuples(index=False):
        ax.axvspan(rec.start - 0.5, rec.end + 0.5, color=colors.get(rec.type, "#888"), alpha=0.2)
    v = rel["relevance"].to_numpy()
    ax.bar(rel["position"], v, width=1.0, color=np.where(v >= 0, "#333", "#aaa"))
    ax.axhline(0, color="black", lw=0.5)
    ax.set(xlabel="residue", ylabel="relevance", title=title)
    ax.set_xlim(0.5, rel["position"].max() + 0.5)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.3) for c in colors.values()]
    present = [t for t in colors if t in set(ann["type"])]
    if present:
        ax.legend([handles[list(colors).index(t)] for t in present], present, fontsize=7, loc="upper right")
    return fig


def faithfulness(summary: pd.DataFrame, title: str = "") -> Figure:
    """Mean drop of the target probability against k, relevant vs random residues, CI bands."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for sel, color in (("relevant", "#d62728"), ("random", "#7f7f7f")):
        g = summary[summary["selection"] == sel].sort_values("k")
        ax.plot(g["k"], g["mean_drop"], marker="o", color=color, label=f"{sel} residues")
        ax.fill_between(g["k"], g["ci_low"], g["ci_high"], color=color, alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.axhline(0, color="black", lw=0.5)
    ax.set(xlabel="residues replaced by alanine (k)", ylabel="drop in target probability", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    return fig


def head_tests(tests: pd.DataFrame, title: str = "") -> Figure:
    """Layer x head median r, significant cells starred; the embedding level in the title."""
    heads = tests[tests["layer"] != "embedding"].astype({"layer": int})
    grid = heads.pivot(index="layer", columns="head", values="median_r").sort_index()
    sig = heads.pivot(index="layer", columns="head", values="significant").reindex_like(grid)
    emb = tests[tests["layer"] == "embedding"]
    if len(emb):
        e = emb.iloc[0]
        title += f"; embedding: r {e['median_r']:.2f}{' *' if e['significant'] else ''}"
    values = grid.to_numpy(dtype=float)
    stars = sig.to_numpy() == True  # noqa: E712 (NaN, untested, is not a star)
    return star_heatmap(values, stars, grid.index, grid.columns, title, "median r", 0.05)


def star_heatmap(
    values: np.ndarray, stars: np.ndarray, layers, heads, title: str, label: str, min_lim: float
) -> Figure:
    """Layer x head values on a diverging scale centred at 0, starred cells, NaN blank."""
    fig, ax = plt.subplots(figsize=(1.4 + 0.45 * values.shape[1], 1.0 + 0.35 * values.shape[0]))
    finite = values[np.isfinite(values)]
    lim = max(min_lim, float(np.abs(finite).max())) if finite.size else min_lim
    im = ax.imshow(values, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), v in np.ndenumerate(stars):
        if v:
            ax.text(j, i, "*", ha="center", va="center", fontsize=10)
    ax.set(
        xticks=range(values.shape[1]),
        xticklabels=heads,
        yticks=range(values.shape[0]),
        yticklabels=layers,
        xlabel="head",
        ylabel="layer",
        title=title,
    )
    ax.title.set_fontsize(8)
    fig.colorbar(im, ax=ax, label=label)
    return fig


def attention_ratios(t: pd.DataFrame, prop: str, fdr: float) -> Figure:
    """Layer x head proportion / background (log2), significant heads starred, untested blank."""
    g = t[t["property"] == prop]
    grid = g.pivot(index="layer", columns="head", values="ratio").sort_index()
    tested = g.pivot(index="layer", columns="head", values="tested").reindex_like(grid).astype(bool)
    sig = g.pivot(index="layer", columns="head", values="significant").reindex_like(grid).astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(tested.to_numpy(), np.log2(grid.to_numpy(dtype=float)), np.nan)
    bg = g["background"].iloc[0]
    title = f"{prop}: log2(attention / background {bg:.3f}); * q < {fdr}"
    return star_heatmap(values, sig.to_numpy(), grid.index, grid.columns, title, "log2 ratio", 1.0)


def attention_profiles(prof: pd.DataFrame, props: list[str]) -> Figure:
    """Per layer, the mean over heads of attention to each property over its background."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for prop in props:
        g = prof[prof["property"] == prop].sort_values("layer")
        if len(g):
            ax.plot(
                g["layer"],
                g["mean_ratio"],
                marker="o",
                label=f"{prop} (centre of gravity {g['centre_of_gravity'].iloc[0]:.2f})",
            )
    ax.axhline(1, color="black", lw=0.5)
    ax.set_xticks(sorted(prof["layer"].unique()))
    ax.set(xlabel="layer", ylabel="mean over heads / background", title="Attention to properties per layer")
    ax.legend(fontsize=7)
    return fig


def probes(table: pd.DataFrame) -> Figure:
    """Probe AUPRC and precision per layer."""
    probes = table
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, g in probes.groupby("probe"):
        g = g.sort_values("layer")
        line = axes[0].plot(g["layer"], g["auprc"], marker="o", label=name)[0]
        axes[0].axhline(g["auprc_baseline"].iloc[0], color=line.get_color(), ls=":", lw=1)
        axes[1].plot(g["layer"], g["precision"], marker="o", label=f"{name} ({g['precision_at'].iloc[0]})")
    axes[0].set(
        xlabel="layer (0 = embeddings)", ylabel="AUPRC (dotted: baseline)", title="Probe AUPRC per layer"
    )
    axes[1].set(xlabel="layer (0 = embeddings)", ylabel="precision", title="Probe precision at L/20 or L/5")
    for ax in axes:
        ax.set_xticks(sorted(probes["layer"].unique()))
        ax.legend(fontsize=7)
    return fig


def preservation(summary: pd.DataFrame, metric: str = "accuracy") -> Figure:
    """One panel per test mode: each method's metric against the kept fraction, with its
    bootstrap interval, over the random band (pooled 95% interval of the random draws)."""
    s = summary[summary["metric"] == metric]
    modes = list(dict.fromkeys(s["mode"]))
    fig, axes = plt.subplots(1, len(modes), figsize=(5.2 * len(modes), 3.6), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        m = s[s["mode"] == mode]
        curve = m[m["fraction"].between(0, 1, inclusive="neither")]
        methods = [x for x in dict.fromkeys(curve["method"])]
        band = curve[curve["method"] == methods[0]].sort_values("fraction") if methods else curve
        if "random_mean" in band and band["random_mean"].notna().any():
            ax.fill_between(
                band["fraction"],
                band["random_low"],
                band["random_high"],
                color="0.8",
                label="random (95% band)",
            )
            ax.plot(band["fraction"], band["random_mean"], color="0.5", lw=1)
        for name in methods:
            g = curve[curve["method"] == name].sort_values("fraction")
            c = COLORS.get(name)
            ax.plot(g["fraction"], g["value"], marker="o", ms=3, color=c, label=name)
            ax.fill_between(g["fraction"], g["ci_low"], g["ci_high"], color=c, alpha=0.15)
        for ref, style in (("none", ":"), ("all", "--")):
            r = m[m["method"] == ref]
            if len(r):
                ax.axhline(
                    r["value"].iat[0],
                    color="k",
                    ls=style,
                    lw=0.8,
                    label={"none": "nothing selected", "all": "everything selected"}[ref],
                )
        ax.set_xscale("log")
        ax.set(
            xlabel="fraction of neurons selected", ylabel=f"test {metric}", title=MODE_TEXT.get(mode, mode)
        )
        ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def density(density: pd.DataFrame, fraction: float, q_level: float = 0.05) -> Figure:
    """Density (selected fraction over overall fraction; 1 = chance) per site type and layer,
    one panel per score, log2 colour scale; * marks q < q_level (one-sided Fisher, BH)."""
    d = density[(density["fraction"] == fraction) & (density["layer"] != "all")]
    methods = list(dict.fromkeys(d["method"]))
    layers = sorted(d["layer"].astype(int).unique())
    fig, axes = plt.subplots(
        1,
        len(methods),
        figsize=(1.2 + 0.45 * len(layers) * len(methods) + 1.6 * len(methods), 3.0),
        squeeze=False,
    )
    for ax, name in zip(axes[0], methods):
        g = d[d["method"] == name]
        grid = np.full((len(SITES), len(layers)), np.nan)
        qs = np.ones_like(grid)
        for r in g.itertuples():
            i, j = SITES.index(r.site), layers.index(int(r.layer))
            grid[i, j], qs[i, j] = r.density, r.q_value
        val = np.log2(np.clip(grid, 1 / 16, 16))
        im = ax.imshow(val, cmap="RdBu_r", vmin=-4, vmax=4, aspect="auto")
        for i in range(len(SITES)):
            for j in range(len(layers)):
                if qs[i, j] < q_level:
                    ax.text(j, i, "*", ha="center", va="center", fontsize=11)
        ax.set_xticks(range(len(layers)), [str(x) for x in layers], fontsize=7)
        ax.set_yticks(range(len(SITES)), SITES, fontsize=7)
        ax.set(xlabel="layer", title=name)
        ax.title.set_fontsize(8)
    cb = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    cb.set_label("log2 density (0 = chance)", fontsize=7)
    return fig
