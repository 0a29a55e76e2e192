"""Stage `knowledge` (workflow/rules/knowledge.smk, config section `knowledge`, outputs in
<variant>/knowledge/): knowledge neurons. Activation scores, integrated-gradients scores by
both estimators, and the tests of the selections (preservation and ablation against random,
density, agreement). Logic in plmxai.knowledge."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from plmxai.data.splits import seeded_subset, select_split
from plmxai.stages import job_memory_gb, log_chunking
from plmxai.tables import config_hash, write_parquet

log = logging.getLogger("plmxai")


def neuron_activation(*, model, tokens, out_scores, activation: dict, device: str, threads: int = 1) -> None:
    """Per class, each neuron's activation over residues (knowledge.activation)."""
    from plmxai.knowledge import activation as activation_scores
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    a = activation
    table = select_split(pd.read_parquet(tokens), a["split"])
    net = load_model(model, job_device(device, threads))
    scores = activation_scores(net, table, **a)
    write_parquet(
        scores, out_scores, {"stage": "neurons", "config_hash": config_hash(a), **model_provenance(net)}
    )
    log.info(
        "scored %d neurons x %d classes on %d proteins",
        scores[["layer", "site", "neuron"]].drop_duplicates().shape[0],
        scores["class_id"].nunique(),
        len(table),
    )


def knowledge_scores(
    *,
    model,
    tokens,
    out_scores,
    out_completeness,
    knowledge: dict,
    device: str,
    seed: int,
    threads: int = 1,
    mem_mb: float | None = None,
) -> None:
    """IG scores of every neuron by both estimators (knowledge attribution, conductance), each
    integration chunked to fit the job's `mem_mb`."""
    from plmxai.knowledge import score
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    k = knowledge
    table = seeded_subset(select_split(pd.read_parquet(tokens), k["split"]), k["max_proteins"], seed)
    net = load_model(model, job_device(device, threads))
    t0 = time.perf_counter()
    log_chunking(net, table, job_memory_gb(mem_mb), log)
    scores, comp = score(net, table, memory_gb=job_memory_gb(mem_mb), **k)
    comp["complete"] = comp["relative_error"] <= k["completeness_tolerance"]
    prov = {"stage": "knowledge_scores", "config_hash": config_hash(k), **model_provenance(net)}
    write_parquet(scores, out_scores, prov)
    write_parquet(comp, out_completeness, prov)
    for est, g in comp.groupby("method"):
        log.info(
            "%s: %d proteins, completeness relative error median %.2e, max %.2e, %d above %g",
            est,
            g["accession"].nunique(),
            g["relative_error"].median(),
            g["relative_error"].max(),
            int((~g["complete"]).sum()),
            k["completeness_tolerance"],
        )
    log.info(
        "IG scores of %d neurons on %d proteins in %.1f s",
        scores[["layer", "site", "neuron"]].drop_duplicates().shape[0],
        len(table),
        time.perf_counter() - t0,
    )


def knowledge_tests(
    *,
    initial,
    model,
    tokens,
    activation,
    ig,
    out_runs,
    out_preservation,
    out_density,
    out_agreement,
    knowledge: dict,
    device: str,
    seed: int,
    threads: int = 1,
) -> None:
    """Selections by every score, preservation and ablation against random, density, agreement."""
    from plmxai.knowledge.activation import activation_scores
    from plmxai.knowledge.preservation import (
        HybridEvaluator,
        as_site_masks,
        preservation_curves,
        weight_change,
    )
    from plmxai.knowledge.scores import agreement, density, neuron_index, score_vector, select_top
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model

    k = knowledge
    table = pd.read_parquet(tokens)
    dev = job_device(device, threads)
    net = load_model(model, dev)
    init_state = {n: t.to(dev) for n, t in load_model(initial).state_dict().items()}
    finetuned = {n: t.detach().clone() for n, t in net.state_dict().items()}
    index = neuron_index(net)
    scores = {"activation": score_vector(pd.read_parquet(activation), index, k["class_reduce"])}
    ig_table = pd.read_parquet(ig)
    for est in k["estimators"]:
        scores[est] = score_vector(ig_table[ig_table["method"] == est], index, k["class_reduce"])
    scores["weight_change"] = weight_change(net, init_state, finetuned, index)
    mean = None
    if "ablate_mean" in k["tests"]:
        scoring = seeded_subset(select_split(table, k["split"]), k["max_proteins"], seed)
        act = activation_scores(net, scoring, "mean", False)
        act = act.assign(w=act["score"] * act["n_proteins"]).groupby(["layer", "site", "neuron"], sort=False)
        overall = (act["w"].sum() / act["n_proteins"].sum().clip(lower=1)).to_numpy(np.float32)
        mean = as_site_masks(net, overall)
    within = {name: k["activation_within" if name == "activation" else "select_within"] for name in scores}
    test = select_split(table, "test")
    if 1 / (k["n_random"] + 1) > 0.05:
        log.warning(
            "knowledge.n_random is %d: the permutation p-value cannot go below 1/%d = %.3f, so no "
            "selection can be significant at 0.05 by it; 19 or more draws can",
            k["n_random"],
            k["n_random"] + 1,
            1 / (k["n_random"] + 1),
        )
    evaluator = HybridEvaluator(net, init_state, finetuned, test, k["batch_size"], mean, k["precision"])
    t0 = time.perf_counter()
    runs, summary = preservation_curves(
        evaluator,
        index,
        scores,
        k["fractions"],
        k["tests"],
        k["n_random"],
        k["random_matched"],
        within,
        k["bootstrap"],
        seed=seed,
    )
    log.info(
        "%d hybrid models evaluated on %d test proteins in %.1f s",
        evaluator.evaluations,
        len(test),
        time.perf_counter() - t0,
    )
    dens = []
    for name, s in scores.items():
        for f in k["fractions"]:
            d = density(index, select_top(s, index, f, within[name]))
            dens.append(d.assign(method=name, fraction=f))
    names = list(scores)
    agree = [
        {"method_a": a, "method_b": b, **agreement(scores[a], scores[b], k["fractions"])}
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    prov = {"stage": "knowledge_tests", "config_hash": config_hash(k), **model_provenance(net)}
    write_parquet(runs, out_runs, prov)
    write_parquet(summary, out_preservation, prov)
    write_parquet(pd.concat(dens, ignore_index=True), out_density, prov)
    write_parquet(pd.DataFrame(agree), out_agreement, prov)
    acc = summary[(summary["metric"] == "accuracy") & summary["fraction"].between(0, 1, inclusive="neither")]
    for (mode, name), g in acc.groupby(["mode", "method"], sort=False):
        log.info(
            "%s %s: beats random at fractions %s",
            mode,
            name,
            g.loc[g["beats_random"].fillna(False).astype(bool), "fraction"].tolist(),
        )
