"""Faithfulness of residue relevance: replace the most relevant residues by alanine.

For each attributed protein and each k, the k residues of highest relevance (positive evidence
for the attributed class) are replaced by alanine, and, as the baseline, k residues drawn at
random (`n_random` seeded draws per protein and k). The drop in the probability of the
attributed class is recorded per model; the summary gives the mean drop per k with bootstrap
intervals over proteins, and the paired difference relevant - random. A relevance map that
points at what the model uses gives a larger drop than random residues.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import torch

from plmxai.metrics import bootstrap_weights
from plmxai.model.batching import collate, inference_tokens
from plmxai.model.esm import cls_only_last_layer
from plmxai.model.tokens import ESM2_ALPHABET

ALANINE = ESM2_ALPHABET.index("A")


def alanine_scan(
    model,
    tokens: pd.DataFrame,
    relevance: pd.DataFrame,
    targets: pd.Series,
    ks=(1, 2, 4, 8, 16, 32, 64),
    n_random: int = 10,
    seed: int = 0,
    batch_size: int = 64,
) -> pd.DataFrame:
    """One row per (protein, k, selection, draw): target probability before and after.

    relevance: accession, position, relevance (one track); targets: accession -> class id.
    A k not below the protein's length is skipped for it (nothing would be left to compare).
    """
    device = next(model.parameters()).device
    model.eval()
    by_acc = {
        a: g.sort_values("position")["relevance"].to_numpy(np.float64)
        for a, g in relevance.groupby("accession", sort=False)
    }
    rows = []
    for rec in tokens.itertuples(index=False):
        if rec.accession not in by_acc:
            continue
        rel = by_acc[rec.accession]
        ids = np.asarray(rec.input_ids, dtype=np.int64)
        n = int(rec.n_residues)
        if len(rel) != n:
            raise ValueError(f"relevance of {rec.accession} covers {len(rel)} residues, the protein has {n}")
        t = int(targets[rec.accession])
        rng = np.random.default_rng([seed, zlib.crc32(rec.accession.encode())])
        order = np.argsort(-rel, kind="stable")  # most relevant first; ties by position
        variants, meta = [ids], [("none", 0, -1)]
        for k in ks:
            if k >= n:
                continue
            for sel, draw, chosen in [("relevant", 0, order[:k])] + [
                ("random", d, rng.choice(n, size=k, replace=False)) for d in range(n_random)
            ]:
                v = ids.copy()
                v[1 + chosen] = ALANINE  # token i + 1 is residue i + 1 (1-based) after <cls>
                variants.append(v)
                meta.append((sel, k, draw))
        probs = []
        # the variants of a protein share its length: on a CPU small passes are faster than
        # 64 variants of a long protein (benchmarks/inference_batches.py measures it for
        # predictions)
        per_pass = max(1, min(batch_size, inference_tokens(device) // len(ids)))
        with torch.no_grad(), cls_only_last_layer(model):
            for b in range(0, len(variants), per_pass):
                x, mask = collate(variants[b : b + per_pass])
                logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits.float()
                probs.append(torch.softmax(logits, -1)[:, t].cpu().numpy())
        p = np.concatenate(probs)
        for (sel, k, draw), pk in zip(meta[1:], p[1:]):
            rows.append((rec.accession, t, k, sel, draw, float(p[0]), float(pk), float(p[0] - pk)))
    return pd.DataFrame(
        rows,
        columns=["accession", "target_id", "k", "selection", "draw", "p_original", "p_perturbed", "drop"],
    )


def faithfulness_summary(
    runs: pd.DataFrame, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Per k: mean drop for the relevant and the random residues (random averaged over draws
    per protein first) and their paired difference, with bootstrap intervals over proteins."""
    rows = []
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    for k, g in runs.groupby("k", sort=True):
        per = g.groupby(["accession", "selection"])["drop"].mean().unstack()
        per = per.dropna()
        n = len(per)
        w = bootstrap_weights(n, n_boot, seed) if n else np.zeros((0, 0))
        for name, values in (
            ("relevant", per["relevant"]),
            ("random", per["random"]),
            ("relevant - random", per["relevant"] - per["random"]),
        ):
            v = values.to_numpy()
            boots = (w @ v) / n if n and len(w) else np.array([np.nan])
            rows.append(
                {
                    "k": int(k),
                    "selection": name,
                    "mean_drop": float(v.mean()) if n else np.nan,
                    "ci_low": float(np.quantile(boots, lo_q)),
                    "ci_high": float(np.quantile(boots, hi_q)),
                    "n_proteins": n,
                }
            )
    return pd.DataFrame(rows)
