"""Statistics of residue relevance against annotations.

Per protein with at least one annotated residue (and one not annotated): the point-biserial
correlation r between its relevance vector and the binary annotation mask. Across proteins:
the one-sided Wilcoxon signed-rank test of median r > 0, with effect sizes (median r,
matched-pairs rank-biserial correlation) and n. Benjamini-Hochberg over every test made.
"""

from __future__ import annotations

import zlib

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


def shifted_correlations(x: np.ndarray, mask: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Point-biserial r of each row of x (tracks x n) with the mask circularly shifted by each
    of `shifts`: (tracks x len(shifts)). A circular shift keeps the mask's run lengths and the
    relevance autocorrelation, so the null keeps what makes neighbouring residues alike.
    All n shifts come from one FFT cross-correlation per track."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(mask, dtype=np.float64)
    xc = x - x.mean(1, keepdims=True)
    yc = y - y.mean()
    n = x.shape[1]
    # cross[k, s] = sum_i xc[k, i] * yc[i - s]: the mask shifted right by s
    cross = np.fft.irfft(np.fft.rfft(xc, axis=1) * np.conj(np.fft.rfft(yc))[None], n=n, axis=1)
    norm = np.sqrt((xc * xc).sum(1) * (yc @ yc))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cross[:, shifts] / norm[:, None]


def permute_within_groups(values: np.ndarray, groups: np.ndarray, draws: int, rng) -> np.ndarray:
    """draws x L (x k): `values` (L, or L x k) permuted among positions of the same group (the
    amino acid), one permutation per draw: a null that keeps every residue's identity."""
    n = len(groups)
    keys = rng.random((draws, n))
    order = np.lexsort((keys, np.broadcast_to(groups, (draws, n))), axis=-1)  # by group, random within
    base = np.lexsort((np.arange(n), groups))  # by group, in sequence order
    out = np.empty((draws, *values.shape), dtype=values.dtype)
    out[:, base] = values[order]
    return out


def protein_correlations(
    relevance: pd.DataFrame,
    annotations: pd.DataFrame,
    labels: pd.Series,
    how: str = "signed",
    n_shifts: int = 0,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """r per (protein, layer, head, annotation type), its circular-shift null and its
    composition-matched null.

    relevance: accession, layer, head, position, relevance; labels: accession -> class label.
    Proteins whose mask is all or nothing, or whose relevance is constant, get r = NaN and are
    left out of the tests (they are counted). The null (rows x n_shifts) holds r with the mask
    shifted by offsets drawn uniformly from 1..n-1, seeded per protein by its accession, the
    same offsets for every track of the protein. The composition-matched null (rows x n_shifts)
    holds r with the mask permuted among residues of the same amino acid (seeded per protein):
    relevance that follows residue identity alone is not significant under it.
    """
    ann_by_acc = {a: g for a, g in annotations.groupby("accession", sort=False)}
    rows, nulls, comp_nulls = [], [], []
    for acc, g in relevance.groupby("accession", sort=False):
        if acc not in ann_by_acc:
            continue
        wide = g.pivot_table(
            index=["layer", "head"], columns="position", values="relevance", sort=True, observed=True
        )
        x = transform(wide.to_numpy(dtype=np.float64), how)
        length = int(wide.columns.max())
        if np.isnan(x).any() or list(wide.columns) != list(range(1, length + 1)):
            raise ValueError(f"relevance of {acc}: positions are not 1..{length} for every layer and head")
        rng = np.random.default_rng([seed, zlib.crc32(str(acc).encode())])
        shifts = rng.integers(1, length, size=n_shifts) if length > 1 else np.zeros(n_shifts, dtype=int)
        residues = None
        if n_shifts and "residue" in g:
            first = g.drop_duplicates("position").sort_values("position")
            residues = np.frombuffer("".join(first["residue"].astype(str)).encode(), dtype=np.uint8)
        for typ, mask in annotation_masks(ann_by_acc[acc], length).items():
            constant = mask.min() == mask.max()
            r = np.full(len(x), np.nan) if constant else shifted_correlations(x, mask, np.array([0]))[:, 0]
            r[np.ptp(x, axis=1) == 0] = np.nan
            if n_shifts:
                nulls.append(
                    np.full((len(x), n_shifts), np.nan) if constant else shifted_correlations(x, mask, shifts)
                )
                comp_nulls.append(
                    np.full((len(x), n_shifts), np.nan)
                    if constant or residues is None
                    else _permuted_correlations(x, mask, residues, n_shifts, rng)
                )
            for (layer, head), value in zip(wide.index, r):
                rows.append((acc, labels.get(acc), layer, head, typ, length, int(mask.sum()), float(value)))
    corr = pd.DataFrame(
        rows,
        columns=["accession", "label", "layer", "head", "annotation_type", "n_residues", "n_annotated", "r"],
    )
    null = np.concatenate(nulls) if nulls else np.empty((0, n_shifts))
    comp_null = np.concatenate(comp_nulls) if comp_nulls else np.empty((0, n_shifts))
    return corr, null, comp_null


def _permuted_correlations(
    x: np.ndarray, mask: np.ndarray, residues: np.ndarray, draws: int, rng
) -> np.ndarray:
    """tracks x draws: r of every track with the mask permuted within amino acids (the mask's
    mean and norm are kept, so one matrix product gives them all)."""
    moved = permute_within_groups(mask.astype(np.float64), residues, draws, rng)  # draws x L
    xc = x - x.mean(axis=1, keepdims=True)
    yc = moved - mask.mean()
    norm = np.sqrt((xc * xc).sum(1))[:, None] * np.sqrt((yc * yc).sum(1))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc @ yc.T) / norm


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


def bh_call(table: pd.DataFrame, p: str, q: str, significant: str, fdr: float) -> pd.DataFrame:
    """Benjamini-Hochberg q of column `p` over every test in `table` (NaN: no test; a missing
    column counts as no test) and the call q < fdr, in place."""
    if p not in table:
        table[p] = np.nan
    table[q] = benjamini_hochberg(table[p].to_numpy())
    table[significant] = table[q] < fdr
    return table


def group_tests(
    correlations: pd.DataFrame,
    null: np.ndarray | None = None,
    min_proteins: int = 5,
    per_class: bool = True,
    composition_null: np.ndarray | None = None,
) -> pd.DataFrame:
    """One test per (layer, head, annotation type, class) and for all classes pooled ("all"),
    without multiple-testing correction. With `null` (rows of `correlations` x shifts), also
    the circular-shift permutation p-value of the median r: draw b takes each protein's r
    under its b-th shift; p = (1 + draws with median >= observed) / (1 + draws)."""
    groups = [("all", correlations)]
    # a single class (an unlabelled set) would repeat every test of "all"
    if per_class and correlations["label"].nunique() > 1:
        groups += [(str(c), g) for c, g in correlations.groupby("label", sort=True)]
    rows = []
    for cls, sub in groups:
        for (layer, head, typ), g in sub.groupby(["layer", "head", "annotation_type"], sort=True):
            ok = g["r"].notna().to_numpy()
            r = g["r"].to_numpy()[ok]
            row = {
                "layer": layer,
                "head": head,
                "annotation_type": typ,
                "class": cls,
                "n_proteins": len(r),
                "n_excluded": int((~ok).sum()),
                "median_r": float(np.median(r)) if len(r) else np.nan,
                "mean_r": float(np.mean(r)) if len(r) else np.nan,
                "fraction_positive": float(np.mean(r > 0)) if len(r) else np.nan,
                "rank_biserial": rank_biserial(r) if len(r) else np.nan,
                "statistic": np.nan,
                "p_value": np.nan,
                "p_shift": np.nan,
                "p_composition": np.nan,
            }
            if len(r) >= min_proteins:
                row["statistic"], row["p_value"] = wilcoxon_greater(r)
                for name, nl in (("p_shift", null), ("p_composition", composition_null)):
                    if nl is not None and nl.shape[1]:
                        draws = np.median(nl[g.index.to_numpy()[ok]], axis=0)
                        row[name] = float((1 + np.sum(draws >= row["median_r"])) / (1 + len(draws)))
            rows.append(row)
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


# the columns of a table of group tests, also when no test could be made (no annotations)
TEST_COLUMNS = [
    "layer",
    "head",
    "annotation_type",
    "class",
    "n_proteins",
    "n_excluded",
    "median_r",
    "mean_r",
    "fraction_positive",
    "rank_biserial",
    "statistic",
    "p_value",
    "p_shift",
    "p_composition",
]


def adjust(tests: pd.DataFrame, fdr: float = 0.05) -> pd.DataFrame:
    """Benjamini-Hochberg over every test made, separately for the Wilcoxon and the shift
    p-values; `significant` is the Wilcoxon call, `significant_shift` the shift-null call."""
    out = tests.copy()
    if out.empty:
        cols = [
            "q_value",
            "significant",
            "q_shift",
            "significant_shift",
            "q_composition",
            "significant_composition",
            "n_tests",
        ]
        return out.reindex(columns=[*out.columns, *cols]).astype(
            {c: bool for c in cols if c.startswith("sig")}
        )
    bh_call(out, "p_value", "q_value", "significant", fdr)
    bh_call(out, "p_shift", "q_shift", "significant_shift", fdr)
    bh_call(out, "p_composition", "q_composition", "significant_composition", fdr)
    out["n_tests"] = int(out["p_value"].notna().sum())
    return out.sort_values(["q_value", "layer", "head"], na_position="last").reset_index(drop=True)


def test_correlations(
    correlations: pd.DataFrame,
    fdr: float = 0.05,
    min_proteins: int = 5,
    per_class: bool = True,
    null: np.ndarray | None = None,
) -> pd.DataFrame:
    """Group tests, then BH over all of them."""
    return adjust(group_tests(correlations.reset_index(drop=True), null, min_proteins, per_class), fdr)


CONTRAST_KEYS = ["layer", "head", "annotation_type"]


def contrast_tests(
    reference: pd.DataFrame,
    control: pd.DataFrame,
    min_proteins: int = 5,
    per_class: bool = True,
    fdr: float = 0.05,
) -> pd.DataFrame:
    """Is the reference model's relevance more aligned with the annotations than a control's?

    Pairs the per-protein r of the two models (same protein, layer, head, annotation type;
    proteins with r undefined in either are left out and counted) and tests the differences
    with the one-sided Wilcoxon signed-rank test (median difference > 0), per class and pooled,
    BH over every test. This is the question a control answers: a pretrained encoder's features
    can make a label-free model's relevance follow the annotations a little on its own, so a
    significant control alone does not tell whether fine-tuning added to it."""
    keys = ["accession"] + CONTRAST_KEYS
    pair = reference[keys + ["label", "r"]].merge(
        control[keys + ["r"]], on=keys, suffixes=("_reference", "_control"), validate="one_to_one"
    )
    groups = [("all", pair)]
    if per_class:
        groups += [(str(c), g) for c, g in pair.groupby("label", sort=True)]
    rows = []
    for cls, sub in groups:
        for key, g in sub.groupby(CONTRAST_KEYS, sort=True):
            ok = g["r_reference"].notna() & g["r_control"].notna()
            d = (g["r_reference"] - g["r_control"]).to_numpy()[ok.to_numpy()]
            row = dict(
                zip(CONTRAST_KEYS, key),
                **{
                    "class": cls,
                    "n_proteins": len(d),
                    "n_excluded": int((~ok).sum()),
                    "median_r_reference": float(g["r_reference"][ok].median()) if len(d) else np.nan,
                    "median_r_control": float(g["r_control"][ok].median()) if len(d) else np.nan,
                    "median_difference": float(np.median(d)) if len(d) else np.nan,
                    "rank_biserial": rank_biserial(d) if len(d) else np.nan,
                    "statistic": np.nan,
                    "p_value": np.nan,
                },
            )
            if len(d) >= min_proteins:
                row["statistic"], row["p_value"] = wilcoxon_greater(d)
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    bh_call(out, "p_value", "q_value", "significant", fdr)
    out["n_tests"] = int(out["p_value"].notna().sum())
    return out.sort_values(["q_value", "layer", "head"], na_position="last").reset_index(drop=True)
