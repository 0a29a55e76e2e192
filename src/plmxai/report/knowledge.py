"""The knowledge-neuron part of the report: preservation and ablation curves against the random
band, density per site type and layer, agreement between scores, IG completeness."""

from __future__ import annotations

import pandas as pd

from plmxai import plot
from plmxai.sites import SITES

SCOPE_TEXT = {
    "all": "over all neurons",
    "layer": "within each layer",
    "site": "within each site of each layer",
}


def knowledge_section(config: dict, f: dict, fig_to_img, table, kv) -> str:
    """HTML of a variant's knowledge-neuron results (helpers passed in from report.py)."""
    k = config["knowledge"]
    summary = pd.read_parquet(f["preservation"])
    runs = pd.read_parquet(f["preservation_runs"])
    density = pd.read_parquet(f["density"])
    agreement = pd.read_parquet(f["agreement"])
    comp = pd.read_parquet(f["knowledge_completeness"])
    fractions = sorted(
        summary.loc[summary["fraction"].between(0, 1, inclusive="neither"), "fraction"].unique()
    )
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
    )
    parts.append(fig_to_img(plot.preservation(summary), "preservation and ablation curves"))
    acc = summary[(summary["metric"] == "accuracy") & summary["fraction"].between(0, 1, inclusive="neither")]
    if "beats_random" in acc:
        cols = [
            "mode",
            "fraction",
            "method",
            "n_selected",
            "value",
            "ci_low",
            "ci_high",
            "random_mean",
            "random_low",
            "random_high",
            "p_permutation",
            "beats_random",
        ]
        t = acc[cols].rename(columns={"value": "accuracy"}).sort_values(["mode", "fraction", "method"])
        parts.append(
            "<p>Test accuracy per selection (rows beating the random band shaded; for "
            "ablation, beating means lower):</p>"
        )
        parts.append(table(t, row_class=lambda r: "sig" if r["beats_random"] is True else ""))
        parts.append(
            '<p class="note">Macro-F1 and MCC, and every random draw, are in '
            "knowledge/preservation.parquet and knowledge/preservation_runs.parquet "
            f"({len(runs)} rows).</p>"
        )
    if shown is not None:
        parts.append(
            f"<p>Density of selected neurons at fraction {shown:g} "
            "(selected share of a site type and layer over the overall share):</p>"
        )
        parts.append(fig_to_img(plot.density(density, shown), f"density heatmap at fraction {shown:g}"))
        d = density[(density["fraction"] == shown) & (density["layer"] == "all")]
        wide = d.pivot(index="site", columns="method", values="density").reindex(list(SITES))
        qv = d.pivot(index="site", columns="method", values="q_value").reindex(list(SITES))
        wide.columns = [f"{c} density" for c in wide.columns]
        qv.columns = [f"{c} q" for c in qv.columns]
        both = pd.concat([wide, qv], axis=1)
        both = both[[c for pair in zip(wide.columns, qv.columns) for c in pair]]
        parts.append(
            "<p>Per site type, all layers (one-sided Fisher test, BH over every cell of a "
            "score and fraction):</p>" + table(both.reset_index())
        )
    parts.append(
        "<p>Agreement between scores (Spearman over neurons; Jaccard of the top fractions):</p>"
        + table(agreement)
    )
    rows = []
    for (method, site), g in comp.groupby(["method", "site"], sort=False):
        rows.append(
            {
                "estimator": method,
                "site": site if method != "conductance" else "embedding (a cut)",
                "proteins": g["accession"].nunique(),
                "median relative error": g["relative_error"].median(),
                "median |delta|": g["delta"].abs().median(),
                f"above {k['completeness_tolerance']:g}": int((~g["complete"]).sum()),
            }
        )
    parts.append(
        "<p>Completeness of the IG estimators (sum of attributions against F(x) - "
        "F(baseline)); a single site of knowledge attribution is its own cut (baseline: "
        "the site zeroed). Relative errors are large where zeroing a site barely moves F.</p>"
        + table(pd.DataFrame(rows))
    )
    return "\n".join(parts)
