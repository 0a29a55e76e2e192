"""The workflow's stages as functions of (config, input paths, output paths).

Each Snakemake script is a thin call to one of these; a notebook can call them the same way,
or use the modules they are built from.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

# Only light imports at module level: the data, statistics and report stages run in conda
# environments without torch (envs/); each model stage imports the model stack itself.
from . import __version__, homology
from .config import tokenizer_source
from .io import (
    ParquetStreamWriter,
    config_hash,
    parquet_columns,
    sha256_file,
    write_json,
    write_parquet,
    write_partitioned,
)
from .lengths import apply_length_policy
from .readers import UNLABELLED, read_input
from .splits import balanced_shuffle, stratified_split
from .synthetic import DemoSpec, generate, write_tsv
from .uniprot import ReadOptions, drop_small_classes, read_uniprot_tsv

log = logging.getLogger("plmxai")


def _stage_device(cfg: dict, threads: int):
    """Threads for torch, then the configured device: how every model stage starts."""
    import torch

    from .modeling import pick_device

    torch.set_num_threads(max(1, threads))
    return pick_device(cfg["model"]["device"])


def _stage_model(cfg: dict, model_dir, threads: int):
    """The model of `model_dir` on the configured device, torch's threads set."""
    from .modeling import load_model

    return load_model(model_dir, _stage_device(cfg, threads))


def _select(tokens: pd.DataFrame, split: str) -> pd.DataFrame:
    return tokens if split == "all" else tokens[tokens["split"] == split].reset_index(drop=True)


def synthetic_source(cfg: dict, out_tsv, out_provenance) -> None:
    """Write the planted-motif demo as a UniProt TSV export, with its ground truth."""
    spec = DemoSpec(seed=cfg["seed"], **cfg["data"]["synthetic"])
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


def prepare_data(cfg: dict, tsv, out_proteins, out_annotations, out_summary, threads: int = 1) -> None:
    """UniProt TSV -> proteins.parquet (labels, length policy, splits) + annotations.parquet.

    Nothing is written unless every step succeeds.
    """
    d = cfg["data"]
    source = d.get("source", "uniprot_tsv")
    if source in ("synthetic", "uniprot_rest"):  # both arrive as a UniProt TSV export
        source = "uniprot_tsv"
    unlabelled = d["label"] == "none"
    if source == "uniprot_tsv":
        opts = ReadOptions(
            label=d["label"], ec_level=d["ec_level"], multi_ec=d["multi_ec"],
            lowercase=d["lowercase"], min_class_size=1, features=tuple(d["features"]),
            evidence=tuple(d["evidence"]), positive=d["positive"],
        )  # fmt: skip
        proteins, annotations, report = read_uniprot_tsv(tsv, opts)
        chains = None
    else:
        # each reader takes only the options its format has
        options = {"fasta": {"lowercase": d["lowercase"]}, "sites_jsonl": {"outside": d["sites_outside"], "lowercase": d["lowercase"]}, "structures": {},
                   "residue_fasta": {"label": d["label"], "lowercase": d["lowercase"]}}[source]  # fmt: skip
        proteins, annotations, report, chains = read_input(source, tsv, **options)
        annotations = annotations[annotations["feature"].isin(d["features"])].reset_index(drop=True)
    if chains is not None:  # a structure folder: each chain's own coordinates give its contacts
        where = chains.set_index("accession")
        proteins["structure_path"] = proteins["accession"].map(where["path"])
        proteins["structure_chain"] = proteins["accession"].map(where["chain"])
    proteins, annotations, length_counts = apply_length_policy(
        proteins, annotations, d["max_length"], d["overlong"], source=tsv
    )
    if not unlabelled:
        proteins, annotations = drop_small_classes(proteins, annotations, d["min_class_size"], report)
    n_before_subsample = len(proteins)
    if d["max_per_class"]:
        proteins = subsample_per_class(proteins, d["max_per_class"], cfg["seed"])
        annotations = annotations[annotations["accession"].isin(proteins["accession"])]
    if proteins.empty:
        raise ValueError(f"{tsv}: no protein left (dropped: {dict(report.dropped)}, classes dropped by "
                         f"min_class_size: {report.classes_dropped}, length policy: {length_counts})")  # fmt: skip
    # the summary's counts describe the tables written: rows read = kept + every drop
    if length_counts.get("skipped"):
        report.dropped[f"longer than data.max_length ({d['max_length']})"] += int(length_counts["skipped"])
    report.dropped["over data.max_per_class (seeded subsample)"] += n_before_subsample - len(proteins)
    report.dropped = +report.dropped  # no zero counts
    report.kept = len(proteins)
    report.features = Counter(annotations["feature"])
    if not unlabelled and proteins["label"].nunique() < 2:
        raise ValueError(
            f"{tsv}: only class(es) {sorted(proteins['label'].unique())} left after filtering; "
            f"a classifier needs at least 2 (dropped: {dict(report.dropped)}, classes dropped "
            f"by min_class_size: {report.classes_dropped}, length policy: {length_counts})"
        )
    labels = sorted(proteins["label"].unique(), key=_label_key)
    proteins["label_id"] = proteins["label"].map({lab: i for i, lab in enumerate(labels)})
    sp = d["split"]
    fractions = {"train": sp["train"], "val": sp["val"], "test": sp["test"]}
    split_info: dict = {"method": sp["method"]}
    if sp["method"] == "homology":
        clusters = homology.cluster(proteins, sp["min_seq_id"], sp["coverage"], threads)
        proteins["cluster"] = clusters.to_numpy()
        proteins["split"] = homology.cluster_split(
            proteins["label"], proteins["cluster"], fractions, cfg["seed"]
        ).to_numpy()
        split_info.update(
            {"clusters": int(proteins["cluster"].nunique()), "min_seq_id": sp["min_seq_id"],
             "coverage": sp["coverage"], **homology.max_identity_to_train(proteins, threads)}
        )  # fmt: skip
    else:
        proteins["split"] = stratified_split(proteins["label"], fractions, cfg["seed"]).to_numpy()
        proteins["cluster"] = proteins["accession"]  # every protein its own cluster
    for split in ("train", "test"):
        empty = [c for c in labels if not ((proteins["split"] == split) & (proteins["label"] == c)).any()]
        if empty:
            log.warning("classes %s have no %s proteins (clusters too few or too large)", empty, split)
    prov = {"stage": "data", "config_hash": config_hash([d, cfg["seed"]]), "source": str(tsv)}
    summary = report.as_dict()
    summary.update(
        {
            "sha256": sha256_file(tsv),
            "labels": labels,
            "length_policy": {"max_length": d["max_length"], "policy": d["overlong"], **length_counts},
            "split": split_info,
            "class_counts": {str(k): int(v) for k, v in proteins["label"].value_counts().items()},
            "split_counts": proteins.groupby(["split", "label"]).size().unstack(fill_value=0)
            .to_dict(orient="index"),
            "annotation_counts": {str(k): int(v) for k, v in annotations["type"].value_counts().items()},
            "length": {
                "min": int(proteins["length"].min()),
                "median": float(proteins["length"].median()),
                "max": int(proteins["length"].max()),
            },
        }
    )
    write_parquet(proteins.reset_index(drop=True), out_proteins, prov)
    write_parquet(annotations.reset_index(drop=True), out_annotations, prov)
    write_json(summary, out_summary)
    log.info("read %s: kept %d of %d rows (dropped %s); %d annotations; length policy %s; "
             "split %s", tsv, len(proteins), report.rows, dict(report.dropped), len(annotations),
             length_counts, split_info)  # fmt: skip


