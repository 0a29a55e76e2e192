"""px.Run on a hand-made run folder: names, errors that say what to do, and compare()."""

import pandas as pd
import pytest

from plmxai.run import Run, compare, main


def make_run(root, accuracy=0.9):
    (root / "data").mkdir(parents=True)
    (root / "finetuned" / "model").mkdir(parents=True)
    pd.DataFrame({"accession": ["P1", "P2"], "label": ["1", "2"]}).to_parquet(
        root / "data" / "proteins.parquet"
    )
    pd.DataFrame({"accession": ["P1", "P2"], "correct": [True, accuracy > 0.5]}).to_parquet(
        root / "finetuned" / "model" / "predictions.parquet"
    )
    return Run(root)


def test_tables_by_name(tmp_path):
    run = make_run(tmp_path / "a")
    assert run.variants == ["finetuned"]
    assert run.tables()[["name", "rows"]].values.tolist() == [["proteins", 2], ["predictions", 2]]
    # one variant: it need not be named
    assert run.table("predictions")["correct"].tolist() == [True, True]
    with pytest.raises(KeyError, match=r"no table 'predictionz'; tables: \["):
        run.table("predictionz")
    with pytest.raises(FileNotFoundError, match=r"this run has no 'statistics' table"):
        run.table("statistics")
    with pytest.raises(ValueError, match=r"belongs to the run, not to a variant"):
        run.table("proteins", variant="finetuned")
    with pytest.raises(FileNotFoundError, match=r"not a run folder \(no data/proteins.parquet\)"):
        Run(tmp_path)


def test_compare_finds_the_table_that_differs(tmp_path, capsys):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b", accuracy=0.1)
    table = compare(a, a)
    assert table["identical"].all() and len(table) == 2
    table = compare(a, b).set_index("name")
    assert table.loc["proteins", "identical"] and not table.loc["predictions", "identical"]
    assert main([str(a.path), str(b.path)]) == 1
    assert "1 of 2 tables identical" in capsys.readouterr().out


def test_wall_clock_columns_are_not_compared(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    for run, seconds in ((a, 1.5), (b, 2.5)):
        pd.DataFrame({"epoch": [1], "train_loss": [0.5], "seconds": [seconds]}).to_parquet(
            run.path / "finetuned" / "model" / "training.parquet"
        )
    table = compare(a, b).set_index("name")
    assert table.loc["training", "identical"] and "not compared: seconds" in table.loc["training", "detail"]
    pd.DataFrame({"epoch": [1], "train_loss": [0.6], "seconds": [1.5]}).to_parquet(
        b.path / "finetuned" / "model" / "training.parquet"
    )
    assert not compare(a, b).set_index("name").loc["training", "identical"]
