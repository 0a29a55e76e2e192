"""Homology-aware splits with MMseqs2: whole clusters go to one split.

MMseqs2 is an external program (Debian package `mmseqs2`, bioconda `mmseqs2`); it is called
through its documented command line (`easy-cluster`, `easy-search`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


class MMseqsNotFound(RuntimeError):
    pass


def mmseqs_binary() -> str:
    exe = shutil.which("mmseqs")
    if exe is None:
        raise MMseqsNotFound(
            "data.split.method is 'homology' but the program 'mmseqs' is not on PATH: install "
            "MMseqs2 (Debian: apt-get install mmseqs2; conda: bioconda::mmseqs2, as in "
            "envs/data.yaml) or set data.split.method: random"
        )
    return exe


def _write_fasta(path: Path, ids, seqs) -> None:
    with open(path, "w") as fh:
        for i, s in zip(ids, seqs):
            fh.write(f">{i}\n{s}\n")


def _run(args: list[str], tmp: Path) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def cluster(proteins: pd.DataFrame, min_seq_id: float, coverage: float, threads: int = 1) -> pd.Series:
    """accession -> cluster representative accession."""
    exe = mmseqs_binary()
    with tempfile.TemporaryDirectory(prefix="plmxai-mmseqs-") as tmp:
        t = Path(tmp)
        _write_fasta(t / "in.fasta", proteins["accession"], proteins["sequence"])
        _run(
            [
                exe,
                "easy-cluster",
                "in.fasta",
                "clu",
                "work",
                "--min-seq-id",
                str(min_seq_id),
                "-c",
                str(coverage),
                "--cov-mode",
                "0",
                "--threads",
                str(threads),
                "-v",
                "1",
            ],
            t,
        )
        pairs = pd.read_csv(t / "clu_cluster.tsv", sep="\t", header=None, names=["rep", "member"], dtype=str)
    out = pairs.set_index("member")["rep"]
    missing = set(proteins["accession"]) - set(out.index)
    if missing:
        raise RuntimeError(f"MMseqs2 left {len(missing)} proteins unclustered, e.g. {sorted(missing)[:3]}")
    return out.reindex(proteins["accession"]).rename("cluster")


def cluster_split(
    labels: pd.Series, clusters: pd.Series, fractions: dict[str, float], seed: int
) -> pd.Series:
    """Assign whole clusters to splits, stratified by class as far as clusters allow.

    Clusters are taken in a seeded random order within their majority class, largest first;
    each goes to the split furthest below its target share of that class.
    """
    names = list(fractions)
    target = np.array([fractions[n] for n in names], dtype=float)
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"label": labels.to_numpy(), "cluster": clusters.to_numpy()}, index=labels.index)
    majority = df.groupby("cluster")["label"].agg(lambda x: x.value_counts().sort_index().idxmax())
    sizes = df.groupby("cluster").size()
    out = pd.Series(index=labels.index, dtype=object)
    for cls in sorted(majority.unique(), key=str):
        cl = majority.index[majority == cls].to_numpy()
        cl = cl[rng.permutation(len(cl))]
        cl = sorted(cl, key=lambda c: -sizes[c])  # stable: random order among equal sizes
        have = np.zeros(len(names))
        total = sizes[cl].sum()
        for c in cl:
            deficit = target * total - have
            j = int(np.argmax(np.where(target > 0, deficit / np.maximum(target, 1e-12), -np.inf)))
            out[df.index[df["cluster"] == c]] = names[j]
            have[j] += sizes[c]
    return out.astype(str)


def max_identity_to_train(proteins: pd.DataFrame, threads: int = 1) -> dict:
    """Search every test protein against the training proteins; the highest identity found."""
    exe = mmseqs_binary()
    test = proteins[proteins["split"] == "test"]
    train = proteins[proteins["split"] == "train"]
    with tempfile.TemporaryDirectory(prefix="plmxai-mmseqs-") as tmp:
        t = Path(tmp)
        _write_fasta(t / "test.fasta", test["accession"], test["sequence"])
        _write_fasta(t / "train.fasta", train["accession"], train["sequence"])
        _run(
            [
                exe,
                "easy-search",
                "test.fasta",
                "train.fasta",
                "hits.m8",
                "work",
                "--format-output",
                "query,target,fident,qcov",
                "--threads",
                str(threads),
                "-v",
                "1",
            ],
            t,
        )
        hits = pd.read_csv(t / "hits.m8", sep="\t", header=None, names=["query", "target", "fident", "qcov"])
    if hits.empty:
        return {"test_proteins_with_train_hit": 0, "max_test_train_identity": 0.0}
    top = hits.loc[hits["fident"].idxmax()]
    return {
        "test_proteins_with_train_hit": int(hits["query"].nunique()),
        "max_test_train_identity": float(top["fident"]),
        "max_identity_pair": [str(top["query"]), str(top["target"])],
        "max_identity_coverage": float(top["qcov"]),
    }
