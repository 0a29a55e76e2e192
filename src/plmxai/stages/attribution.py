"""Stage `attribution` (workflow/rules/attribution.smk, config sections `attribution`,
`statistics` and `faithfulness`, outputs in <variant>/attribution/ and attribution/): residue
relevance by integrated gradients (embedding and every head), scattered over chunks and
gathered; its statistics against annotations; alanine-scan faithfulness; the fine-tuned model
against its controls. Logic in plmxai.attribution and plmxai.stats."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from plmxai.stages import job_memory_gb, log_chunking
from plmxai.tables import (
    ParquetStreamWriter,
    config_hash,
    inherited_provenance,
    partitions,
    read_partitioned,
    write_parquet,
    write_partitioned,
)

log = logging.getLogger("plmxai")


def attribution_chunk(
    *,
    model,
    tokens,
    predictions,
    out_relevance,
    out_completeness,
    attribution: dict,
    device: str,
    seed: int,
    chunk: int | str,
    threads: int = 1,
    mem_mb: float | None = None,
) -> None:
    """Embedding IG and (option `heads`) conductance at every layer's attention context, for
    one chunk of the attributed proteins, each integration chunked to fit the job's `mem_mb`."""
    from plmxai.attribution import attribution_batches
    from plmxai.attribution.embedding import COMPLETENESS_COLUMNS
    from plmxai.attribution.proteins import attribution_proteins, chunk_slice
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    a, chunk = attribution, int(chunk)
    preds = pd.read_parquet(predictions, columns=["accession", "correct"]) if a["only_correct"] else None
    proteins = attribution_proteins(
        pd.read_parquet(tokens), preds, a["split"], a["only_correct"], a["max_proteins"], seed
    )
    table = proteins.iloc[chunk_slice(len(proteins), a["chunks"], chunk, a["batch_size"])].reset_index(
        drop=True
    )
    net = load_model(model, job_device(device, threads))
    dtype = np.float16 if a["dtype"] == "float16" else np.float32
    prov = {"stage": "attribution", "config_hash": config_hash(a), "chunk": chunk, **model_provenance(net)}
    log.info(
        "chunk %d of %d: %d of %d proteins (%s)",
        chunk + 1,
        a["chunks"],
        len(table),
        len(proteins),
        "correctly classified only" if a["only_correct"] else "all",
    )
    t0 = time.perf_counter()
    comps = []
    empty = pd.DataFrame(
        {
            c: pd.Series(dtype=t)
            for c, t in [
                ("accession", object),
                ("layer", object),
                ("head", np.int16),
                ("position", np.int32),
                ("residue", object),
                ("relevance", dtype),
            ]
        }
    )
    log_chunking(net, table, job_memory_gb(mem_mb), log)
    writer = ParquetStreamWriter(out_relevance, prov)
    try:
        for parts, comp in attribution_batches(net, table, a, seed, job_memory_gb(mem_mb)):
            comps += comp
            for part in parts:  # a row group per protein (and per batch for the embedding)
                writer.write(part.astype({"relevance": dtype}))
        writer.close(empty=empty)
    except BaseException:
        writer.abort()
        raise
    comp = (
        pd.concat(comps, ignore_index=True)
        if comps
        else pd.DataFrame(columns=COMPLETENESS_COLUMNS + ["method"])
    )
    write_parquet(comp, out_completeness, prov)
    log.info("attributed %d proteins in %.1f s", len(table), time.perf_counter() - t0)


def attribution(
    *,
    relevance: list,
    completeness: list,
    out_relevance,
    out_completeness,
    attribution: dict,
    threads: int = 1,
) -> None:
    """The chunks gathered: one relevance dataset partitioned by layer, one completeness table."""
    a = attribution
    prov = {
        "stage": "attribution",
        "config_hash": config_hash(a),
        "chunks": len(relevance),
        **inherited_provenance(completeness[0]),
    }
    comp = pd.concat([pd.read_parquet(p) for p in completeness], ignore_index=True)
    comp["complete"] = comp["relative_error"] <= a["completeness_tolerance"]
    rows = write_partitioned(relevance, out_relevance, "layer", prov)
    write_parquet(comp, out_completeness, prov)
    size = sum(f.stat().st_size for f in Path(out_relevance).rglob("*.parquet"))
    n = comp["accession"].nunique()
    log.info(
        "gathered %d chunks: %d proteins, %d relevance rows in %d layer partitions, %.1f KB per protein",
        len(relevance),
        n,
        sum(rows.values()),
        len(rows),
        size / 1024 / max(n, 1),
    )
    for method, g in comp.groupby("method"):
        log.info(
            "%s completeness: relative error median %.2e, max %.2e",
            method,
            g["relative_error"].median(),
            g["relative_error"].max(),
        )
        bad = int((~g["complete"]).sum())
        if bad:
            log.warning(
                "%s: %d of %d proteins have completeness error above %g: the integral is not converged; "
                "raise attribution.%s",
                method,
                bad,
                len(g),
                a["completeness_tolerance"],
                "n_steps" if method == "embedding_ig" else "head_steps",
            )


