"""plmxai.report.findings on a run folder written here, where every verdict and figure is known
by hand: the McNemar test, the head and embedding claims, knowledge-neuron claims, stage times."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from plmxai.report.anchors import wall_seconds
from plmxai.report.findings import claims, mcnemar, run_document, stage_table


def _predictions(correct: list[bool]) -> pd.DataFrame:
    n = len(correct)
    return pd.DataFrame(
        {"accession": [f"P{i}" for i in range(n)], "split": "test", "correct": correct, "label_id": 0}
    )


@pytest.fixture
def run(tmp_path):
    r = tmp_path / "esm2_8m_task"
    for v in ("finetuned", "frozen"):
        (r / v / "model").mkdir(parents=True)
    # 20 test proteins: both right on 6, only fine-tuned on 9, only frozen on 1, neither on 4
    ft = [True] * 6 + [True] * 9 + [False] * 1 + [False] * 4
    fr = [True] * 6 + [False] * 9 + [True] * 1 + [False] * 4
    _predictions(ft).to_parquet(r / "finetuned" / "model" / "predictions.parquet")
    _predictions(fr).to_parquet(r / "frozen" / "model" / "predictions.parquet")
    (r / "finetuned" / "attribution").mkdir()
    stats = pd.DataFrame(
        {
            "layer": ["embedding", "0", "0", "1"],
            "head": [-1, 0, 1, 0],
            "annotation_type": "transmembrane",
            "class": "all",
            "n_proteins": 12,
            "median_r": [0.20, 0.30, 0.01, 0.25],
            "p_value": [0.001, 0.0001, 0.6, 0.002],
            "q_value": [0.002, 0.0004, 0.6, 0.004],
            "q_shift": [0.01, 0.01, 0.9, 0.2],
            "q_composition": [0.03, 0.02, 0.9, 0.01],
            "significant": [True, True, False, True],
            "significant_shift": [True, True, False, False],
            "significant_composition": [True, True, False, True],
        }
    )
    stats.to_parquet(r / "finetuned" / "attribution" / "statistics.parquet")
    (r / "finetuned" / "knowledge").mkdir()
    pres = pd.DataFrame(
        {
            "mode": "preserve",
            "fraction": [0.01, 0.1, 0.01, 0.1],
            "method": ["activation", "activation", "conductance", "conductance"],
            "metric": "accuracy",
            "value": [0.40, 0.50, 0.70, 0.80],
            "ci_low": 0.3,
            "ci_high": 0.9,
            "random_low": [0.35, 0.45, 0.35, 0.45],
            "random_high": [0.45, 0.55, 0.45, 0.55],
            "p_permutation": [0.5, 0.4, 0.09, 0.09],
            "beats_random": [False, False, True, True],
        }
    )
    # removal: activation's 1% hurts more than random removals (below the band), its 10% does not
    ablate = pres[pres["method"] == "activation"].assign(
        mode="ablate_revert", value=[0.30, 0.50], beats_random=[True, False]
    )
    pres = pd.concat([pres, ablate], ignore_index=True)
    pres.to_parquet(r / "finetuned" / "knowledge" / "preservation.parquet")
    (r / "logs").mkdir()
    # the two fine-tuning jobs start together at 08:00:00; attribution follows the first
    for job, s, end in (
        ("finetune_finetuned", 100.0, "08:01:40,000"),
        ("finetune_frozen", 20.0, "08:00:20,000"),
        ("attribution_finetuned_0", 30.0, "08:02:10,500"),
    ):
        (r / "logs" / f"{job}.log").write_text(f"x\n2026-12-01 {end} INFO plmxai: done in {s} s; wrote y\n")
    (r / "data").mkdir()
    (r / "data" / "data_summary.json").write_text(json.dumps({"kept": 20, "class_counts": {"a": 20}}))
    return r


def test_mcnemar_counts_and_exact_p(run):
    m = mcnemar(run)
    assert (m["n"], m["only_a"], m["only_b"]) == (20, 9, 1)
    assert m["acc_a"] == pytest.approx(15 / 20) and m["acc_b"] == pytest.approx(7 / 20)
    # one-sided exact binomial on the 10 discordant pairs: P(X >= 9 | 10, 1/2) = 11 / 1024
    assert m["p"] == pytest.approx(11 / 1024)
    assert m["p"] == pytest.approx(sps.binomtest(9, 10, 0.5, alternative="greater").pvalue)


def test_claims_verdicts(run):
    c = claims(run).set_index("claim")
    assert (
        c.loc["fine-tuning beats the frozen encoder with a trained head (the baseline)", "verdict"] == "held"
    )
    heads = c.loc["Wenzel et al.: heads whose relevance matches transmembrane (one-sided Wilcoxon, BH)"]
    assert heads["verdict"] == "held"
    # 2 of 3 heads by Wilcoxon, 1 of them also beyond both nulls
    assert heads["figure"].startswith("2 of 3 heads q < 0.05; 1 also beyond")
    assert c.loc["Wenzel et al.: embedding-level relevance matches transmembrane", "verdict"] == "held"
    assert c.loc[
        "Nori et al.: keeping the neurons chosen by activation beats keeping random ones", "verdict"
    ] == ("not held")
    assert c.loc[
        "Nori et al.: keeping the neurons chosen by conductance beats keeping random ones", "verdict"
    ] == ("held")
    assert "not held" not in set(c.loc[c.index.str.startswith("Wenzel"), "verdict"])
    removed = c.loc[
        "Nori et al.: reverting the neurons chosen by activation hurts more than reverting random ones"
    ]
    assert removed["verdict"] == "partly held"
    assert removed["figure"].startswith("1%: 0.300 vs random band [0.350, 0.450]")


def test_claims_not_held_when_no_head_is_significant(run):
    p = run / "finetuned" / "attribution" / "statistics.parquet"
    s = pd.read_parquet(p)
    s["significant"] = False
    s.to_parquet(p)
    c = claims(run).set_index("claim")
    assert c.loc[
        "Wenzel et al.: heads whose relevance matches transmembrane (one-sided Wilcoxon, BH)", "verdict"
    ] == ("not held")


def test_stage_times_and_document(run):
    t = stage_table(run).set_index("stage")
    assert t.loc["finetune", "seconds"] == 120 and t.loc["finetune", "jobs"] == 2
    assert t.loc["attribution_chunk", "seconds"] == 30 and "attribution" not in t.index
    assert np.isclose(t["seconds"].sum(), 150)
    doc = run_document(run)
    assert "| finetune | 2 | 120 | 80% |" in doc
    # from 08:00:00 (both fine-tuning jobs start) to 08:02:10.5 (attribution ends)
    assert wall_seconds(run) == pytest.approx(130.5)
    assert "last job's end 2.2 min" in doc
