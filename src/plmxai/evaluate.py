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


def bootstrap_ci(y_true, y_pred, n_classes: int, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Percentile intervals of each metric over proteins resampled with replacement."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in ("accuracy", "macro_f1", "mcc")}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_true), len(y_true))
        for k, v in metrics(y_true[idx], y_pred[idx], n_classes).items():
            draws[k].append(v)
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
            rows.append({"split": split, "class": "all", "metric": name, "value": value,
                         "ci_low": lo, "ci_high": hi, "n": len(p)})  # fmt: skip
        prec, rec, f1, sup = precision_recall_fscore_support(yt, yp, labels=list(range(k)), zero_division=0)
        for c in range(k):
            for name, arr in (("precision", prec), ("recall", rec), ("f1", f1)):
                rows.append({"split": split, "class": labels[c], "metric": name, "value": float(arr[c]),
                             "ci_low": np.nan, "ci_high": np.nan, "n": int(sup[c])})  # fmt: skip
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
                rows.append({"split": split, "true": labels[i], "predicted": labels[j], "count": int(cm[i, j])})
    return pd.DataFrame(rows)
