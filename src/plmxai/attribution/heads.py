"""Head-level residue relevance: conductance at every layer's attention context, one pass.

The context of layer l (the per-head attention outputs, concatenated: the input of
`attention.output.dense`) is a point on the path from the embedding baseline to the input. One
set of forward/backward passes along that path gives the conductance at every layer's context
at once (METHODS.md section 2), where the original ran one integration per layer. Relevance of
residue i for head h: the conductance at token i summed over that head's dimensions. Special
tokens are left out of the per-residue vectors.

Baselines: `<cls> <pad>... <eos>` ("pad"), or the average over seeded shuffles of the protein's
own residues ("shuffled": composition kept, order destroyed); each protein's shuffles are
seeded by its accession, so results do not depend on batching or chunking.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from plmxai.model.ig import DEFAULT_MEMORY_GB, baseline_ids, path_conductance, target_class
from plmxai.model.tokens import ESM2_ALPHABET

_LETTERS = np.array(ESM2_ALPHABET, dtype=object)


def context_points(model) -> dict[int, tuple]:
    """Layer -> (attention.output.dense, "input"): the attention context of each layer."""
    return {i: (layer.attention.output.dense, "input") for i, layer in enumerate(model.esm.encoder.layer)}


def head_relevance(
    model,
    ids: torch.Tensor,
    target: int,
    baselines: list[torch.Tensor],
    n_steps: int = 50,
    method: str = "gausslegendre",
    output: str = "logit",
    memory_gb: float | None = DEFAULT_MEMORY_GB,
    embedding: bool = False,
) -> tuple[np.ndarray, dict]:
    """(layers x heads x tokens) relevance, averaged over the baselines, and completeness of
    the embedding output along the same paths (sum vs F(x) - mean F(baseline)).

    With `embedding`, comp["embedding"] also holds the embedding-level integrated gradients per
    token (summed over hidden dimensions, averaged over the baselines) from the same passes:
    Gauss-Legendre at the paths' n_steps + 1 points (model.ig.path_conductance, input_ig), and
    comp["embedding_sum"] their sum."""
    n_heads = model.config.num_attention_heads
    points = context_points(model)
    total, comp = None, {"attribution_sum": 0.0, "f_baseline": 0.0}
    if embedding:
        comp.update(embedding=np.zeros(ids.shape[1]), embedding_sum=0.0)
    for b in baselines:
        c: dict = {}
        cond = path_conductance(
            model,
            ids,
            target,
            points,
            n_steps,
            method,
            output=output,
            completeness=c,
            baseline_ids=b,
            memory_gb=memory_gb,
            input_ig=embedding,
        )
        if embedding:
            per_token = cond.pop("input").sum(-1).numpy()
            comp["embedding"] += per_token / len(baselines)
            comp["embedding_sum"] += float(per_token.sum()) / len(baselines)
        per_head = torch.stack([cond[lay].view(ids.shape[1], n_heads, -1).sum(-1).T for lay in sorted(cond)])
        total = per_head if total is None else total + per_head
        comp["f_input"] = c["f_input"]
        comp["f_baseline"] += c["f_baseline"] / len(baselines)
        comp["attribution_sum"] += c["attribution_sum"] / len(baselines)
    return (total / len(baselines)).numpy(), comp


def head_attribution(
    model,
    tokens: pd.DataFrame,
    target: str = "true",
    n_steps: int = 50,
    method: str = "gausslegendre",
    baseline: str = "pad",
    n_baselines: int = 1,
    seed: int = 0,
    output: str = "logit",
    memory_gb: float | None = DEFAULT_MEMORY_GB,
    embedding: bool = False,
) -> Iterator[tuple[pd.DataFrame, dict]]:
    """Per protein: (relevance rows of every layer and head, completeness row).

    With `embedding`, the rows also hold the embedding-level relevance (layer "embedding",
    head -1) from the same passes, and the completeness row the key "embedding": that
    integration's completeness row (as attribution.embedding.embedding_ig writes it)."""
    device = next(model.parameters()).device
    model.eval()
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    for rec in tokens.itertuples(index=False):
        ids = torch.as_tensor(np.asarray(rec.input_ids, dtype=np.int64), device=device)[None]
        n_res = int(rec.n_residues)
        t = target_class(model, ids, rec.label_id, target)
        bases = baseline_ids(ids, baseline, n_baselines, seed, rec.accession, model.config.pad_token_id)
        rel, comp = head_relevance(model, ids, t, bases, n_steps, method, output, memory_gb, embedding)
        rel = rel[:, :, 1 : n_res + 1]  # residues only: <cls> and <eos> are not residues
        residues = _LETTERS[np.asarray(rec.input_ids[1 : n_res + 1], dtype=np.int64)]
        rows = pd.DataFrame(
            {
                "accession": rec.accession,
                "layer": np.repeat(np.arange(n_layers).astype(str), n_heads * n_res),
                "head": np.tile(np.repeat(np.arange(n_heads, dtype=np.int16), n_res), n_layers),
                "position": np.tile(np.arange(1, n_res + 1, dtype=np.int32), n_layers * n_heads),
                "residue": np.tile(residues, n_layers * n_heads),
                "relevance": rel.reshape(-1).astype(np.float32),
            }
        )
        gap = comp["f_input"] - comp["f_baseline"]
        if embedding:
            emb, emb_sum = comp.pop("embedding"), comp.pop("embedding_sum")
            rows = pd.concat(
                [
                    pd.DataFrame(
                        {
                            "accession": rec.accession,
                            "layer": "embedding",
                            "head": np.int16(-1),
                            "position": np.arange(1, n_res + 1, dtype=np.int32),
                            "residue": residues,
                            "relevance": emb[1 : n_res + 1].astype(np.float32),
                        }
                    ),
                    rows,
                ],
                ignore_index=True,
            )
            comp["embedding"] = {
                "accession": rec.accession,
                "label_id": int(rec.label_id),
                "target_id": t,
                "f_input": comp["f_input"],
                "f_baseline": comp["f_baseline"],
                "attribution_sum": emb_sum,
                "delta": emb_sum - gap,
                "relative_error": abs(emb_sum - gap) / max(abs(gap), 1e-12),
            }
        comp.update(
            accession=rec.accession,
            label_id=int(rec.label_id),
            target_id=t,
            delta=comp["attribution_sum"] - gap,
            relative_error=abs(comp["attribution_sum"] - gap) / max(abs(gap), 1e-12),
        )
        yield rows, comp
