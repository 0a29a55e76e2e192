"""Stage `model` (workflow/rules/model.smk, config sections `model` and `training`, outputs
in model/ and <variant>/model/): tokens, the model before fine-tuning, each variant's
fine-tuning (or the model as given) with predictions and metrics. Logic in plmxai.model."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from plmxai._version import __version__
from plmxai.config import tokenizer_source
from plmxai.data.readers import UNLABELLED
from plmxai.tables import config_hash, write_json, write_parquet

log = logging.getLogger("plmxai")


def _same_package(package: str | None) -> None:
    # the cache key of init_model and finetune names the package version the workflow was
    # parsed with; a job run by another installation would file its outputs under that key
    if package is not None and package != __version__:
        raise RuntimeError(
            f"the workflow was parsed with plmxai {package} but this job runs plmxai {__version__}: "
            "run snakemake from the environment that has the plmxai of this checkout"
        )


def tokenize(
    *, proteins, out_tokens, out_summary, tokenizer: str | None, revision: str | None = None, threads: int = 1
) -> None:
    """Proteins -> tokens.parquet with ESM-2's alphabet, or the tokenizer of a model folder or
    hub name. The length policy ran in the data stage; a sequence over 1022 residues stops."""
    from plmxai.model.tokens import load_tokenizer, tokenize_proteins

    table = pd.read_parquet(proteins)
    tok = load_tokenizer(tokenizer, revision)
    tokens, summary = tokenize_proteins(table, tok, max_residues=1022, overlong="error")
    for split in ("train", "test"):
        if not (tokens["split"] == split).any():
            raise ValueError(f"{proteins}: no {split} proteins left after tokenisation")
    write_parquet(tokens, out_tokens, {"stage": "tokenize", "config_hash": config_hash(tokenizer)})
    write_json(summary, out_summary)
    log.info("tokenized %d proteins", summary["tokenized"])


def init_model(
    *,
    tokens,
    out_initial,
    model: dict,
    seed: int,
    synthetic: dict,
    checkpoint=(),
    package: str | None = None,
    threads: int = 1,
) -> None:
    """The model before fine-tuning, shared by every variant: a pretrained checkpoint (its head
    kept or replaced for the task's labels), or random weights (the demo: pretrained here on
    another task). `checkpoint` lists the files of a local checkpoint, so that new weights
    rerun the model."""
    import torch

    from plmxai.model.esm import build_model, save_model

    _same_package(package)
    table = pd.read_parquet(tokens, columns=["label", "label_id"])
    labels = table.drop_duplicates("label_id").sort_values("label_id")["label"].astype(str).tolist()
    if labels == [UNLABELLED]:  # no task: a pretrained checkpoint keeps its own head
        labels = None
    net = build_model(model, labels, seed)
    if model["pretrain"]["enabled"]:
        from plmxai.model.pretrain import demo_motifs, pretrain_encoder

        torch.set_num_threads(max(1, threads))
        pretrain_encoder(net, synthetic, model["pretrain"], demo_motifs(synthetic, seed), seed)
    save_model(net, out_initial, tokenizer_source(model))
    n = sum(p.numel() for p in net.parameters())
    log.info(
        "initial model: %d layers, hidden %d, %d parameters, %d classes",
        net.config.num_hidden_layers,
        net.config.hidden_size,
        n,
        net.config.num_labels,
    )
    if getattr(net, "plmxai_checkpoint", None):
        log.info("checkpoint %s: %s", model["name_or_path"], net.plmxai_checkpoint["head"])


def _variant_metrics(
    preds: pd.DataFrame, labels: list[str], n_boot: int, seed: int, variant: str
) -> pd.DataFrame:
    """The metrics table of a variant's predictions, its test figures logged."""
    from plmxai.metrics import metrics_table

    mt = metrics_table(preds, labels, n_boot, seed)
    test = mt[(mt["split"] == "test") & (mt["class"] == "all")].set_index("metric")
    log.info(
        "test (%s): %s",
        variant,
        ", ".join(
            f"{m} {test.loc[m, 'value']:.3f} [{test.loc[m, 'ci_low']:.3f}, {test.loc[m, 'ci_high']:.3f}]"
            for m in ("accuracy", "macro_f1", "mcc")
        ),
    )
    return mt


