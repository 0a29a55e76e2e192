"""Fine-tuning an ESM-2 classifier, and its predictions and metrics."""
from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, matthews_corrcoef
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    max_grad_norm: float = 1.0
    keep_best: bool = True  # restore the epoch with the best validation macro-F1
    seed: int = 0


def collate(input_ids: list[np.ndarray], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id arrays into (ids, attention_mask)."""
    n, width = len(input_ids), max(len(x) for x in input_ids)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, x in enumerate(input_ids):
        ids[i, : len(x)] = torch.as_tensor(np.asarray(x, dtype=np.int64))
        mask[i, : len(x)] = 1
    return ids, mask


def batches(tokens: pd.DataFrame, batch_size: int, order: np.ndarray | None = None) -> Iterator:
    """(row positions, ids, mask) per batch; `order` permutes rows (None: by length, which
    cuts padding for inference)."""
    if order is None:
        order = np.argsort(tokens["n_residues"].to_numpy(), kind="stable")
    ids_col = tokens["input_ids"].to_numpy()
    for b in range(0, len(order), batch_size):
        pos = order[b : b + batch_size]
        ids, mask = collate([ids_col[i] for i in pos])
        yield pos, ids, mask


def metrics(y_true, y_pred, n_classes: int) -> dict:
    labels = list(range(n_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)) if len(set(y_true)) > 1 else 0.0,
    }


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


@torch.no_grad()
def predict_logits(model, tokens: pd.DataFrame, batch_size: int = 32) -> np.ndarray:
    """Logits for every row of `tokens`, in row order."""
    device = next(model.parameters()).device
    model.eval()
    out = np.zeros((len(tokens), model.config.num_labels), dtype=np.float32)
    for pos, ids, mask in batches(tokens, batch_size):
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


def _evaluate(model, tokens, batch_size) -> dict:
    logits = predict_logits(model, tokens, batch_size)
    y = tokens["label_id"].to_numpy()
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.tensor(y)).item()
    return {"loss": loss, **metrics(y, logits.argmax(1), logits.shape[1])}


def finetune(model, train: pd.DataFrame, val: pd.DataFrame, opt: TrainOptions) -> pd.DataFrame:
    """Train in place with AdamW and linear warmup/decay; return per-epoch metrics."""
    device = next(model.parameters()).device
    gen = np.random.default_rng(opt.seed)
    torch.manual_seed(opt.seed)
    steps_per_epoch = math.ceil(len(train) / opt.batch_size)
    total = steps_per_epoch * opt.epochs
    warmup = max(1, int(opt.warmup_fraction * total))
    optim = torch.optim.AdamW(model.parameters(), lr=opt.learning_rate, weight_decay=opt.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    y_train = torch.tensor(train["label_id"].to_numpy(), dtype=torch.long)
    history, best, best_f1 = [], None, -1.0
    step = 0
    for epoch in range(1, opt.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct = 0.0, 0
        order = gen.permutation(len(train))
        for pos, ids, mask in tqdm(
            batches(train, opt.batch_size, order), total=steps_per_epoch,
            desc=f"epoch {epoch}", mininterval=10, leave=False,
        ):  # fmt: skip
            labels = y_train[pos].to(device)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels)
            optim.zero_grad(set_to_none=True)
            out.loss.backward()
            if opt.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opt.max_grad_norm)
            optim.step()
            sched.step()
            step += 1
            loss_sum += out.loss.item() * len(pos)
            correct += (out.logits.argmax(-1) == labels).sum().item()
        row = {
            "epoch": epoch,
            "step": step,
            "lr": sched.get_last_lr()[0],
            "train_loss": loss_sum / len(train),
            "train_accuracy": correct / len(train),
            "seconds": time.perf_counter() - t0,
        }
        row.update({f"val_{k}": v for k, v in _evaluate(model, val, 2 * opt.batch_size).items()})
        history.append(row)
        log.info(
            "epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f macro-F1 %.3f (%.1fs)",
            epoch, row["train_loss"], row["train_accuracy"], row["val_loss"],
            row["val_accuracy"], row["val_macro_f1"], row["seconds"],
        )  # fmt: skip
        if opt.keep_best and row["val_macro_f1"] > best_f1:
            best_f1 = row["val_macro_f1"]
            best = copy.deepcopy(model.state_dict())
    df = pd.DataFrame(history)
    if opt.keep_best and best is not None:
        model.load_state_dict(best)
        best_epoch = int(df.loc[df["val_macro_f1"].idxmax(), "epoch"])
        df["kept"] = df["epoch"] == best_epoch
        log.info("kept epoch %d (val macro-F1 %.3f)", best_epoch, best_f1)
    else:
        df["kept"] = df["epoch"] == df["epoch"].max()
    model.eval()
    return df
