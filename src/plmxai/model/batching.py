"""Batches of tokenised proteins, padded to the longest in the batch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch


def inference_tokens(device: torch.device) -> int:
    """Padded tokens per inference batch (predictions, the hybrid models of the knowledge tests,
    the frozen control's features). On a CPU small batches are fastest for real proteins (little
    padding; benchmarks/inference_batches.py: 2.75x the batches of 64 proteins with autograd on
    that the knowledge tests used, one protein per pass 2.90x), while short proteins of a small
    model still share a pass; on a GPU, batches fill it."""
    return 2048 if device.type == "cpu" else 16384


def collate(input_ids: list[np.ndarray], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id arrays into (ids, attention_mask)."""
    n, width = len(input_ids), max(len(x) for x in input_ids)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, x in enumerate(input_ids):
        ids[i, : len(x)] = torch.as_tensor(np.asarray(x, dtype=np.int64))
        mask[i, : len(x)] = 1
    return ids, mask


def batches(
    tokens: pd.DataFrame, batch_size: int, order: np.ndarray | None = None, max_tokens: int | None = None
) -> Iterator:
    """(row positions, ids, mask) per batch; `order` permutes rows (None: by length, which
    cuts padding for inference). With `max_tokens`, a batch also ends where its padded size
    (proteins x the longest of them) would exceed it (1: one protein per batch): in length
    order, short proteins share a batch and the long ones are not joined by others padded to
    their length."""
    if order is None:
        order = np.argsort(tokens["n_residues"].to_numpy(), kind="stable")
    ids_col = tokens["input_ids"].to_numpy()
    cap = float("inf") if max_tokens is None else max_tokens
    pos, width = [], 0
    for i in order:
        n = len(ids_col[i])
        if pos and (len(pos) == batch_size or (len(pos) + 1) * max(width, n) > cap):
            yield np.asarray(pos), *collate([ids_col[j] for j in pos])
            pos, width = [], 0
        pos.append(i)
        width = max(width, n)
    if pos:
        yield np.asarray(pos), *collate([ids_col[j] for j in pos])
