import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from plmxai.stats import (
    adjust,
    benjamini_hochberg,
    group_tests,
    point_biserial,
    protein_correlations,
    rank_biserial,
    wilcoxon_greater,
)
from plmxai.stats import test_correlations as run_tests


def test_point_biserial_hand_computed():
    # x = [1, 2, 3, 4], mask = [0, 0, 1, 1]: r = (M1 - M0) / s_n * sqrt(p q) = 2 / sqrt(1.25) * 0.5
    r = point_biserial(np.array([1.0, 2, 3, 4]), np.array([0, 0, 1, 1]))
    assert r == pytest.approx(2 / np.sqrt(1.25) * 0.5, abs=1e-12)
    assert r == pytest.approx(0.894427191, abs=1e-9)


def test_point_biserial_matches_scipy_and_undefined_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    m = rng.random(50) < 0.2
    assert point_biserial(x, m) == pytest.approx(sps.pointbiserialr(m, x).statistic, abs=1e-12)
    assert np.isnan(point_biserial(x, np.zeros(50)))
    assert np.isnan(point_biserial(np.ones(50), m))


def test_wilcoxon_and_rank_biserial_against_scipy():
    x = np.array([0.3, -0.1, 0.5, 0.2, 0.05, -0.02, 0.4, 0.25])
    w, p = wilcoxon_greater(x)
    ref = sps.wilcoxon(x, alternative="greater")
    assert w == ref.statistic and p == pytest.approx(ref.pvalue)
    # ranks of |x|: 0.02->1, 0.05->2, 0.1->3, 0.2->4, 0.25->5, 0.3->6, 0.4->7, 0.5->8
    # W+ = 2+4+5+6+7+8 = 32, W- = 1+3 = 4
    assert w == 32
    assert rank_biserial(x) == pytest.approx((32 - 4) / 36)


def test_benjamini_hochberg_hand_computed():
    p = np.array([0.01, 0.04, 0.03, 0.20, np.nan])
    q = benjamini_hochberg(p)
    # sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.04*... : q_(i) = min_j>=i p_(j) m / j, m = 4
    assert q[:4] == pytest.approx([0.04, 0.0533333, 0.0533333, 0.20], abs=1e-6)
    assert np.isnan(q[4])


def test_planted_signal_is_found_and_null_is_not():
    rng = np.random.default_rng(1)
    rel_rows, ann_rows, labels = [], [], {}
    for i in range(30):
        acc = f"P{i}"
        L = 60
        rel = rng.normal(size=L)
        rel[10:15] += 2.0  # the annotated site carries relevance
        rel_rows.append(
            pd.DataFrame(
                {
                    "accession": acc,
                    "layer": "embedding",
                    "head": -1,
                    "position": np.arange(1, L + 1),
                    "relevance": rel,
                }
            )
        )
        ann_rows.append({"accession": acc, "type": "active_site", "start": 11, "end": 15})
        ann_rows.append({"accession": acc, "type": "site", "start": 40, "end": 44})  # null
        labels[acc] = "1" if i % 2 else "2"
    corr, null, comp = protein_correlations(
        pd.concat(rel_rows), pd.DataFrame(ann_rows), pd.Series(labels), n_shifts=999
    )
    assert len(corr) == 60 and corr["r"].notna().all() and null.shape == (60, 999)
    assert np.isnan(comp).all()  # no residue column: no composition-matched null
    table = run_tests(corr, fdr=0.01, min_proteins=5, null=null)
    assert len(table) == 6 and (table["n_tests"] == 6).all()
    act = table[(table["annotation_type"] == "active_site") & (table["class"] == "all")].iloc[0]
    assert act["significant"] and act["median_r"] > 0.4 and act["n_proteins"] == 30
    assert act["rank_biserial"] == pytest.approx(1.0)
    site = table[(table["annotation_type"] == "site") & (table["class"] == "all")].iloc[0]
    assert not site["significant"] and site["median_r"] < 0
    # the circular-shift null: no shifted draw reaches the planted site's median r
    assert act["p_shift"] == pytest.approx(1 / 1000) and act["significant_shift"]
    assert site["p_shift"] > 0.5 and not site["significant_shift"]


