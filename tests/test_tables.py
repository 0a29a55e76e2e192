import pandas as pd
import pytest

from plmxai.tables import ParquetStreamWriter, atomic_path, read_provenance, write_parquet


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_write_parquet_carries_provenance(tmp_path):
    p = write_parquet(pd.DataFrame({"a": [1, 2]}), tmp_path / "x.parquet", {"config_hash": "abc"})
    prov = read_provenance(p)
    assert prov["config_hash"] == "abc" and prov["package"] == "plmxai"
    assert pd.read_parquet(p)["a"].tolist() == [1, 2]


def test_stream_writer_row_groups_and_abort(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "rel.parquet"
    with ParquetStreamWriter(path, {"stage": "t"}) as w:
        for i in range(3):
            w.write(pd.DataFrame({"i": [i, i], "v": [0.5, 1.5]}))
    assert pq.ParquetFile(path).num_row_groups == 3
    assert pd.read_parquet(path)["i"].tolist() == [0, 0, 1, 1, 2, 2]
    bad = tmp_path / "bad.parquet"
    with pytest.raises(ValueError):
        with ParquetStreamWriter(bad) as w:
            w.write(pd.DataFrame({"i": [1]}))
            raise ValueError("stop")
    assert not bad.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["rel.parquet"]
