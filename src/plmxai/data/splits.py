"""Train/validation/test splits, stratified by class and seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd


def stratified_split(labels: pd.Series, fractions: dict[str, float], seed: int) -> pd.Series:
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


def independent_table(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Integer contingency table (class x class) with the label counts on both margins and cells
    as close as integers allow to independence, n_i * n_j / n.

    Floors the expected counts, then hands out the missing units by largest fractional part to
    cells whose row and column still lack units; any units left go to the first cell whose row
    and column both lack one (there always is one while units are missing)."""
    counts = np.array([(labels == c).sum() for c in classes])
    expected = np.outer(counts, counts) / counts.sum()
    table = np.floor(expected).astype(int)
    row_short = counts - table.sum(axis=1)
    col_short = counts - table.sum(axis=0)
    for flat in np.argsort(-(expected - table), axis=None, kind="stable"):
        i, j = divmod(int(flat), len(classes))
        if row_short[i] > 0 and col_short[j] > 0:
            table[i, j] += 1
            row_short[i] -= 1
            col_short[j] -= 1
    while row_short.sum():
        i, j = int(np.flatnonzero(row_short)[0]), int(np.flatnonzero(col_short)[0])
        table[i, j] += 1
        row_short[i] -= 1
        col_short[j] -= 1
    return table


def balanced_shuffle(labels: np.ndarray, seed) -> np.ndarray:
    """Labels permuted so that the permuted label is independent of the original one in this
    very sample, not just in expectation.

    A plain permutation leaves a chance association between true and permuted labels (about
    n / k^2 proteins per cell, give or take its square root); a model trained on the permuted
    labels can learn that association and then look as if it had learned the true signal a
    little. Here every true class gives its proteins to the permuted classes in the
    proportions of `independent_table`, at random positions within the class (seeded)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    table = independent_table(labels, classes)
    rng = np.random.default_rng(seed)
    out = np.empty_like(labels)
    for i, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        out[idx] = rng.permutation(np.repeat(classes, table[i]))
    return out


def select_split(tokens: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split ("all": every row)."""
    return tokens if split == "all" else tokens[tokens["split"] == split].reset_index(drop=True)


def seeded_subset(tokens: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most n rows, a seeded random subset kept in table order (0 = all)."""
    if n and len(tokens) > n:
        order = np.random.default_rng(seed).permutation(len(tokens))[:n]
        tokens = tokens.iloc[np.sort(order)].reset_index(drop=True)
    return tokens


def subsample_per_class(proteins: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most n proteins per class, a seeded random subset, in the input order."""
    rng = np.random.default_rng(seed)
    keep = []
    for _, g in proteins.groupby("label", sort=True):
        idx = g.index.to_numpy()
        keep.extend(idx if len(idx) <= n else rng.choice(idx, size=n, replace=False))
    return proteins.loc[sorted(keep)].reset_index(drop=True)
