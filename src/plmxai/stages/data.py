"""Stage `data` (workflow/rules/data.smk, config section `data`, outputs in data/): a source
read into proteins.parquet and annotations.parquet; the demo's synthetic source; the UniProt
REST download. Logic in plmxai.data."""

from __future__ import annotations

import logging

from plmxai._version import __version__
from plmxai.tables import sha256_file, write_json, write_parquet

log = logging.getLogger("plmxai")


def synthetic(*, out_tsv, out_provenance, synthetic: dict, seed: int, threads: int = 1) -> None:
    """The planted-motif demo as a UniProt TSV export, with its ground truth."""
    from plmxai.data.synthetic import DemoSpec, generate, write_tsv

    spec = DemoSpec(seed=seed, **synthetic)
    df, motifs = generate(spec)
    write_tsv(df, out_tsv)
    write_json(
        {
            "source": "synthetic planted-motif generator",
            "spec": spec.__dict__,
            "motifs": {f"{i + 1}": m for i, m in enumerate(motifs)},
            "rows": len(df),
            "sha256": sha256_file(out_tsv),
            "plmxai_version": __version__,
        },
        out_provenance,
    )
    log.info("wrote %d synthetic proteins, motifs %s", len(df), motifs)


def download(*, out_tsv, out_provenance, rest: dict, threads: int = 1) -> None:
    """A UniProt REST query, paged, resumable, with its provenance (query, release, sha256)."""
    from plmxai.data.download import download_uniprot

    download_uniprot(
        rest["query"],
        rest["fields"],
        out_tsv,
        out_provenance,
        base_url=rest["base_url"],
        page_size=rest["page_size"],
        max_retries=rest["max_retries"],
        total_timeout=rest["total_timeout"],
    )


def data(*, tsv, out_proteins, out_annotations, out_summary, data: dict, seed: int, threads: int = 1) -> None:
    """A source (UniProt TSV, FASTA, per-residue FASTA, sites JSON lines, structures) ->
    proteins.parquet (labels, length policy, splits) + annotations.parquet + a summary whose
    counts are those of the tables. Nothing is written unless every step succeeds."""
    from plmxai.data.prepare import prepare

    proteins, annotations, summary, prov = prepare(tsv, data, seed, threads)
    write_parquet(proteins, out_proteins, prov)
    write_parquet(annotations, out_annotations, prov)
    write_json(summary, out_summary)
