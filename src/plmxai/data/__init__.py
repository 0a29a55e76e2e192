"""Stage `data`: sources read into proteins and annotations. Knows no model.

    proteins, annotations, summary = px.data.read("uniprot.tsv", label="ec", max_length=1000)

Modules: recognise (what a file is, and InputError), uniprot (UniProt TSV), readers (FASTA, per-residue FASTA, sites JSON lines,
structures), download (UniProt REST), synthetic (the demo), lengths, splits, homology
(MMseqs2), structures and alphafold (contacts), prepare (all of it, as the stage runs it).
"""

from __future__ import annotations


def read(path, *, source: str = "uniprot_tsv", seed: int = 0, threads: int = 1, **options):
    """A source read as the data stage reads it: (proteins, annotations, summary). Options
    are the config's `data` keys (label, ec_level, max_length, overlong, split, ...), with the
    same defaults and checks; the summary's counts are those of the tables returned."""
    from plmxai.config import options as section
    from plmxai.data.prepare import prepare

    key = "tsv" if source == "uniprot_tsv" else "path"
    d = section("data", {"source": source, key: str(path), **options})
    proteins, annotations, summary, _ = prepare(path, d, seed, threads)
    return proteins, annotations, summary
