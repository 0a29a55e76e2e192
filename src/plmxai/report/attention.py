"""The attention part of the report: layer x head heatmaps of attention-to-property over
background, layer profiles with centres of gravity, the BLOSUM62 correlation."""

from __future__ import annotations

import html

import pandas as pd

from plmxai import plot
from plmxai.report.embed import figure_img
from plmxai.report.embed import table as html_table

TOP_HEADS = 3  # heads shown per property; the whole table is one click away
TABLE_COLUMNS = [
    "layer",
    "head",
    "property",
    "kind",
    "n_high_pairs",
    "proportion",
    "background",
    "ratio",
    "p_permutation",
    "q_permutation",
    "q_z",
    "q_composition",
    "significant",
    "tested",
]


def top_heads(t: pd.DataFrame, props: list[str], k: int = TOP_HEADS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the best `k` tested heads per property of `props`, by q then ratio, in `props` order;
    the whole table: those rows first, then every other row by q then ratio)."""
    ranked = t.sort_values(
        ["q_permutation", "ratio"], ascending=[True, False], na_position="last", kind="stable"
    )
    best = (
        ranked[ranked["property"].isin(props) & ranked["tested"].astype(bool)]
        .groupby("property", sort=False)
        .head(k)
    )
    best = best.sort_values(
        "property", key=lambda c: c.map({p: i for i, p in enumerate(props)}), kind="stable"
    )
    cols = [c for c in TABLE_COLUMNS if c in t.columns]
    return best[cols], pd.concat([best, ranked.drop(index=best.index)])[cols]


def attention_section(config: dict, variant: str, f: dict, fig_to_img, table) -> str:
    a, fdr = config["attention"], config["attention"]["fdr"]
    t = pd.read_parquet(f["attention"])
    prof = pd.read_parquet(f["attention_profiles"])
    blosum = pd.read_parquet(f["blosum"]).iloc[0]
    parts = [
        "<h3>Attention: what the heads attend to</h3>",
        (
            f'<p class="note">Proportion of high-confidence attention (weight &gt; {a["theta"]}, special tokens '
            f"dropped) that goes to annotated residues, to each amino acid and to C-alpha contacts "
            f"(where structures are mapped), against the property's background frequency. Heads with "
            f"fewer than {a['min_pairs']} high-confidence pairs are not tested. Significance: permutation "
            f"null per head ({a['n_shifts']} circular shifts of each protein's property track; diagonal "
            f"shifts of contact maps), BH over all {int(t['n_tests'].iloc[0]) if len(t) else 0} head x "
            f"property tests; the original's two-proportion z-test is in the table too. For annotations "
            f"also a null that keeps every residue's amino acid (the annotation permuted among residues of "
            f"the same amino acid in each protein): q_composition &lt; {fdr} says the head attends to the "
            f"annotated residues beyond what their amino acids explain.</p>"
        ),
    ]
    if not len(t):
        return "\n".join(parts + ["<p>No protein analysed.</p>"])
    props = [p for p in dict.fromkeys(t.loc[t["kind"].isin(["annotation", "contact"]), "property"])]
    from plmxai.report.anchors import variant_rows

    probes = pd.read_parquet(f["probes"]) if f.get("probes") else None
    anchors = variant_rows(t, prof, blosum, probes)
    if len(anchors):
        parts.append(
            "<p>Against the published figures (Vig et al. 2021, TAPE BERT pretrained; heads "
            "L&lt;layer&gt; H&lt;head&gt;, the top three tested heads by proportion):</p>"
        )
        parts.append(table(anchors, row_class=lambda r: "text"))  # sentences: wrapped, left-aligned
    for prop in props:
        fig = plot.attention_ratios(t, prop, fdr)
        parts.append(figure_img(fig, fig.axes[0].get_title()))
    parts.append(fig_to_img(plot.attention_profiles(prof, props), "attention to properties per layer"))
    best, full = top_heads(t, props)
    parts.append(
        f'<p class="note">Per annotation and contacts, the {TOP_HEADS} tested heads with the smallest '
        f"permutation q (ties: the larger ratio); the whole table, all {len(full)} head x property rows "
        "(amino acids and untested heads included), opens below it, sortable and filterable.</p>"
    )
    parts.append(table(full, row_class=lambda r: "sig" if r["significant"] else "", max_rows=len(best)))
    r = (
        "n/a"
        if pd.isna(blosum["pearson_r"])
        else f"{blosum['pearson_r']:.3f} (Mantel p {blosum['p_mantel']:.4f})"
    )
    parts.append(
        f"<p>BLOSUM62: Pearson r between the heads' amino-acid attention similarity and BLOSUM62 over "
        f"{int(blosum['n_pairs'])} amino-acid pairs, {int(blosum['n_heads'])} heads: "
        f"<b>{html.escape(r)}</b>.</p>"
    )
    if f.get("probes"):
        probes = pd.read_parquet(f["probes"])
        if len(probes):
            parts.append(
                f'<p class="note">Linear probes on frozen residue embeddings per layer (0 = embedding '
                f"output): logistic regression (C {a['probes']['C']}) fitted on training proteins, "
                "AUPRC and precision at L/20 (residues) or L/5 (contacts, separation &ge; "
                f"{a['structures']['min_separation']}) on test proteins.</p>"
            )
            parts.append(fig_to_img(plot.probes(probes), "probe curves per layer"))
            parts.append(table(probes))
    return "\n".join(parts)


def attention_change_section(change: pd.DataFrame) -> str:
    """What fine-tuning did to attention: per property, how many heads changed, and the heads
    that changed most, fine-tuned against the model before fine-tuning."""
    parts = [
        '<h2 id="attention-change">What fine-tuning did to attention</h2>',
        "<p>Each head's proportion of high-confidence attention on a property, the fine-tuned "
        "model against the model before fine-tuning, on the same proteins: the difference, and a "
        "paired permutation test (the two models' counts swapped protein by protein), "
        "Benjamini-Hochberg over every head and property compared. Per property, the heads with "
        "the largest changes among those that changed:</p>",
    ]
    tested = change[change["tested"].astype(bool)]
    if not len(tested):
        return "\n".join(parts) + "<p>No head had enough high-confidence pairs in both models to test.</p>"
    rows = []
    for prop, g in tested.groupby("property", sort=True):
        changed = g[g["significant"].astype(bool)]
        top = changed.reindex(changed["difference"].abs().sort_values(ascending=False).index).head(TOP_HEADS)
        summary = {
            "property": prop,
            "proteins": int(g["proteins"].iloc[0]),
            "heads changed": f"{len(changed)} of {len(g)} ({int((changed['difference'] > 0).sum())} up)",
        }
        if not len(top):
            rows.append({**summary, "head": "none", "before": "", "after": "", "q": ""})
        for _, r in top.iterrows():
            rows.append(
                {
                    **summary,
                    "head": f"L{r['layer']} H{r['head']}",
                    "before": f"{r['proportion_before']:.1%}",
                    "after": f"{r['proportion_after']:.1%}",
                    "q": f"{r['q_value']:.2g}",
                }
            )
    return "\n".join(parts) + html_table(pd.DataFrame(rows)) + f"<p>{len(tested)} comparisons tested.</p>"
