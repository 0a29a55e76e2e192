"""What a finished fine-tuning run found, and the papers' claims each held, not held or not
testable on it, from the run's tables: the README's real-task tables are this module's output,
not typed.

    python -m plmxai.report.findings results/esm2_8m_ec results/esm2_8m_membrane

Reads only tables and logs (no torch), so it runs anywhere the results are. A claim is judged
by the test the paper used, at q < 0.05 (BH over every test of the stage); the stricter nulls
this pipeline adds are given beside it, never instead of it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from plmxai.report.anchors import stage_times, variant_rows, wall_seconds

FDR = 0.05
VARIANTS = ("finetuned", "frozen", "shuffled")
_CHUNK = re.compile(r"_\d+$")


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _pct(fraction: float) -> str:
    """0.005 -> '0.5%', 0.1 -> '10%': a fraction of neurons, never rounded to 0%."""
    return f"{100 * fraction:g}%"


def _q(q: float) -> str:
    if not np.isfinite(q):
        return "n/a"
    return f"{q:.2g}"


# ---- model quality ---------------------------------------------------------------------


def metrics_table(run: Path) -> pd.DataFrame:
    """Per variant: test accuracy, macro-F1 and MCC with their bootstrap intervals."""
    rows = []
    for v in VARIANTS:
        m = _read(run / v / "model" / "metrics.parquet")
        if m is None:
            continue
        m = m[(m["split"] == "test") & (m["class"] == "all")].set_index("metric")
        row = {"variant": v, "n_test": int(m["n"].iloc[0])}
        for k in ("accuracy", "macro_f1", "mcc"):
            row[k] = f"{m.at[k, 'value']:.3f} [{m.at[k, 'ci_low']:.3f}, {m.at[k, 'ci_high']:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def mcnemar(run: Path, a: str = "finetuned", b: str = "frozen") -> dict:
    """Exact McNemar test on the same test proteins: does `a` classify correctly more often
    than `b`? One-sided (a better)."""
    pa = _read(run / a / "model" / "predictions.parquet")
    pb = _read(run / b / "model" / "predictions.parquet")
    if pa is None or pb is None:
        return {}
    j = pa[pa["split"] == "test"].merge(pb[pb["split"] == "test"], on="accession", suffixes=("_a", "_b"))
    only_a = int((j["correct_a"] & ~j["correct_b"]).sum())
    only_b = int((~j["correct_a"] & j["correct_b"]).sum())
    p = sps.binomtest(only_a, only_a + only_b, 0.5, alternative="greater").pvalue if only_a + only_b else 1.0
    return {
        "n": len(j),
        "acc_a": float(j["correct_a"].mean()),
        "acc_b": float(j["correct_b"].mean()),
        "only_a": only_a,
        "only_b": only_b,
        "p": float(p),
    }


# ---- residue attributions --------------------------------------------------------------


def attribution_summary(run: Path, variant: str) -> pd.DataFrame:
    """Per annotation type (pooled over classes): the embedding-level test and the heads'
    tests, under the Wilcoxon test and the two permutation nulls."""
    st = _read(run / variant / "attribution" / "statistics.parquet")
    if st is None:
        return pd.DataFrame()
    st = st[st["class"] == "all"]
    rows = []
    for ann, g in st.groupby("annotation_type", sort=True):
        emb = g[g["layer"] == "embedding"]
        heads = g[(g["layer"] != "embedding") & g["p_value"].notna()]
        sig = heads[heads["significant"]]
        all3 = heads[heads["significant"] & heads["significant_shift"] & heads["significant_composition"]]
        best = heads.sort_values(["q_value", "median_r"], ascending=[True, False]).head(1)
        e = emb.iloc[0] if len(emb) else None
        rows.append(
            {
                "variant": variant,
                "annotation": ann,
                "proteins": int(e["n_proteins"]) if e is not None else int(heads["n_proteins"].max()),
                "embedding median r": _fmt(e["median_r"]) if e is not None else "n/a",
                "embedding q (Wilcoxon / shift / composition)": (
                    f"{_q(e['q_value'])} / {_q(e['q_shift'])} / {_q(e['q_composition'])}"
                    if e is not None
                    else "n/a"
                ),
                "heads tested": len(heads),
                "heads significant (Wilcoxon)": len(sig),
                "heads significant (all three)": len(all3),
                "best head": (
                    f"L{best['layer'].iat[0]} H{int(best['head'].iat[0])}: median r {best['median_r'].iat[0]:.3f}, "
                    f"q {_q(best['q_value'].iat[0])}, shift {_q(best['q_shift'].iat[0])}, "
                    f"composition {_q(best['q_composition'].iat[0])}"
                    if len(best)
                    else "n/a"
                ),
            }
        )
    return pd.DataFrame(rows)


def contrast_summary(run: Path) -> pd.DataFrame:
    """Fine-tuned minus each control per protein (paired Wilcoxon, BH), pooled over classes."""
    c = _read(run / "attribution" / "contrast.parquet")
    if c is None or not len(c):
        return pd.DataFrame()
    c = c[c["class"] == "all"]
    rows = []
    for (control, ann), g in c.groupby(["control", "annotation_type"], sort=True):
        emb = g[g["layer"] == "embedding"]
        heads = g[(g["layer"] != "embedding") & g["p_value"].notna()]
        e = emb.iloc[0] if len(emb) else None
        rows.append(
            {
                "control": control,
                "annotation": ann,
                "embedding median difference": _fmt(e["median_difference"]) if e is not None else "n/a",
                "embedding q": _q(e["q_value"]) if e is not None else "n/a",
                "heads fine-tuned > control": f"{int(heads['significant'].sum())} of {len(heads)}",
            }
        )
    return pd.DataFrame(rows)


def faithfulness_summary(run: Path, variant: str) -> pd.DataFrame:
    f = _read(run / variant / "attribution" / "faithfulness.parquet")
    if f is None or not len(f):
        return pd.DataFrame()
    p = f.pivot_table(index="k", columns="selection", values="mean_drop", observed=True)
    d = f[f["selection"] == "relevant - random"].set_index("k")
    out = pd.DataFrame(
        {
            "variant": variant,
            "k": p.index,
            "drop, relevant": p["relevant"].map(_fmt).to_numpy(),
            "drop, random": p["random"].map(_fmt).to_numpy(),
            "difference [95% CI]": [
                f"{d.at[k, 'mean_drop']:.3f} [{d.at[k, 'ci_low']:.3f}, {d.at[k, 'ci_high']:.3f}]"
                for k in p.index
            ],
            "proteins": [int(d.at[k, "n_proteins"]) for k in p.index],
        }
    )
    return out


# ---- knowledge neurons -----------------------------------------------------------------


def preservation_summary(run: Path, variant: str, metric: str = "accuracy") -> pd.DataFrame:
    p = _read(run / variant / "knowledge" / "preservation.parquet")
    if p is None or not len(p):
        return pd.DataFrame()
    p = p[
        (p["metric"] == metric) & ~p["method"].str.startswith("random") & ~p["method"].isin(["all", "none"])
    ]
    rows = []
    for r in p.sort_values(["mode", "method", "fraction"]).itertuples(index=False):
        rows.append(
            {
                "variant": variant,
                "test": r.mode,
                "selection": r.method,
                "fraction": r.fraction,
                metric: f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]",
                "random band": f"[{r.random_low:.3f}, {r.random_high:.3f}]",
                "permutation p": f"{r.p_permutation:.3g}",
                "beats random": bool(r.beats_random),
            }
        )
    return pd.DataFrame(rows)


def density_summary(run: Path, variant: str, site: str = "key") -> pd.DataFrame:
    d = _read(run / variant / "knowledge" / "density.parquet")
    if d is None or not len(d):
        return pd.DataFrame()
    d = d[(d["site"] == site) & (d["layer"] == "all")]
    if variant == "frozen" and "method" in d.columns:
        # the frozen encoder has no weight change: its ranking is ties, its selection arbitrary
        d = d[d["method"] != "weight_change"]
    keys = [c for c in ("method", "fraction") if c in d.columns]
    out = d[[*keys, "neurons", "selected"]].copy()
    out["density"] = d["density"].map(lambda x: f"{x:.2f}")
    out["q"] = d["q_value"].map(_q)
    out.insert(0, "variant", variant)
    return out


def agreement_summary(run: Path, variant: str) -> pd.DataFrame:
    a = _read(run / variant / "knowledge" / "agreement.parquet")
    if a is None:
        return pd.DataFrame()
    a = a.copy()
    for c in a.columns:
        if a[c].dtype.kind == "f":
            a[c] = a[c].map(lambda x: f"{x:.3f}")
    a.insert(0, "variant", variant)
    return a


# ---- attention -------------------------------------------------------------------------


def attention_summary(run: Path, variant: str) -> pd.DataFrame:
    """Per variant: what the heads attend to (top heads, layer profile, BLOSUM62, probes), in
    the words of the real-model table (Vig et al.)."""
    att = run / variant / "attention"
    props = _read(att / "properties.parquet")
    if props is None:
        return pd.DataFrame()
    profiles = _read(att / "layer_profiles.parquet")
    blosum = _read(att / "blosum62.parquet")
    rows = variant_rows(
        props,
        profiles if profiles is not None else pd.DataFrame(columns=["property"]),
        blosum.iloc[0] if blosum is not None and len(blosum) else pd.Series({"pearson_r": np.nan}),
        _read(att / "probes.parquet"),
    )
    rows = rows.drop(columns=[c for c in rows.columns if c.startswith("Vig")])
    rows.insert(0, "variant", variant)
    return rows


def change_summary(run: Path) -> pd.DataFrame:
    c = _read(run / "attention" / "change.parquet")
    if c is None or not len(c):
        return pd.DataFrame()
    rows = []
    for prop, g in c.groupby("property", sort=True):
        t = g[g["tested"]]
        s = t[t["significant"]]
        top = s.reindex(s["difference"].abs().sort_values(ascending=False).index).head(3)
        rows.append(
            {
                "property": prop,
                "proteins": int(g["proteins"].max()),
                "heads tested": len(t),
                "changed (q < 0.05)": len(s),
                "up / down": f"{int((s['difference'] > 0).sum())} / {int((s['difference'] < 0).sum())}",
                "largest changes": "; ".join(
                    f"L{r.layer} H{r.head}: {r.proportion_before:.1%} -> {r.proportion_after:.1%} (q {_q(r.q_value)})"
                    for r in top.itertuples()
                )
                or "none",
            }
        )
    return pd.DataFrame(rows)


# ---- the papers' claims ----------------------------------------------------------------


def claims(run: Path) -> pd.DataFrame:
    """Each claim of the papers that this run can test, judged as held / not held / not
    testable here, with the figure."""
    rows = []
    mc = mcnemar(run)
    if mc:
        held = mc["acc_a"] > mc["acc_b"] and mc["p"] < FDR
        rows.append(
            (
                "fine-tuning beats the frozen encoder with a trained head (the baseline)",
                "held" if held else "not held",
                f"test accuracy {mc['acc_a']:.3f} vs {mc['acc_b']:.3f} on the same {mc['n']} proteins; "
                f"right only by fine-tuned {mc['only_a']}, only by frozen {mc['only_b']}; exact McNemar p {mc['p']:.2g}",
            )
        )
    st = _read(run / "finetuned" / "attribution" / "statistics.parquet")
    if st is not None:
        st = st[st["class"] == "all"]
        for ann, g in st.groupby("annotation_type", sort=True):
            heads = g[(g["layer"] != "embedding") & g["p_value"].notna()]
            if not len(heads):
                rows.append(
                    (
                        f"Wenzel et al.: heads whose relevance matches {ann}",
                        "not testable here",
                        "no head tested",
                    )
                )
                continue
            sig = heads[heads["significant"]]
            strict = sig[sig["significant_shift"] & sig["significant_composition"]]
            rows.append(
                (
                    f"Wenzel et al.: heads whose relevance matches {ann} (one-sided Wilcoxon, BH)",
                    "held" if len(sig) else "not held",
                    f"{len(sig)} of {len(heads)} heads q < {FDR}; {len(strict)} also beyond the circular-shift "
                    f"and composition-matched nulls; median r of the best {sig['median_r'].max() if len(sig) else heads['median_r'].max():.3f}",
                )
            )
            emb = g[g["layer"] == "embedding"]
            if len(emb):
                e = emb.iloc[0]
                rows.append(
                    (
                        f"Wenzel et al.: embedding-level relevance matches {ann}",
                        "held" if bool(e["significant"]) else "not held",
                        f"median r {e['median_r']:.3f} over {int(e['n_proteins'])} proteins, q {_q(e['q_value'])} "
                        f"(shift {_q(e['q_shift'])}, composition {_q(e['q_composition'])})",
                    )
                )
    p = _read(run / "finetuned" / "knowledge" / "preservation.parquet")
    if p is not None and len(p):
        p = p[
            (p["metric"] == "accuracy")
            & ~p["method"].isin(["all", "none"])
            & ~p["method"].str.startswith("random")
        ]
        # kept: higher accuracy than with random neurons kept; removed: lower than with random
        # neurons removed (beats_random is one-sided in the mode's direction)
        wording = {
            "preserve": "keeping the neurons chosen by {} beats keeping random ones",
            "ablate_revert": "reverting the neurons chosen by {} hurts more than reverting random ones",
            "ablate_zero": "zeroing the neurons chosen by {} hurts more than zeroing random ones",
            "ablate_mean": "holding the neurons chosen by {} at their mean hurts more than random ones",
        }
        for (mode, method), g in p.groupby(["mode", "method"], sort=True):
            won = g[g["beats_random"].fillna(False).astype(bool)]
            rows.append(
                (
                    "Nori et al.: " + wording.get(mode, mode + ": {}").format(method),
                    "held" if len(won) == len(g) else ("partly held" if len(won) else "not held"),
                    "; ".join(
                        f"{_pct(r.fraction)}: {r.value:.3f} vs random band [{r.random_low:.3f}, {r.random_high:.3f}], p {r.p_permutation:.2g}"
                        for r in g.sort_values("fraction").itertuples()
                    ),
                )
            )
    d = _read(run / "finetuned" / "knowledge" / "density.parquet")
    if d is not None and len(d):
        k = d[(d["site"] == "key") & (d["layer"] == "all")]
        if "method" in k.columns:
            k = k[k["method"] != "weight_change"]
        dense = k[(k["density"] > 1) & (k["q_value"] < FDR)]
        label = lambda r: f"{getattr(r, 'method', '')} {getattr(r, 'fraction', '')}".strip()  # noqa: E731
        rows.append(
            (
                "Nori et al.: knowledge neurons are dense in the key projections",
                "held" if len(dense) == len(k) and len(k) else ("partly held" if len(dense) else "not held"),
                "; ".join(f"{label(r)}: density {r.density:.2f} (q {_q(r.q_value)})" for r in k.itertuples()),
            )
        )
    return pd.DataFrame(rows, columns=["claim", "verdict", "figure"])


def markdown(df: pd.DataFrame) -> str:
    if df is None or not len(df):
        return "(none)\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(lines) + "\n"


def job_stage(job: str) -> str:
    """The rule a job's log belongs to: `finetune_frozen` -> finetune, `attribution_<variant>_<i>`
    (a chunk) -> attribution_chunk."""
    stage = _CHUNK.sub("", job)
    for v in (*VARIANTS, "given"):
        stage = stage.removesuffix(f"_{v}")
    return stage + "_chunk" if _CHUNK.search(job) else stage


def stage_table(run: Path) -> pd.DataFrame:
    """Seconds per stage, summed over variants and chunks (jobs' own logs)."""
    per: dict[str, float] = {}
    jobs: dict[str, int] = {}
    for job, s in stage_times(run).items():
        stage = job_stage(job)
        per[stage] = per.get(stage, 0.0) + s
        jobs[stage] = jobs.get(stage, 0) + 1
    total = sum(per.values())
    rows = [
        {"stage": k, "jobs": jobs[k], "seconds": round(v), "share": f"{v / total:.0%}"}
        for k, v in sorted(per.items(), key=lambda kv: -kv[1])
    ]
    return pd.DataFrame(rows)


def run_document(run: Path, times: bool = True) -> str:
    """Every table of a run with the three variants; `times=False` leaves out the wall-clock
    table, which differs from run to run (the rest is the same on every run of a config)."""
    run = Path(run)
    summary = json.loads((run / "data" / "data_summary.json").read_text())
    parts = [f"### {run.name}\n"]
    parts.append(
        f"{summary['kept']} proteins ({', '.join(f'{k}: {v}' for k, v in summary['class_counts'].items())}); "
        f"split {json.dumps(summary.get('split_counts', {}))}\n"
    )
    parts += ["\n**The papers' claims**\n\n", markdown(claims(run))]
    parts += ["\n**Test metrics (95% bootstrap intervals)**\n\n", markdown(metrics_table(run))]
    parts += ["\n**Residue attributions against the annotation**\n\n"]
    parts.append(markdown(pd.concat([attribution_summary(run, v) for v in VARIANTS], ignore_index=True)))
    parts += ["\n**Fine-tuned minus each control, per protein**\n\n", markdown(contrast_summary(run))]
    parts += ["\n**Faithfulness (alanine replacement)**\n\n"]
    parts.append(markdown(pd.concat([faithfulness_summary(run, v) for v in VARIANTS], ignore_index=True)))
    parts += [
        "\n**Knowledge neurons: kept and removed against random** (the frozen control is left out: "
        "its encoder is the one before fine-tuning, so reverting neurons changes nothing)\n\n"
    ]
    parts.append(
        markdown(
            pd.concat([preservation_summary(run, v) for v in ("finetuned", "shuffled")], ignore_index=True)
        )
    )
    parts += [
        "\n**The same on the mean probability of the true class** (threshold-free: a hybrid whose "
        "predictions collapse to one class can still rank the classes better than chance)\n\n"
    ]
    parts.append(
        markdown(
            pd.concat(
                [preservation_summary(run, v, "true_class_probability") for v in ("finetuned", "shuffled")],
                ignore_index=True,
            )
        )
    )
    parts += ["\n**Density of the key projections in the selections**\n\n"]
    parts.append(markdown(pd.concat([density_summary(run, v) for v in VARIANTS], ignore_index=True)))
    parts += ["\n**Agreement between the scores**\n\n"]
    parts.append(markdown(pd.concat([agreement_summary(run, v) for v in VARIANTS], ignore_index=True)))
    parts += [
        "\n**What the heads attend to** (high-confidence attention, weight > 0.3; heads L<layer> "
        "H<head>; q: circular-shift null, BH)\n\n"
    ]
    parts.append(markdown(pd.concat([attention_summary(run, v) for v in VARIANTS], ignore_index=True)))
    parts += ["\n**What fine-tuning did to attention**\n\n", markdown(change_summary(run))]
    if not times:
        return "".join(parts)
    wall = wall_seconds(run)
    parts += [
        "\n**Time per stage (2 CPU cores; seconds of each job, summed)**"
        + (
            f"; wall clock from the first job's start to the last job's end {wall / 60:.1f} min"
            if wall
            else ""
        )
        + "\n\n",
        markdown(stage_table(run)),
    ]
    return "".join(parts)


DEMO_HEADER = """# The demo's results

Generated, not typed: `python -m plmxai.report.findings --demo results/demo > docs/results-demo.md`
after `snakemake --cores all` (the default config, `config/config.yaml`: the planted-motif demo,
seed {seed}). The workflow test `tests/workflow/test_demo.py` runs the demo from scratch and
regenerates this page; CI fails where it differs from the committed one, so no figure here can
drift from what the code gives. The same config gives the same tables on every run on a 2-core
CPU machine with the versions of `constraints.txt` (other thread counts or CPUs move the last
digits). What is robust across seeds: [results-demo-seeds.md](results-demo-seeds.md). How to
read each table: [methods.md](methods.md).

The demo's task: class by planted motif (annotated `active_site`); each protein also carries a
mutated motif of another class, a decoy (annotated `site`), which a model that learned the task
must not rely on. The `frozen` control keeps the pretrained encoder and trains the head only;
`shuffled` trains on permuted labels.

"""


def demo_document(run: Path) -> str:
    """docs/results-demo.md: every table of a demo run, without its wall-clock times."""
    run = Path(run)
    return DEMO_HEADER.format(seed=_run_seed(run)) + run_document(run, times=False).replace(
        f"### {run.name}\n", "## Data\n\n", 1
    )


def _run_seed(run: Path):
    """The seed of a demo run, from its synthetic data's provenance (the run's name otherwise)."""
    prov = Path(run) / "data" / "raw" / "provenance.json"
    if prov.is_file():
        return json.loads(prov.read_text()).get("spec", {}).get("seed", Path(run).name)
    return Path(run).name


# ---- robustness over seeds ---------------------------------------------------------------


def _seed_findings(run: Path) -> dict[str, tuple[float | str, bool]]:
    """The demo's headline findings of one run: name -> (figure, holds)."""
    run = Path(run)
    out: dict[str, tuple[float | str, bool]] = {}
    m = {v: _read(run / v / "model" / "metrics.parquet") for v in VARIANTS}
    acc = {}
    for v, t in m.items():
        if t is not None:
            t = t[(t["split"] == "test") & (t["class"] == "all") & (t["metric"] == "accuracy")]
            acc[v] = float(t["value"].iloc[0])
    mc = mcnemar(run)
    if mc:
        out["fine-tuned test accuracy above the frozen control's (McNemar p < 0.05)"] = (
            f"{acc['finetuned']:.3f} vs {acc['frozen']:.3f}",
            mc["acc_a"] > mc["acc_b"] and mc["p"] < FDR,
        )
    if "shuffled" in acc:
        chance = 1 / len(_read(run / "data" / "proteins.parquet")["label"].unique())
        lo = m["shuffled"]
        lo = lo[(lo["split"] == "test") & (lo["class"] == "all") & (lo["metric"] == "accuracy")].iloc[0]
        out[f"shuffled-label control at chance ({chance:.2f} inside its 95% interval)"] = (
            f"{acc['shuffled']:.3f} [{lo['ci_low']:.3f}, {lo['ci_high']:.3f}]",
            bool(lo["ci_low"] <= chance <= lo["ci_high"]),
        )
    st = {v: _read(run / v / "attribution" / "statistics.parquet") for v in VARIANTS}
    ft = st["finetuned"]
    if ft is not None:
        emb = ft[(ft["layer"] == "embedding") & (ft["class"] == "all")].set_index("annotation_type")
        if "active_site" in emb.index:
            e = emb.loc["active_site"]
            out["planted motif: embedding-level relevance, q < 0.01 (Wilcoxon)"] = (
                f"median r {e['median_r']:.3f}, q {_q(e['q_value'])}",
                bool(e["q_value"] < 0.01 and e["median_r"] > 0),
            )
            out["planted motif: beyond the residues' identity (composition-matched null)"] = (
                f"q_composition {_q(e['q_composition'])}",
                bool(e["significant_composition"]),
            )
        dec = ft[ft["annotation_type"] == "site"]
        if len(dec):
            out["decoy: no test significant (any layer, head or class)"] = (
                f"{int(dec['significant'].sum())} of {int(dec['p_value'].notna().sum())}",
                not bool(dec["significant"].any()),
            )
    for v in ("frozen", "shuffled"):
        t = st[v]
        if t is not None:
            n = int(t["significant_composition"].sum())
            out[f"{v} control: no test significant beyond residue identity (composition-matched null)"] = (
                f"{n} of {int(t['p_composition'].notna().sum())}",
                n == 0,
            )
    p = _read(run / "finetuned" / "knowledge" / "preservation.parquet")
    if p is not None and len(p):
        p = p[(p["metric"] == "accuracy") & ~p["method"].isin(["all", "none"])]
        p = p[~p["method"].str.startswith("random")]
        what = {"preserve": "kept", "ablate_revert": "removed"}
        for r in p.sort_values(["mode", "method", "fraction"]).itertuples():
            if r.mode not in what or r.fraction > 0.1:
                continue
            out[f"{r.method}, {what[r.mode]} {_pct(r.fraction)}: beyond the random band"] = (
                f"{r.value:.3f} (band {'upper' if r.mode == 'preserve' else 'lower'} "
                f"{r.random_high if r.mode == 'preserve' else r.random_low:.3f})",
                bool(r.beats_random),
            )
    d = _read(run / "finetuned" / "knowledge" / "density.parquet")
    if d is not None and len(d):
        k = d[
            (d["site"] == "key")
            & (d["layer"] == "all")
            & d["method"].isin(["knowledge_attribution", "conductance"])
        ]
        for r in k.sort_values(["method", "fraction"]).itertuples():
            if r.fraction > 0.1:
                continue
            out[f"key projections dense in the {r.method} selection at {_pct(r.fraction)} (q < 0.05)"] = (
                f"{r.density:.2f} (q {_q(r.q_value)})",
                bool(r.density > 1 and r.q_value < FDR),
            )
    return out


def seeds_table(runs: list[Path]) -> pd.DataFrame:
    """One row per headline finding, one column per run (seed): the figure, and whether it
    holds; robust only where it holds on every seed."""
    per = {}
    for run in runs:
        label = f"seed {_run_seed(run)}"
        if label in per:  # two runs of one seed: tell them apart by their folders
            label = f"{label} ({Path(run).parent.parent.name}/{Path(run).name})"
        per[label] = _seed_findings(run)
    names = list(dict.fromkeys(k for f in per.values() for k in f))
    rows = []
    for name in names:
        row = {"finding": name}
        holds = []
        for col, f in per.items():
            fig, ok = f.get(name, ("n/a", False))
            row[col] = f"{fig}{' ✓' if ok else ''}"
            holds.append(ok)
        row["holds on"] = f"{sum(holds)} of {len(holds)}"
        row["robust"] = "yes" if all(holds) else "no"
        rows.append(row)
    return pd.DataFrame(rows)


SEEDS_HEADER = """# The demo over seeds: which findings are robust

Generated, not typed, from demo runs that differ only in their seeds (data, motifs, pretraining
task, training order, random draws): see the commands in README.md ("The demo over seeds"),
then `python -m plmxai.report.findings --seeds RUN [RUN ...] > docs/results-demo-seeds.md`.
A finding is robust only where it holds on every seed (✓ marks a seed where it holds). The
knowledge-neuron rows judge a selection against the band of the matched random selections of
the same size (its 95% interval, pooled over draws and bootstrap resamples).

"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--demo", action="store_true", help="docs/results-demo.md from one demo run")
    mode.add_argument("--seeds", action="store_true", help="the demo's headline findings over seeds")
    a = ap.parse_args(argv)
    if a.demo:
        if len(a.runs) != 1:
            ap.error("--demo takes one run")
        print(demo_document(a.runs[0]), end="")
    elif a.seeds:
        print(SEEDS_HEADER + markdown(seeds_table(a.runs)), end="")
    else:
        print("\n".join(run_document(r) for r in a.runs), end="")


if __name__ == "__main__":
    main()
