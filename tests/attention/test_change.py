"""What fine-tuning did to attention: the paired permutation test on hand-made counts, and the
comparison end to end on a model against itself and against a changed copy."""

import copy
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

import plmxai as px
from plmxai.attention.paired import change_table, paired_change


def test_paired_change_against_full_enumeration():
    # 4 proteins, 10 high-confidence pairs each in both models; 1 hit before, 5 after
    hits_b, high_b = np.ones((4, 1)), np.full((4, 1), 10.0)
    hits_a, high_a = np.full((4, 1), 5.0), np.full((4, 1), 10.0)
    pb, pa, d, p = paired_change(hits_b, high_b, hits_a, high_a, 20000, np.random.default_rng(0))
    assert (pb[0], pa[0], d[0]) == pytest.approx((0.1, 0.5, 0.4))
    # the exact null: every protein's counts swapped or not, 2^4 equally likely assignments;
    # |difference| reaches 0.4 only when none or all are swapped
    exact = np.mean(
        [
            abs(sum(4 * (1 - 2 * f) for f in flips) / 40) >= 0.4 - 1e-12
            for flips in itertools.product([0, 1], repeat=4)
        ]
    )
    assert exact == 2 / 16
    assert p[0] == pytest.approx(exact, abs=0.01)


def test_identical_models_change_nothing():
    rng = np.random.default_rng(1)
    counts = {
        "high": rng.integers(50, 100, (6, 4)).astype(float),
        "hits": rng.integers(0, 50, (6, 4, 2)).astype(float),
        "c_high": np.zeros((6, 4)),
        "c_hits": np.zeros((6, 4)),
        "c_pairs": np.zeros(6),
    }
    t = change_table(
        counts, copy.deepcopy(counts), ["active_site", "binding_site"], n_heads=2, draws=99, min_pairs=10
    )
    assert len(t) == 4 * 2 and set(t["property"]) == {"active_site", "binding_site"}  # no contact rows
    assert (t["difference"] == 0).all() and (t["p_value"] == 1).all() and not t["significant"].any()
    assert t[["layer", "head"]].drop_duplicates().values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_a_head_made_to_attend_elsewhere_is_found(tiny_model, tiny_tokens):
    """The same model against a copy whose layer-1 queries and keys are scaled up: its attention
    becomes sharp, so its high-confidence attention changes while layer 0 cannot (same weights)."""
    after = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for m in (
            after.esm.encoder.layer[1].attention.self.query,
            after.esm.encoder.layer[1].attention.self.key,
        ):
            m.weight.mul_(30.0)
    proteins = tiny_tokens[["accession"]].assign(
        sequence=["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVDAFQ", "MWCHHYQNACDEFGHIKLMNPQRSTVWY", "AC"], label="1"
    )
    annotations = pd.DataFrame(
        {"accession": ["P0", "P2"], "type": ["active_site", "active_site"], "start": [3, 5], "end": [6, 9]}
    )
    same = px.attention.change(
        tiny_model, tiny_model, tiny_tokens, annotations, proteins, theta=0.1, min_pairs=1
    )
    assert (same["difference"].fillna(0) == 0).all() and not same["significant"].any()
    moved = px.attention.change(tiny_model, after, tiny_tokens, annotations, proteins, theta=0.1, min_pairs=1)
    assert (
        moved.loc[moved["layer"] == 0, "high_after"] == moved.loc[moved["layer"] == 0, "high_before"]
    ).all()
    assert (
        moved.loc[moved["layer"] == 1, "high_after"] != moved.loc[moved["layer"] == 1, "high_before"]
    ).any()


def test_contacts_on_a_structure_set(shared_data, tiny_model):
    folder = shared_data / "structures" / "pdb"
    tokens = px.model.tokenize(
        pd.DataFrame(
            {
                "accession": ["A"],
                "sequence": ["MKTAYIAKQRQISFVKSHFSRQ"],
                "label": ["1"],
                "label_id": [0],
                "split": "test",
            }
        )
    )
    proteins = pd.DataFrame({"accession": ["A"], "sequence": ["MKTAYIAKQRQISFVKSHFSRQ"], "label": ["1"]})
    annotations = pd.DataFrame(columns=["accession", "type", "start", "end"])
    t = px.attention.change(
        tiny_model,
        tiny_model,
        tokens,
        annotations,
        proteins,
        contact_set=str(folder),
        theta=0.005,  # a random model's attention over chains of ~200 residues is near 1/200
        min_pairs=1,
        change={"max_contact_proteins": 3, "draws": 19},
    )
    # the three chains, each with its own contacts; the same model twice: no difference
    assert set(t["property"]) == {"contact"} and (t["proteins"] == 3).all() and len(t) == 2 * 4
    assert t["high_before"].sum() > 0 and (t["difference"].fillna(0) == 0).all()
