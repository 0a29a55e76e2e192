"""One self-contained HTML report: figures embedded as PNG data URIs, no network needed."""

from __future__ import annotations

import datetime as _dt
import html
import platform
from importlib import metadata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from plmxai import plot  # noqa: E402
from plmxai.metrics import confusion  # noqa: E402
from plmxai.report.attention import attention_change_section  # noqa: E402
from plmxai.report.embed import _FIGURE_DIR  # noqa: E402, F401
from plmxai.report.embed import figure_img as _fig_to_img  # noqa: E402
from plmxai.report.embed import kv as _kv  # noqa: E402
from plmxai.report.embed import table as _table  # noqa: E402
from plmxai.report.table import TABLE_HEAD  # noqa: E402
from plmxai.tables import read_partitioned, sha256_file  # noqa: E402

PACKAGES = [
    "plmxai",
    "torch",
    "transformers",
    "captum",
    "snakemake",
    "pandas",
    "pyarrow",
    "numpy",
    "scipy",
    "scikit-learn",
    "matplotlib",
]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:0 auto;padding:1em 1.5em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #345;padding-bottom:.2em}h2{margin-top:2em;color:#234}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;white-space:nowrap}
th{background:#eef2f6}td:first-child,th:first-child{text-align:left}
tr.text td{white-space:normal;text-align:left;min-width:10em}
tr.sig td{background:#e8f6e8}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
.kv td:first-child{font-weight:600}.note{color:#555;font-size:.9em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em}
nav a{margin-right:1em}\nsummary{cursor:pointer;color:#345;margin:.4em 0}
"""


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def checksums(paths: dict[str, str]) -> dict:
    """sha256 of each input file; for a model folder, of its weights file."""
    out = {}
    for name, p in paths.items():
        p = Path(p)
        if p.is_dir():
            w = p / "model.safetensors"
            out[name] = sha256_file(w if w.exists() else p)
            if not w.exists():
                out[name] += " (folder: sha256 of its files' path and sha256 lines)"
        elif p.exists():
            out[name] = sha256_file(p)
    return out


# ---- figures (plmxai.plot), embedded -------------------------------------------------------


def training_figure(history: pd.DataFrame) -> str:
    return _fig_to_img(plot.training(history), "training curves")


def confusion_figure(cm: np.ndarray, labels: list[str]) -> str:
    return _fig_to_img(plot.confusion(cm, labels), "confusion matrix")


def neuron_figure(summary: pd.DataFrame) -> str:
    return _fig_to_img(plot.neuron_summary(summary), "neuron activation summary")


def track_figure(rel: pd.DataFrame, ann: pd.DataFrame, title: str) -> str:
    return _fig_to_img(plot.relevance_track(rel, ann, title), title)


def faithfulness_figure(summary: pd.DataFrame, title: str) -> str:
    return _fig_to_img(plot.faithfulness(summary, title), title)


def head_heatmap(tests: pd.DataFrame, title: str) -> str:
    fig = plot.head_tests(tests, title)
    return _fig_to_img(fig, fig.axes[0].get_title())  # the title names the embedding level too


# ---- the report ----------------------------------------------------------------------------


def build_report(
    config: dict,
    inputs: dict,
    n_tracks: int = 4,
    title: str = "plmxai report",
    figure_dir: Path | None = None,
) -> str:
    """HTML text of the report; with `figure_dir`, every figure is also saved there as PNG.

    inputs: data_summary, annotations, raw, initial (paths) and variants: {variant: {training,
    predictions, metrics, confusion, model, neurons, relevance, completeness, statistics}}.
    """
    token = _FIGURE_DIR.set(Path(figure_dir) if figure_dir is not None else None)
    try:
        return _build_report(config, inputs, n_tracks, title)
    finally:
        _FIGURE_DIR.reset(token)


def _build_report(config: dict, inputs: dict, n_tracks: int, title: str) -> str:
    data_summary = yaml.safe_load(Path(inputs["data_summary"]).read_text())
    annotations = pd.read_parquet(inputs["annotations"])
    labels = [str(x) for x in data_summary["labels"]]
    variants = list(inputs["variants"])

    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append(
        f'<p class="note">Run <b>{html.escape(config["run"])}</b>, written '
        f"{_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}. Variants: "
        f"{', '.join(variants)}.</p>"
    )
    nav = [("data", "Data"), ("variants", "Variants compared")]
    nav += [(f"v-{v}", f"Variant: {v}") for v in variants] + [("provenance", "Provenance")]
    parts.append("<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in nav) + "</nav>")
    parts.append(_data_section(config, data_summary))
    parts.append(_comparison_section(inputs["variants"]))
    if "finetuned" in variants:
        parts.append(_claims_section(Path(inputs["data_summary"]).parents[1]))
    if inputs.get("contrast"):
        parts.append(_contrast_section(pd.read_parquet(inputs["contrast"])))
    if inputs.get("attention_change"):
        parts.append(attention_change_section(pd.read_parquet(inputs["attention_change"])))
    for i, v in enumerate(variants):
        parts.append(
            _variant_section(config, v, inputs["variants"][v], annotations, labels, n_tracks, open_=i == 0)
        )

    parts.append('<h2 id="provenance">Provenance</h2>')
    parts.append("<h3>Package versions</h3>" + _kv(package_versions()))
    flat = {k: v for k, v in inputs.items() if k != "variants" and v}
    for v, files in inputs["variants"].items():
        flat.update({f"{v}/{k}": p for k, p in files.items()})
    parts.append("<h3>Input checksums (sha256)</h3>" + _kv(checksums(flat)))
    parts.append("<h3>Config</h3><pre>" + html.escape(yaml.safe_dump(config, sort_keys=False)) + "</pre>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style>{TABLE_HEAD}</head><body>\n{body}\n</body></html>\n"
    )


def _claims_section(run: Path) -> str:
    """The papers' claims this run can test, each held / not held, with the figure
    (plmxai.report.findings, the same table as the README's for the real tasks)."""
    from plmxai.report.findings import claims

    table = claims(run)
    if not len(table):
        return ""
    return (
        '<h2 id="claims">The papers\' claims on this run</h2>'
        '<p class="note">Each judged by the test its paper used, at q &lt; 0.05; the stricter nulls '
        "of this pipeline are given beside it. A claim that does not hold is a result.</p>"
        + _table(table, row_class=lambda r: "sig" if r["verdict"] == "held" else "")
    )


def _data_section(config: dict, data_summary: dict) -> str:
    parts = ['<h2 id="data">Data</h2>']
    parts.append(
        _kv(
            {
                "source": config["data"]["source"]
                + next((f" ({config['data'][k]})" for k in ("tsv", "path") if config["data"].get(k)), ""),
                "rows read": data_summary["rows"],
                "proteins kept": data_summary["kept"],
                "dropped (reason: count)": data_summary["dropped"] or "none",
                "classes dropped (min_class_size)": data_summary["classes_dropped"] or "none",
                "sequences upper-cased": data_summary["uppercased"],
                "final stop codons (*) removed": data_summary.get("stop_codons_stripped", 0),
                "read with CSV quoting (pandas, R, a spreadsheet)": "yes"
                if data_summary.get("quoted")
                else "no",
                "features with uncertain positions skipped": data_summary["uncertain_positions_skipped"],
                "length policy": _length_text(data_summary.get("length_policy", {})),
                "evidence filter": (", ".join(config["data"]["evidence"]) or "none")
                + f" ({data_summary.get('evidence_filtered', 0)} features removed)",
                "split": _split_text(data_summary.get("split", {})),
                "length min / median / max": "{min} / {median:g} / {max}".format(**data_summary["length"]),
                "annotations per type": data_summary["annotation_counts"],
            }
        )
    )
    split_counts = pd.DataFrame(data_summary["split_counts"]).T
    split_counts.index.name = "split"
    parts.append("<p>Proteins per split and class:</p>" + _table(split_counts.reset_index()))
    return "\n".join(parts)


def _comparison_section(files: dict[str, dict]) -> str:
    parts = [
        '<h2 id="variants">Variants compared</h2>',
        '<p class="note">finetuned: the model fine-tuned on the task; frozen: encoder kept at '
        "its weights before fine-tuning, only the classifier head trained; shuffled: "
        "training labels permuted (same proteins and budget); given: the model as loaded, not "
        "trained here. Test metrics with 95% "
        "bootstrap intervals over test proteins.</p>",
    ]
    rows, stat_rows = [], []
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for v, f in files.items():
        m = pd.read_parquet(f["metrics"])
        m = m[(m["split"] == "test") & (m["class"] == "all")].set_index("metric")
        row = {"variant": v}
        for name in ("accuracy", "macro_f1", "mcc"):
            if name not in m.index:  # an unlabelled set: no metric to give
                row[f"test {name}"] = "no labels"
                continue
            lo, hi = m.loc[name, "ci_low"], m.loc[name, "ci_high"]
            ci = "" if np.isnan(lo) else f" [{lo:.3f}, {hi:.3f}]"
            row[f"test {name}"] = f"{m.loc[name, 'value']:.3f}{ci}"
        rows.append(row)
        if "training" in f:  # the given model is not trained
            h = pd.read_parquet(f["training"])
            ax.plot(h["epoch"], h["val_accuracy"], label=v)
        st = pd.read_parquet(f["statistics"]) if "statistics" in f else pd.DataFrame()
        if len(st):
            st = st[st["class"] == "all"]
            for typ, g in st.groupby("annotation_type"):
                heads = g[g["layer"] != "embedding"].sort_values(
                    ["q_value", "median_r"], ascending=[True, False]
                )
                for label, r in [("embedding", g[g["layer"] == "embedding"]), ("best head", heads.head(1))]:
                    if len(r):
                        r = r.iloc[0]
                        where = (
                            "embedding" if label == "embedding" else f"layer {r['layer']} head {r['head']}"
                        )
                        stat_rows.append(
                            {
                                "variant": v,
                                "annotation_type": typ,
                                "relevance": where,
                                "n_proteins": r["n_proteins"],
                                "median_r": r["median_r"],
                                "q_value": r["q_value"],
                                "q_shift": r["q_shift"],
                                "q_composition": r.get("q_composition", np.nan),
                                "significant": r["significant"],
                                "significant heads": f"{int(heads['significant'].sum())} of {len(heads)}",
                            }
                        )
    ax.set(
        xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1.02), title="Validation accuracy per variant"
    )
    parts.append(_table(pd.DataFrame(rows)))
    if ax.lines:
        ax.legend(fontsize=8)
        parts.append(_fig_to_img(fig, "validation accuracy per variant"))
    else:
        plt.close(fig)
    if stat_rows:
        parts.append(
            "<p>Residue relevance against annotations, all classes pooled: the embedding "
            "level and the head with the smallest q of each variant:</p>"
        )
        parts.append(_table(pd.DataFrame(stat_rows), row_class=lambda r: "sig" if r["significant"] else ""))
    return "\n".join(parts)


def _contrast_section(table: pd.DataFrame) -> str:
    """The fine-tuned model's relevance-annotation alignment against each control's."""
    parts = [
        "<p>Fine-tuned against each control: per protein, r of the fine-tuned model minus r of "
        "the control (same protein, layer, head, annotation type); one-sided Wilcoxon of a "
        "positive median difference, BH over every test against every control. A control "
        "can align with the annotations a little on its own (its encoder's features are "
        "those of the model before fine-tuning); this asks whether fine-tuning added to it. "
        "All classes pooled: the embedding level and the head with the smallest q:</p>"
    ]
    rows = []
    pooled = table[table["class"] == "all"] if len(table) else table
    for (control, typ), g in pooled.groupby(["control", "annotation_type"], sort=True):
        heads = g[g["layer"] != "embedding"].sort_values(
            ["q_value", "median_difference"], ascending=[True, False]
        )
        for label, r in [("embedding", g[g["layer"] == "embedding"]), ("best head", heads.head(1))]:
            if len(r):
                r = r.iloc[0]
                rows.append(
                    {
                        "control": control,
                        "annotation_type": typ,
                        "relevance": "embedding"
                        if label == "embedding"
                        else f"layer {r['layer']} head {r['head']}",
                        "n_proteins": r["n_proteins"],
                        "median r fine-tuned": r["median_r_reference"],
                        "median r control": r["median_r_control"],
                        "median difference": r["median_difference"],
                        "q_value": r["q_value"],
                        "significant": r["significant"],
                        "significant heads": f"{int(heads['significant'].sum())} of {len(heads)}",
                    }
                )
    if not rows:
        return ""
    return "\n".join(parts) + _table(
        pd.DataFrame(rows), row_class=lambda r: "sig" if r["significant"] else ""
    )


def _variant_section(config, variant, f, annotations, labels, n_tracks, open_) -> str:

    history = pd.read_parquet(f["training"]) if "training" in f else None
    preds = pd.read_parquet(f["predictions"])
    mt = pd.read_parquet(f["metrics"])
    neurons = pd.read_parquet(f["neurons"]) if "neurons" in f else None
    parts = [
        f'<h2 id="v-{variant}">Variant: {variant}</h2>',
        f"<details{' open' if open_ else ''}><summary>details of the {variant} model</summary>",
    ]

    checkpoint = _checkpoint_text(f["model"])
    if checkpoint:
        parts.append(checkpoint)
    if history is None:
        parts.append(
            "<h3>Training</h3><p>None: the <b>given</b> variant is the model as loaded. "
            "The training curves and the knowledge-neuron stages (activation scores, IG "
            "neuron scores, preservation against the weights before fine-tuning) need a "
            "training run and are skipped for it.</p>"
        )
    else:
        parts.append("<h3>Training</h3>")
        parts.append(training_figure(history))
        cols = [c for c in history.columns if c not in ("variant", "step")]
        parts.append(_table(history[cols].round(4), max_rows=200))

    parts.append("<h3>Test metrics</h3>")
    test = preds[preds["split"] == "test"]
    overall = mt[(mt["split"] == "test") & (mt["class"] == "all")]
    if overall.empty:
        parts.append(
            f"<p>None: the proteins carry no labels ({len(preds)} predicted; "
            "predictions.parquet holds the class probabilities).</p>"
        )
    else:
        parts.append(_table(overall[["metric", "value", "ci_low", "ci_high", "n"]]))
        per_class = mt[(mt["split"] == "test") & (mt["class"] != "all")].pivot(
            index="class", columns="metric", values="value"
        )
        parts.append("<p>Per class (test):</p>" + _table(per_class.reset_index()))
        parts.append(confusion_figure(confusion(test["label_id"], test["pred_id"], len(labels)), labels))

    if neurons is not None:
        parts.append(_neuron_section(config, neurons))
    if "relevance" in f:
        parts.extend(_attribution_parts(config, variant, f, annotations, preds, n_tracks))
    else:
        parts.append("<h3>Residue attributions</h3><p>Not run (attribution.enabled: false).</p>")
    if "attention" in f:
        from plmxai.report.attention import attention_section

        parts.append(attention_section(config, variant, f, _fig_to_img, _table))
    if "preservation" in f:
        from plmxai.report.knowledge import knowledge_section

        parts.append(knowledge_section(config, f, _fig_to_img, _table, _kv))
    parts.append("</details>")
    return "\n".join(parts)


def _checkpoint_text(model_dir) -> str:
    """Where a pretrained model's weights came from and what was done to its head."""
    from plmxai.tables import read_checkpoint_info

    info = read_checkpoint_info(model_dir) if model_dir and Path(model_dir).is_dir() else None
    if not info:
        return ""
    return "<h3>Checkpoint</h3>" + _kv(
        {
            "loaded from": info["name_or_path"]
            + (f" (revision {info['revision']})" if info.get("revision") else ""),
            "hub commit": info.get("commit") or "n/a (a local folder)",
            "weights (sha256)": "; ".join(f"{k}: {v}" for k, v in info["sha256"].items()),
            "classifier head": info["head"],
        }
    )


def _neuron_section(config, neurons) -> str:
    from plmxai.sites import site_summary

    parts = ["<h3>Knowledge neurons: activation scores</h3>"]
    summ = site_summary(neurons)
    parts.append(
        f'<p class="note">{neurons[["layer", "site", "neuron"]].drop_duplicates().shape[0]} neurons '
        f"scored on the {config['knowledge']['activation']['split']} split ({config['knowledge']['activation']['reduce']} over "
        "residues). Class selectivity: standard deviation of a neuron's score across classes over "
        "its mean absolute score.</p>"
    )
    parts.append(neuron_figure(summ))
    parts.append(_table(summ.astype({"site": str})))
    return "\n".join(parts)


def _attribution_parts(config, variant, f, annotations, preds, n_tracks) -> list:
    relevance = read_partitioned(f["relevance"], "layer", ["embedding"])
    completeness = pd.read_parquet(f["completeness"])
    head_comp = completeness[completeness["method"] == "head_conductance"]
    completeness = completeness[completeness["method"] == "embedding_ig"]
    stats = pd.read_parquet(f["statistics"])
    parts = ["<h3>Residue attributions (embedding-level integrated gradients)</h3>"]
    a = config["attribution"]
    parts.append(
        _kv(
            {
                "proteins attributed": len(completeness),
                "target": a["target"],
                "steps": a["n_steps"],
                "rule": a["method"],
                "baseline": "<cls> <pad>... <eos>",
                "completeness |delta| median / max": f"{completeness['delta'].abs().median():.3g} / "
                f"{completeness['delta'].abs().max():.3g}",
                "completeness relative error median / 95th pct": f"{completeness['relative_error'].median():.3g} / "
                f"{completeness['relative_error'].quantile(0.95):.3g}",
                f"proteins above tolerance {a['completeness_tolerance']:g}": int(
                    (~completeness["complete"]).sum()
                ),
                "baseline option": a["baseline"]
                + (f" ({a['n_baselines']} shuffles)" if a["baseline"] == "shuffled" else ""),
                "only correctly classified": a["only_correct"],
            }
        )
    )
    if len(head_comp):
        parts.append(
            f'<p class="note">Head-level relevance: conductance at every layer\'s attention context, '
            f"all layers from one integration of {a['head_steps']} steps; its embedding-output sum against "
            f"F(x) - F(baseline): relative error median {head_comp['relative_error'].median():.3g}, "
            f"max {head_comp['relative_error'].max():.3g}.</p>"
        )
    # beside each embedding-level track, the head with the strongest association (smallest q)
    heads = stats[(stats["class"] == "all") & (stats["layer"] != "embedding")].dropna(subset=["q_value"])
    best = heads.sort_values(["q_value", "median_r"], ascending=[True, False]).head(1)
    head_rel = None
    if len(best):
        bl, bh = str(best["layer"].iat[0]), int(best["head"].iat[0])
        head_rel = read_partitioned(f["relevance"], "layer", [bl])
        head_rel = head_rel[head_rel["head"] == bh]
    for acc in _track_choice(relevance, annotations, preds, n_tracks):
        lab = preds.loc[preds["accession"] == acc, "label"].iat[0]
        ann = annotations[annotations["accession"] == acc]
        parts.append(
            track_figure(
                relevance[relevance["accession"] == acc],
                ann,
                f"{acc} (class {lab}, {variant}): embedding-level relevance per residue, annotations shaded",
            )
        )
        if head_rel is not None:
            parts.append(
                track_figure(
                    head_rel[head_rel["accession"] == acc],
                    ann,
                    f"{acc}: layer {bl} head {bh} (smallest q, {best['annotation_type'].iat[0]})",
                )
            )

    if "faithfulness" in f:
        fa = pd.read_parquet(f["faithfulness"])
        fc = config["attribution"]["faithfulness"]
        track = "embedding-level" if fc["layer"] == "embedding" else f"layer {fc['layer']} head {fc['head']}"
        parts.append("<h3>Faithfulness: alanine replacement</h3>")
        parts.append(
            f'<p class="note">The k most relevant residues ({track} relevance) replaced by alanine, '
            f"against k random residues ({fc['n_random']} draws per protein); mean drop of the "
            f"attributed class's probability with 95% bootstrap intervals over proteins.</p>"
        )
        if len(fa):
            parts.append(faithfulness_figure(fa, f"{variant}: faithfulness of {track} relevance"))
            parts.append(_table(fa))

    parts.append("<h3>Statistics: relevance against annotations</h3>")
    s = config["attribution"]["statistics"]
    parts.append(
        f'<p class="note">Per protein, the point-biserial r between {s["relevance"]} relevance and '
        "each annotation mask; across proteins, the one-sided Wilcoxon signed-rank test of median "
        f"r &gt; 0; Benjamini-Hochberg over all {int(stats['p_value'].notna().sum()) if len(stats) else 0} "
        f"tests of this variant; significant rows (q &lt; {s['fdr']}) shaded.</p>"
    )
    if len(stats):
        parts.append(
            '<p class="note">Also a permutation null per protein that keeps the relevance '
            f"autocorrelation: the annotation mask circularly shifted ({s['n_shifts']} shifts), "
            "p_shift of the median r, BH-adjusted as q_shift; and a composition-matched null (the mask "
            "permuted among residues of the same amino acid, as many draws): q_composition &lt; FDR "
            "says the relevance follows the annotation beyond what the residues' identity explains.</p>"
        )
        pooled = stats[stats["class"] == "all"]
        for typ, g in pooled.groupby("annotation_type"):
            if (g["layer"] != "embedding").any():
                parts.append(head_heatmap(g, f"{variant}: median r per head, {typ} (* q < {s['fdr']})"))
        shown_cols = [
            "layer",
            "head",
            "annotation_type",
            "class",
            "n_proteins",
            "median_r",
            "fraction_positive",
            "rank_biserial",
            "p_value",
            "q_value",
            "p_shift",
            "q_shift",
            "q_composition",
            "significant",
        ]
        shown = stats[shown_cols].head(60)
        parts.append(_table(shown, row_class=lambda r: "sig" if r["significant"] else ""))
        parts.append(
            f'<p class="note">The {len(shown)} tests with the smallest q of {len(stats)}; all tests '
            "and columns (mean r, W statistic, proteins excluded for an undefined r, number of "
            "tests) are in attribution/statistics.parquet.</p>"
        )
    else:
        parts.append("<p>No test could be made (no attributed protein carries an annotation).</p>")
    return parts


def _length_text(lp: dict) -> str:
    if not lp:
        return "n/a"
    return (
        f"max {lp['max_length']} residues, policy {lp['policy']}: {lp['overlong']} longer, "
        f"{lp['skipped']} skipped, {lp['cropped']} cropped "
        f"({lp['annotations_outside_window']} annotations outside the kept windows)"
    )


def _split_text(sp: dict) -> str:
    if sp.get("method") != "homology":
        text = "random, stratified by class"
    else:
        text = (
            f"homology (MMseqs2, identity >= {sp['min_seq_id']}, coverage {sp['coverage']}): "
            f"{sp['clusters']} clusters; highest test-to-train identity "
            f"{sp['max_test_train_identity']:.2f} ({sp['test_proteins_with_train_hit']} test "
            "proteins with any hit in train)"
        )
    same = sp.get("identical_sequences") or {}
    if same.get("proteins"):
        text += (
            f"; {same['proteins']} proteins share {same['sequences']} identical sequences, each "
            f"sequence's copies in one split ({same['splits_shared']} shared between splits)"
        )
    for split, classes in (sp.get("classes_missing") or {}).items():
        text += f"; no {split} proteins of class(es) {', '.join(classes)}"
    return text


def _track_choice(relevance, annotations, preds, n) -> list[str]:
    """The first n attributed proteins (in accession order) that carry annotations, one per
    class in turn so every class is shown."""
    attributed = set(relevance["accession"].unique()) & set(annotations["accession"])
    cand = preds[preds["accession"].isin(attributed)].sort_values("accession")
    out: list[str] = []
    groups = [list(g["accession"]) for _, g in cand.groupby("label", sort=True)]
    while len(out) < n and any(groups):
        for g in groups:
            if g and len(out) < n:
                out.append(g.pop(0))
    return out
