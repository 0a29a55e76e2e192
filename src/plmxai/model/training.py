"""Fine-tuning an ESM-2 classifier: batching by length, schedules, checkpoints and resume.

Every random choice of an epoch (order of proteins, balanced sampling) is drawn from a
generator seeded by (seed, epoch), so a run resumed from a checkpoint replays exactly the
batches an uninterrupted run would have seen; on CPU it ends with the same weights.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from plmxai.data.splits import balanced_shuffle, select_split
from plmxai.metrics import metrics
from plmxai.model.batching import batches, collate, inference_tokens
from plmxai.model.esm import cls_only_last_layer

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    epochs: int = 10
    batch_size: int = 16
    grad_accumulation: int = 1  # micro-batches per optimizer step
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05  # linear warm-up, then linear decay to 0
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or fp32, bf16
    freeze_encoder_epochs: int = 0  # train only the classifier head for the first N epochs
    freeze_encoder: bool = False  # the `frozen` control: the encoder never changes
    class_balance: str = "none"  # none, loss (class-weighted loss), sampler (balanced sampling)
    batching: str = "length"  # length: batches of similar length (less padding); random
    bucket_batches: int = 50  # length batching sorts windows of this many batches
    keep_best: bool = True  # restore the epoch with the best validation macro-F1
    early_stopping_patience: int = 0  # stop after N epochs without improvement (0: off)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: epoch ends only)
    stop_at_accuracy: float | None = None  # stop after the first epoch reaching this validation accuracy
    seed: int = 0


def epoch_plan(lengths: np.ndarray, labels: np.ndarray, opt: TrainOptions, epoch: int) -> list[np.ndarray]:
    """The micro-batches (row positions) of one epoch, a pure function of (seed, epoch)."""
    rng = np.random.default_rng([opt.seed, epoch])
    n = len(lengths)
    if opt.class_balance == "sampler":
        counts = np.bincount(labels)
        w = 1.0 / counts[labels]
        order = rng.choice(n, size=n, replace=True, p=w / w.sum())
    else:
        order = rng.permutation(n)
    bs = opt.batch_size
    if opt.batching == "random":
        return [order[i : i + bs] for i in range(0, n, bs)]
    if opt.batching != "length":
        raise ValueError(f"batching must be 'length' or 'random', got {opt.batching!r}")
    window = bs * max(1, opt.bucket_batches)
    plan = []
    for w0 in range(0, n, window):
        chunk = order[w0 : w0 + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        plan.extend(chunk[i : i + bs] for i in range(0, len(chunk), bs))
    return [plan[i] for i in rng.permutation(len(plan))]


def padding_fraction(lengths: np.ndarray, plan: list[np.ndarray]) -> float:
    padded = sum(len(b) * lengths[b].max() for b in plan)
    return float(1 - lengths.sum() / padded) if padded else 0.0


def autocast_dtype(precision: str, device: torch.device):
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")


@torch.no_grad()
def predict_logits(model, tokens: pd.DataFrame, batch_size: int = 32, precision: str = "auto") -> np.ndarray:
    """Logits for every row of `tokens`, in row order (no autograd graph: the hybrid models of
    the knowledge tests call this hundreds of times)."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    model.eval()
    out = np.zeros((len(tokens), model.config.num_labels), dtype=np.float32)
    for pos, ids, mask in batches(tokens, batch_size, max_tokens=inference_tokens(device)):
        with (
            torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
            cls_only_last_layer(model),
        ):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        out[pos] = logits.float().cpu().numpy()
    return out


def predictions_table(model, tokens: pd.DataFrame, batch_size: int = 32) -> pd.DataFrame:
    logits = predict_logits(model, tokens, batch_size)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    id2label = model.config.id2label
    df = tokens[["accession", "split", "label", "label_id"]].reset_index(drop=True).copy()
    df["pred_id"] = probs.argmax(1).astype(np.int64)
    df["pred_label"] = [id2label[int(i)] for i in df["pred_id"]]
    df["correct"] = df["pred_id"] == df["label_id"]
    df["true_prob"] = probs[np.arange(len(df)), df["label_id"].to_numpy()]
    for k in range(probs.shape[1]):
        df[f"prob_{id2label[k]}"] = probs[:, k]
    return df


