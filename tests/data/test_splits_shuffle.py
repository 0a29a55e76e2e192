"""The shuffled-label control's permutation: label counts kept, permuted labels independent of
the true ones in the sample itself."""

import numpy as np
import pandas as pd
import pytest

from plmxai.data.splits import balanced_shuffle, independent_table


@pytest.mark.parametrize("n", [12, 37, 525, 1001])
def test_balanced_shuffle_keeps_counts_and_is_independent_in_the_sample(n):
    rng = np.random.default_rng(n)
    y = rng.choice([0, 1, 2, 3], size=n, p=[0.4, 0.3, 0.2, 0.1])
    z = balanced_shuffle(y, 5)
    assert sorted(y) == sorted(z)
    counts = np.bincount(y, minlength=4)
    table = pd.crosstab(y, z).reindex(index=range(4), columns=range(4), fill_value=0).to_numpy()
    expected = np.outer(counts, counts) / n
    # every cell within one protein of independence; a plain permutation is off by ~sqrt(cell)
    assert np.abs(table - expected).max() < 1 + 1e-9
    assert np.array_equal(z, balanced_shuffle(y, 5)) and not np.array_equal(z, balanced_shuffle(y, 6))


def test_independent_table_margins():
    y = np.array(["a"] * 7 + ["b"] * 2 + ["c"])
    t = independent_table(y, np.array(["a", "b", "c"]))
    assert t.sum(axis=0).tolist() == [7, 2, 1] and t.sum(axis=1).tolist() == [7, 2, 1]
