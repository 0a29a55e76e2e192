"""What a model's attention tracks, set beside the published figures (Vig et al. 2021), from
finished runs' tables: the README's real-model table is this module's output, not typed.

    python -m plmxai.report.anchors --contacts results/esm2_8m_contacts \\
        --binding results/esm2_8m_binding_sites --enzymes results/esm2_8m_enzymes_given

Reads only tables and logs (no torch), so it runs anywhere the results are.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

# Vig et al. 2021 (ICLR), TAPE BERT pretrained, as summarised in METHODS.md
ANCHORS = {
    "contact": "top head 44.7% vs 1.3% background; contacts concentrated in the last layers",
    "binding_site": "top head 48.8% vs 4.8% background",
    "blosum": "r = 0.73",
    "contact_probe": "final-layer contact probe 0.19 (precision at L/5)",
}
_DONE = re.compile(r"done in ([0-9.]+) s")


def _top_heads(props: pd.DataFrame, prop: str, k: int = 3) -> pd.DataFrame:
    t = props[(props["property"] == prop) & props["tested"]]
    return t.sort_values("proportion", ascending=False).head(k)


def _heads_text(props: pd.DataFrame, prop: str) -> str:
    t = props[(props["property"] == prop)]
    tested = t[t["tested"]]
    top = _top_heads(props, prop)
    if top.empty:
        return "no head with enough high-confidence pairs"

    def head(r: pd.Series) -> str:
        comp = r.get("q_composition", float("nan"))
        comp = "" if pd.isna(comp) else f", q_composition {comp:.2g}"
        return (
            f"L{r['layer']} H{r['head']}: {100 * r['proportion']:.1f}% (q {r['q_permutation']:.2g}{comp}, "
            f"{r['n_high_pairs']} pairs)"
        )

    text = "; ".join(head(r) for _, r in top.iterrows())
    text += (
        f"; background {100 * top['background'].iloc[0]:.2f}%; "
        f"{int(tested['significant'].sum())} of {len(tested)} tested heads significant"
    )
    if "significant_composition" in tested and tested["q_composition"].notna().any():
        beyond = tested[tested["significant_composition"]].sort_values("proportion", ascending=False)
        text += f"; {len(beyond)} significant beyond amino-acid identity (composition-matched null)" + (
            f", the top one {head(beyond.iloc[0])}"
            if len(beyond) and beyond.index[0] not in top.index[:1]
            else ""
        )
    return text


def _profile_text(profiles: pd.DataFrame, prop: str, n_layers: int) -> str:
    p = profiles[profiles["property"] == prop]
    if p.empty:
        return "n/a"
    best = p.loc[p["mean_proportion"].idxmax()]
    return (
        f"centre of gravity layer {p['centre_of_gravity'].iloc[0]:.2f} (layers 0-{n_layers - 1}); "
        f"highest mean over heads in layer {int(best['layer'])}: {100 * best['mean_proportion']:.1f}%"
    )


def _probe_text(probes: pd.DataFrame, name: str) -> str:
    p = probes[probes["probe"] == name]
    if p.empty:
        return "n/a"
    best = p.loc[p["auprc"].idxmax()]
    last = p.loc[p["layer"].idxmax()]
    return (
        f"best layer {int(best['layer'])}: AUPRC {best['auprc']:.3f} (baseline {best['auprc_baseline']:.3f}), "
        f"precision at {best['precision_at']} {best['precision']:.3f}; final layer {int(last['layer'])}: "
        f"AUPRC {last['auprc']:.3f}, precision {last['precision']:.3f} (layer 0 = embeddings)"
    )


def variant_rows(
    props: pd.DataFrame, profiles: pd.DataFrame, blosum: pd.Series, probes: pd.DataFrame | None
) -> pd.DataFrame:
    """One run's figures beside the original's, for the properties the run has (the report)."""
    n_layers = int(props["layer"].max()) + 1 if len(props) else 0
    rows = []
    named = {"contact": "contacts", "binding_site": "binding sites", "active_site": "active sites"}
    # contacts first, then every annotation the run has (transmembrane, the demo's decoy sites)
    present = props.loc[props["kind"] != "amino_acid", "property"] if "kind" in props else props["property"]
    ordered = sorted(set(present), key=lambda p: (p != "contact", p))
    for prop in ordered:
        what = named.get(prop, prop.replace("_", " ") + " residues")
        rows.append((f"attention to {what}", _heads_text(props, prop), ANCHORS.get(prop, "n/a")))
        rows.append(
            (
                f"layer profile: {what}",
                _profile_text(profiles, prop, n_layers),
                "last layers" if prop == "contact" else "n/a",
            )
        )
    if not pd.isna(blosum["pearson_r"]):
        rows.append(
            (
                "BLOSUM62 correlation of the heads' amino-acid attention",
                f"r = {blosum['pearson_r']:.2f} (Mantel p {blosum['p_mantel']:.2g}, {int(blosum['n_heads'])} heads)",
                ANCHORS["blosum"],
            )
        )
    for name in sorted(set(probes["probe"])) if probes is not None and len(probes) else []:
        rows.append(
            (
                f"probe: {name.replace('_', ' ')}",
                _probe_text(probes, name),
                ANCHORS["contact_probe"] if name == "contact" else "n/a",
            )
        )
    return pd.DataFrame(rows, columns=["analysis", "measured", "Vig et al. 2021 (TAPE BERT)"])


def stage_times(run: Path) -> dict[str, float]:
    """Seconds of every job of a run, from the last line of its log."""
    out = {}
    for log in sorted((run / "logs").glob("*.log")):
        lines = log.read_text().strip().splitlines()
        m = _DONE.search(lines[-1]) if lines else None
        if m:
            out[log.stem] = float(m.group(1))
    return out


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def wall_seconds(run: Path) -> float | None:
    """Wall clock of a run: from the start of its first job to the end of its last, each job's
    end being the time stamp of its "done in" line and its start that minus its seconds."""
    spans = []
    for log in (run / "logs").glob("*.log"):
        lines = log.read_text().strip().splitlines()
        done = _DONE.search(lines[-1]) if lines else None
        stamp = _STAMP.match(lines[-1]) if lines else None
        if done and stamp:
            end = pd.Timestamp(stamp.group(1)) + pd.Timedelta(milliseconds=int(stamp.group(2)))
            spans.append((end - pd.Timedelta(seconds=float(done.group(1))), end))
    if not spans:
        return None
    return (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds()


def _read(run: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(run / "given" / "attention" / name)


def anchor_table(contacts: Path, binding: Path, enzymes: Path) -> str:
    """The Markdown table of what the runs found, with the original's figure beside each."""
    rows = []
    c, b, e = (Path(p) for p in (contacts, binding, enzymes))
    cp, bp, ep = (
        _read(c, "properties.parquet"),
        _read(b, "properties.parquet"),
        _read(e, "properties.parquet"),
    )
    n_layers = int(cp["layer"].max()) + 1
    n_c = len(pd.read_parquet(c / "given" / "attention" / "structures.parquet"))
    n_b = int(pd.read_parquet(b / "model" / "tokens.parquet", columns=["accession"]).shape[0])
    rows.append(
        (
            "attention to contacts (C-alpha < 8 Å, separation >= 6)",
            f"{n_c} PDB chains",
            _heads_text(cp, "contact"),
            ANCHORS["contact"],
        )
    )
    rows.append(
        (
            "attention to binding sites",
            f"{n_b} PDB chains",
            _heads_text(bp, "binding_site"),
            ANCHORS["binding_site"],
        )
    )
    rows.append(
        (
            "layer profile: contacts",
            f"{n_c} chains",
            _profile_text(_read(c, "layer_profiles.parquet"), "contact", n_layers),
            "last layers",
        )
    )
    rows.append(
        (
            "layer profile: binding sites",
            f"{n_b} chains",
            _profile_text(_read(b, "layer_profiles.parquet"), "binding_site", n_layers),
            "n/a",
        )
    )
    for name, what in ((e, "Swiss-Prot enzymes"), (c, "PDB chains"), (b, "binding-site chains")):
        bl = pd.read_parquet(name / "given" / "attention" / "blosum62.parquet").iloc[0]
        rows.append(
            (
                f"BLOSUM62 correlation of the heads' amino-acid attention ({what})",
                f"{int(bl['proteins'])} proteins",
                f"r = {bl['pearson_r']:.2f} (Mantel p {bl['p_mantel']:.2g}, {int(bl['n_heads'])} heads)",
                ANCHORS["blosum"],
            )
        )
    rows.append(("attention to active sites", "Swiss-Prot enzymes", _heads_text(ep, "active_site"), "n/a"))
    rows.append(
        (
            "probe: contacts",
            f"{n_c} chains (half fit, half test)",
            _probe_text(pd.read_parquet(c / "given" / "attention" / "probes.parquet"), "contact"),
            ANCHORS["contact_probe"],
        )
    )
    rows.append(
        (
            "probe: binding sites",
            f"{n_b} chains (half fit, half test)",
            _probe_text(pd.read_parquet(b / "given" / "attention" / "probes.parquet"), "binding_site"),
            "n/a",
        )
    )
    rows.append(
        (
            "probe: active sites",
            "Swiss-Prot enzymes",
            _probe_text(pd.read_parquet(e / "given" / "attention" / "probes.parquet"), "active_site"),
            "n/a",
        )
    )
    lines = [
        "| analysis | data | measured (real ESM-2 8M, as given) | Vig et al. 2021, TAPE BERT |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {d} | {m} | {o} |" for a, d, m, o in rows]
    lines += [
        "",
        "| run | " + " | ".join(["data", "init_model", "given_model", "attention", "probes"]) + " |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in (c, b, e):
        t = stage_times(run)
        lines.append(
            f"| {run.name} | "
            + " | ".join(
                f"{t.get(k, float('nan')):.0f} s"
                for k in ("data", "init_model", "given_model", "attention_given", "probes_given")
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contacts", required=True, type=Path)
    ap.add_argument("--binding", required=True, type=Path)
    ap.add_argument("--enzymes", required=True, type=Path)
    a = ap.parse_args(argv)
    print(anchor_table(a.contacts, a.binding, a.enzymes), end="")


if __name__ == "__main__":
    main()
