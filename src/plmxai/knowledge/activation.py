"""Knowledge-neuron scoring: activation scores of every neuron at every site.

A neuron is one output unit of a Linear module at a site (query, key, value, attn_out,
ffn_in before GELU, ffn_out) of a layer. Its activation score for class c is the mean over the
class's proteins of the mean (or max) over residue tokens of its activation (optionally
absolute). One forward pass per batch, with hooks on all sites at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from plmxai.model.batching import batches
from plmxai.model.esm import SITES, site_modules
from plmxai.sites import site_summary  # noqa: F401 (re-exported)


def residue_mask(ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """True on residue tokens: not <cls>, <eos> or padding."""
    mask = attention_mask.bool().clone()
    mask[:, 0] = False
    lengths = attention_mask.sum(1)
    mask[torch.arange(len(ids)), lengths - 1] = False
    return mask


@torch.no_grad()
def activation_scores(
    model, tokens: pd.DataFrame, reduce: str = "mean", absolute: bool = False, batch_size: int = 16
) -> pd.DataFrame:
    """Per-class activation scores: columns layer, site, neuron, class, label, score, n_proteins."""
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    device = next(model.parameters()).device
    model.eval()
    modules = site_modules(model)
    n_classes = model.config.num_labels
    sums = {k: torch.zeros(n_classes, m.out_features, dtype=torch.float64) for k, m in modules.items()}
    counts = torch.zeros(n_classes, dtype=torch.float64)
    captured: dict = {}

    def hook(key):
        def fn(_module, _inp, out):
            captured[key] = out

        return fn

    handles = [m.register_forward_hook(hook(k)) for k, m in modules.items()]
    labels = torch.tensor(tokens["label_id"].to_numpy(), dtype=torch.long)
    try:
        for pos, ids, mask in tqdm(
            batches(tokens, batch_size),
            total=-(-len(tokens) // batch_size),
            desc="activation scores",
            mininterval=10,
            miniters=1,
        ):
            ids, mask = ids.to(device), mask.to(device)
            model(input_ids=ids, attention_mask=mask)
            rmask = residue_mask(ids, mask).unsqueeze(-1)  # (B, T, 1)
            onehot = torch.nn.functional.one_hot(labels[pos], n_classes).double()  # (B, C)
            counts += onehot.sum(0)
            for key, act in captured.items():
                a = act.float()
                if absolute:
                    a = a.abs()
                if reduce == "mean":
                    per_protein = (a * rmask).sum(1) / rmask.sum(1)
                else:
                    per_protein = a.masked_fill(~rmask, float("-inf")).amax(1)
                sums[key] += onehot.T @ per_protein.double().cpu()
            captured.clear()
    finally:
        for h in handles:
            h.remove()
    return class_score_table({k: v.numpy() for k, v in sums.items()}, counts.numpy(), model.config.id2label)


def class_score_table(sums: dict, counts, id2label: dict, extra: dict | None = None) -> pd.DataFrame:
    """Per-class means from per-class sums ((layer, site) -> classes x neurons) and class
    counts, as the long table of neuron scores (sites in SITES order, `extra` columns first)."""
    order = {s: i for i, s in enumerate(SITES)}
    counts = np.asarray(counts, dtype=np.float64)
    frames = []
    for (layer, site), total in sorted(sums.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        score = total / np.maximum(counts, 1)[:, None]
        for c in range(len(counts)):
            frames.append(
                pd.DataFrame(
                    {
                        **(extra or {}),
                        "layer": np.int16(layer),
                        "site": site,
                        "neuron": np.arange(score.shape[1], dtype=np.int32),
                        "class_id": np.int16(c),
                        "label": id2label[c],
                        "score": score[c].astype(np.float32),
                        "n_proteins": np.int32(counts[c]),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)
