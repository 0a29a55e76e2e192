"""Stage `attention` (workflow/rules/attention.smk, config section `attention`, outputs in
<variant>/attention/ and attention/): attention to annotations, amino acids and contacts per
head, layer profiles, the BLOSUM62 correlation, probes of the hidden states, and AlphaFold DB
models of the proteins analysed. Logic in plmxai.attention."""

from __future__ import annotations

import logging
import time

import pandas as pd

from plmxai.data.splits import seeded_subset, select_split
from plmxai.tables import config_hash, write_parquet

log = logging.getLogger("plmxai")


def alphafold(*, tokens, out_table, attention: dict, seed: int, threads: int = 1) -> None:
    """AlphaFold DB models of the proteins analysed, into the shared folder; a table of what
    was downloaded, found already there, or is absent from the database."""
    from plmxai.attention.inputs import structure_accessions
    from plmxai.data.alphafold import download_alphafold

    st = attention["structures"]
    accs = structure_accessions(attention, pd.read_parquet(tokens, columns=["accession", "split"]), seed)
    table = download_alphafold(accs, st["alphafold_folder"], st["alphafold_api"])
    write_parquet(table, out_table, {"stage": "alphafold", "folder": str(st["alphafold_folder"])})


def attention(
    *,
    model,
    tokens,
    proteins,
    annotations,
    out_properties,
    out_profiles,
    out_blosum,
    out_structures,
    attention: dict,
    device: str,
    seed: int,
    structures=None,
    structure_mapping=None,
    alphafold=None,
    threads: int = 1,
) -> None:
    """Attention to annotation types, amino acids and (where structures are mapped) contacts,
    per head, with layer profiles and the BLOSUM62 correlation; streams over proteins. The
    structure inputs, where configured, are read through attention.structures."""
    from tqdm.auto import tqdm

    from plmxai.attention import properties
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    a = attention
    table_tokens = seeded_subset(select_split(pd.read_parquet(tokens), a["split"]), a["max_proteins"], seed)
    prot = pd.read_parquet(proteins)
    ann = pd.read_parquet(annotations)
    net = load_model(model, job_device(device, threads))
    t0 = time.perf_counter()
    res = properties(
        net,
        table_tokens,
        ann,
        prot,
        seed=seed,
        **a,
        progress=lambda it: tqdm(it, total=len(table_tokens), desc="attention", mininterval=10, miniters=1),
    )
    table = res.table
    prov = {
        "stage": "attention",
        "config_hash": config_hash(a),
        "proteins": res.proteins,
        **model_provenance(net),
        "structures": res.with_structure,
    }
    write_parquet(table, out_properties, prov)
    write_parquet(res.profiles, out_profiles, prov)
    write_parquet(pd.DataFrame([{**res.blosum, "proteins": res.proteins}]), out_blosum, prov)
    write_parquet(res.structures, out_structures, prov)
    n_layers, n_heads = net.config.num_hidden_layers, net.config.num_attention_heads
    log.info(
        "attention of %d proteins (%d with a mapped structure of %d found) in %.1f s; %d of %d heads tested",
        res.proteins,
        res.with_structure,
        len(res.structures),
        time.perf_counter() - t0,
        int(table.loc[table["property"] == table["property"].iloc[0], "tested"].sum()),
        n_layers * n_heads,
    )
    sig = table[table["significant"]]
    types = sorted(ann["type"].unique())
    for prop in types + (["contact"] if res.with_structure else []):
        g = table[(table["property"] == prop) & table["tested"]]
        if len(g):
            best = g.sort_values("ratio", ascending=False).iloc[0]
            log.info(
                "%s: %d heads significant (permutation, BH %g); best layer %d head %d: %.3f of "
                "high-confidence attention vs background %.3f",
                prop,
                int((sig["property"] == prop).sum()),
                a["fdr"],
                best["layer"],
                best["head"],
                best["proportion"],
                best["background"],
            )
    log.info(
        "BLOSUM62 correlation of the heads' amino-acid attention: r %.3f (Mantel p %.4f, %d heads)",
        res.blosum["pearson_r"],
        res.blosum["p_mantel"],
        res.blosum["n_heads"],
    )


def probes(
    *,
    model,
    tokens,
    proteins,
    annotations,
    out_probes,
    attention: dict,
    device: str,
    seed: int,
    structures=None,
    structure_mapping=None,
    alphafold=None,
    threads: int = 1,
) -> None:
    """Per layer, logistic probes for each annotation type (and contacts where structures are
    mapped): fitted on training proteins, tested on test proteins, streaming over proteins."""
    from plmxai.attention import probe
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    a, p = attention, attention["probes"]
    table = pd.read_parquet(tokens)
    train = seeded_subset(select_split(table, "train"), p["train_proteins"], seed)
    test = seeded_subset(select_split(table, "test"), p["test_proteins"], seed)
    net = load_model(model, job_device(device, threads))
    t0 = time.perf_counter()
    out = probe(net, train, test, pd.read_parquet(annotations), pd.read_parquet(proteins), seed=seed, **a)
    write_parquet(
        out, out_probes, {"stage": "probes", "config_hash": config_hash(a), **model_provenance(net)}
    )
    log.info(
        "probes fitted on %d and tested on %d proteins in %.1f s",
        len(train),
        len(test),
        time.perf_counter() - t0,
    )
    for name, g in out.groupby("probe"):
        best = g.sort_values("auprc", ascending=False).iloc[0]
        log.info(
            "%s probe: best layer %d (0 = embeddings), AUPRC %.3f (baseline %.3f), precision at %s %.3f",
            name,
            best["layer"],
            best["auprc"],
            best["auprc_baseline"],
            best["precision_at"],
            best["precision"],
        )


def attention_change(
    *,
    before,
    after,
    tokens,
    proteins,
    annotations,
    out_change,
    attention: dict,
    device: str,
    seed: int,
    contact_set=None,
    structures=None,
    structure_mapping=None,
    alphafold=None,
    threads: int = 1,
) -> None:
    """What fine-tuning did to attention: each head's attention to every annotation type (the
    proteins of attention.split) and to contacts (attention.change.contact_set), the fine-tuned
    model against the model before fine-tuning, with a paired permutation test."""
    from plmxai.attention import change
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    a = attention
    table_tokens = seeded_subset(select_split(pd.read_parquet(tokens), a["split"]), a["max_proteins"], seed)
    dev = job_device(device, threads)
    net_before, net_after = load_model(before, dev), load_model(after, dev)
    t0 = time.perf_counter()
    table = change(
        net_before,
        net_after,
        table_tokens,
        pd.read_parquet(annotations),
        pd.read_parquet(proteins),
        contact_set=contact_set,
        seed=seed,
        **a,
    )
    prov = {
        "stage": "attention_change",
        "config_hash": config_hash(a),
        "before": model_provenance(net_before),
        "after": model_provenance(net_after),
    }
    write_parquet(table, out_change, prov)
    tested = table[table["tested"]]
    log.info(
        "attention before and after fine-tuning in %.1f s: %d of %d head x property comparisons tested, "
        "%d changed (q < %g)",
        time.perf_counter() - t0,
        len(tested),
        len(table),
        int(tested["significant"].sum()),
        a["change"]["fdr"],
    )
