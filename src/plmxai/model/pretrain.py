"""Demo pretraining: a related task before fine-tuning, as ESM-2's pretraining is for real runs.

The knowledge-neuron preservation test reverts unselected neurons to their weights *before
fine-tuning*. For a pretrained ESM-2 that is a working protein model; for the demo's randomly
initialised model it would be noise, and every hybrid is at chance whatever is selected
(measured: 25% accuracy on 4 classes for all selections up to 10%). So the demo model first
learns another planted-motif task (other motifs drawn from another seed, same generator, fresh
sequences), and fine-tuning starts from that encoder with a new classifier head. Masked-language
pretraining cannot stand in: the synthetic background is independent residues, so its loss
stays at the unigram entropy and the encoder learns nothing.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import pandas as pd
from transformers import EsmForSequenceClassification

from plmxai.data.splits import stratified_split
from plmxai.data.synthetic import DemoSpec, generate, make_motifs
from plmxai.model.esm import seed_everything
from plmxai.model.tokens import load_tokenizer, tokenize_proteins
from plmxai.model.training import TrainOptions, finetune, predict_logits

log = logging.getLogger(__name__)


def pretraining_tokens(spec: DemoSpec, avoid_motifs: list[str], seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Tokenised proteins of the pretraining task (split train/val), and its motifs."""
    table, motifs = generate(spec)
    shared = sorted(set(motifs) & set(avoid_motifs))
    if shared:
        raise ValueError(
            f"model.pretrain.seed {spec.seed} draws motif(s) {shared} of the fine-tuning task; pick another seed"
        )
    proteins = pd.DataFrame(
        {
            "accession": table["Entry"],
            "sequence": table["Sequence"],
            "label": table["EC number"].str.split(".").str[0],
        }
    )
    labels = sorted(proteins["label"].unique(), key=int)
    proteins["label_id"] = proteins["label"].map({lab: i for i, lab in enumerate(labels)})
    proteins["split"] = stratified_split(
        proteins["label"], {"train": 0.9, "val": 0.1, "test": 0.0}, seed
    ).to_numpy()
    tokens, _ = tokenize_proteins(proteins, load_tokenizer(None), overlong="error")
    return tokens, motifs


def pretrain_encoder(model, synthetic: dict, pretrain: dict, demo_motifs: list[str], seed: int) -> dict:
    """Train `model`'s encoder on the pretraining task in place; returns a summary for the log.

    The pretraining classifier head is discarded: `model` keeps its own (random) head.
    """
    alphabet = {"motif_alphabet": pretrain["motif_alphabet"]} if pretrain.get("motif_alphabet") else {}
    spec = DemoSpec(
        **{
            **synthetic,
            "seed": pretrain["seed"],
            "n_proteins": pretrain["n_proteins"],
            "n_classes": pretrain["n_classes"],
            **alphabet,
        }
    )
    tokens, motifs = pretraining_tokens(spec, demo_motifs, seed)
    labels = [str(i + 1) for i in range(spec.n_classes)]
    config = copy.deepcopy(model.config)  # the demo architecture with a head for this task
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {v: i for i, v in enumerate(labels)}
    seed_everything(seed)
    teacher = EsmForSequenceClassification(config)
    teacher.esm.load_state_dict(model.esm.state_dict())
    train, val = tokens[tokens["split"] == "train"], tokens[tokens["split"] == "val"]
    opts = TrainOptions(
        epochs=pretrain["epochs"],
        learning_rate=pretrain["learning_rate"],
        batch_size=pretrain["batch_size"],
        stop_at_accuracy=pretrain.get("stop_accuracy"),
        seed=seed,
    )
    t0 = time.perf_counter()
    history = finetune(teacher, train, val, opts)
    acc = float((predict_logits(teacher, val).argmax(1) == val["label_id"].to_numpy()).mean())
    model.esm.load_state_dict(teacher.esm.state_dict())
    summary = {
        "motifs": motifs,
        "proteins": len(tokens),
        "val_accuracy": acc,
        "epochs": int(history["epoch"].max()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info(
        "pretrained the encoder on %d proteins of motifs %s (not the demo's %s): validation accuracy %.3f "
        "after %d epochs in %.0f s",
        len(tokens),
        motifs,
        demo_motifs,
        acc,
        summary["epochs"],
        summary["seconds"],
    )
    return summary


def demo_motifs(synthetic: dict, seed: int) -> list[str]:
    """The fine-tuning task's motifs, drawn as `generate` draws them."""
    spec = DemoSpec(**{**synthetic, "seed": seed})
    return make_motifs(spec, np.random.default_rng(spec.seed))
