import pandas as pd
import pytest

from plmxai.data.splits import stratified_split


def test_stratified_fractions_and_seed():
    labels = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 7)
    f = {"train": 0.7, "val": 0.1, "test": 0.2}
    s = stratified_split(labels, f, seed=0)
    counts = pd.crosstab(labels, s)
    assert counts.loc["a"].to_dict() == {"test": 10, "train": 35, "val": 5}
    assert counts.loc["b"].to_dict() == {"test": 6, "train": 21, "val": 3}
    assert counts.loc["c"].sum() == 7 and (counts.loc["c"] >= 1).all()
    assert s.equals(stratified_split(labels, f, seed=0))
    assert not s.equals(stratified_split(labels, f, seed=1))


def test_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(pd.Series(["a", "b"]), {"train": 0.5, "test": 0.4}, 0)
