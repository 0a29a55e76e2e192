"""The knowledge-neuron part of the report: preservation and ablation curves against the random
band, density per site type and layer, agreement between scores, IG completeness."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from plmxai.sites import SITES

COLORS = {"activation": "#1f77b4", "knowledge_attribution": "#d62728", "conductance": "#9467bd",
          "weight_change": "#2ca02c"}  # fmt: skip
SCOPE_TEXT = {"all": "over all neurons", "layer": "within each layer", "site": "within each site of each layer"}
MODE_TEXT = {"preserve": "preservation (selected keep fine-tuned weights, others revert)",
             "ablate_revert": "ablation (selected revert)", "ablate_zero": "ablation (selected zeroed)",
             "ablate_mean": "ablation (selected at mean activation)"}  # fmt: skip


def preservation_figure(summary: pd.DataFrame, metric: str = "accuracy") -> plt.Figure:
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
            ax.fill_between(band["fraction"], band["random_low"], band["random_high"], color="0.8",
                            label="random (95% band)")  # fmt: skip
            ax.plot(band["fraction"], band["random_mean"], color="0.5", lw=1)
        for name in methods:
            g = curve[curve["method"] == name].sort_values("fraction")
            c = COLORS.get(name)
            ax.plot(g["fraction"], g["value"], marker="o", ms=3, color=c, label=name)
            ax.fill_between(g["fraction"], g["ci_low"], g["ci_high"], color=c, alpha=0.15)
        for ref, style in (("none", ":"), ("all", "--")):
            r = m[m["method"] == ref]
            if len(r):
                ax.axhline(r["value"].iat[0], color="k", ls=style, lw=0.8,
                           label={"none": "nothing selected", "all": "everything selected"}[ref])  # fmt: skip
        ax.set_xscale("log")
        ax.set(xlabel="fraction of neurons selected", ylabel=f"test {metric}", title=MODE_TEXT.get(mode, mode))
        ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def density_figure(density: pd.DataFrame, fraction: float, q_level: float = 0.05) -> plt.Figure:
    """Density (selected fraction over overall fraction; 1 = chance) per site type and layer,
    one panel per score, log2 colour scale; * marks q < q_level (one-sided Fisher, BH)."""
    d = density[(density["fraction"] == fraction) & (density["layer"] != "all")]
    methods = list(dict.fromkeys(d["method"]))
    layers = sorted(d["layer"].astype(int).unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(1.2 + 0.45 * len(layers) * len(methods) + 1.6 * len(methods), 3.0),
                             squeeze=False)  # fmt: skip
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


def knowledge_section(config: dict, f: dict, fig_to_img, table, kv) -> str:
    """HTML of a variant's knowledge-neuron results (helpers passed in from report.py)."""
    k = config["knowledge"]
    summary = pd.read_parquet(f["preservation"])
    runs = pd.read_parquet(f["preservation_runs"])
    density = pd.read_parquet(f["density"])
    agreement = pd.read_parquet(f["agreement"])
    comp = pd.read_parquet(f["knowledge_completeness"])
    fractions = sorted(summary.loc[summary["fraction"].between(0, 1, inclusive="neither"), "fraction"].unique())
    shown = min(fractions, key=lambda x: abs(x - 0.05)) if fractions else None
    n_neurons = int(summary.loc[summary["method"] == "all", "n_selected"].max())
    parts = ["<h3>Knowledge neurons: preservation, ablation, density</h3>"]
    parts.append(
        f'<p class="note">{n_neurons} neurons (query, key, value, attention output, FFN in, FFN out '
        f"of every layer). Scores: activation (neurons stage), knowledge attribution (Dai et al., "
        f"{k['ka_steps']} steps) and conductance along the input path ({k['conductance_steps']} "
        f"steps), both on {k['max_proteins'] or 'all'} {k['split']} proteins, target {k['output']} of "
        f"the {k['target']} class, reduced over classes by {k['class_reduce']}; and the magnitude of "
        f"the weight change. Top fraction selected {SCOPE_TEXT[k['select_within']]}; by activation {SCOPE_TEXT[k['activation_within']]}. "
        f"Every model is evaluated on the test split; bands are 95% bootstrap intervals "
        f"({k['bootstrap']} resamples, shared by all models); the random band pools "
        f"{k['n_random']} random selections of the same size"
        f"{' matched per site type and layer' if k['random_matched'] else ''} and the bootstrap. "
        "p (permutation): (1 + random draws at least as good) / (1 + draws).</p>"
    )  # fmt: skip
    parts.append(fig_to_img(preservation_figure(summary), "preservation and ablation curves"))
    acc = summary[(summary["metric"] == "accuracy") & summary["fraction"].between(0, 1, inclusive="neither")]
    if "beats_random" in acc:
        cols = ["mode", "fraction", "method", "n_selected", "value", "ci_low", "ci_high", "random_mean",
                "random_low", "random_high", "p_permutation", "beats_random"]  # fmt: skip
        t = acc[cols].rename(columns={"value": "accuracy"}).sort_values(["mode", "fraction", "method"])
        parts.append("<p>Test accuracy per selection (rows beating the random band shaded; for "
                     "ablation, beating means lower):</p>")  # fmt: skip
        parts.append(table(t, row_class=lambda r: "sig" if r["beats_random"] is True else ""))
        parts.append('<p class="note">Macro-F1 and MCC, and every random draw, are in '
                     "knowledge/preservation.parquet and knowledge/preservation_runs.parquet "
                     f"({len(runs)} rows).</p>")  # fmt: skip
    if shown is not None:
        parts.append(f"<p>Density of selected neurons at fraction {shown:g} "
                     "(selected share of a site type and layer over the overall share):</p>")  # fmt: skip
        parts.append(fig_to_img(density_figure(density, shown), f"density heatmap at fraction {shown:g}"))
        d = density[(density["fraction"] == shown) & (density["layer"] == "all")]
        wide = d.pivot(index="site", columns="method", values="density").reindex(list(SITES))
        qv = d.pivot(index="site", columns="method", values="q_value").reindex(list(SITES))
        wide.columns = [f"{c} density" for c in wide.columns]
        qv.columns = [f"{c} q" for c in qv.columns]
        both = pd.concat([wide, qv], axis=1)
        both = both[[c for pair in zip(wide.columns, qv.columns) for c in pair]]
        parts.append("<p>Per site type, all layers (one-sided Fisher test, BH over every cell of a "
                     "score and fraction):</p>" + table(both.reset_index()))  # fmt: skip
    parts.append("<p>Agreement between scores (Spearman over neurons; Jaccard of the top "
                 "fractions):</p>" + table(agreement))  # fmt: skip
    rows = []
    for (method, site), g in comp.groupby(["method", "site"], sort=False):
        rows.append({"estimator": method, "site": site if method != "conductance" else "embedding (a cut)",
                     "proteins": g["accession"].nunique(), "median relative error": g["relative_error"].median(),
                     "median |delta|": g["delta"].abs().median(),
                     f"above {k['completeness_tolerance']:g}": int((~g["complete"]).sum())})  # fmt: skip
    parts.append("<p>Completeness of the IG estimators (sum of attributions against F(x) - "
                 "F(baseline)); a single site of knowledge attribution is its own cut (baseline: "
                 "the site zeroed). Relative errors are large where zeroing a site barely moves F.</p>"
                 + table(pd.DataFrame(rows)))  # fmt: skip
    return "\n".join(parts)
