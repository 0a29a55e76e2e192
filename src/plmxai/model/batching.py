"""Batches of tokenised proteins, padded to the longest in the batch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch


def collate(input_ids: list[np.ndarray], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id arrays into (ids, attention_mask)."""
    n, width = len(input_ids), max(len(x) for x in input_ids)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, x in enumerate(input_ids):
        ids[i, : len(x)] = torch.as_tensor(np.asarray(x, dtype=np.int64))
        mask[i, : len(x)] = 1
    return ids, mask


def batches(tokens: pd.DataFrame, batch_size: int, order: np.ndarray | None = None) -> Iterator:
    """(row positions, ids, mask) per batch; `order` permutes rows (None: by length, which
    cuts padding for inference)."""
    if order is None:
        order = np.argsort(tokens["n_residues"].to_numpy(), kind="stable")
    ids_col = tokens["input_ids"].to_numpy()
    for b in range(0, len(order), batch_size):
        pos = order[b : b + batch_size]
        ids, mask = collate([ids_col[i] for i in pos])
        yield pos, ids, mask
