"""What fine-tuning did to attention: each head's attention to a property, fine-tuned against
the encoder before fine-tuning, on the same proteins, with a paired test.

For head (l, h), property f and model m, the proportion of high-confidence attention on f
(Vig et al.'s measure, as in analysis.py) pooled over the proteins:

    p_m(f) = sum_proteins hits_m / sum_proteins high_m

The statistic is p_after - p_before. Under the null that fine-tuning did not change the head's
attention to f, the two models' counts are exchangeable within each protein, so the null draws
swap them protein by protein (a paired sign-flip permutation): p = (1 + #{|d_b| >= |d|}) /
(1 + draws), two-sided, Benjamini-Hochberg over every head x property tested. A head is tested
where both models give it at least `min_pairs` high-confidence pairs. Properties: the
annotation types of the task's proteins (attention TO an annotated residue) and, on a set of
structures, C-alpha contacts among pairs with sequence separation >= min_separation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from plmxai.stats import bh_call

COLUMNS = [
    "layer",
    "head",
    "property",
    "kind",
    "proteins",
    "high_before",
    "high_after",
    "proportion_before",
    "proportion_after",
    "difference",
    "tested",
    "p_value",
    "q_value",
    "significant",
]


def protein_counts(model, tokens: pd.DataFrame, inputs: Callable, theta: float, batch_size: int = 4) -> dict:
    """Per protein and head: high-confidence pairs and hits on each property.

    inputs(accession) -> (props: L x P 0/1 residue properties, or None; contacts, considered:
    L x L booleans, or None). Returns high (N x heads), hits (N x heads x P) for the residue
    properties, c_high, c_hits (N x heads) for contacts (0 where a protein has none) and
    c_pairs (N): the pairs considered for contacts (0: no structure)."""
    from plmxai.attention.analysis import attention_maps

    high_rows, hit_rows, c_high_rows, c_hit_rows, c_pairs = [], [], [], [], []
    for row, att in attention_maps(model, tokens, batch_size):
        props, contacts, considered = inputs(tokens["accession"].iloc[row])
        n = att.shape[-1]
        high = (att > theta).reshape(-1, n, n)
        col = high.sum(1).astype(np.float64)  # heads x L: high-confidence attention into residue j
        high_rows.append(col.sum(1))
        hit_rows.append(col @ props.astype(np.float64) if props is not None else np.zeros((len(col), 0)))
        c_pairs.append(0.0 if contacts is None else float(considered.sum()))
        if contacts is None:
            c_high_rows.append(np.zeros(len(col)))
            c_hit_rows.append(np.zeros(len(col)))
        else:
            hf = high.reshape(len(col), -1).astype(np.float64)
            c_high_rows.append(hf @ considered.astype(np.float64).ravel())
            c_hit_rows.append(hf @ (considered & contacts).astype(np.float64).ravel())
    nh = model.config.num_hidden_layers * model.config.num_attention_heads
    stack = lambda rows, shape: np.stack(rows) if rows else np.zeros(shape)  # noqa: E731
    return {
        "high": stack(high_rows, (0, nh)),
        "hits": stack(hit_rows, (0, nh, 0)),
        "c_high": stack(c_high_rows, (0, nh)),
        "c_hits": stack(c_hit_rows, (0, nh)),
        "c_pairs": np.array(c_pairs),
    }


def paired_change(
    hits_b: np.ndarray,
    high_b: np.ndarray,
    hits_a: np.ndarray,
    high_a: np.ndarray,
    draws: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pooled proportions before and after, and the two-sided sign-flip permutation p of their
    difference, for every column at once. Arrays: proteins x columns (the same protein in the
    same row of each). Returns (p_before, p_after, difference, p_value)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pb = hits_b.sum(0) / high_b.sum(0)
        pa = hits_a.sum(0) / high_a.sum(0)
        d = pa - pb
        if not draws or not len(hits_b):
            return pb, pa, d, np.full(d.shape, np.nan)
        # swapping a protein's counts between the models: after' = after - flip x (after - before)
        flips = rng.integers(0, 2, size=(draws, len(hits_b))).astype(np.float64)
        a_hits = hits_a.sum(0) - flips @ (hits_a - hits_b)
        a_high = high_a.sum(0) - flips @ (high_a - high_b)
        b_hits = hits_b.sum(0) + flips @ (hits_a - hits_b)
        b_high = high_b.sum(0) + flips @ (high_a - high_b)
        null = a_hits / a_high - b_hits / b_high
        extreme = (np.abs(null) >= np.abs(d)[None, :] - 1e-12).sum(0)
    return pb, pa, d, (1 + extreme) / (1 + draws)


def change_table(
    before: dict,
    after: dict,
    properties: list[str],
    n_heads: int,
    draws: int = 999,
    seed: int = 0,
    min_pairs: int = 100,
    fdr: float = 0.05,
) -> pd.DataFrame:
    """One row per head x property (and contact, where any protein had one): proportions
    before and after fine-tuning, their difference and its paired permutation test.
    `before`/`after`: protein_counts of the two models on the same proteins, in the same order."""
    rng = np.random.default_rng([seed, 7])
    nh = before["high"].shape[1]
    layer, head = np.divmod(np.arange(nh), n_heads)
    parts = []
    for k, prop in enumerate(properties):
        parts.append(
            _part(
                layer,
                head,
                prop,
                "annotation",
                before["hits"][:, :, k],
                before["high"],
                after["hits"][:, :, k],
                after["high"],
                draws,
                rng,
                min_pairs,
            )
        )
    with_contacts = before["c_pairs"] > 0
    if with_contacts.any():
        parts.append(
            _part(
                layer,
                head,
                "contact",
                "contact",
                before["c_hits"][with_contacts],
                before["c_high"][with_contacts],
                after["c_hits"][with_contacts],
                after["c_high"][with_contacts],
                draws,
                rng,
                min_pairs,
            )
        )
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    bh_call(out, "p_value", "q_value", "significant", fdr)
    return out[COLUMNS]


def _part(layer, head, prop, kind, hits_b, high_b, hits_a, high_a, draws, rng, min_pairs) -> pd.DataFrame:
    pb, pa, d, p = paired_change(hits_b, high_b, hits_a, high_a, draws, rng)
    tested = (high_b.sum(0) >= min_pairs) & (high_a.sum(0) >= min_pairs)
    return pd.DataFrame(
        {
            "layer": layer,
            "head": head,
            "property": prop,
            "kind": kind,
            "proteins": len(hits_b),
            "high_before": high_b.sum(0),
            "high_after": high_a.sum(0),
            "proportion_before": pb,
            "proportion_after": pa,
            "difference": d,
            "tested": tested,
            "p_value": np.where(tested, p, np.nan),
        }
    )
