"""Statistics of residue relevance against annotations.

Per protein with at least one annotated residue (and one not annotated): the point-biserial
correlation r between its relevance vector and the binary annotation mask. Across proteins:
the one-sided Wilcoxon signed-rank test of median r > 0, with effect sizes (median r,
matched-pairs rank-biserial correlation) and n. Benjamini-Hochberg over every test made.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

TRANSFORMS = ("signed", "absolute", "positive")


def point_biserial(values: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of values with a 0/1 mask; NaN when either is constant."""
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(mask, dtype=np.float64)
    if y.min() == y.max() or np.ptp(x) == 0:
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    return float((xc @ yc) / np.sqrt((xc @ xc) * (yc @ yc)))


def annotation_masks(annotations: pd.DataFrame, length: int) -> dict[str, np.ndarray]:
    """Annotation type -> boolean mask over residues 1..length."""
    out: dict[str, np.ndarray] = {}
    pair = annotations["pair"] if "pair" in annotations else pd.Series(False, index=annotations.index)
    for rec, is_pair in zip(annotations.itertuples(index=False), pair):
        m = out.setdefault(rec.type, np.zeros(length, dtype=bool))
        if is_pair:  # a disulfide bond or cross-link: its two residues, not the stretch between
            m[[rec.start - 1, rec.end - 1]] = True
        else:
            m[rec.start - 1 : rec.end] = True
    return out


def transform(rel: np.ndarray, how: str) -> np.ndarray:
    if how == "signed":
        return rel
    if how == "absolute":
        return np.abs(rel)
    if how == "positive":
        return np.clip(rel, 0, None)
    raise ValueError(f"relevance transform must be one of {TRANSFORMS}, got {how!r}")


def protein_correlations(
    relevance: pd.DataFrame,
    annotations: pd.DataFrame,
    labels: pd.Series,
    how: str = "signed",
) -> pd.DataFrame:
    """r per (protein, layer, head, annotation type).

    relevance: accession, layer, head, position, relevance; labels: accession -> class label.
    Proteins whose mask is all or nothing, or whose relevance is constant, get r = NaN and are
    left out of the tests (they are counted).
    """
    ann_by_acc = {a: g for a, g in annotations.groupby("accession", sort=False)}
    rows = []
    for (acc, layer, head), g in relevance.groupby(["accession", "layer", "head"], sort=False):
        if acc not in ann_by_acc:
            continue
        g = g.sort_values("position")
        rel = transform(g["relevance"].to_numpy(), how)
        length = int(g["position"].max())
        for typ, mask in annotation_masks(ann_by_acc[acc], length).items():
            rows.append(
                {
                    "accession": acc,
                    "label": labels.get(acc),
                    "layer": layer,
                    "head": head,
                    "annotation_type": typ,
                    "n_residues": length,
                    "n_annotated": int(mask.sum()),
                    "r": point_biserial(rel, mask),
                }
            )
    return pd.DataFrame(
        rows,
        columns=["accession", "label", "layer", "head", "annotation_type", "n_residues",
                 "n_annotated", "r"],
    )  # fmt: skip


def rank_biserial(x: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (W+ - W-) / (W+ + W-), zeros dropped."""
    x = x[x != 0]
    if len(x) == 0:
        return float("nan")
    ranks = sps.rankdata(np.abs(x))
    wp, wm = ranks[x > 0].sum(), ranks[x < 0].sum()
    return float((wp - wm) / (wp + wm))


def wilcoxon_greater(x: np.ndarray) -> tuple[float, float]:
    """One-sided Wilcoxon signed-rank test of median > 0: (statistic W+, p)."""
    x = np.asarray(x, dtype=np.float64)
    if np.all(x == 0):
        return float("nan"), 1.0
    res = sps.wilcoxon(x, alternative="greater", zero_method="wilcox")
    return float(res.statistic), float(res.pvalue)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = sps.false_discovery_control(p[ok], method="bh")
    return q


def test_correlations(
    correlations: pd.DataFrame, fdr: float = 0.05, min_proteins: int = 5, per_class: bool = True
) -> pd.DataFrame:
    """One test per (layer, head, annotation type, class) and for all classes pooled ("all")."""
    pc = correlations.dropna(subset=["r"])
    groups = [("all", pc)]
    if per_class:
        groups += [(str(c), g) for c, g in pc.groupby("label", sort=True)]
    rows = []
    for cls, sub in groups:
        for (layer, head, typ), g in sub.groupby(["layer", "head", "annotation_type"], sort=True):
            r = g["r"].to_numpy()
            n_excluded = int(
                correlations[
                    (correlations["layer"] == layer) & (correlations["head"] == head)
                    & (correlations["annotation_type"] == typ)
                    & ((correlations["label"].astype(str) == cls) | (cls == "all"))
                ]["r"].isna().sum()
            )  # fmt: skip
            row = {
                "layer": layer, "head": head, "annotation_type": typ, "class": cls,
                "n_proteins": len(r), "n_excluded": n_excluded,
                "median_r": float(np.median(r)) if len(r) else np.nan,
                "mean_r": float(np.mean(r)) if len(r) else np.nan,
                "fraction_positive": float(np.mean(r > 0)) if len(r) else np.nan,
                "rank_biserial": rank_biserial(r) if len(r) else np.nan,
                "statistic": np.nan, "p_value": np.nan,
            }  # fmt: skip
            if len(r) >= min_proteins:
                row["statistic"], row["p_value"] = wilcoxon_greater(r)
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q_value"] = benjamini_hochberg(out["p_value"].to_numpy())
    out["significant"] = out["q_value"] < fdr
    out["n_tests"] = int(out["p_value"].notna().sum())
    return out.sort_values(["q_value", "layer", "head"], na_position="last").reset_index(drop=True)
