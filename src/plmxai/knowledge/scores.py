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
from tqdm import tqdm

from plmxai.knowledge.activation import class_score_table, residue_mask
from plmxai.model.esm import SITES, cls_only_last_layer, fused_gelu_backward, site_modules
from plmxai.model.ig import DEFAULT_MEMORY_GB, chunk_rows, path_conductance, target_class, target_output
from plmxai.stats import benjamini_hochberg


def conductance_all_sites(
    model,
    ids: torch.Tensor,
    target: int,
    n_steps: int = 50,
    method: str = "gausslegendre",
    step_chunk: int | None = None,
    output: str = "logit",
    completeness: dict | None = None,
    memory_gb: float | None = DEFAULT_MEMORY_GB,
) -> dict[tuple[int, str], torch.Tensor]:
    """Conductance of every neuron of every site for one protein (ids: 1 x T, no padding).

    Returns (layer, site) -> tensor (T, neurons): per-token conductance; sum it over residue
    tokens for a neuron score. Matches Captum LayerConductance per site (same method, steps).
    A single site is not a cut of the network, so its conductances need not add up to
    F(x) - F(baseline); the embedding output is one. With `completeness` (a dict), the same
    quadrature's sum over the embedding output is stored with F(x) and F(baseline), the check
    that the path integral converged.
    """
    points = {k: (m, "output") for k, m in site_modules(model).items()}
    return path_conductance(
        model, ids, target, points, n_steps, method, step_chunk, output, completeness, memory_gb=memory_gb
    )


ESTIMATORS = ("knowledge_attribution", "conductance")


