"""ESM-2 sequence classifiers: loaded by hub name or folder, or built from a config.

Loading never executes code from files: saved models are safetensors; pretrained checkpoints
are read by `plmxai.model.checkpoint` (safetensors, or a .bin through torch.load(weights_only=True)).
"""

from __future__ import annotations

import math
import os
import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import EsmConfig, EsmForSequenceClassification

from plmxai.model.tokens import esm2_tokenizer, load_tokenizer
from plmxai.sites import SITES  # noqa: F401 (re-exported)
from plmxai.tables import atomic_path, read_checkpoint_info, write_checkpoint_info

# ESM-2 architecture constants shared by every size (facebook/esm2_* config.json)
_ESM2_FIXED = dict(
    vocab_size=33,
    pad_token_id=1,
    mask_token_id=32,
    max_position_embeddings=1026,
    position_embedding_type="rotary",
    token_dropout=True,
    emb_layer_norm_before=False,
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-5,
    initializer_range=0.02,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _EsmGelu(torch.autograd.Function):
    """ESM's exact GELU with the fused backward of torch's own exact GELU.

    The forward is ESM's expression, op for op, so activations stay bit-identical. Autograd
    differentiates that expression op by op: erf's backward evaluates exp(-x^2), which
    underflows to subnormal floats that are slow on CPUs, and on a GPU each op is a kernel.
    torch's gelu_backward computes the same derivative in one fused kernel.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.ops.aten.gelu_backward(grad, x)


@contextmanager
def fused_gelu_backward():
    """Within the block, ESM models on CPU differentiate their GELU with one fused kernel.

    transformers' ESM calls its module-level `gelu` function, so the function is swapped there
    and restored on exit. Measured (benchmarks/neuron_scoring.py): a conductance pass of the 8M
    architecture 1.13x faster on 2 CPU threads, but 0.78x on an H100 (8M at L=256 and 35M at
    L=512), so CUDA tensors keep autograd's path.
    """
    from transformers.models.esm import modeling_esm

    original = getattr(modeling_esm, "gelu", None)
    if original is None:  # a transformers release without it: nothing to speed up
        yield
        return

    def gelu(x):
        return _EsmGelu.apply(x) if x.device.type == "cpu" else original(x)

    modeling_esm.gelu = gelu
    try:
        yield
    finally:
        modeling_esm.gelu = original


def _cls_only_forward(block):
    """The forward of `block` (an EsmLayer) for the first position only, from every position's
    keys and values: the hidden state (n x 1 x D) that the classifier head reads."""
    import torch.nn.functional as F
    from transformers.models.esm.modeling_esm import apply_rotary_pos_emb

    att, sa = block.attention, block.attention.self

    def forward(hidden_states, attention_mask=None, position_embeddings=None, **_kwargs):
        n, t, _ = hidden_states.shape
        d = sa.attention_head_size
        ln = att.LayerNorm(hidden_states)
        # the modules themselves are called (on fewer positions), so hooks on them still fire
        q = sa.query(ln[:, :1]).view(n, 1, -1, d).transpose(1, 2) * d**-0.5
        k = sa.key(ln).view(n, t, -1, d).transpose(1, 2)
        v = sa.value(ln).view(n, t, -1, d).transpose(1, 2)
        if sa.position_embedding_type == "rotary":
            cos, sin = position_embeddings
            q, _ = apply_rotary_pos_emb(q, q, cos[..., :1, :], sin[..., :1, :], unsqueeze_dim=1)
            _, k = apply_rotary_pos_emb(k, k, cos, sin, unsqueeze_dim=1)
        mask = attention_mask
        if mask is not None and mask.dim() == 4 and mask.shape[-2] > 1:
            mask = mask[..., :1, :]
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        ctx = ctx.transpose(1, 2).reshape(n, 1, -1)
        return block.feed_forward_chunk(att.output(ctx, hidden_states[:, :1]))

    return forward


@contextmanager
def cls_only_last_layer(model):
    """Within the block, the last encoder layer of a sequence classifier computes only the
    `<cls>` position, the one its classification head reads.

    Every other position of the last layer cannot reach the logits, so this is exact: outputs
    and gradients are unchanged, and hooks on the last layer's modules see 1 position instead of
    T (their gradients at the other positions are zero). It saves 5/6 of that layer's
    projections at every position but the first: about 1/7 of a 6-layer forward and backward,
    and a quarter of knowledge attribution, whose sites run the last layer 36 times a step.
    Hidden states and attention maps of the last layer are not available inside.
    """
    from transformers.models.esm.modeling_esm import EsmClassificationHead

    if not isinstance(getattr(model, "classifier", None), EsmClassificationHead):
        yield
        return
    block = model.esm.encoder.layer[-1]
    block.forward = _cls_only_forward(block)
    try:
        yield
    finally:
        del block.forward


def cls_positions(t: torch.Tensor, n_positions: int) -> torch.Tensor:
    """A per-position tensor (P x ...) of a last-layer site under `cls_only_last_layer`, zero-
    padded back to all positions (their gradient, hence their attribution, is exactly zero)."""
    if t.shape[0] == n_positions:
        return t
    full = t.new_zeros((n_positions, *t.shape[1:]))
    full[: t.shape[0]] = t
    return full


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def job_device(preference: str = "auto", threads: int = 1) -> torch.device:
    """Torch's threads set to a job's, then the configured device: how every model job starts."""
    torch.set_num_threads(max(1, threads))
    return pick_device(preference)


def build_model(spec: dict, labels: list[str] | None, seed: int) -> EsmForSequenceClassification:
    """The model before fine-tuning.

    spec["source"] == "pretrained": weights from `name_or_path` (hub name, optionally at
    `revision`, or local folder); `labels` None keeps the checkpoint's head as given. The
    checkpoint's provenance (sha256, commit, what was done to the head) is in
    `model.plmxai_checkpoint`, and `save_model` keeps it beside the weights.
    spec["source"] == "random": random weights, architecture from `config_dir` (an ESM config
    folder such as esm2_t6_8M_UR50D without weights) or else from `architecture` sizes.
    """
    if labels is None and spec.get("source", "random") != "pretrained":
        raise ValueError("a model built from random weights needs the task's labels")
    id2label = {i: str(lab) for i, lab in enumerate(labels or [])}
    label2id = {v: k for k, v in id2label.items()}
    common = dict(num_labels=len(id2label), id2label=id2label, label2id=label2id)
    seed_everything(seed)
    source = spec.get("source", "random")
    if source == "pretrained":
        from plmxai.model.checkpoint import load_checkpoint

        # a checkpoint with another classifier head (another task) gets a new, seeded head
        model, info = load_checkpoint(
            spec["name_or_path"], labels, seed, spec.get("revision"), spec.get("head", "auto")
        )
        model.plmxai_checkpoint = info.as_dict()
    elif source == "random":
        if spec.get("config_dir"):
            config = EsmConfig.from_pretrained(spec["config_dir"], **common)
        else:
            a = spec["architecture"]
            config = EsmConfig(
                hidden_size=a["hidden_size"],
                num_hidden_layers=a["num_layers"],
                num_attention_heads=a["num_heads"],
                intermediate_size=a["intermediate_size"],
                **_ESM2_FIXED,
                **common,
            )
        model = EsmForSequenceClassification(config)
    else:
        raise ValueError(f"model.source must be 'pretrained' or 'random', got {source!r}")
    if model.config.hidden_size % model.config.num_attention_heads:
        raise ValueError(
            f"hidden_size {model.config.hidden_size} is not divisible by num_heads {model.config.num_attention_heads}"
        )
    return model


def save_model(model, directory: str | os.PathLike, tokenizer_from: str | None = None) -> Path:
    """save_pretrained (safetensors) plus the tokenizer, atomically as a directory."""
    with atomic_path(directory, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        info = getattr(model, "plmxai_checkpoint", None) or {}
        # the tokenizer of the commit the weights came from
        revision = info.get("commit") if info.get("name_or_path") == tokenizer_from else None
        tok = load_tokenizer(tokenizer_from, revision) if tokenizer_from else esm2_tokenizer()
        tok.save_pretrained(tmp)
        if getattr(model, "plmxai_checkpoint", None):
            write_checkpoint_info(model.plmxai_checkpoint, tmp)
    return Path(directory)


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """A model saved by `save_model` (safetensors), with its checkpoint provenance, if any."""
    model = EsmForSequenceClassification.from_pretrained(str(directory), use_safetensors=True)
    model.plmxai_checkpoint = read_checkpoint_info(directory)
    return model.to(device).eval()


def site_modules(model) -> dict[tuple[int, str], torch.nn.Linear]:
    """The Linear module of every neuron site: (layer, site) -> module."""
    out = {}
    for i, layer in enumerate(model.esm.encoder.layer):
        att = layer.attention
        out[(i, "query")] = att.self.query
        out[(i, "key")] = att.self.key
        out[(i, "value")] = att.self.value
        out[(i, "attn_out")] = att.output.dense
        out[(i, "ffn_in")] = layer.intermediate.dense
        out[(i, "ffn_out")] = layer.output.dense
    return out
