"""Knowledge neurons: integrated-gradients scores of every neuron of every site, in one pass.

Conductance along the input path (METHODS.md section 1): the embedding output is scaled from
the `<pad>` baseline to the input; for every site at once, each neuron's conductance is the sum
over steps of (dF / d site-output) x (change of the site output to the next step), as Captum's
`LayerConductance` computes it per site (same quadrature points), but from one set of
forward/backward passes for all sites. Selection, density per site type and agreement between
scores are here too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from captum.attr._utils.approximation_methods import approximation_parameters
from scipy import stats as sps

from .attribution import pad_baseline
from .modeling import SITES, site_modules
from .neurons import residue_mask
from .stats import benjamini_hochberg


def _embedding_path_hook(model, path: torch.Tensor):
    """Replace the embedding output by `path` (steps x T x D) for a batch of steps."""

    def hook(_m, _inp, out):
        return path

    return model.esm.embeddings.register_forward_hook(hook)


def conductance_all_sites(
    model, ids: torch.Tensor, target: int, n_steps: int = 50, method: str = "gausslegendre",
    step_chunk: int = 26,
) -> dict[tuple[int, str], torch.Tensor]:  # fmt: skip
    """Conductance of every neuron of every site for one protein (ids: 1 x T, no padding).

    Returns (layer, site) -> tensor (T, neurons): per-token conductance; sum it over residue
    tokens for a neuron score. Matches Captum LayerConductance per site (same method, steps).
    """
    model.eval()
    mask = torch.ones_like(ids)
    with torch.no_grad():
        x = model.esm.embeddings(input_ids=ids, attention_mask=mask)
        b = model.esm.embeddings(input_ids=pad_baseline(ids, mask, model.config.pad_token_id), attention_mask=mask)
    _, alphas_fn = approximation_parameters(method)
    alphas = torch.tensor(alphas_fn(n_steps + 1), dtype=x.dtype, device=x.device)
    modules = site_modules(model)
    out = {k: torch.zeros(ids.shape[1], m.out_features, dtype=torch.float64) for k, m in modules.items()}
    captured: dict = {}

    def capture(key):
        def fn(_m, _i, o):
            o.retain_grad()
            captured[key] = o
        return fn

    handles = [m.register_forward_hook(capture(k)) for k, m in modules.items()]
    # only gradients with respect to site outputs are needed: parameter gradients would cost
    # about a third of the backward pass
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    prev_eval: dict = {}
    prev_grad: dict = {}
    try:
        for c0 in range(0, n_steps + 1, step_chunk):
            a = alphas[c0 : c0 + step_chunk]
            path = (b + a.view(-1, 1, 1) * (x - b)).detach().requires_grad_(True)
            h = _embedding_path_hook(model, path)
            try:
                logits = model(input_ids=ids.expand(len(a), -1), attention_mask=mask.expand(len(a), -1)).logits
            finally:
                h.remove()
            logits[:, target].sum().backward()
            for key, o in captured.items():
                ev, gr = o.detach(), o.grad
                acc = out[key]
                if key in prev_eval:  # the step pair across the chunk boundary
                    acc += (prev_grad[key] * (ev[0] - prev_eval[key])).double().cpu()
                # gradient at step k times the change from step k to k+1 (Captum's rule)
                acc += (gr[:-1] * (ev[1:] - ev[:-1])).sum(0).double().cpu()
                prev_eval[key], prev_grad[key] = ev[-1], gr[-1]
            captured.clear()
    finally:
        for h in handles:
            h.remove()
        for p in trainable:
            p.requires_grad_(True)
    return out


def conductance_scores(model, tokens: pd.DataFrame, n_steps: int = 50, method: str = "gausslegendre",
                       target: str = "true") -> pd.DataFrame:  # fmt: skip
    """Per-class conductance score of every neuron: sum over residue tokens, mean over the
    class's proteins. Columns: layer, site, neuron, class_id, score, n_proteins."""
    device = next(model.parameters()).device
    n_classes = model.config.num_labels
    sums: dict = {}
    counts = np.zeros(n_classes)
    for rec in tokens.itertuples(index=False):
        ids = torch.as_tensor(np.asarray(rec.input_ids, dtype=np.int64), device=device)[None]
        if target == "true":
            t = int(rec.label_id)
        else:
            with torch.no_grad():
                t = int(model(input_ids=ids).logits.argmax(-1))
        cond = conductance_all_sites(model, ids, t, n_steps, method)
        rmask = residue_mask(ids, torch.ones_like(ids))[0].cpu()
        for key, c in cond.items():
            sums.setdefault(key, np.zeros((n_classes, c.shape[1])))
            sums[key][rec.label_id] += c[rmask].sum(0).numpy()
        counts[rec.label_id] += 1
    order = {s: i for i, s in enumerate(SITES)}
    frames = []
    for (layer, site), total in sorted(sums.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        for c in range(n_classes):
            frames.append(pd.DataFrame({
                "layer": np.int16(layer), "site": site, "neuron": np.arange(total.shape[1], dtype=np.int32),
                "class_id": np.int16(c), "score": (total[c] / max(counts[c], 1)).astype(np.float32),
                "n_proteins": np.int32(counts[c]),
            }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def select_top(scores: pd.Series, index: pd.DataFrame, fraction: float, per_layer: bool = False) -> np.ndarray:
    """Boolean mask of the top `fraction` of neurons by score, globally or within each layer.

    Ties at the cut are broken by position, so the count is exactly round(fraction x n).
    """
    s = scores.to_numpy()
    chosen = np.zeros(len(s), dtype=bool)
    groups = [np.arange(len(s))] if not per_layer else [
        np.flatnonzero(index["layer"].to_numpy() == lay) for lay in np.unique(index["layer"])]  # fmt: skip
    for g in groups:
        k = int(round(fraction * len(g)))
        if k:
            chosen[g[np.argsort(-s[g], kind="stable")[:k]]] = True
    return chosen


def density(index: pd.DataFrame, selected: np.ndarray) -> pd.DataFrame:
    """Selected fraction per (site, layer) and per site over all layers, over the overall
    selected fraction (1.0 = chance), with a one-sided Fisher exact test of enrichment,
    Benjamini-Hochberg over all cells."""
    total, n_sel = len(selected), int(selected.sum())
    overall = n_sel / total if total else np.nan
    rows = []
    for site in SITES:
        in_site = index["site"].to_numpy() == site
        for layer in ["all"] + sorted(index["layer"].unique().tolist()):
            cell = in_site if layer == "all" else in_site & (index["layer"].to_numpy() == layer)
            a = int((selected & cell).sum())
            n = int(cell.sum())
            if n == 0:
                continue
            table = [[a, n - a], [n_sel - a, total - n - (n_sel - a)]]
            p = sps.fisher_exact(table, alternative="greater").pvalue
            rows.append({"site": site, "layer": str(layer), "neurons": n, "selected": a,
                         "density": (a / n) / overall if overall else np.nan, "p_value": p})  # fmt: skip
    out = pd.DataFrame(rows)
    out["q_value"] = benjamini_hochberg(out["p_value"].to_numpy())
    return out


def agreement(a: pd.Series, b: pd.Series, fractions=(0.01, 0.05, 0.1)) -> dict:
    """Spearman correlation of two scores over neurons and Jaccard overlap of their top-k%."""
    out = {"spearman": float(sps.spearmanr(a, b).statistic)}
    for f in fractions:
        k = max(1, int(round(f * len(a))))
        ta = set(np.argsort(-a.to_numpy(), kind="stable")[:k])
        tb = set(np.argsort(-b.to_numpy(), kind="stable")[:k])
        out[f"jaccard_top{f:g}"] = len(ta & tb) / len(ta | tb)
    return out


# ---- preservation and ablation ------------------------------------------------------------

ABLATION_MODES = ("revert", "zero", "mean")


def _site_param_names(model) -> dict[tuple[int, str], str]:
    names = {m: n for n, m in model.named_modules()}
    return {key: names[m] for key, m in site_modules(model).items()}


def hybrid_state_dict(
    model, initial: dict, finetuned: dict, selected: dict[tuple[int, str], np.ndarray],
    keep: str = "selected", mode: str = "revert", mean_activation: dict | None = None,
) -> dict:  # fmt: skip
    """Weights of a hybrid model; everything outside the sites stays fine-tuned.

    keep="selected" (preservation): selected neurons keep their fine-tuned rows (weight and
    bias), all other neurons of every site revert to the weights before fine-tuning.
    keep="unselected" (ablation): only the selected neurons are removed: reverted, zeroed, or
    made constant at their mean activation (`mean_activation[(layer, site)]`, zero weights and
    the mean as bias).
    """
    if mode not in ABLATION_MODES:
        raise ValueError(f"ablation mode must be one of {ABLATION_MODES}, got {mode!r}")
    state = {k: v.clone() for k, v in finetuned.items()}
    for key, prefix in _site_param_names(model).items():
        sel = torch.as_tensor(selected[key], dtype=torch.bool)
        change = ~sel if keep == "selected" else sel
        for part in ("weight", "bias"):
            name = f"{prefix}.{part}"
            if keep == "selected" or mode == "revert":
                state[name][change] = initial[name][change]
            elif mode == "zero":
                state[name][change] = 0
            else:  # mean: the neuron outputs its mean activation whatever the input
                state[name][change] = 0 if part == "weight" else torch.as_tensor(
                    mean_activation[key], dtype=state[name].dtype)[change]
    return state


def neuron_index(model) -> pd.DataFrame:
    """One row per neuron: layer, site, neuron, in site_modules order."""
    rows = [(layer, site, j) for (layer, site), m in site_modules(model).items() for j in range(m.out_features)]
    return pd.DataFrame(rows, columns=["layer", "site", "neuron"])


def score_vector(scores: pd.DataFrame, index: pd.DataFrame, reduce: str = "max_abs") -> pd.Series:
    """One score per neuron from per-class scores: max over classes of |score| (default) or
    mean over classes of |score|, aligned to `index`."""
    a = scores.assign(abs_score=scores["score"].abs())
    agg = a.groupby(["layer", "site", "neuron"])["abs_score"].agg("max" if reduce == "max_abs" else "mean")
    return index.join(agg, on=["layer", "site", "neuron"])["abs_score"].fillna(0.0).reset_index(drop=True)


def weight_change(model, initial: dict, finetuned: dict, index: pd.DataFrame) -> pd.Series:
    """|W_ft - W_0| per neuron: the norm of the change of its weight row and bias."""
    parts = []
    for prefix in _site_param_names(model).values():
        dw = (finetuned[f"{prefix}.weight"] - initial[f"{prefix}.weight"]).double()
        db = (finetuned[f"{prefix}.bias"] - initial[f"{prefix}.bias"]).double()
        parts.append(torch.sqrt((dw**2).sum(1) + db**2).numpy())
    return pd.Series(np.concatenate(parts), index=index.index)


def as_site_masks(model, index: pd.DataFrame, chosen: np.ndarray) -> dict:
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
    cells = index["layer"].astype(str) + "/" + index["site"]
    for cell in cells.unique():
        idx = np.flatnonzero(cells.to_numpy() == cell)
        n = int(match[idx].sum())
        if n:
            chosen[rng.choice(idx, size=n, replace=False)] = True
    return chosen


# ---- knowledge attribution (Dai et al. 2022) ------------------------------------------------


def _run_from_layer(model, layer: int, hidden: torch.Tensor) -> torch.Tensor:
    """Logits from the input of encoder layer `layer` on (no padding: one protein per batch)."""
    esm = model.esm
    pos = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    rotary = esm.rotary_embeddings(hidden, pos) if esm.config.position_embedding_type == "rotary" else None
    for block in esm.encoder.layer[layer:]:
        hidden = block(hidden, attention_mask=None, position_embeddings=rotary)
    if esm.encoder.emb_layer_norm_after is not None:
        hidden = esm.encoder.emb_layer_norm_after(hidden)
    return model.classifier(hidden)


def knowledge_attribution_all_sites(
    model, ids: torch.Tensor, target: int, n_steps: int = 20, method: str = "gausslegendre",
    step_chunk: int = 32,
) -> dict[tuple[int, str], torch.Tensor]:  # fmt: skip
    """Dai et al.'s knowledge attribution of every neuron of every site for one protein
    (ids: 1 x T): the site's output y is scaled from 0 to y, and attribution =
    y x integral of dF/d(alpha y). F is the target logit. The layers before a site are computed
    once per protein: each integral starts from the cached input of the site's layer.
    Equals Captum IntegratedGradients on the site output with a zero baseline.
    """
    if model.config.position_embedding_type != "rotary":
        raise ValueError("knowledge attribution from cached layer inputs needs a rotary ESM model")
    model.eval()
    modules = site_modules(model)
    layer_inputs, outputs, handles = {}, {}, []
    for i, block in enumerate(model.esm.encoder.layer):
        handles.append(block.register_forward_pre_hook(
            lambda m, args, kw, i=i: layer_inputs.__setitem__(i, args[0] if args else kw["hidden_states"]),
            with_kwargs=True))  # fmt: skip
    for key, m in modules.items():
        handles.append(m.register_forward_hook(lambda m, i, o, key=key: outputs.__setitem__(key, o)))
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        for h in handles:
            h.remove()
    steps_fn, alphas_fn = approximation_parameters(method)
    alphas = torch.tensor(alphas_fn(n_steps), dtype=outputs[(0, "query")].dtype)
    weights = torch.tensor(steps_fn(n_steps), dtype=alphas.dtype)
    result = {}
    for (layer, site), module in modules.items():
        y = outputs[(layer, site)].detach()
        h0 = layer_inputs[layer].detach()
        total = torch.zeros_like(y[0], dtype=torch.float64)
        for c0 in range(0, n_steps, step_chunk):
            a = alphas[c0 : c0 + step_chunk].to(y.device)
            w = weights[c0 : c0 + step_chunk].to(y.device)
            scaled = (a.view(-1, 1, 1) * y).requires_grad_(True)
            h = module.register_forward_hook(lambda m, i, o, s=scaled: s)
            try:
                logits = _run_from_layer(model, layer, h0.expand(len(a), -1, -1))
            finally:
                h.remove()
            (grad,) = torch.autograd.grad(logits[:, target].sum(), scaled)
            total += (w.view(-1, 1, 1) * grad).sum(0).double()
        result[(layer, site)] = (total * y[0].double()).cpu()
    return result
