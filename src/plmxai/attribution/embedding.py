"""Residue attributions: integrated gradients at the embedding output.

The path runs from a baseline to the input in the space of the embedding module's output
(`esm.embeddings`), through Captum's LayerIntegratedGradients, which replaces that output by a
forward hook. Passing `inputs_embeds` instead would skip ESM's token-dropout scaling and mask
zeroing. The baseline is `<cls> <pad>... <eos>` (never `<mask>`, which token dropout zeroes);
the Gauss-Legendre rule is accurate where Riemann sums miss completeness by tens of percent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from captum.attr import LayerIntegratedGradients
from tqdm import tqdm

from plmxai.model.batching import batches
from plmxai.model.esm import cls_only_last_layer, fused_gelu_backward
from plmxai.model.ig import DEFAULT_MEMORY_GB, baseline_ids, chunk_rows
from plmxai.model.tokens import ESM2_ALPHABET

_LETTERS = np.array(ESM2_ALPHABET, dtype=object)

log = logging.getLogger(__name__)

RELEVANCE_COLUMNS = ["accession", "layer", "head", "position", "residue", "relevance"]
COMPLETENESS_COLUMNS = [
    "accession",
    "label_id",
    "target_id",
    "f_input",
    "f_baseline",
    "attribution_sum",
    "delta",
    "relative_error",
]


def _forward(model):
    def fn(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    return fn


def _memory_batches(model, tokens: pd.DataFrame, batch_size: int, memory_gb) -> Iterator:
    """batches(), each split where one step of all its proteins would exceed the budget, with
    the sequences one pass may hold at the part's length."""
    for pos, ids, mask in batches(tokens, batch_size):
        most = chunk_rows(model, ids.shape[1], memory_gb)
        for s in range(0, len(pos), most):
            sub = mask[s : s + most]
            width = int(sub.sum(1).max())  # the longest protein of the part, not of the batch
            yield (
                pos[s : s + most],
                ids[s : s + most, :width],
                sub[:, :width],
                chunk_rows(model, width, memory_gb),
            )


def embedding_ig(
    model,
    tokens: pd.DataFrame,
    target: str = "true",
    n_steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int = 4,
    baseline: str = "pad",
    n_baselines: int = 1,
    seed: int = 0,
    memory_gb: float | None = DEFAULT_MEMORY_GB,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield (relevance rows, completeness rows) per batch of proteins.

    A batch holds at most `batch_size` proteins, and fewer where its length needs it: each
    forward/backward pass holds proteins x steps sequences, as many as `memory_gb` allows
    (model.ig.chunk_rows; on a GPU, its free memory), and never fewer than one step of every
    protein of the batch.

    Relevance of residue i = sum over hidden dimensions of the attribution at token i;
    special tokens are excluded. target: "true" (the protein's label) or "predicted".
    baseline "shuffled": the attribution averaged over `n_baselines` seeded shuffles of each
    protein's residues (completeness against the mean F(baseline)).
    """
    if target not in ("true", "predicted"):
        raise ValueError(f"attribution target must be 'true' or 'predicted', got {target!r}")
    device = next(model.parameters()).device
    model.eval()
    fwd = _forward(model)
    lig = LayerIntegratedGradients(fwd, model.esm.embeddings)
    ids_col = tokens["input_ids"].to_numpy()
    for pos, ids, mask, rows_per_pass in tqdm(
        _memory_batches(model, tokens, batch_size, memory_gb),
        total=-(-len(tokens) // batch_size),
        desc="embedding IG",
        mininterval=10,
        miniters=1,
    ):
        ids, mask = ids.to(device), mask.to(device)
        lengths = mask.sum(1).tolist()
        per_row = [
            baseline_ids(
                ids[r : r + 1, :n],
                baseline,
                n_baselines,
                seed,
                tokens["accession"].iat[p],
                model.config.pad_token_id,
            )
            for r, (p, n) in enumerate(zip(pos, lengths))
        ]
        with torch.no_grad():
            f_in = fwd(ids, mask).float()
        if target == "true":
            tgt = torch.as_tensor(tokens["label_id"].to_numpy()[pos], device=device)
        else:
            tgt = f_in.argmax(-1)
        attr, delta, f_base = 0.0, 0.0, 0.0
        for m in range(len(per_row[0])):
            base = ids.clone()
            for r, n in enumerate(lengths):
                base[r, :n] = per_row[r][m][0]
            with torch.no_grad():
                f_base = f_base + fwd(base, mask).float() / len(per_row[0])
            # not around the generator: it would leak to the caller
            with fused_gelu_backward(), cls_only_last_layer(model):
                a, d = lig.attribute(
                    inputs=ids,
                    baselines=base,
                    target=tgt,
                    additional_forward_args=(mask,),
                    n_steps=n_steps,
                    method=method,
                    internal_batch_size=max(rows_per_pass, len(pos)),
                    return_convergence_delta=True,
                )
            attr, delta = attr + a.detach() / len(per_row[0]), delta + d.detach() / len(per_row[0])
        per_token = attr.sum(-1).float().cpu().numpy()  # (B, T)
        rel_rows, comp_rows = [], []
        rows = np.arange(len(pos))
        fx = f_in[torch.as_tensor(rows), tgt].cpu().numpy()
        fb = f_base[torch.as_tensor(rows), tgt].cpu().numpy()
        for r, p in enumerate(pos):
            acc = tokens["accession"].iat[p]
            n_res = int(tokens["n_residues"].iat[p])
            rel = per_token[r, 1 : n_res + 1]
            residues = ids_col[p][1 : n_res + 1]
            rel_rows.append(
                pd.DataFrame(
                    {
                        "accession": acc,
                        "layer": "embedding",
                        "head": np.int16(-1),
                        "position": np.arange(1, n_res + 1, dtype=np.int32),
                        "residue": _LETTERS[residues.astype(np.int64)],
                        "relevance": rel.astype(np.float32),
                    }
                )
            )
            total = float(per_token[r].sum())
            gap = float(fx[r] - fb[r])
            comp_rows.append(
                {
                    "accession": acc,
                    "label_id": int(tokens["label_id"].iat[p]),
                    "target_id": int(tgt[r]),
                    "f_input": float(fx[r]),
                    "f_baseline": float(fb[r]),
                    "attribution_sum": total,
                    "delta": float(delta[r]),
                    "relative_error": abs(total - gap) / max(abs(gap), 1e-12),
                }
            )
        yield (pd.concat(rel_rows, ignore_index=True), pd.DataFrame(comp_rows, columns=COMPLETENESS_COLUMNS))
