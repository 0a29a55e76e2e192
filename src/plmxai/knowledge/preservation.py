"""Preservation and ablation of selected neurons, against random selections (METHODS.md 1).

Preservation: the selected neurons keep their fine-tuned rows (Linear weight row and bias), every
other neuron of every site reverts to its weights before fine-tuning; everything outside the
sites (embeddings, layer norms, classifier head) stays fine-tuned. Ablation: only the selected
neurons are removed (reverted, zeroed, or held at their mean activation).

Random selections are the permutation null: a random draw of the same number of neurons is a
random permutation of the scores over neurons, so the permutation p-value of a method is the
rank of its metric among the draws. Every model is evaluated on the same test proteins and the
bootstrap resamples are shared, so intervals of methods and random draws are paired.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from plmxai.knowledge.scores import neuron_groups, select_top
from plmxai.metrics import bootstrap_weights, confusions, metrics_from_confusions
from plmxai.model.esm import site_modules
from plmxai.model.training import predict_logits

log = logging.getLogger(__name__)

ABLATION_MODES = ("revert", "zero", "mean")
# true_class_probability (mean softmax probability of the true class) is threshold-free: a
# hybrid whose argmax collapses to one class can still rank the classes better than chance
METRICS = ("accuracy", "macro_f1", "mcc", "true_class_probability")


def _site_param_names(model) -> dict[tuple[int, str], str]:
    names = {m: n for n, m in model.named_modules()}
    return {key: names[m] for key, m in site_modules(model).items()}


def _hybrid_rows(
    ft: torch.Tensor,
    init: torch.Tensor,
    change: torch.Tensor,
    keep: str,
    mode: str,
    part: str,
    mean: torch.Tensor | None,
) -> torch.Tensor:
    """One site parameter of the hybrid: rows in `change` replaced, the rest fine-tuned."""
    if keep == "selected" or mode == "revert":
        source = init
    elif mode == "zero" or part == "weight":
        source = torch.zeros_like(ft)  # mean ablation: zero weights, the mean as bias
    else:
        source = torch.as_tensor(mean, dtype=ft.dtype)
    shape = (-1,) + (1,) * (ft.dim() - 1)
    return torch.where(change.view(shape), source, ft)


def hybrid_state_dict(
    model,
    initial: dict,
    finetuned: dict,
    selected: dict[tuple[int, str], np.ndarray],
    keep: str = "selected",
    mode: str = "revert",
    mean_activation: dict | None = None,
) -> dict:
    """Weights of a hybrid model; everything outside the sites stays fine-tuned.

    keep="selected" (preservation): selected neurons keep their fine-tuned rows (weight and
    bias), all other neurons of every site revert to the weights before fine-tuning.
    keep="unselected" (ablation): only the selected neurons are removed: reverted, zeroed, or
    made constant at their mean activation (`mean_activation[(layer, site)]`, zero weights and
    the mean as bias).
    """
    if mode not in ABLATION_MODES:
        raise ValueError(f"ablation mode must be one of {ABLATION_MODES}, got {mode!r}")
    state = dict(finetuned)
    for key, prefix in _site_param_names(model).items():
        sel = torch.as_tensor(np.asarray(selected[key]), dtype=torch.bool)
        change = ~sel if keep == "selected" else sel
        mean = None if mean_activation is None else mean_activation[key]
        for part in ("weight", "bias"):
            name = f"{prefix}.{part}"
            state[name] = _hybrid_rows(finetuned[name], initial[name], change, keep, mode, part, mean)
    return state


def weight_change(model, initial: dict, finetuned: dict, index: pd.DataFrame) -> pd.Series:
    """|W_ft - W_0| per neuron: the norm of the change of its weight row and bias."""
    parts = []
    for prefix in _site_param_names(model).values():
        dw = (finetuned[f"{prefix}.weight"] - initial[f"{prefix}.weight"]).double()
        db = (finetuned[f"{prefix}.bias"] - initial[f"{prefix}.bias"]).double()
        parts.append(torch.sqrt((dw**2).sum(1) + db**2).numpy())
    return pd.Series(np.concatenate(parts), index=index.index)


def as_site_masks(model, chosen: np.ndarray) -> dict:
    """A flat selection (neuron_index order) as (layer, site) -> boolean array."""
    out, start = {}, 0
    for key, m in site_modules(model).items():
        out[key] = chosen[start : start + m.out_features]
        start += m.out_features
    return out


def random_selection(index: pd.DataFrame, k: int, rng, match: np.ndarray | None = None) -> np.ndarray:
    """k random neurons; with `match` (a selection), the same count within each site type and
    layer."""
    chosen = np.zeros(len(index), dtype=bool)
    if match is None:
        chosen[rng.choice(len(index), size=k, replace=False)] = True
        return chosen
    for idx in neuron_groups(index, "site"):
        n = int(match[idx].sum())
        if n:
            chosen[rng.choice(idx, size=n, replace=False)] = True
    return chosen


class HybridEvaluator:
    """Test-split predictions of hybrid models, built in place in one model object.

    Models that differ from the fine-tuned one in the same rows are the same model, so
    predictions are cached by the rows that actually change (the frozen control, whose
    encoder never moved, needs a single evaluation).
    """

    def __init__(
        self,
        model,
        initial: dict,
        finetuned: dict,
        tokens: pd.DataFrame,
        batch_size: int = 64,
        mean_activation: dict | None = None,
        precision: str = "auto",
    ):
        self.model, self.initial, self.finetuned = model, initial, finetuned
        self.tokens, self.batch_size, self.mean = tokens, batch_size, mean_activation
        self.precision = precision
        self.names = _site_param_names(model)
        self.params = dict(model.named_parameters())
        # rows that reverting would change: identical rows make identical hybrids
        self.moved = {
            key: (
                (finetuned[f"{p}.weight"] != initial[f"{p}.weight"]).any(1)
                | (finetuned[f"{p}.bias"] != initial[f"{p}.bias"])
            ).numpy()
            for key, p in self.names.items()
        }
        self.cache: dict = {}
        self.evaluations = 0

    def predict(self, selected: dict, keep: str = "selected", mode: str = "revert") -> np.ndarray:
        """Class probabilities (proteins x classes) of the hybrid."""
        changes = {k: (~np.asarray(s) if keep == "selected" else np.asarray(s)) for k, s in selected.items()}
        effective = mode if keep == "unselected" and mode != "revert" else "revert"
        if effective == "revert":
            changes = {k: c & self.moved[k] for k, c in changes.items()}
        cache_key = (effective, np.packbits(np.concatenate([changes[k] for k in self.names])).tobytes())
        if cache_key not in self.cache:
            with torch.no_grad():
                for key, prefix in self.names.items():
                    change = torch.as_tensor(changes[key])
                    mean = None if self.mean is None else self.mean[key]
                    for part in ("weight", "bias"):
                        name = f"{prefix}.{part}"
                        self.params[name].copy_(
                            _hybrid_rows(
                                self.finetuned[name], self.initial[name], change, keep, mode, part, mean
                            )
                        )
            logits = predict_logits(self.model, self.tokens, self.batch_size, self.precision)
            self.cache[cache_key] = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).numpy()
            self.evaluations += 1
        return self.cache[cache_key]

    def restore(self) -> None:
        with torch.no_grad():
            for prefix in self.names.values():
                for part in ("weight", "bias"):
                    self.params[f"{prefix}.{part}"].copy_(self.finetuned[f"{prefix}.{part}"])


def _mode_args(mode: str) -> tuple[str, str]:
    """'preserve' or 'ablate_<revert|zero|mean>' -> (keep, ablation mode)."""
    if mode == "preserve":
        return "selected", "revert"
    kind = mode.removeprefix("ablate_")
    if not mode.startswith("ablate_") or kind not in ABLATION_MODES:
        raise ValueError(
            f"test mode must be 'preserve' or one of {['ablate_' + m for m in ABLATION_MODES]}, got {mode!r}"
        )
    return "unselected", kind


def preservation_curves(
    evaluator: HybridEvaluator,
    index: pd.DataFrame,
    scores: dict[str, pd.Series],
    fractions,
    modes=("preserve", "ablate_revert"),
    n_random: int = 10,
    random_matched: bool = False,
    within: dict[str, str] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every method's selection at every fraction, under every mode, against random draws.

    Returns (runs: one row per evaluated model and metric, random draws included; summary: per
    mode, fraction, method and metric the value with its bootstrap interval, the random band
    (mean of the draws; interval pooled over draws and bootstrap resamples), the permutation
    p-value (1 + #draws at least as good) / (1 + draws), and whether the value lies above the
    band's upper bound). `within`: method -> selection scope of `select_top` (default all).
    """
    y = evaluator.tokens["label_id"].to_numpy()
    n_classes = evaluator.model.config.num_labels
    weights = bootstrap_weights(len(y), n_boot, seed)
    model = evaluator.model
    mode_args = {m: _mode_args(m) for m in modes}

    def evaluate(chosen: np.ndarray, mode: str):
        prob = evaluator.predict(as_site_masks(model, chosen), *mode_args[mode])
        pred, p_true = prob.argmax(1), prob[np.arange(len(y)), y]
        point = metrics_from_confusions(confusions(y, pred, n_classes, np.ones((1, len(y)))))
        boot = metrics_from_confusions(confusions(y, pred, n_classes, weights))
        point["true_class_probability"] = np.array([p_true.mean()])
        boot["true_class_probability"] = weights @ p_true / np.maximum(weights.sum(1), 1)
        return {m: float(point[m][0]) for m in METRICS}, boot

    runs, summary = [], []
    a = (1 - level) / 2
    none, every = np.zeros(len(index), bool), np.ones(len(index), bool)
    for mode in modes:
        # references: nothing selected and everything selected
        for name, chosen, frac in (("none", none, 0.0), ("all", every, 1.0)):
            point, boot = evaluate(chosen, mode)
            for m in METRICS:
                runs.append(
                    {
                        "mode": mode,
                        "fraction": frac,
                        "method": name,
                        "draw": -1,
                        "n_selected": int(chosen.sum()),
                        "metric": m,
                        "value": point[m],
                    }
                )
                summary.append(
                    {
                        "mode": mode,
                        "fraction": frac,
                        "method": name,
                        "metric": m,
                        "value": point[m],
                        "ci_low": np.quantile(boot[m], a) if n_boot else np.nan,
                        "ci_high": np.quantile(boot[m], 1 - a) if n_boot else np.nan,
                        "n_selected": int(chosen.sum()),
                    }
                )
    t0 = time.perf_counter()
    for i, fraction in enumerate(fractions, 1):
        # progress: each hybrid is a pass over the test split, hours for a large model
        log.info(
            "fraction %g (%d of %d): %d hybrid models evaluated so far, %.1f s",
            fraction,
            i,
            len(fractions),
            evaluator.evaluations,
            time.perf_counter() - t0,
        )
        selections = {
            name: select_top(s, index, fraction, (within or {}).get(name, "all"))
            for name, s in scores.items()
        }
        k = int(round(fraction * len(index)))  # the size of every selection (select_top)
        draws: dict = {}
        for d in range(n_random):
            if random_matched:
                for name, sel in selections.items():
                    rng = np.random.default_rng([seed, d, int(round(fraction * 1e6)), len(draws)])
                    draws[(name, d)] = random_selection(index, k, rng, match=sel)
            else:
                rng = np.random.default_rng([seed, d, int(round(fraction * 1e6))])
                draws[(None, d)] = random_selection(index, k, rng)
        for mode in modes:
            random_points: dict = {}
            for (owner, d), chosen in draws.items():
                point, boot = evaluate(chosen, mode)
                random_points.setdefault(owner, []).append((point, boot))
                for m in METRICS:
                    runs.append(
                        {
                            "mode": mode,
                            "fraction": fraction,
                            "method": "random" if owner is None else f"random_matched:{owner}",
                            "draw": d,
                            "n_selected": int(chosen.sum()),
                            "metric": m,
                            "value": point[m],
                        }
                    )
            for name, chosen in selections.items():
                point, boot = evaluate(chosen, mode)
                band = random_points.get(name if random_matched else None, [])
                for m in METRICS:
                    runs.append(
                        {
                            "mode": mode,
                            "fraction": fraction,
                            "method": name,
                            "draw": -1,
                            "n_selected": int(chosen.sum()),
                            "metric": m,
                            "value": point[m],
                        }
                    )
                    r_point = np.array([p[m] for p, _ in band])
                    r_boot = np.concatenate([b[m] for _, b in band]) if band and n_boot else r_point
                    row = {
                        "mode": mode,
                        "fraction": fraction,
                        "method": name,
                        "metric": m,
                        "value": point[m],
                        "n_selected": int(chosen.sum()),
                        "ci_low": np.quantile(boot[m], a) if n_boot else np.nan,
                        "ci_high": np.quantile(boot[m], 1 - a) if n_boot else np.nan,
                    }
                    if len(band):
                        row.update(
                            {
                                "random_mean": float(r_point.mean()),
                                "random_low": float(np.quantile(r_boot, a)),
                                "random_high": float(np.quantile(r_boot, 1 - a)),
                                "random_draws": len(band),
                                "p_permutation": (1 + int((r_point >= point[m]).sum())) / (1 + len(band)),
                            }
                        )
                        # preservation is better when higher, ablation when lower (more damage)
                        row["beats_random"] = (
                            (point[m] > row["random_high"])
                            if mode == "preserve"
                            else (point[m] < row["random_low"])
                        )
                        if mode != "preserve":
                            row["p_permutation"] = (1 + int((r_point <= point[m]).sum())) / (1 + len(band))
                    summary.append(row)
    evaluator.restore()
    return pd.DataFrame(runs), pd.DataFrame(summary)