def faithfulness(
    *,
    model,
    tokens,
    relevance,
    completeness,
    out_runs,
    out_summary,
    faithfulness: dict,
    device: str,
    seed: int,
    threads: int = 1,
) -> None:
    """Alanine replacement of the most relevant residues against random residues."""
    from plmxai.attribution.faithfulness import alanine_scan, faithfulness_summary
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    f = faithfulness
    rel = read_partitioned(relevance, "layer", [f["layer"]])
    if rel.empty:
        raise ValueError(
            f"{relevance}: no relevance of layer {f['layer']!r} (attribution.faithfulness.layer); "
            "head-level layers need attribution.heads"
        )
    if f["layer"] != "embedding":
        rel = rel[rel["head"] == f["head"]]
    comp = pd.read_parquet(completeness)
    targets = comp[comp["method"] == "embedding_ig"].set_index("accession")["target_id"]
    table = pd.read_parquet(tokens)
    table = table[table["accession"].isin(set(rel["accession"]))].reset_index(drop=True)
    net = load_model(model, job_device(device, threads))
    t0 = time.perf_counter()
    runs = alanine_scan(net, table, rel, targets, f["ks"], f["n_random"], seed, f["batch_size"])
    summary = faithfulness_summary(runs, f["bootstrap"], seed=seed)
    prov = {"stage": "faithfulness", "config_hash": config_hash(f), **model_provenance(net)}
    write_parquet(runs, out_runs, prov)
    write_parquet(summary, out_summary, prov)
    log.info(
        "alanine scan of %d proteins (%s%s) in %.1f s",
        len(table),
        f["layer"],
        "" if f["layer"] == "embedding" else f" head {f['head']}",
        time.perf_counter() - t0,
    )
    for r in summary[summary["selection"] == "relevant - random"].itertuples():
        log.info(
            "k=%d: drop relevant - random %.3f [%.3f, %.3f] over %d proteins",
            r.k,
            r.mean_drop,
            r.ci_low,
            r.ci_high,
            r.n_proteins,
        )


def statistics(
    *,
    relevance,
    annotations,
    proteins,
    out_statistics,
    out_correlations,
    statistics: dict,
    seed: int = 0,
    threads: int = 1,
) -> None:
    """Relevance against annotations for every layer and head, one layer partition at a time
    (memory holds one layer), BH over every test of every layer."""
    from plmxai.attribution import test_annotations
    from plmxai.stats import adjust

    s = statistics
    ann = pd.read_parquet(annotations)
    prot = pd.read_parquet(proteins, columns=["accession", "label"])
    corrs, tests = [], []
    layers = partitions(relevance, "layer")
    t0 = time.perf_counter()
    for i, layer in enumerate(layers, 1):
        rel = read_partitioned(relevance, "layer", [layer])
        test, corr = test_annotations(rel, ann, prot, seed=seed, adjust=False, **s)
        tests.append(test)
        corrs.append(corr)
        # progress: a large model has dozens of layer partitions
        log.info(
            "layer partition %s (%d of %d): %d protein correlations, %.1f s so far",
            layer,
            i,
            len(layers),
            len(corr),
            time.perf_counter() - t0,
        )
    corr = pd.concat(corrs, ignore_index=True)
    table = adjust(pd.concat(tests, ignore_index=True), s["fdr"])
    first = next(iter(sorted(Path(relevance).rglob("*.parquet"))), None)
    prov = {
        "stage": "statistics",
        "config_hash": config_hash(s),
        **(inherited_provenance(first) if first else {}),
    }
    write_parquet(corr, out_correlations, prov)
    write_parquet(table, out_statistics, prov)
    log.info(
        "%d tests over %d layer partitions, %d significant at FDR %g (Wilcoxon), %d by the "
        "circular-shift null, %d by the composition-matched null",
        int(table["p_value"].notna().sum()),
        len(corrs),
        int(table["significant"].sum()),
        s["fdr"],
        int(table["significant_shift"].sum()),
        int(table["significant_composition"].sum()),
    )


def attribution_contrast(
    *, correlations: list, out_contrast, statistics: dict, variants: list, reference: str, threads: int = 1
) -> None:
    """The reference variant's per-protein r against each control's (`correlations` in the
    order of `variants`): paired one-sided tests, BH over every test of every control."""
    from plmxai.stats import bh_call, contrast_tests

    s = statistics
    paths = dict(zip(variants, correlations, strict=True))
    ref = pd.read_parquet(paths[reference])
    parts = []
    for control, path in paths.items():
        if control == reference:
            continue
        t = contrast_tests(ref, pd.read_parquet(path), s["min_proteins"], s["per_class"], s["fdr"])
        parts.append(t.assign(reference=reference, control=control))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not table.empty:  # one family: every test against every control
        bh_call(table, "p_value", "q_value", "significant", s["fdr"])
        table["n_tests"] = int(table["p_value"].notna().sum())
        table = table.sort_values(["q_value", "control"], na_position="last").reset_index(drop=True)
    write_parquet(
        table,
        out_contrast,
        {
            "stage": "attribution_contrast",
            "config_hash": config_hash(s),
            **inherited_provenance(paths[reference]),
        },
    )
    for control, g in table.groupby("control") if not table.empty else []:
        log.info(
            "%s vs %s: %d of %d tests significant at FDR %g (relevance more aligned in %s)",
            reference,
            control,
            int(g["significant"].sum()),
            int(g["p_value"].notna().sum()),
            s["fdr"],
            reference,
        )