def subsample_per_class(proteins: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most n proteins per class, a seeded random subset, in the input order."""
    rng = np.random.default_rng(seed)
    keep = []
    for _, g in proteins.groupby("label", sort=True):
        idx = g.index.to_numpy()
        keep.extend(idx if len(idx) <= n else rng.choice(idx, size=n, replace=False))
    return proteins.loc[sorted(keep)].reset_index(drop=True)


def _label_key(label: str):
    parts = str(label).split(".")
    return [int(p) if p.isdigit() else p for p in parts]


def tokenize(cfg: dict, proteins_path, out_tokens, out_summary) -> None:
    """cfg: {"tokenizer": model folder or hub name, or None for ESM-2's alphabet}.

    The length policy ran in the data stage; a sequence over ESM-2's 1022 residues here stops.
    """
    from .tokenize import load_tokenizer, tokenize_proteins

    proteins = pd.read_parquet(proteins_path)
    tok = load_tokenizer(cfg.get("tokenizer"), cfg.get("revision"))
    tokens, summary = tokenize_proteins(proteins, tok, max_residues=1022, overlong="error")
    for split in ("train", "test"):
        if not (tokens["split"] == split).any():
            raise ValueError(f"{proteins_path}: no {split} proteins left after tokenisation")
    write_parquet(tokens, out_tokens, {"stage": "tokenize", "config_hash": config_hash(cfg.get("tokenizer"))})
    write_json(summary, out_summary)
    log.info("tokenized %d proteins", summary["tokenized"])


VARIANTS = ("finetuned", "frozen", "shuffled")


def init_model(cfg: dict, tokens_path, out_initial, threads: int = 1) -> None:
    """The model before fine-tuning, shared by every variant (demo: pretrained on another task)."""
    import torch

    from .modeling import build_model, save_model

    tokens = pd.read_parquet(tokens_path, columns=["label", "label_id"])
    labels = tokens.drop_duplicates("label_id").sort_values("label_id")["label"].astype(str).tolist()
    if labels == [UNLABELLED]:  # no task: a pretrained checkpoint keeps its own head
        labels = None
    model = build_model(cfg["model"], labels, cfg["seed"])
    if cfg["model"]["pretrain"]["enabled"]:
        from .pretrain import demo_motifs, pretrain_encoder

        torch.set_num_threads(max(1, threads))
        syn = cfg["data"]["synthetic"]
        pretrain_encoder(model, syn, cfg["model"]["pretrain"], demo_motifs(syn, cfg["seed"]), cfg["seed"])
    save_model(model, out_initial, tokenizer_source(cfg["model"]))
    n = sum(p.numel() for p in model.parameters())
    log.info("initial model: %d layers, hidden %d, %d parameters, %d classes",
             model.config.num_hidden_layers, model.config.hidden_size, n, model.config.num_labels)  # fmt: skip
    if getattr(model, "plmxai_checkpoint", None):
        log.info("checkpoint %s: %s", cfg["model"]["name_or_path"], model.plmxai_checkpoint["head"])


def given_model(cfg: dict, tokens_path, initial_dir, out_model, out_predictions, out_metrics,
                out_confusion, threads: int = 1) -> None:  # fmt: skip
    """The `given` variant: the model as loaded, no training. Its predictions for every
    protein; metrics and confusion where the proteins carry labels (empty tables otherwise)."""
    from .evaluate import confusion_table
    from .modeling import load_model, save_model
    from .training import predictions_table

    tokens = pd.read_parquet(tokens_path)
    model = load_model(initial_dir, _stage_device(cfg, threads))
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    preds = predictions_table(model, tokens, 32)
    prov = {"stage": "model", "variant": "given", "config_hash": config_hash([cfg["model"], cfg["seed"]]),
            **model_provenance(model)}  # fmt: skip
    if set(tokens["label"]) == {UNLABELLED}:
        preds["correct"] = pd.array([pd.NA] * len(preds), dtype="boolean")
        preds["true_prob"] = np.nan
        mt = pd.DataFrame(columns=["split", "class", "metric", "value", "ci_low", "ci_high", "n"])
        cm = pd.DataFrame(columns=["split", "true", "predicted", "count"])
        log.info("given model: %d proteins predicted; no labels, so no metrics", len(preds))
    else:
        mt = _test_metrics(preds, labels, cfg["training"]["bootstrap"], cfg["seed"], "given")
        cm = confusion_table(preds, labels)
    save_model(model.to("cpu"), out_model, tokenizer_source(cfg["model"]))
    write_parquet(preds, out_predictions, prov)
    write_parquet(mt, out_metrics, prov)
    write_parquet(cm, out_confusion, prov)


def _test_metrics(preds: pd.DataFrame, labels: list[str], n_boot: int, seed: int, variant: str) -> pd.DataFrame:
    """The metrics table of a variant's predictions, its test figures logged."""
    from .evaluate import metrics_table

    mt = metrics_table(preds, labels, n_boot, seed)
    test = mt[(mt["split"] == "test") & (mt["class"] == "all")].set_index("metric")
    log.info("test (%s): %s", variant, ", ".join(
        f"{m} {test.loc[m, 'value']:.3f} [{test.loc[m, 'ci_low']:.3f}, {test.loc[m, 'ci_high']:.3f}]"
        for m in ("accuracy", "macro_f1", "mcc")))  # fmt: skip
    return mt


def model_provenance(model) -> dict:
    """The checkpoint a model came from (weights' sha256, hub commit, what was done to the
    head), for the provenance of every table made with it; empty for random weights."""
    info = getattr(model, "plmxai_checkpoint", None)
    if not info:
        return {}
    return {"checkpoint": info["name_or_path"], "checkpoint_commit": info.get("commit"),
            "checkpoint_sha256": info["sha256"], "checkpoint_head": info["head"]}  # fmt: skip


def inherited_provenance(path) -> dict:
    """The checkpoint provenance of an input table, carried on by the stages that read it."""
    from .io import read_provenance

    prov = read_provenance(path)
    return {k: v for k, v in prov.items() if k.startswith("checkpoint")}


def variant_data(tokens: pd.DataFrame, variant: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation proteins of a variant; `shuffled` permutes their labels within
    each split (a seeded control: same proteins and budget, no label information), balanced so
    that the permuted labels are independent of the true ones in the sample itself."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    train, val = _select(tokens, "train"), _select(tokens, "val")
    if variant == "shuffled":
        for k, part in enumerate((train, val)):
            part["label_id"] = balanced_shuffle(part["label_id"].to_numpy(), [seed, 7, k])
    return train, val if not val.empty else train


def train_model(
    cfg: dict, variant: str, tokens_path, initial_dir, out_finetuned, out_training,
    out_predictions, out_metrics, out_confusion, checkpoint_dir=None, threads: int = 1,
) -> None:  # fmt: skip
    from .evaluate import confusion_table
    from .modeling import load_model, save_model
    from .training import TrainOptions, finetune, predictions_table

    tokens = pd.read_parquet(tokens_path)
    device = _stage_device(cfg, threads)
    model = load_model(initial_dir, device)
    train, val = variant_data(tokens, variant, cfg["seed"])
    t = dict(cfg["training"])
    n_boot = t.pop("bootstrap")
    opts = TrainOptions(seed=cfg["seed"], freeze_encoder=variant == "frozen", **t)
    log.info("training variant %s on %s: %d train, %d val proteins", variant, device, len(train), len(val))
    t0 = time.perf_counter()
    history = finetune(model, train, val, opts, checkpoint_dir=checkpoint_dir)
    history.insert(0, "variant", variant)
    log.info("training took %.1f s", time.perf_counter() - t0)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    preds = predictions_table(model, tokens, 2 * opts.batch_size)
    mt = _test_metrics(preds, labels, n_boot, cfg["seed"], variant)
    prov = {
        **model_provenance(model), "stage": "model", "variant": variant,
        "config_hash": config_hash([cfg["model"], cfg["training"], cfg["seed"]]),
        "model": cfg["model"].get("name_or_path") or cfg["model"].get("config_dir") or "random",
    }  # fmt: skip
    save_model(model.to("cpu"), out_finetuned, tokenizer_source(cfg["model"]))
    write_parquet(history, out_training, prov)
    write_parquet(preds, out_predictions, prov)
    write_parquet(mt, out_metrics, prov)
    write_parquet(confusion_table(preds, labels), out_confusion, prov)
    if checkpoint_dir and Path(checkpoint_dir).exists():
        shutil.rmtree(checkpoint_dir)  # the run is complete: its outputs replace the checkpoint


def score_neurons(cfg: dict, model_dir, tokens_path, out_scores, threads: int = 1) -> None:
    from .neurons import activation_scores

    n = cfg["neurons"]
    tokens = _select(pd.read_parquet(tokens_path), n["split"])
    model = _stage_model(cfg, model_dir, threads)
    scores = activation_scores(model, tokens, n["reduce"], n["absolute"], n["batch_size"])
    write_parquet(scores, out_scores, {"stage": "neurons", "config_hash": config_hash(n), **model_provenance(model)})
    log.info("scored %d neurons x %d classes on %d proteins",
             scores[["layer", "site", "neuron"]].drop_duplicates().shape[0],
             scores["class_id"].nunique(), len(tokens))  # fmt: skip


def _subset(tokens: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most n proteins, a seeded random subset kept in table order (0 = all)."""
    if n and len(tokens) > n:
        order = np.random.default_rng(seed).permutation(len(tokens))[:n]
        tokens = tokens.iloc[np.sort(order)].reset_index(drop=True)
    return tokens


def knowledge_scores(cfg: dict, model_dir, tokens_path, out_scores, out_completeness, threads: int = 1) -> None:
    """IG scores of every neuron by both estimators (knowledge attribution, conductance)."""
    from .knowledge import ig_scores

    k = cfg["knowledge"]
    tokens = _subset(_select(pd.read_parquet(tokens_path), k["split"]), k["max_proteins"], cfg["seed"])
    model = _stage_model(cfg, model_dir, threads)
    t0 = time.perf_counter()
    scores, comp = ig_scores(model, tokens, k["estimators"], k["ka_steps"], k["conductance_steps"],
                             k["method"], k["target"], k["output"])  # fmt: skip
    comp["complete"] = comp["relative_error"] <= k["completeness_tolerance"]
    prov = {"stage": "knowledge_scores", "config_hash": config_hash(k), **model_provenance(model)}
    write_parquet(scores, out_scores, prov)
    write_parquet(comp, out_completeness, prov)
    for est, g in comp.groupby("method"):
        log.info("%s: %d proteins, completeness relative error median %.2e, max %.2e, %d above %g",
                 est, g["accession"].nunique(), g["relative_error"].median(), g["relative_error"].max(),
                 int((~g["complete"]).sum()), k["completeness_tolerance"])  # fmt: skip
    log.info("IG scores of %d neurons on %d proteins in %.1f s",
             scores[["layer", "site", "neuron"]].drop_duplicates().shape[0], len(tokens),
             time.perf_counter() - t0)  # fmt: skip


def knowledge_tests(cfg: dict, initial_dir, model_dir, tokens_path, activation_path, ig_path,
                    out_runs, out_preservation, out_density, out_agreement, threads: int = 1) -> None:  # fmt: skip
    """Selections by every score, preservation and ablation against random, density, agreement."""
    from .knowledge import agreement, density, neuron_index, score_vector, select_top
    from .modeling import load_model
    from .neurons import activation_scores
    from .preservation import HybridEvaluator, as_site_masks, preservation_curves, weight_change

    k = cfg["knowledge"]
    tokens = pd.read_parquet(tokens_path)
    device = _stage_device(cfg, threads)
    model = load_model(model_dir, device)
    initial = {n: t.to(device) for n, t in load_model(initial_dir).state_dict().items()}
    finetuned = {n: t.detach().clone() for n, t in model.state_dict().items()}
    index = neuron_index(model)
    scores = {"activation": score_vector(pd.read_parquet(activation_path), index, k["class_reduce"])}
    ig = pd.read_parquet(ig_path)
    for est in k["estimators"]:
        scores[est] = score_vector(ig[ig["method"] == est], index, k["class_reduce"])
    scores["weight_change"] = weight_change(model, initial, finetuned, index)
    mean = None
    if "ablate_mean" in k["tests"]:
        scoring = _subset(_select(tokens, k["split"]), k["max_proteins"], cfg["seed"])
        act = activation_scores(model, scoring, "mean", False)
        act = act.assign(w=act["score"] * act["n_proteins"]).groupby(["layer", "site", "neuron"], sort=False)
        overall = (act["w"].sum() / act["n_proteins"].sum().clip(lower=1)).to_numpy(np.float32)
        mean = as_site_masks(model, overall)
    within = {name: k["activation_within" if name == "activation" else "select_within"] for name in scores}
    test = _select(tokens, "test")
    evaluator = HybridEvaluator(model, initial, finetuned, test, k["batch_size"], mean)
    t0 = time.perf_counter()
    runs, summary = preservation_curves(
        evaluator, index, scores, k["fractions"], k["tests"], k["n_random"], k["random_matched"],
        within, k["bootstrap"], seed=cfg["seed"],
    )  # fmt: skip
    log.info("%d hybrid models evaluated on %d test proteins in %.1f s", evaluator.evaluations, len(test),
             time.perf_counter() - t0)  # fmt: skip
    dens = []
    for name, s in scores.items():
        for f in k["fractions"]:
            d = density(index, select_top(s, index, f, within[name]))
            dens.append(d.assign(method=name, fraction=f))
    names = list(scores)
    agree = [{"method_a": a, "method_b": b, **agreement(scores[a], scores[b], k["fractions"])}
             for i, a in enumerate(names) for b in names[i + 1 :]]  # fmt: skip
    prov = {"stage": "knowledge_tests", "config_hash": config_hash(k), **model_provenance(model)}
    write_parquet(runs, out_runs, prov)
    write_parquet(summary, out_preservation, prov)
    write_parquet(pd.concat(dens, ignore_index=True), out_density, prov)
    write_parquet(pd.DataFrame(agree), out_agreement, prov)
    acc = summary[(summary["metric"] == "accuracy") & summary["fraction"].between(0, 1, inclusive="neither")]
    for (mode, name), g in acc.groupby(["mode", "method"], sort=False):
        log.info("%s %s: beats random at fractions %s", mode, name,
                 g.loc[g["beats_random"].fillna(False).astype(bool), "fraction"].tolist())  # fmt: skip


def attribution_proteins(cfg: dict, tokens_path, predictions_path) -> pd.DataFrame:
    """The proteins attributed: the split, optionally only those the model classifies
    correctly, then at most `max_proteins` (seeded)."""
    a = cfg["attribution"]
    tokens = _select(pd.read_parquet(tokens_path), a["split"])
    if a["only_correct"]:
        preds = pd.read_parquet(predictions_path, columns=["accession", "correct"])
        correct = set(preds.loc[preds["correct"].astype(bool), "accession"])
        tokens = tokens[tokens["accession"].isin(correct)].reset_index(drop=True)
    tokens = _subset(tokens, a["max_proteins"], cfg["seed"])
    # by length, as proteins are batched: chunks cut at whole batches then batch alike
    return tokens.iloc[np.argsort(tokens["n_residues"].to_numpy(), kind="stable")].reset_index(drop=True)


def chunk_slice(n: int, chunks: int, chunk: int, batch_size: int) -> slice:
    """Proteins of one chunk: contiguous, cut at whole batches, so every protein is integrated
    in the same batch whatever the number of chunks (the results are then identical)."""
    if not 0 <= chunk < chunks:
        raise ValueError(f"chunk {chunk} is not in 0..{chunks - 1}")
    n_batches = -(-n // batch_size)
    b0, b1 = (n_batches * chunk) // chunks, (n_batches * (chunk + 1)) // chunks
    return slice(min(n, b0 * batch_size), min(n, b1 * batch_size))


def attribute_chunk(cfg: dict, model_dir, tokens_path, predictions_path, chunk: int, out_relevance,
                    out_completeness, threads: int = 1) -> None:  # fmt: skip
    """Embedding IG and (option `heads`) conductance at every layer's attention context, for
    one chunk of the attributed proteins."""
    from .attribution import COMPLETENESS_COLUMNS, embedding_ig
    from .heads import head_attribution

    a = cfg["attribution"]
    proteins = attribution_proteins(cfg, tokens_path, predictions_path)
    tokens = proteins.iloc[chunk_slice(len(proteins), a["chunks"], chunk, a["batch_size"])].reset_index(drop=True)
    model = _stage_model(cfg, model_dir, threads)
    dtype = np.float16 if a["dtype"] == "float16" else np.float32
    prov = {"stage": "attribution", "config_hash": config_hash(a), "chunk": chunk, **model_provenance(model)}
    log.info("chunk %d of %d: %d of %d proteins (%s)", chunk + 1, a["chunks"], len(tokens), len(proteins),
             "correctly classified only" if a["only_correct"] else "all")  # fmt: skip
    t0 = time.perf_counter()
    comps = []
    heads = head_attribution(model, tokens, a["target"], a["head_steps"], a["method"], a["baseline"],
                             a["n_baselines"], cfg["seed"]) if a["heads"] else None  # fmt: skip
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in [
        ("accession", object), ("layer", object), ("head", np.int16), ("position", np.int32),
        ("residue", object), ("relevance", dtype)]})  # fmt: skip
    writer = ParquetStreamWriter(out_relevance, prov)
    try:
        for rel, comp in embedding_ig(
            model, tokens, a["target"], a["n_steps"], a["method"], a["batch_size"],
            a["internal_batch_size"], a["baseline"], a["n_baselines"], cfg["seed"],
        ):  # fmt: skip
            comps.append(comp.assign(method="embedding_ig"))
            parts = [rel]
            for acc in rel["accession"].unique() if heads is not None else []:
                hrel, hcomp = next(heads)
                if hcomp["accession"] != acc:  # both walk the table in order, one protein each
                    raise RuntimeError(f"head attribution out of step: {hcomp['accession']} != {acc}")
                parts.append(hrel)
                comps.append(pd.DataFrame([hcomp]).assign(method="head_conductance"))
            for part in parts:  # a row group per protein (and per batch for the embedding)
                writer.write(part.astype({"relevance": dtype}))
        writer.close(empty=empty)
    except BaseException:
        writer.abort()
        raise
    comp = pd.concat(comps, ignore_index=True) if comps else pd.DataFrame(columns=COMPLETENESS_COLUMNS + ["method"])
    write_parquet(comp, out_completeness, prov)
    log.info("attributed %d proteins in %.1f s", len(tokens), time.perf_counter() - t0)


def gather_attribution(cfg: dict, relevance_chunks: list, completeness_chunks: list, out_relevance,
                       out_completeness) -> None:  # fmt: skip
    """Chunks -> one relevance dataset partitioned by layer, and one completeness table."""
    a = cfg["attribution"]
    prov = {"stage": "attribution", "config_hash": config_hash(a), "chunks": len(relevance_chunks),
            **inherited_provenance(completeness_chunks[0])}  # fmt: skip
    comp = pd.concat([pd.read_parquet(p) for p in completeness_chunks], ignore_index=True)
    comp["complete"] = comp["relative_error"] <= a["completeness_tolerance"]
    rows = write_partitioned(relevance_chunks, out_relevance, "layer", prov)
    write_parquet(comp, out_completeness, prov)
    size = sum(f.stat().st_size for f in Path(out_relevance).rglob("*.parquet"))
    n = comp["accession"].nunique()
    log.info("gathered %d chunks: %d proteins, %d relevance rows in %d layer partitions, %.1f KB per protein",
             len(relevance_chunks), n, sum(rows.values()), len(rows), size / 1024 / max(n, 1))  # fmt: skip
    for method, g in comp.groupby("method"):
        log.info("%s completeness: relative error median %.2e, max %.2e", method, g["relative_error"].median(),
                 g["relative_error"].max())  # fmt: skip
        bad = int((~g["complete"]).sum())
        if bad:
            log.warning(
                "%s: %d of %d proteins have completeness error above %g: the integral is not converged; "
                "raise attribution.%s", method, bad, len(g), a["completeness_tolerance"],
                "n_steps" if method == "embedding_ig" else "head_steps",
            )  # fmt: skip


def faithfulness(cfg: dict, model_dir, tokens_path, relevance_path, completeness_path, out_runs, out_summary,
                 threads: int = 1) -> None:  # fmt: skip
    """Alanine replacement of the most relevant residues against random residues."""
    from .faithfulness import alanine_scan, faithfulness_summary
    from .io import read_partitioned

    f = cfg["faithfulness"]
    relevance = read_partitioned(relevance_path, "layer", [f["layer"]])
    if relevance.empty:
        raise ValueError(f"{relevance_path}: no relevance of layer {f['layer']!r} (faithfulness.layer); "
                         "head-level layers need attribution.heads")  # fmt: skip
    if f["layer"] != "embedding":
        relevance = relevance[relevance["head"] == f["head"]]
    comp = pd.read_parquet(completeness_path)
    targets = comp[comp["method"] == "embedding_ig"].set_index("accession")["target_id"]
    tokens = pd.read_parquet(tokens_path)
    tokens = tokens[tokens["accession"].isin(set(relevance["accession"]))].reset_index(drop=True)
    model = _stage_model(cfg, model_dir, threads)
    t0 = time.perf_counter()
    runs = alanine_scan(model, tokens, relevance, targets, f["ks"], f["n_random"], cfg["seed"], f["batch_size"])
    summary = faithfulness_summary(runs, f["bootstrap"], seed=cfg["seed"])
    prov = {"stage": "faithfulness", "config_hash": config_hash(f), **model_provenance(model)}
    write_parquet(runs, out_runs, prov)
    write_parquet(summary, out_summary, prov)
    log.info("alanine scan of %d proteins (%s%s) in %.1f s", len(tokens), f["layer"],
             "" if f["layer"] == "embedding" else f" head {f['head']}", time.perf_counter() - t0)  # fmt: skip
    for r in summary[summary["selection"] == "relevant - random"].itertuples():
        log.info("k=%d: drop relevant - random %.3f [%.3f, %.3f] over %d proteins", r.k, r.mean_drop, r.ci_low,
                 r.ci_high, r.n_proteins)  # fmt: skip


def statistics(cfg: dict, relevance_path, annotations_path, proteins_path, out_stats, out_correlations) -> None:
    """Relevance against annotations for every layer and head, one layer partition at a time
    (memory holds one layer), BH over every test of every layer."""
    from .io import partitions, read_partitioned
    from .stats import adjust, group_tests, protein_correlations

    s = cfg["statistics"]
    annotations = pd.read_parquet(annotations_path)
    proteins = pd.read_parquet(proteins_path, columns=["accession", "label"])
    labels = proteins.set_index("accession")["label"]
    corrs, tests = [], []
    layers = partitions(relevance_path, "layer")
    t0 = time.perf_counter()
    for i, layer in enumerate(layers, 1):
        relevance = read_partitioned(relevance_path, "layer", [layer])
        corr, null, comp_null = protein_correlations(relevance, annotations, labels, s["relevance"],
                                                     s["n_shifts"], cfg.get("seed", 0))  # fmt: skip
        tests.append(group_tests(corr, null if s["n_shifts"] else None, s["min_proteins"], s["per_class"],
                                 comp_null if s["n_shifts"] else None))  # fmt: skip
        corrs.append(corr)
        # progress: a large model has dozens of layer partitions
        log.info("layer partition %s (%d of %d): %d protein correlations, %.1f s so far", layer, i,
                 len(layers), len(corr), time.perf_counter() - t0)  # fmt: skip
    corr = pd.concat(corrs, ignore_index=True)
    table = adjust(pd.concat(tests, ignore_index=True), s["fdr"])
    first = next(iter(sorted(Path(relevance_path).rglob("*.parquet"))), None)
    prov = {"stage": "statistics", "config_hash": config_hash(s), **(inherited_provenance(first) if first else {})}
    write_parquet(corr, out_correlations, prov)
    write_parquet(table, out_stats, prov)
    log.info("%d tests over %d layer partitions, %d significant at FDR %g (Wilcoxon), %d by the "
             "circular-shift null, %d by the composition-matched null", int(table["p_value"].notna().sum()),
             len(corrs), int(table["significant"].sum()), s["fdr"], int(table["significant_shift"].sum()),
             int(table["significant_composition"].sum()))  # fmt: skip


def write_report(cfg: dict, inputs: dict, out_html, out_figures=None) -> None:
    """The HTML report; with `out_figures`, its figures also as PNG files (a folder that appears
    only when complete), for Snakemake's own report."""
    import contextlib

    from .io import atomic_path, write_text
    from .report import build_report

    r = cfg["report"]
    with atomic_path(out_figures, is_dir=True) if out_figures else contextlib.nullcontext() as figures:
        text = build_report(cfg, inputs, r["n_tracks"], r["title"], figures)
    write_text(text, out_html)



def attribution_contrast(cfg: dict, reference: str, correlation_paths: dict, out_contrast) -> None:
    """The reference variant's per-protein r against each control's: paired one-sided tests,
    BH over every test of every control together."""
    from .stats import bh_call, contrast_tests

    s = cfg["statistics"]
    ref = pd.read_parquet(correlation_paths[reference])
    parts = []
    for control, path in correlation_paths.items():
        if control == reference:
            continue
        t = contrast_tests(ref, pd.read_parquet(path), s["min_proteins"], s["per_class"], s["fdr"])
        parts.append(t.assign(reference=reference, control=control))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not table.empty:  # one family: every test against every control
        bh_call(table, "p_value", "q_value", "significant", s["fdr"])
        table["n_tests"] = int(table["p_value"].notna().sum())
        table = table.sort_values(["q_value", "control"], na_position="last").reset_index(drop=True)
    write_parquet(table, out_contrast, {"stage": "attribution_contrast", "config_hash": config_hash(s),
                                        **inherited_provenance(correlation_paths[reference])})  # fmt: skip
    for control, g in table.groupby("control") if not table.empty else []:
        log.info("%s vs %s: %d of %d tests significant at FDR %g (relevance more aligned in %s)", reference, control,
                 int(g["significant"].sum()), int(g["p_value"].notna().sum()), s["fdr"], reference)  # fmt: skip


def attention_analysis(cfg: dict, model_dir, tokens_path, proteins_path, annotations_path, out_properties,
                       out_profiles, out_blosum, out_structures, threads: int = 1) -> None:  # fmt: skip
    """Attention to annotation types, amino acids and (where structures are mapped) contacts,
    per head, with layer profiles and the BLOSUM62 correlation; streams over proteins."""
    from tqdm.auto import tqdm

    from .attention import (
        AMINO_ACIDS,
        PropertyCounts,
        attention_maps,
        blosum_correlation,
        layer_profiles,
        residue_properties,
    )

    a, st = cfg["attention"], cfg["attention"]["structures"]
    tokens = _subset(_select(pd.read_parquet(tokens_path), a["split"]), a["max_proteins"], cfg["seed"])
    seqs = pd.read_parquet(proteins_path, columns=["accession", "sequence"]).set_index("accession")["sequence"]
    annotations = pd.read_parquet(annotations_path)
    ann_by_acc = {acc: g for acc, g in annotations.groupby("accession", sort=False)}
    types = sorted(annotations["type"].unique())
    by_acc = _structure_lookup(st, tokens["accession"], proteins_path)
    model = _stage_model(cfg, model_dir, threads)
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    counts = PropertyCounts(n_layers, n_heads, types + list(AMINO_ACIDS), a["theta"], a["n_shifts"], cfg["seed"],
                            composition_columns=len(types))  # fmt: skip
    struct_rows = []
    t0 = time.perf_counter()
    for row, att in tqdm(attention_maps(model, tokens, a["batch_size"]), total=len(tokens), desc="attention",
                         mininterval=10, miniters=1):  # fmt: skip
        acc = tokens["accession"].iloc[row]
        seq = seqs[acc]
        masks, info, contacts, considered = _protein_inputs(acc, seq, ann_by_acc, by_acc, st)
        if info is not None:
            struct_rows.append({"accession": acc, **info})
        counts.add(acc, att, residue_properties(seq, masks, types), contacts, considered,
                   np.frombuffer(seq.encode(), dtype=np.uint8))  # fmt: skip
    kinds = {t: "annotation" for t in types} | {aa: "amino_acid" for aa in AMINO_ACIDS}
    table = counts.table(a["min_pairs"], cfg["statistics"]["fdr"], kinds)
    prof = layer_profiles(table)
    summary, _ = blosum_correlation(table, a["blosum_permutations"], cfg["seed"])
    prov = {"stage": "attention", "config_hash": config_hash(a), "proteins": counts.proteins, **model_provenance(model),
            "structures": counts.structures}  # fmt: skip
    write_parquet(table, out_properties, prov)
    write_parquet(prof, out_profiles, prov)
    write_parquet(pd.DataFrame([{**summary, "proteins": counts.proteins}]), out_blosum, prov)
    write_parquet(pd.DataFrame(struct_rows, columns=["accession", "path", "chain", "identity", "coverage", "used"]),
                  out_structures, prov)  # fmt: skip
    log.info("attention of %d proteins (%d with a mapped structure of %d found) in %.1f s; %d of %d heads tested",
             counts.proteins, counts.structures, len(struct_rows), time.perf_counter() - t0,
             int(table.loc[table["property"] == table["property"].iloc[0], "tested"].sum()), n_layers * n_heads)  # fmt: skip
    sig = table[table["significant"]]
    for prop in types + (["contact"] if counts.structures else []):
        g = table[(table["property"] == prop) & table["tested"]]
        if len(g):
            best = g.sort_values("ratio", ascending=False).iloc[0]
            log.info("%s: %d heads significant (permutation, BH %g); best layer %d head %d: %.3f of high-confidence "
                     "attention vs background %.3f", prop, int((sig["property"] == prop).sum()),
                     cfg["statistics"]["fdr"], best["layer"], best["head"], best["proportion"], best["background"])  # fmt: skip
    log.info("BLOSUM62 correlation of the heads' amino-acid attention: r %.3f (Mantel p %.4f, %d heads)",
             summary["pearson_r"], summary["p_mantel"], summary["n_heads"])  # fmt: skip


def _structure_lookup(st: dict, accessions, proteins_path=None) -> pd.DataFrame:
    """accession -> (path, chain) of the structures available: the proteins' own chains (data
    source `structures`), then the local folder, then AlphaFold DB models already fetched."""
    from .alphafold import cached_model
    from .structures import structure_files

    wanted = set(accessions)
    files = structure_files(st["folder"], st["mapping"]) if st["folder"] else pd.DataFrame(
        columns=["accession", "path", "chain"])  # fmt: skip
    if proteins_path is not None and "structure_path" in parquet_columns(proteins_path):
        own = pd.read_parquet(proteins_path, columns=["accession", "structure_path", "structure_chain"])
        own = own.rename(columns={"structure_path": "path", "structure_chain": "chain"}).dropna(subset=["path"])
        files = pd.concat([own, files], ignore_index=True)
    files = files[files["accession"].isin(wanted)]
    if st.get("alphafold"):
        folder = Path(st["alphafold_folder"])
        af = [{"accession": a, "path": str(p), "chain": None} for a in sorted(wanted - set(files["accession"]))
              if (p := cached_model(folder, a)) is not None]  # fmt: skip
        files = pd.concat([files, pd.DataFrame(af, columns=files.columns)], ignore_index=True)
    return files.drop_duplicates("accession").set_index("accession")


def _protein_inputs(acc: str, seq: str, ann_by_acc: dict, lookup: pd.DataFrame, st: dict):
    """(annotation masks, structure mapping summary or None, contacts, pairs considered) of one
    protein; contacts are None without a usable structure."""
    from .stats import annotation_masks
    from .structures import mapped_contacts

    masks = annotation_masks(ann_by_acc[acc], len(seq)) if acc in ann_by_acc else {}
    if acc not in lookup.index:
        return masks, None, None, None
    rec = lookup.loc[acc]
    info, contacts, considered = mapped_contacts(seq, rec["path"], rec["chain"], st["contact_cutoff"],
                                                 st["min_separation"], st["min_identity"], st["min_coverage"])  # fmt: skip
    return masks, info, contacts, considered


def structure_accessions(cfg: dict, tokens: pd.DataFrame) -> list[str]:
    """The proteins whose structures the attention analysis and the probes use."""
    a = cfg["attention"]
    parts = [_subset(_select(tokens, a["split"]), a["max_proteins"], cfg["seed"])]
    if a["probes"]["enabled"]:
        parts += [_subset(_select(tokens, "train"), a["probes"]["train_proteins"], cfg["seed"]),
                  _subset(_select(tokens, "test"), a["probes"]["test_proteins"], cfg["seed"])]  # fmt: skip
    return sorted(set(pd.concat(parts)["accession"]))


def fetch_alphafold(cfg: dict, tokens_path, out_table) -> None:
    """AlphaFold DB models of the proteins analysed, into the shared folder; a table of what
    was downloaded, found already there, or is absent from the database."""
    from .alphafold import download_alphafold

    st = cfg["attention"]["structures"]
    accs = structure_accessions(cfg, pd.read_parquet(tokens_path, columns=["accession", "split"]))
    table = download_alphafold(accs, st["alphafold_folder"], st["alphafold_api"])
    write_parquet(table, out_table, {"stage": "alphafold", "folder": str(st["alphafold_folder"])})


def probe_analysis(cfg: dict, model_dir, tokens_path, proteins_path, annotations_path, out_probes,
                   threads: int = 1) -> None:  # fmt: skip
    """Per layer, logistic probes for each annotation type (and contacts where structures are
    mapped): fitted on training proteins, tested on test proteins, streaming over proteins."""
    from .probes import ProbeData, ProbeScores, hidden_states

    a, st = cfg["attention"], cfg["attention"]["structures"]
    p = a["probes"]
    tokens = pd.read_parquet(tokens_path)
    train = _subset(_select(tokens, "train"), p["train_proteins"], cfg["seed"])
    test = _subset(_select(tokens, "test"), p["test_proteins"], cfg["seed"])
    seqs = pd.read_parquet(proteins_path, columns=["accession", "sequence"]).set_index("accession")["sequence"]
    annotations = pd.read_parquet(annotations_path)
    ann_by_acc = {acc: g for acc, g in annotations.groupby("accession", sort=False)}
    types = sorted(annotations["type"].unique())
    lookup = _structure_lookup(st, pd.concat([train["accession"], test["accession"]]), proteins_path)
    model = _stage_model(cfg, model_dir, threads)
    n_states = model.config.num_hidden_layers + 1

    def protein(tokens_, row):
        acc = tokens_["accession"].iloc[row]
        masks, _, contacts, considered = _protein_inputs(acc, seqs[acc], ann_by_acc, lookup, st)
        return masks, contacts, considered

    t0 = time.perf_counter()
    data = ProbeData(n_states, cfg["seed"], p["negatives_per_positive"], p["max_pairs"])
    for row, states in hidden_states(model, train, a["batch_size"]):
        masks, contacts, considered = protein(train, row)
        data.add_residues(states, masks, types)
        if contacts is not None:
            data.add_contacts(states, contacts, considered)
    probes = data.fit(p["C"], cfg["seed"])
    scores = ProbeScores(probes)
    for row, states in hidden_states(model, test, a["batch_size"]):
        masks, contacts, considered = protein(test, row)
        scores.add_residues(states, masks)
        if contacts is not None:
            scores.add_contacts(states, contacts, considered)
    table = scores.table(data)
    write_parquet(table, out_probes, {"stage": "probes", "config_hash": config_hash(a), **model_provenance(model)})
    log.info("probes fitted on %d and tested on %d proteins in %.1f s", len(train), len(test),
             time.perf_counter() - t0)  # fmt: skip
    for name, g in table.groupby("probe"):
        best = g.sort_values("auprc", ascending=False).iloc[0]
        log.info("%s probe: best layer %d (0 = embeddings), AUPRC %.3f (baseline %.3f), precision at %s %.3f",
                 name, best["layer"], best["auprc"], best["auprc_baseline"], best["precision_at"],
                 best["precision"])  # fmt: skip
