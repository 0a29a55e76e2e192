"""Train/validation/test splits, stratified by class and seeded."""
from __future__ import annotations

import numpy as np
import pandas as pd


def stratified_split(
    labels: pd.Series, fractions: dict[str, float], seed: int
) -> pd.Series:
    """Assign each item to a split so that every class is spread in the given fractions.

    Within each class the items are shuffled (seeded) and cut at the cumulative fractions,
    rounding so that a class of n items gets round(n * f) items per split; every split that has
    a positive fraction gets at least one item of every class with at least as many items as
    there are such splits.
    """
    names = list(fractions)
    f = np.array([fractions[n] for n in names], dtype=float)
    if np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    out = pd.Series(index=labels.index, dtype=object)
    for cls in sorted(labels.unique(), key=str):
        idx = labels.index[labels == cls].to_numpy()
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        counts = np.floor(f * n).astype(int)
        # hand out the remainder by largest fractional part, ties in split order
        for j in np.argsort(-(f * n - counts), kind="stable")[: n - counts.sum()]:
            counts[j] += 1
        positive = np.flatnonzero(f > 0)
        if n >= len(positive):
            for j in positive:
                if counts[j] == 0:
                    donor = int(np.argmax(counts))
                    counts[donor] -= 1
                    counts[j] += 1
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for j, name in enumerate(names):
            out.loc[idx[bounds[j] : bounds[j + 1]]] = name
    return out.astype(str)
