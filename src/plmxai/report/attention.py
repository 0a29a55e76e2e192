"""The attention part of the report: layer x head heatmaps of attention-to-property over
background, layer profiles with centres of gravity, the BLOSUM62 correlation."""
from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def ratio_heatmap(t: pd.DataFrame, prop: str, fdr: float) -> str:
    """Layer x head proportion / background (log2), significant heads starred, untested blank."""
    g = t[t["property"] == prop]
    grid = g.pivot(index="layer", columns="head", values="ratio").sort_index()
    tested = g.pivot(index="layer", columns="head", values="tested").reindex_like(grid).astype(bool)
    sig = g.pivot(index="layer", columns="head", values="significant").reindex_like(grid).astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(tested.to_numpy(), np.log2(grid.to_numpy(dtype=float)), np.nan)
    bg = g["background"].iloc[0]
    title = f"{prop}: log2(attention / background {bg:.3f}); * q < {fdr}"
    from plmxai.report.html import star_heatmap

    return star_heatmap(values, sig.to_numpy(), grid.index, grid.columns, title, "log2 ratio", 1.0)


def profile_figure(prof: pd.DataFrame, props: list[str], fig_to_img) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for prop in props:
        g = prof[prof["property"] == prop].sort_values("layer")
        if len(g):
            ax.plot(g["layer"], g["mean_ratio"], marker="o",
                    label=f"{prop} (centre of gravity {g['centre_of_gravity'].iloc[0]:.2f})")  # fmt: skip
    ax.axhline(1, color="black", lw=0.5)
    ax.set_xticks(sorted(prof["layer"].unique()))
    ax.set(xlabel="layer", ylabel="mean over heads / background", title="Attention to properties per layer")
    ax.legend(fontsize=7)
    return fig_to_img(fig, "attention to properties per layer")


TOP_HEADS = 3  # heads shown per property; the whole table is one click away
TABLE_COLUMNS = ["layer", "head", "property", "kind", "n_high_pairs", "proportion", "background", "ratio",
                 "p_permutation", "q_permutation", "q_z", "q_composition", "significant", "tested"]  # fmt: skip


def top_heads(t: pd.DataFrame, props: list[str], k: int = TOP_HEADS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the best `k` tested heads per property of `props`, by q then ratio, in `props` order;
    the whole table: those rows first, then every other row by q then ratio)."""
    ranked = t.sort_values(["q_permutation", "ratio"], ascending=[True, False], na_position="last", kind="stable")
    best = ranked[ranked["property"].isin(props) & ranked["tested"].astype(bool)].groupby("property", sort=False).head(k)
    best = best.sort_values("property", key=lambda c: c.map({p: i for i, p in enumerate(props)}), kind="stable")
    cols = [c for c in TABLE_COLUMNS if c in t.columns]
    return best[cols], pd.concat([best, ranked.drop(index=best.index)])[cols]


def attention_section(config: dict, variant: str, f: dict, fig_to_img, table) -> str:
    a, fdr = config["attention"], config["statistics"]["fdr"]
    t = pd.read_parquet(f["attention"])
    prof = pd.read_parquet(f["attention_profiles"])
    blosum = pd.read_parquet(f["blosum"]).iloc[0]
    parts = ["<h3>Attention: what the heads attend to</h3>", (
        f'<p class="note">Proportion of high-confidence attention (weight &gt; {a["theta"]}, special tokens '
        f"dropped) that goes to annotated residues, to each amino acid and to C-alpha contacts "
        f"(where structures are mapped), against the property's background frequency. Heads with "
        f"fewer than {a['min_pairs']} high-confidence pairs are not tested. Significance: permutation "
        f"null per head ({a['n_shifts']} circular shifts of each protein's property track; diagonal "
        f"shifts of contact maps), BH over all {int(t['n_tests'].iloc[0]) if len(t) else 0} head x "
        f"property tests; the original's two-proportion z-test is in the table too. For annotations "
        f"also a null that keeps every residue's amino acid (the annotation permuted among residues of "
        f"the same amino acid in each protein): q_composition &lt; {fdr} says the head attends to the "
        f"annotated residues beyond what their amino acids explain.</p>")]  # fmt: skip
    if not len(t):
        return "\n".join(parts + ["<p>No protein analysed.</p>"])
    props = [p for p in dict.fromkeys(t.loc[t["kind"].isin(["annotation", "contact"]), "property"])]
    from plmxai.report.anchors import variant_rows

    probes = pd.read_parquet(f["probes"]) if f.get("probes") else None
    anchors = variant_rows(t, prof, blosum, probes)
    if len(anchors):
        parts.append("<p>Against the published figures (Vig et al. 2021, TAPE BERT pretrained; heads "
                     "L&lt;layer&gt; H&lt;head&gt;, the top three tested heads by proportion):</p>")  # fmt: skip
        parts.append(table(anchors, row_class=lambda r: "text"))  # sentences: wrapped, left-aligned
    for prop in props:
        parts.append(ratio_heatmap(t, prop, fdr))
    parts.append(profile_figure(prof, props, fig_to_img))
    best, full = top_heads(t, props)
    parts.append(f'<p class="note">Per annotation and contacts, the {TOP_HEADS} tested heads with the smallest '
                 f"permutation q (ties: the larger ratio); the whole table, all {len(full)} head x property rows "
                 "(amino acids and untested heads included), opens below it, sortable and filterable.</p>")  # fmt: skip
    parts.append(table(full, row_class=lambda r: "sig" if r["significant"] else "", max_rows=len(best)))
    r = "n/a" if pd.isna(blosum["pearson_r"]) else f"{blosum['pearson_r']:.3f} (Mantel p {blosum['p_mantel']:.4f})"
    parts.append(f"<p>BLOSUM62: Pearson r between the heads' amino-acid attention similarity and BLOSUM62 over "
                 f"{int(blosum['n_pairs'])} amino-acid pairs, {int(blosum['n_heads'])} heads: "
                 f"<b>{html.escape(r)}</b>.</p>")  # fmt: skip
    if f.get("probes"):
        probes = pd.read_parquet(f["probes"])
        if len(probes):
            parts.append(f'<p class="note">Linear probes on frozen residue embeddings per layer (0 = embedding '
                         f"output): logistic regression (C {a['probes']['C']}) fitted on training proteins, "
                         "AUPRC and precision at L/20 (residues) or L/5 (contacts, separation &ge; "
                         f"{a['structures']['min_separation']}) on test proteins.</p>")  # fmt: skip
            parts.append(probe_figure(probes, fig_to_img))
            parts.append(table(probes))
    return "\n".join(parts)


def probe_figure(probes: pd.DataFrame, fig_to_img) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, g in probes.groupby("probe"):
        g = g.sort_values("layer")
        line = axes[0].plot(g["layer"], g["auprc"], marker="o", label=name)[0]
        axes[0].axhline(g["auprc_baseline"].iloc[0], color=line.get_color(), ls=":", lw=1)
        axes[1].plot(g["layer"], g["precision"], marker="o", label=f"{name} ({g['precision_at'].iloc[0]})")
    axes[0].set(xlabel="layer (0 = embeddings)", ylabel="AUPRC (dotted: baseline)", title="Probe AUPRC per layer")
    axes[1].set(xlabel="layer (0 = embeddings)", ylabel="precision", title="Probe precision at L/20 or L/5")
    for ax in axes:
        ax.set_xticks(sorted(probes["layer"].unique()))
        ax.legend(fontsize=7)
    return fig_to_img(fig, "probe curves per layer")