def test_shifted_correlations_equal_rolled_masks():
    from plmxai.stats import point_biserial, shifted_correlations

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 25)).cumsum(1)
    mask = np.zeros(25, dtype=bool)
    mask[[3, 4, 5, 17]] = True
    shifts = np.array([0, 1, 7, 24])
    got = shifted_correlations(x, mask, shifts)
    want = [[point_biserial(row, np.roll(mask, s)) for s in shifts] for row in x]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_contrast_finds_added_alignment_and_not_an_inherited_one():
    from plmxai.stats import contrast_tests

    rng = np.random.default_rng(3)
    n = 40
    base = pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(n)],
            "label": ["a"] * 20 + ["b"] * 20,
            "layer": "embedding",
            "head": -1,
            "annotation_type": "active_site",
        }
    )
    inherited = rng.normal(0.2, 0.05, n)  # both models align a little (the encoder before fine-tuning)
    control = base.assign(r=inherited + rng.normal(0, 0.02, n))
    # fine-tuning adds 0.3 for class a only; class b differs from the control by noise that is
    # symmetric about zero (each difference and its negative), so its median difference is 0
    noise = rng.normal(0, 0.02, n // 4)
    added = np.where(base["label"] == "a", 0.3 + rng.normal(0, 0.02, n), np.tile(np.r_[noise, -noise], 2))
    reference = base.assign(r=control["r"] + added)
    reference.loc[0, "r"] = np.nan  # undefined in one model: left out, counted
    t = contrast_tests(reference, control, min_proteins=5).set_index("class")
    assert t.loc["a", "significant"] and not t.loc["b", "significant"]
    assert t.loc["b", "median_difference"] == pytest.approx(0, abs=1e-12) and t.loc["b", "p_value"] > 0.4
    assert t.loc["a", "n_proteins"] == 19 and t.loc["a", "n_excluded"] == 1
    d = (reference["r"] - control["r"])[1:20]
    assert t.loc["a", "median_difference"] == pytest.approx(d.median())
    w = sps.wilcoxon(d, alternative="greater")
    assert t.loc["a", "p_value"] == pytest.approx(w.pvalue)
    assert t.loc["a", "n_tests"] == 3  # a, b and pooled
    with pytest.raises(pd.errors.MergeError):
        contrast_tests(pd.concat([reference, reference]), control)


def test_composition_null_separates_a_site_from_its_residues():
    """Sites are W residues among other W's. Relevance on the annotated W is beyond residue
    identity; relevance on every W follows identity alone: significant by Wilcoxon and by the
    shift null, not by the composition-matched null."""
    rng = np.random.default_rng(5)
    rows, ann, labels = [], [], {}
    for i in range(30):
        acc, n = f"P{i}", 60
        seq = rng.choice(list("ACDEFGHIKLMNPQRSTVY"), n)
        ws = rng.choice(n, 6, replace=False)
        seq[ws] = "W"
        base = rng.normal(size=n)
        for layer, rel in (
            ("site", base + 3.0 * (np.arange(n) == ws[0])),
            ("identity", base + 3.0 * (seq == "W")),
        ):
            rows.append(
                pd.DataFrame(
                    {
                        "accession": acc,
                        "layer": layer,
                        "head": -1,
                        "position": np.arange(1, n + 1),
                        "residue": seq,
                        "relevance": rel,
                    }
                )
            )
        ann.append({"accession": acc, "type": "active_site", "start": ws[0] + 1, "end": ws[0] + 1})
        labels[acc] = "1"
    corr, null, comp = protein_correlations(
        pd.concat(rows), pd.DataFrame(ann), pd.Series(labels), n_shifts=199
    )
    assert comp.shape == null.shape == (60, 199) and not np.isnan(comp).any()
    t = adjust(group_tests(corr, null, 5, False, comp)).set_index("layer")
    assert t.loc["site", "significant"] and t.loc["site", "significant_composition"]
    assert t.loc["identity", "significant"] and t.loc["identity", "significant_shift"]
    assert not t.loc["identity", "significant_composition"] and t.loc["identity", "p_composition"] > 0.05