@torch.no_grad()
def encoder_features(
    model, tokens: pd.DataFrame, batch_size: int = 32, precision: str = "auto"
) -> torch.Tensor:
    """The encoder's output at the `<cls>` position (what the classification head reads) for
    every row of `tokens`, in row order (N x hidden)."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    was_training = model.training
    model.eval()
    out = torch.zeros((len(tokens), model.config.hidden_size), device=device)
    try:
        for pos, ids, mask in batches(tokens, batch_size, max_tokens=inference_tokens(device)):
            with (
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
                cls_only_last_layer(model),
            ):
                h = model.esm(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            out[torch.as_tensor(pos, device=device)] = h[:, 0].float()
    finally:
        model.train(was_training)
    return out


def _cacheable(model) -> bool:
    """A frozen encoder gives every protein the same features at every step: true unless the
    encoder has active dropout (ESM-2 has none) or its head reads more than `<cls>`."""
    from transformers.models.esm.modeling_esm import EsmClassificationHead

    c = model.config
    return (
        isinstance(getattr(model, "classifier", None), EsmClassificationHead)
        and not c.hidden_dropout_prob
        and not c.attention_probs_dropout_prob
    )


def _evaluate(model, tokens, batch_size, precision, features: torch.Tensor | None = None) -> dict:
    if features is not None:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            logits = model.classifier(features[:, None, :]).float().cpu().numpy()
            model.train(was_training)
    else:
        logits = predict_logits(model, tokens, batch_size, precision)
    y = tokens["label_id"].to_numpy()
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.tensor(y)).item()
    return {"loss": loss, **metrics(y, logits.argmax(1), logits.shape[1])}


def _set_encoder_trainable(model, trainable: bool) -> None:
    for p in model.esm.parameters():
        p.requires_grad_(trainable)


def fingerprint(opt: TrainOptions, train: pd.DataFrame, model) -> str:
    """Identifies a training run, so a checkpoint is only resumed by the same run."""
    h = hashlib.sha256(repr(sorted(asdict(opt).items())).encode())
    h.update("|".join(train["accession"]).encode())
    h.update(np.asarray(train["label_id"]).tobytes())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
    return h.hexdigest()[:20]


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def finetune(
    model,
    train: pd.DataFrame,
    val: pd.DataFrame,
    opt: TrainOptions,
    checkpoint_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Train in place; return per-epoch metrics. With `checkpoint_dir`, checkpoints are written
    there and a run started again after a crash resumes from the last one."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(opt.precision, device)
    torch.manual_seed(opt.seed)
    lengths = train["n_residues"].to_numpy() + 2
    y_all = np.asarray(train["label_id"], dtype=np.int64)
    n_classes = model.config.num_labels
    accum = max(1, opt.grad_accumulation)
    micro_per_epoch = math.ceil(len(train) / opt.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total = steps_per_epoch * opt.epochs
    warmup = max(1, int(opt.warmup_fraction * total))
    if opt.freeze_encoder:
        _set_encoder_trainable(model, False)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=opt.learning_rate, weight_decay=opt.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    weight = None
    if opt.class_balance == "loss":
        counts = np.bincount(y_all, minlength=n_classes).astype(np.float64)
        weight = torch.tensor(
            len(y_all) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32, device=device
        )
    elif opt.class_balance not in ("none", "sampler"):
        raise ValueError(f"class_balance must be none, loss or sampler, got {opt.class_balance!r}")

    ckpt_path = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else None
    fp = fingerprint(opt, train, model)
    state = {
        "epoch": 1,
        "micro": 0,
        "step": 0,
        "history": [],
        "best": None,
        "best_f1": -1.0,
        "stale": 0,
        "loss_sum": 0.0,
        "correct": 0,
        "seen": 0,
    }
    if ckpt_path and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ck.get("fingerprint") == fp:
            model.load_state_dict(ck["model"])
            optim.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            torch.set_rng_state(ck["torch_rng"])
            state = ck["state"]
            log.info("resumed from %s: epoch %d, step %d", ckpt_path, state["epoch"], state["step"])
        else:
            log.warning(
                "ignoring %s: it belongs to another run (options, data or initial weights differ)", ckpt_path
            )

    def checkpoint():
        if ckpt_path is None:
            return
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        _save_checkpoint(
            ckpt_path,
            {
                "fingerprint": fp,
                "model": model.state_dict(),
                "optimizer": optim.state_dict(),
                "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "state": state,
            },
        )

    ids_col = train["input_ids"].to_numpy()
    stop = False
    cache = None  # (train, val) encoder features while the encoder is frozen
    while state["epoch"] <= opt.epochs and not stop:
        epoch = state["epoch"]
        frozen = opt.freeze_encoder or epoch <= opt.freeze_encoder_epochs
        if not opt.freeze_encoder:
            _set_encoder_trainable(model, not frozen)
        if frozen and cache is None and _cacheable(model):
            # the frozen encoder's output never changes: computed once, the head trained on it
            t0 = time.perf_counter()
            cache = (
                encoder_features(model, train, 2 * opt.batch_size, opt.precision),
                encoder_features(model, val, 2 * opt.batch_size, opt.precision),
            )
            log.info(
                "frozen encoder: features of %d proteins computed once (%.1fs)",
                len(train) + len(val),
                time.perf_counter() - t0,
            )
        if not frozen:
            cache = None
        model.train()
        plan = epoch_plan(lengths, y_all, opt, epoch)
        t0 = time.perf_counter()
        for k in tqdm(
            range(state["micro"], len(plan)), desc=f"epoch {epoch}", mininterval=10, miniters=1, leave=False
        ):
            pos = plan[k]
            ids, mask = collate([ids_col[i] for i in pos])
            labels = torch.as_tensor(y_all[pos], device=device)
            with (
                torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
                cls_only_last_layer(model),
            ):
                if cache is not None:
                    logits = model.classifier(cache[0][torch.as_tensor(pos, device=device)][:, None, :])
                else:
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight)
            (loss / accum).backward()
            state["loss_sum"] += loss.item() * len(pos)
            state["correct"] += int((logits.argmax(-1) == labels).sum().item())
            state["seen"] += len(pos)
            state["micro"] = k + 1
            if state["micro"] % accum == 0 or state["micro"] == len(plan):
                if opt.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, opt.max_grad_norm)
                optim.step()
                sched.step()
                optim.zero_grad(set_to_none=True)
                state["step"] += 1
                if (
                    opt.checkpoint_every
                    and state["step"] % opt.checkpoint_every == 0
                    and state["micro"] < len(plan)
                ):
                    checkpoint()
        row = {
            "epoch": epoch,
            "step": state["step"],
            "lr": sched.get_last_lr()[0],
            "encoder_frozen": frozen,
            "train_loss": state["loss_sum"] / max(1, state["seen"]),
            "train_accuracy": state["correct"] / max(1, state["seen"]),
            "padding_fraction": padding_fraction(lengths, plan),
            "seconds": time.perf_counter() - t0,
        }
        row.update(
            {
                f"val_{k}": v
                for k, v in _evaluate(
                    model, val, 2 * opt.batch_size, opt.precision, cache[1] if cache is not None else None
                ).items()
            }
        )
        state["history"].append(row)
        log.info(
            "epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f macro-F1 %.3f | padding %.1f%% (%.1fs)",
            epoch,
            row["train_loss"],
            row["train_accuracy"],
            row["val_loss"],
            row["val_accuracy"],
            row["val_macro_f1"],
            100 * row["padding_fraction"],
            row["seconds"],
        )
        if row["val_macro_f1"] > state["best_f1"]:
            state["best_f1"], state["stale"] = row["val_macro_f1"], 0
            if opt.keep_best:
                state["best"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state["stale"] += 1
            if opt.early_stopping_patience and state["stale"] >= opt.early_stopping_patience:
                log.info("early stopping: %d epochs without a better validation macro-F1", state["stale"])
                stop = True
        if opt.stop_at_accuracy is not None and row["val_accuracy"] >= opt.stop_at_accuracy:
            log.info(
                "validation accuracy %.3f reached %.3f: stopping after epoch %d of at most %d",
                row["val_accuracy"],
                opt.stop_at_accuracy,
                epoch,
                opt.epochs,
            )
            stop = True
        state.update(epoch=epoch + 1, micro=0, loss_sum=0.0, correct=0, seen=0)
        checkpoint()
    df = pd.DataFrame(state["history"])
    if opt.keep_best and state["best"] is not None:
        model.load_state_dict(state["best"])
        best_epoch = int(df.loc[df["val_macro_f1"].idxmax(), "epoch"])
        df["kept"] = df["epoch"] == best_epoch
        log.info("kept epoch %d (val macro-F1 %.3f)", best_epoch, state["best_f1"])
    else:
        df["kept"] = df["epoch"] == df["epoch"].max()
    if opt.freeze_encoder:
        _set_encoder_trainable(model, True)
    model.eval()
    return df


VARIANTS = ("finetuned", "frozen", "shuffled")


def variant_data(tokens: pd.DataFrame, variant: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation proteins of a variant; `shuffled` permutes their labels within
    each split (a seeded control: same proteins and budget, no label information), balanced so
    that the permuted labels are independent of the true ones in the sample itself."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    train, val = select_split(tokens, "train"), select_split(tokens, "val")
    if variant == "shuffled":
        for k, part in enumerate((train, val)):
            part["label_id"] = balanced_shuffle(part["label_id"].to_numpy(), [seed, 7, k])
    return train, val if not val.empty else train
