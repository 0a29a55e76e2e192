"""Which proteins are attributed, and how they are cut into chunks (scatter/gather jobs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plmxai.data.splits import seeded_subset, select_split


def attribution_proteins(
    tokens: pd.DataFrame,
    predictions: pd.DataFrame | None,
    split: str,
    only_correct: bool,
    max_proteins: int,
    seed: int,
) -> pd.DataFrame:
    """The proteins attributed: the split, optionally only those the model classifies
    correctly, then at most `max_proteins` (seeded), ordered by length."""
    tokens = select_split(tokens, split)
    if only_correct:
        correct = set(predictions.loc[predictions["correct"].astype(bool), "accession"])
        tokens = tokens[tokens["accession"].isin(correct)].reset_index(drop=True)
    tokens = seeded_subset(tokens, max_proteins, seed)
    # by length, as proteins are batched: chunks cut at whole batches then batch alike
    return tokens.iloc[np.argsort(tokens["n_residues"].to_numpy(), kind="stable")].reset_index(drop=True)


def chunk_slice(n: int, chunks: int, chunk: int, batch_size: int) -> slice:
    """Proteins of one chunk: contiguous, cut at whole batches, so every protein is integrated
    in the same batch whatever the number of chunks (the results are then identical)."""
    if not 0 <= chunk < chunks:
        raise ValueError(f"chunk {chunk} is not in 0..{chunks - 1}")
    n_batches = -(-n // batch_size)
    b0, b1 = (n_batches * chunk) // chunks, (n_batches * (chunk + 1)) // chunks
    return slice(min(n, b0 * batch_size), min(n, b1 * batch_size))
