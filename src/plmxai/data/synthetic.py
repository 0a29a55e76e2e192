"""The planted-motif benchmark: enzyme-like sequences whose class is set by a motif.

Each of K classes has a short motif; a protein of class c is a background sequence (amino-acid
frequencies of UniProtKB/Swiss-Prot) with class c's motif planted at a random position, plus
decoys: motifs of other classes with some positions mutated, so that a model must recognise
the exact motif and not merely its residues. The output is a UniProt TSV export (the same
columns as the REST API returns), with the motif residues annotated as ACT_SITE and the decoys
as SITE ranges, so the real reader parses it and every analysis has a known right answer.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import pandas as pd

# UniProtKB/Swiss-Prot release statistics, amino-acid composition (percent).
SWISSPROT_COMPOSITION = {
    "A": 8.25,
    "R": 5.53,
    "N": 4.06,
    "D": 5.45,
    "C": 1.37,
    "Q": 3.93,
    "E": 6.75,
    "G": 7.07,
    "H": 2.27,
    "I": 5.96,
    "L": 9.66,
    "K": 5.84,
    "M": 2.42,
    "F": 3.86,
    "P": 4.70,
    "S": 6.56,
    "T": 5.34,
    "W": 1.08,
    "Y": 2.92,
    "V": 6.87,
}
AMINO_ACIDS = np.array(list(SWISSPROT_COMPOSITION))
_P = np.array(list(SWISSPROT_COMPOSITION.values()))
BACKGROUND = _P / _P.sum()

TSV_COLUMNS = [
    "Entry",
    "Entry Name",
    "Protein names",
    "Organism",
    "Length",
    "EC number",
    "Sequence",
    "Site",
    "Binding site",
    "Active site",
]


@dataclass(frozen=True)
class DemoSpec:
    n_proteins: int = 600
    n_classes: int = 4
    min_length: int = 40
    max_length: int = 80
    motif_length: int = 5
    decoys_per_protein: int = 1
    decoy_mutations: int = 2
    # Motif residues come from the less frequent amino acids: a small ESM trained from random
    # weights then learns the task in a few CPU minutes (from the full alphabet it needs
    # several times more data and epochs). Decoys keep composition alone from solving it.
    motif_alphabet: str = "WCHMYFQN"
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.n_classes <= 7:
            raise ValueError(f"n_classes must be 2..7 (EC top-level classes), got {self.n_classes}")
        if self.decoy_mutations < 1 or self.decoy_mutations > self.motif_length:
            raise ValueError(
                f"decoy_mutations must be in 1..motif_length ({self.motif_length}), got {self.decoy_mutations}"
            )
        need = self.motif_length * (1 + self.decoys_per_protein)
        if self.min_length < need + 2:
            raise ValueError(
                f"min_length {self.min_length} cannot hold a motif and "
                f"{self.decoys_per_protein} decoys of length {self.motif_length}"
            )
        bad = sorted(set(self.motif_alphabet) - set(SWISSPROT_COMPOSITION))
        if bad or len(set(self.motif_alphabet)) < 2:
            raise ValueError(f"motif_alphabet needs >= 2 standard amino acids, got {self.motif_alphabet!r}")
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} > max_length {self.max_length}")


def make_motifs(spec: DemoSpec, rng: np.random.Generator) -> list[str]:
    """Distinct motifs that differ pairwise in at least half their positions."""
    motifs: list[str] = []
    for _attempt in range(100_000):
        if len(motifs) == spec.n_classes:
            break
        m = "".join(rng.choice(sorted(set(spec.motif_alphabet)), size=spec.motif_length))
        if all(sum(a != b for a, b in zip(m, o)) >= (spec.motif_length + 1) // 2 for o in motifs):
            motifs.append(m)
    else:
        raise ValueError(
            f"cannot draw {spec.n_classes} distinct motifs of length {spec.motif_length} "
            f"from alphabet {spec.motif_alphabet!r}"
        )
    return motifs


def _mutate(motif: str, n: int, rng: np.random.Generator) -> str:
    chars = list(motif)
    for pos in rng.choice(len(chars), size=n, replace=False):
        choices = [a for a in AMINO_ACIDS if a != chars[pos]]
        chars[pos] = str(rng.choice(choices))
    return "".join(chars)


def _place(length: int, k: int, n_items: int, rng: np.random.Generator) -> list[int]:
    """Non-overlapping 0-based start positions of n_items windows of length k."""
    free = length - n_items * k
    # stars and bars: sorted gaps give uniformly random non-overlapping placements
    cuts = np.sort(rng.integers(0, free + 1, size=n_items))
    return [int(c + i * k) for i, c in enumerate(cuts)]


def generate(spec: DemoSpec) -> tuple[pd.DataFrame, list[str]]:
    """Return the UniProt-format table and the class motifs (class i has EC `i+1.-.-.-`)."""
    rng = np.random.default_rng(spec.seed)
    motifs = make_motifs(spec, rng)
    k = spec.motif_length
    rows = []
    for i in range(spec.n_proteins):
        cls = i % spec.n_classes
        length = int(rng.integers(spec.min_length, spec.max_length + 1))
        while True:
            seq = list(rng.choice(AMINO_ACIDS, size=length, p=BACKGROUND))
            starts = _place(length, k, 1 + spec.decoys_per_protein, rng)
            order = rng.permutation(len(starts))
            motif_start = starts[order[0]]
            seq[motif_start : motif_start + k] = motifs[cls]
            decoys = []
            for j in order[1:]:
                other = int(rng.choice([c for c in range(spec.n_classes) if c != cls]))
                decoy = _mutate(motifs[other], spec.decoy_mutations, rng)
                seq[starts[j] : starts[j] + k] = decoy
                decoys.append((starts[j], other))
            text = "".join(seq)
            # the class must be defined by its motif alone: no other full motif anywhere
            if all(m not in text for c, m in enumerate(motifs) if c != cls) and text.count(motifs[cls]) == 1:
                break
        acts = "; ".join(
            f'ACT_SITE {motif_start + 1 + p}; /note="Planted motif of class {cls + 1}"; /evidence="ECO:0000269"'
            for p in range(k)
        )
        sites = "; ".join(
            f'SITE {s + 1}..{s + k}; /note="Decoy: mutated motif of class {o + 1}"' for s, o in sorted(decoys)
        )
        acc = f"DEMO{i + 1:05d}"
        rows.append(
            {
                "Entry": acc,
                "Entry Name": f"{acc}_SYNTH",
                "Protein names": f"Planted-motif enzyme class {cls + 1}",
                "Organism": "synthetic",
                "Length": length,
                "EC number": f"{cls + 1}.-.-.-",
                "Sequence": text,
                "Site": sites,
                "Binding site": "",
                "Active site": acts,
            }
        )
    return pd.DataFrame(rows, columns=TSV_COLUMNS), motifs


def write_tsv(df: pd.DataFrame, path) -> None:
    from plmxai.tables import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, lineterminator="\n", quoting=csv.QUOTE_NONE)
