"""Gathering attribution chunks streams row groups: its peak memory does not grow with the
number of proteins, and the layer-partitioned dataset holds every row of every chunk."""

import numpy as np
import pandas as pd

from plmxai.tables import ParquetStreamWriter, read_partitioned
from tests.conftest import peak_rss_kb

SCRIPT = """
import resource, sys
from plmxai.stages.attribution import attribution
n = int(sys.argv[1])
attribution(relevance=[f"{sys.argv[2]}/rel_{i}.parquet" for i in range(n)],
            completeness=[f"{sys.argv[2]}/comp_{i}.parquet" for i in range(n)],
            out_relevance=sys.argv[3], out_completeness=sys.argv[4],
            attribution={"completeness_tolerance": 0.05})
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

# the ESM-2 8M geometry: the embedding track and 6 layers x 20 heads, 300 residues per protein
TRACKS = [("embedding", -1)] + [(str(layer), head) for layer in range(6) for head in range(20)]
LENGTH = 300


def _protein(acc: str, rng) -> pd.DataFrame:
    n = len(TRACKS) * LENGTH
    return pd.DataFrame(
        {
            "accession": acc,
            "layer": np.repeat([t[0] for t in TRACKS], LENGTH),
            "head": np.repeat(np.array([t[1] for t in TRACKS], dtype=np.int16), LENGTH),
            "position": np.tile(np.arange(1, LENGTH + 1, dtype=np.int32), len(TRACKS)),
            "residue": rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), n),
            "relevance": rng.normal(size=n).astype(np.float32),
        }
    )


def _write_chunks(folder, n_chunks: int, per_chunk: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for c in range(n_chunks):
        accs = [f"P{c:03d}{i:03d}" for i in range(per_chunk)]
        with ParquetStreamWriter(folder / f"rel_{c}.parquet") as w:
            for acc in accs:  # one row group per protein, as attribute_chunk writes them
                w.write(_protein(acc, rng))
        pd.DataFrame(
            {
                "accession": accs,
                "label_id": 0,
                "target_id": 0,
                "f_input": 1.0,
                "f_baseline": 0.0,
                "attribution_sum": 1.0,
                "delta": 0.0,
                "relative_error": 0.0,
                "method": "embedding_ig",
            }
        ).to_parquet(folder / f"comp_{c}.parquet")


def _peak_kb(folder, n_chunks, out) -> int:
    return peak_rss_kb(SCRIPT, n_chunks, folder, out / "relevance", out / "completeness.parquet")


def test_gather_peak_memory_at_n_and_4n_proteins(tmp_path):
    # 36,300 rows (about 1 MB in Arrow, several in pandas) per protein: holding 160 would show
    _write_chunks(tmp_path / "chunks", 4, 40)
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _peak_kb(tmp_path / "chunks", 1, tmp_path / "small")
    large = _peak_kb(tmp_path / "chunks", 4, tmp_path / "large")
    print(f"gather peak RSS: {small / 1024:.0f} MiB at 40 proteins, {large / 1024:.0f} MiB at 160")
    assert large <= 1.2 * small
    layer0 = read_partitioned(tmp_path / "large" / "relevance", "layer", ["0"])
    assert len(layer0) == 160 * 20 * LENGTH and layer0["accession"].nunique() == 160
    emb = read_partitioned(tmp_path / "large" / "relevance", "layer", ["embedding"])
    assert len(emb) == 160 * LENGTH and (emb["head"] == -1).all()
