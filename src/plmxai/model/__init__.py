"""Stage `model`: ESM-2 built, loaded (safely) and saved, tokenised proteins, fine-tuning, and
the integrated-gradients engine (ig) that the knowledge, attribution and attention stages
share. Knows no analysis.

    model = px.model.load("facebook/esm2_t6_8M_UR50D", labels=["1", "2", "3"])
    tokens = px.model.tokenize(proteins)
    history = px.model.finetune(model, tokens, epochs=5, learning_rate=5e-5)
    predictions = px.model.predict(model, tokens)
"""

from __future__ import annotations


def load(
    name_or_path,
    *,
    labels: list[str] | None = None,
    revision: str | None = None,
    head: str = "auto",
    device: str = "cpu",
    seed: int = 0,
):
    """A pretrained checkpoint (hub name or local folder; safetensors, or a .bin read with
    weights_only) as a sequence classifier; with `labels`, its head kept if it has them and
    replaced otherwise (model.head); without, its own head. Also a model folder of a run
    (results/<run>/<variant>/model/finetuned)."""
    from plmxai.config import options
    from plmxai.model.esm import build_model, pick_device

    spec = options(
        "model",
        {
            "source": "pretrained",
            "name_or_path": str(name_or_path),
            "revision": revision,
            "head": head,
            "device": device,
        },
    )
    return build_model(spec, labels, seed).to(pick_device(device)).eval()


def tokenize(proteins, *, tokenizer: str | None = None, revision: str | None = None):
    """Proteins (accession, sequence, label, label_id, split) -> tokens, as the tokenize rule
    makes them; ESM-2's alphabet unless a model folder or hub name is given."""
    from plmxai.model.tokens import load_tokenizer, tokenize_proteins

    tokens, _ = tokenize_proteins(proteins, load_tokenizer(tokenizer, revision), max_residues=1022)
    return tokens


def predict(model, tokens, *, batch_size: int = 32):
    """One row per protein: predicted class, probabilities, correct (where labelled)."""
    from plmxai.model.training import predictions_table

    return predictions_table(model, tokens, batch_size)


def finetune(model, tokens, *, variant: str = "finetuned", seed: int = 0, **training):
    """Fine-tune in place on the tokens' train split (validation: val), as a trained variant
    (finetuned, frozen, shuffled); options are the config's model.training keys. Returns the
    per-epoch history."""
    from plmxai.config import options
    from plmxai.model.training import TrainOptions, variant_data
    from plmxai.model.training import finetune as train

    t = options("model.training", training)
    t.pop("bootstrap")
    train_set, val = variant_data(tokens, variant, seed)
    return train(model, train_set, val, TrainOptions(seed=seed, freeze_encoder=variant == "frozen", **t))
