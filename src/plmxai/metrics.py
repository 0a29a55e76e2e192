"""Classification metrics with bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)


def metrics(y_true, y_pred, n_classes: int) -> dict:
    labels = list(range(n_classes))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)) if len(set(y_true.tolist())) > 1 else 0.0,
    }


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def bootstrap_weights(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) multiplicities of each item in resamples drawn with replacement; shared by
    every model evaluated on the same items, so that their intervals are paired."""
    rng = np.random.default_rng(seed)
    return (
        np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])
        if n_boot
        else np.zeros((0, n), dtype=np.int64)
    )


def confusions(y_true, y_pred, n_classes: int, weights: np.ndarray) -> np.ndarray:
    """Confusion matrices (B, C, C) of weighted resamples (weights: B x n)."""
    code = np.asarray(y_true) * n_classes + np.asarray(y_pred)
    onehot = np.zeros((len(code), n_classes * n_classes))
    onehot[np.arange(len(code)), code] = 1
    return (weights @ onehot).reshape(len(weights), n_classes, n_classes)


def metrics_from_confusions(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 (classes absent from both truth and prediction count 0, as
    sklearn's zero_division=0) and multi-class MCC (Gorodkin) of each matrix in (B, C, C)."""
    cm = cm.astype(np.float64)
    total = cm.sum((1, 2))
    tp = np.diagonal(cm, axis1=1, axis2=2)
    true_k, pred_k = cm.sum(2), cm.sum(1)
    denom = true_k + pred_k
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    correct = tp.sum(1)
    cov = correct * total - (pred_k * true_k).sum(1)
    norm = np.sqrt((total**2 - (pred_k**2).sum(1)) * (total**2 - (true_k**2).sum(1)))
    mcc = np.divide(cov, norm, out=np.zeros_like(cov), where=norm > 0)
    return {"accuracy": correct / np.maximum(total, 1), "macro_f1": f1.mean(1), "mcc": mcc}


def bootstrap_ci(
    y_true, y_pred, n_classes: int, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each metric over proteins resampled with replacement."""
    w = bootstrap_weights(len(y_true), n_boot, seed)
    draws = metrics_from_confusions(confusions(y_true, y_pred, n_classes, w))
    a = (1 - level) / 2
    return {k: (float(np.quantile(v, a)), float(np.quantile(v, 1 - a))) for k, v in draws.items()}


def metrics_table(preds: pd.DataFrame, labels: list[str], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Tidy metrics for the validation and test splits: overall (with bootstrap CIs on test)
    and per-class precision, recall and F1."""
    rows = []
    k = len(labels)
    for split in ("val", "test"):
        p = preds[preds["split"] == split]
        if p.empty:
            continue
        yt, yp = p["label_id"].to_numpy(), p["pred_id"].to_numpy()
        ci = bootstrap_ci(yt, yp, k, n_boot, seed=seed) if split == "test" and n_boot else {}
        for name, value in metrics(yt, yp, k).items():
            lo, hi = ci.get(name, (np.nan, np.nan))
            rows.append(
                {
                    "split": split,
                    "class": "all",
                    "metric": name,
                    "value": value,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": len(p),
                }
            )
        prec, rec, f1, sup = precision_recall_fscore_support(yt, yp, labels=list(range(k)), zero_division=0)
        for c in range(k):
            for name, arr in (("precision", prec), ("recall", rec), ("f1", f1)):
                rows.append(
                    {
                        "split": split,
                        "class": labels[c],
                        "metric": name,
                        "value": float(arr[c]),
                        "ci_low": np.nan,
                        "ci_high": np.nan,
                        "n": int(sup[c]),
                    }
                )
    return pd.DataFrame(rows)


def confusion_table(preds: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    rows = []
    for split in ("val", "test"):
        p = preds[preds["split"] == split]
        if p.empty:
            continue
        cm = confusion(p["label_id"], p["pred_id"], len(labels))
        for i in range(len(labels)):
            for j in range(len(labels)):
                rows.append(
                    {"split": split, "true": labels[i], "predicted": labels[j], "count": int(cm[i, j])}
                )
    return pd.DataFrame(rows)