def finetune(
    *,
    tokens,
    initial,
    out_finetuned,
    out_training,
    out_predictions,
    out_metrics,
    out_confusion,
    model: dict,
    training: dict,
    seed: int,
    variant: str,
    package: str | None = None,
    threads: int = 1,
) -> None:
    """One trained variant: fine-tuned, frozen encoder with a trained head, or shuffled labels.
    A checkpoint beside the outputs (<variant>/model/checkpoint) is what a restarted job resumes
    from; it is removed when the outputs are complete."""
    from plmxai.metrics import confusion_table
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model, save_model
    from plmxai.model.training import TrainOptions, predictions_table, variant_data
    from plmxai.model.training import finetune as train

    _same_package(package)
    # beside the outputs, not one of them: Snakemake would delete it when the job fails
    checkpoint_dir = Path(out_finetuned).parent / "checkpoint"
    table = pd.read_parquet(tokens)
    device = job_device(model["device"], threads)
    net = load_model(initial, device)
    train_set, val = variant_data(table, variant, seed)
    t = dict(training)
    n_boot = t.pop("bootstrap")
    opts = TrainOptions(seed=seed, freeze_encoder=variant == "frozen", **t)
    log.info(
        "training variant %s on %s: %d train, %d val proteins", variant, device, len(train_set), len(val)
    )
    t0 = time.perf_counter()
    history = train(net, train_set, val, opts, checkpoint_dir=checkpoint_dir)
    history.insert(0, "variant", variant)
    log.info("training took %.1f s", time.perf_counter() - t0)
    labels = [net.config.id2label[i] for i in range(net.config.num_labels)]
    preds = predictions_table(net, table, 2 * opts.batch_size)
    mt = _variant_metrics(preds, labels, n_boot, seed, variant)
    prov = {
        **model_provenance(net),
        "stage": "model",
        "variant": variant,
        "config_hash": config_hash([model, training, seed]),
        "model": model.get("name_or_path") or model.get("config_dir") or "random",
    }
    save_model(net.to("cpu"), out_finetuned, tokenizer_source(model))
    write_parquet(history, out_training, prov)
    write_parquet(preds, out_predictions, prov)
    write_parquet(mt, out_metrics, prov)
    write_parquet(confusion_table(preds, labels), out_confusion, prov)
    if checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)  # the run is complete: its outputs replace the checkpoint


def given_model(
    *,
    tokens,
    initial,
    out_finetuned,
    out_predictions,
    out_metrics,
    out_confusion,
    model: dict,
    bootstrap: int,
    seed: int,
    threads: int = 1,
) -> None:
    """The `given` variant: the model as loaded, no training. Its predictions for every
    protein; metrics and confusion where the proteins carry labels (empty tables otherwise)."""
    from plmxai.metrics import confusion_table
    from plmxai.model.checkpoint import model_provenance
    from plmxai.model.esm import job_device, load_model, save_model
    from plmxai.model.training import predictions_table

    table = pd.read_parquet(tokens)
    net = load_model(initial, job_device(model["device"], threads))
    labels = [net.config.id2label[i] for i in range(net.config.num_labels)]
    preds = predictions_table(net, table, 32)
    prov = {
        "stage": "model",
        "variant": "given",
        "config_hash": config_hash([model, seed]),
        **model_provenance(net),
    }
    if set(table["label"]) == {UNLABELLED}:
        preds["correct"] = pd.array([pd.NA] * len(preds), dtype="boolean")
        preds["true_prob"] = np.nan
        mt = pd.DataFrame(columns=["split", "class", "metric", "value", "ci_low", "ci_high", "n"])
        cm = pd.DataFrame(columns=["split", "true", "predicted", "count"])
        log.info("given model: %d proteins predicted; no labels, so no metrics", len(preds))
    else:
        mt = _variant_metrics(preds, labels, bootstrap, seed, "given")
        cm = confusion_table(preds, labels)
    save_model(net.to("cpu"), out_finetuned, tokenizer_source(model))
    write_parquet(preds, out_predictions, prov)
    write_parquet(mt, out_metrics, prov)
    write_parquet(cm, out_confusion, prov)