def ig_scores(
    model,
    tokens: pd.DataFrame,
    estimators=ESTIMATORS,
    ka_steps: int = 20,
    conductance_steps: int = 50,
    method: str = "gausslegendre",
    target: str = "true",
    output: str = "logit",
    memory_gb: float | None = DEFAULT_MEMORY_GB,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class IG scores of every neuron by each estimator, streamed over proteins.

    A protein's score of a neuron is its attribution summed over residue tokens; the class
    score is the mean over the class's proteins. Only per-class sums are kept, so memory does
    not grow with the number of proteins.
    Returns (scores: method, layer, site, neuron, class_id, label, score, n_proteins;
    completeness: one row per protein and estimator, and per site for knowledge attribution).
    """
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown:
        raise ValueError(f"unknown IG estimator(s) {sorted(unknown)}; choose from {ESTIMATORS}")
    device = next(model.parameters()).device
    n_classes = model.config.num_labels
    sums: dict = {}
    counts = np.zeros(n_classes)
    comp_rows = []
    progress = tqdm(total=len(tokens), desc="IG neuron scores", mininterval=10, miniters=1)
    for rec in tokens.itertuples(index=False):
        ids = torch.as_tensor(np.asarray(rec.input_ids, dtype=np.int64), device=device)[None]
        t = target_class(model, ids, rec.label_id, target)
        rmask = residue_mask(ids, torch.ones_like(ids))[0].cpu()
        base = {"accession": rec.accession, "label_id": int(rec.label_id), "target_id": t}
        for est in estimators:
            if est == "conductance":
                comp: dict = {}
                attr = conductance_all_sites(
                    model,
                    ids,
                    t,
                    conductance_steps,
                    method,
                    output=output,
                    completeness=comp,
                    memory_gb=memory_gb,
                )
                comp_rows.append({**base, "method": est, "layer": -1, "site": "embedding", **comp})
            else:
                comp = {}
                attr = knowledge_attribution_all_sites(
                    model, ids, t, ka_steps, method, output=output, completeness=comp, memory_gb=memory_gb
                )
                comp_rows += [
                    {
                        **base,
                        "method": est,
                        "layer": lay,
                        "site": site,
                        "f_input": fx,
                        "f_baseline": f0,
                        "attribution_sum": total,
                    }
                    for (lay, site), (fx, f0, total) in comp.items()
                ]
            for key, a in attr.items():
                acc = sums.setdefault((est, *key), np.zeros((n_classes, a.shape[1])))
                acc[rec.label_id] += a[rmask].sum(0).numpy()
        counts[rec.label_id] += 1
        progress.update()
    progress.close()
    by_method: dict = {}
    for (est, layer, site), total in sums.items():
        by_method.setdefault(est, {})[(layer, site)] = total
    scores = pd.concat(
        [
            class_score_table(t, counts, model.config.id2label, {"method": est})
            for est, t in sorted(by_method.items())
        ],
        ignore_index=True,
    )
    comp = pd.DataFrame(comp_rows)
    if len(comp):
        comp["delta"] = comp["attribution_sum"] - (comp["f_input"] - comp["f_baseline"])
        comp["relative_error"] = comp["delta"].abs() / (comp["f_input"] - comp["f_baseline"]).abs().clip(
            lower=1e-12
        )
    return scores, comp


SELECTION_SCOPES = ("all", "layer", "site")


def neuron_groups(index: pd.DataFrame, within: str) -> list[np.ndarray]:
    """Positions of the neurons of each group: all, each layer, or each site of each layer
    (in order of first appearance)."""
    if within not in SELECTION_SCOPES:
        raise ValueError(f"selection scope must be one of {SELECTION_SCOPES}, got {within!r}")
    if within == "all":
        return [np.arange(len(index))]
    keys = (index["layer"].astype(str) + ("/" + index["site"] if within == "site" else "")).to_numpy()
    return [np.flatnonzero(keys == k) for k in pd.unique(keys)]


def select_top(scores: pd.Series, index: pd.DataFrame, fraction: float, within: str = "all") -> np.ndarray:
    """Boolean mask of the top `fraction` of neurons by score: over all neurons, within each
    layer, or within each site of each layer (scores whose scale differs between sites, such as
    activations, are then compared only where they share one).

    Exactly round(fraction x n) neurons whatever the scope, so that every method's selection has
    the size of the random draws it is compared with: each group gets its share rounded down,
    and the neurons left over go to the groups with the largest remainders (ties: the first
    groups). Ties in score at a cut are broken by position.
    """
    s = scores.to_numpy()
    chosen = np.zeros(len(s), dtype=bool)
    groups = neuron_groups(index, within)
    quota = np.array([fraction * len(g) for g in groups])
    counts = np.floor(quota + 1e-9).astype(int)
    left = int(round(fraction * len(s))) - counts.sum()
    counts[np.argsort(-(quota - counts), kind="stable")[:left]] += 1
    for g, k in zip(groups, counts):
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
            rows.append(
                {
                    "site": site,
                    "layer": str(layer),
                    "neurons": n,
                    "selected": a,
                    "density": (a / n) / overall if overall else np.nan,
                    "p_value": p,
                }
            )
    out = pd.DataFrame(rows)
    out["q_value"] = benjamini_hochberg(out["p_value"].to_numpy())
    return out


def agreement(a: pd.Series, b: pd.Series, fractions=(0.01, 0.05, 0.1)) -> dict:
    """Spearman correlation of two scores over neurons and Jaccard overlap of their top-k%."""
    constant = a.nunique() < 2 or b.nunique() < 2  # e.g. the weight change of a frozen encoder
    out = {"spearman": np.nan if constant else float(sps.spearmanr(a, b).statistic)}
    for f in fractions:
        k = max(1, int(round(f * len(a))))
        ta = set(np.argsort(-a.to_numpy(), kind="stable")[:k])
        tb = set(np.argsort(-b.to_numpy(), kind="stable")[:k])
        out[f"jaccard_top{f:g}"] = len(ta & tb) / len(ta | tb)
    return out


def neuron_index(model) -> pd.DataFrame:
    """One row per neuron: layer, site, neuron, in site_modules order."""
    rows = [
        (layer, site, j) for (layer, site), m in site_modules(model).items() for j in range(m.out_features)
    ]
    return pd.DataFrame(rows, columns=["layer", "site", "neuron"])


def score_vector(scores: pd.DataFrame, index: pd.DataFrame, reduce: str = "max_abs") -> pd.Series:
    """One score per neuron from per-class scores: max over classes of |score| (default) or
    mean over classes of |score|, aligned to `index`."""
    a = scores.assign(abs_score=scores["score"].abs())
    agg = a.groupby(["layer", "site", "neuron"])["abs_score"].agg("max" if reduce == "max_abs" else "mean")
    return index.join(agg, on=["layer", "site", "neuron"])["abs_score"].fillna(0.0).reset_index(drop=True)


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


@fused_gelu_backward()
def knowledge_attribution_all_sites(
    model,
    ids: torch.Tensor,
    target: int,
    n_steps: int = 20,
    method: str = "gausslegendre",
    step_chunk: int | None = None,
    output: str = "logit",
    completeness: dict | None = None,
    memory_gb: float | None = DEFAULT_MEMORY_GB,
) -> dict[tuple[int, str], torch.Tensor]:
    """Dai et al.'s knowledge attribution of every neuron of every site for one protein
    (ids: 1 x T): the site's output y is scaled from 0 to y, and attribution =
    y x integral of dF/d(alpha y). F is the target logit. The layers before a site are computed
    once per protein: each integral starts from the cached input of the site's layer.
    Equals Captum IntegratedGradients on the site output with a zero baseline. With
    `completeness` (a dict), (layer, site) -> (F(x), F(site output zeroed), sum of the site's
    attributions) is stored: the site is a cut of its own path, so the sum should match.
    """
    if model.config.position_embedding_type != "rotary":
        raise ValueError("knowledge attribution from cached layer inputs needs a rotary ESM model")
    if step_chunk is None:
        step_chunk = chunk_rows(model, ids.shape[1], memory_gb)
    model.eval()
    modules = site_modules(model)
    layer_inputs, outputs, handles = {}, {}, []
    for i, block in enumerate(model.esm.encoder.layer):
        handles.append(
            block.register_forward_pre_hook(
                lambda m, args, kw, i=i: layer_inputs.__setitem__(
                    i, args[0] if args else kw["hidden_states"]
                ),
                with_kwargs=True,
            )
        )
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
    with cls_only_last_layer(model):
        for (layer, site), module in modules.items():
            y = outputs[(layer, site)].detach()
            h0 = layer_inputs[layer].detach()
            total = torch.zeros_like(y[0], dtype=torch.float64)
            for c0 in range(0, n_steps, step_chunk):
                a = alphas[c0 : c0 + step_chunk].to(y.device)
                w = weights[c0 : c0 + step_chunk].to(y.device)
                scaled = (a.view(-1, 1, 1) * y).requires_grad_(True)
                # a site of the last layer computes the <cls> position only (cls_only_last_layer)
                h = module.register_forward_hook(lambda m, i, o, s=scaled: s[:, : o.shape[1]])
                try:
                    logits = _run_from_layer(model, layer, h0.expand(len(a), -1, -1))
                finally:
                    h.remove()
                (grad,) = torch.autograd.grad(target_output(logits, target, output).sum(), scaled)
                total += (w.view(-1, 1, 1) * grad).sum(0).double()
            result[(layer, site)] = (total * y[0].double()).cpu()
            if completeness is not None:
                ends = torch.stack([y[0], torch.zeros_like(y[0])])
                h = module.register_forward_hook(lambda m, i, o, s=ends: s[:, : o.shape[1]])
                try:
                    with torch.no_grad():
                        f = target_output(
                            _run_from_layer(model, layer, h0.expand(2, -1, -1)), target, output
                        ).double()
                finally:
                    h.remove()
                completeness[(layer, site)] = (float(f[0]), float(f[1]), float(result[(layer, site)].sum()))
    return result
