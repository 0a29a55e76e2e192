"""The integrated-gradients engine shared by the knowledge, attribution and attention stages.

One set of forward/backward passes along the straight path from a baseline to the input, in
the space of the embedding module's output (`esm.embeddings`, replaced by a forward hook:
`inputs_embeds` would skip ESM's token-dropout scaling and mask zeroing), gives the
conductance at any number of points of the network at once (METHODS.md sections 1 and 2), with
the completeness check that the path integral converged. Baselines: `<cls> <pad>... <eos>`
(never `<mask>`, which token dropout zeroes), or seeded shuffles of the protein's own residues.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from captum.attr._utils.approximation_methods import approximation_parameters

from plmxai.model.esm import cls_only_last_layer, cls_positions, fused_gelu_backward

BASELINES = ("pad", "shuffled")


OUTPUTS = ("logit", "probability")

# Memory of one integration chunk. What one token of one step holds until the backward pass, in
# units of 4 bytes x layers x (4 hidden + intermediate): measured on the real ESM-2 8M at 1,024
# tokens (benchmarks/ig_memory.py), 1.9-2.3 for head conductance, 3.0-4.1 for embedding IG
# (Captum), 3.1-4.4 for conductance at every site and 4.2 for knowledge attribution (the cached
# site outputs too), the spread between runs the allocator's; one factor above all of them keeps
# one rule for every integration.
TOKEN_STEP_FACTOR = 6.0
# what a job holds besides its chunks: measured up to 1.6 GB in knowledge_scores at 1,024 tokens
# (the interpreter and torch 0.6 GB, the model, every site's cached output and float64
# accumulators, the allocator's slack)
RESERVE_BYTES = int(1.75 * 2**30)
# two integration jobs at once on a 2-core, 24 GB machine, with room for the system
DEFAULT_MEMORY_GB = 4.0
GPU_FREE_FRACTION = 0.8


def token_step_bytes(model, n_tokens: int) -> int:
    """Bytes one token of one integration step holds for the backward pass."""
    c = model.config
    per_layer = 4 * c.hidden_size + c.intermediate_size
    if getattr(c, "_attn_implementation", "eager") == "eager":
        # eager attention keeps the heads x tokens weights (and their dropout input) per token
        per_layer += 2 * c.num_attention_heads * n_tokens
    return int(TOKEN_STEP_FACTOR * 4 * c.num_hidden_layers * per_layer)


def memory_budget(model, memory_gb: float | None = DEFAULT_MEMORY_GB) -> int:
    """Bytes an integration chunk may use: on a GPU, a share of its free memory; on the CPU,
    `memory_gb` less what the job holds besides (RESERVE_BYTES, twice the weights)."""
    p = next(model.parameters())
    if p.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(p.device)
        return int(GPU_FREE_FRACTION * free)
    weights = sum(t.numel() * t.element_size() for t in model.parameters())
    gb = DEFAULT_MEMORY_GB if memory_gb is None else memory_gb
    return int(gb * 2**30) - RESERVE_BYTES - 2 * weights


def chunk_rows(model, n_tokens: int, memory_gb: float | None = DEFAULT_MEMORY_GB) -> int:
    """Sequences of `n_tokens` (steps, or proteins x steps) one forward/backward pass may hold
    within the memory budget; at least 1 (a single sequence is the least an integration needs:
    a budget below it is raised to it, which memory_check says)."""
    return max(1, memory_budget(model, memory_gb) // (n_tokens * token_step_bytes(model, n_tokens)))


def memory_check(model, n_tokens: int, memory_gb: float | None = DEFAULT_MEMORY_GB) -> str | None:
    """A warning when even one sequence of `n_tokens` exceeds the budget, else None."""
    need = n_tokens * token_step_bytes(model, n_tokens)
    have = memory_budget(model, memory_gb)
    if need <= have:
        return None
    return (
        f"one integration step of {n_tokens} tokens needs about {need / 2**30:.1f} GB, more than the "
        f"{max(have, 0) / 2**30:.1f} GB left of memory_gb {memory_gb} after the model: raise memory_gb"
    )


def pad_baseline(ids: torch.Tensor, mask: torch.Tensor, pad_id: int = 1) -> torch.Tensor:
    """Same shape as `ids`: every residue replaced by <pad>, <cls>/<eos>/padding kept."""
    base = ids.clone()
    lengths = mask.sum(1)
    for i, n in enumerate(lengths.tolist()):
        base[i, 1 : n - 1] = pad_id
    return base


def baseline_ids(
    ids: torch.Tensor, kind: str, n: int, seed: int, accession: str, pad_id: int = 1
) -> list[torch.Tensor]:
    """Baselines for one protein (ids: 1 x T, <cls> ... <eos>, no padding)."""
    if kind == "pad":
        return [pad_baseline(ids, torch.ones_like(ids), pad_id)]
    if kind != "shuffled":
        raise ValueError(f"attribution baseline must be one of {BASELINES}, got {kind!r}")
    rng = np.random.default_rng([seed, zlib.crc32(accession.encode())])
    out = []
    for _ in range(n):
        b = ids.clone()
        b[0, 1:-1] = ids[0, 1:-1][torch.as_tensor(rng.permutation(ids.shape[1] - 2), device=ids.device)]
        out.append(b)
    return out


def target_output(logits: torch.Tensor, target: int, output: str = "logit") -> torch.Tensor:
    """F per row: the target logit, or the target probability (Dai et al. use the latter)."""
    if output == "logit":
        return logits[:, target]
    if output == "probability":
        return torch.softmax(logits, dim=-1)[:, target]
    raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


def _embedding_path_hook(model, path: torch.Tensor):
    """Replace the embedding output by `path` (steps x T x D) for a batch of steps."""

    def hook(_m, _inp, out):
        return path

    return model.esm.embeddings.register_forward_hook(hook)


def from_embedding_output(model, ids: torch.Tensor):
    """The model from its embedding output on, for one protein (ids: 1 x T, no padding):
    emb (n x T x D) -> logits (n x C). Also the forward function to give Captum."""
    mask = torch.ones_like(ids)

    def forward(emb: torch.Tensor) -> torch.Tensor:
        h = _embedding_path_hook(model, emb)
        try:
            return model(input_ids=ids.expand(len(emb), -1), attention_mask=mask.expand(len(emb), -1)).logits
        finally:
            h.remove()

    return forward


def target_class(model, ids: torch.Tensor, label_id: int, target: str) -> int:
    """The class attributed for one protein: its label ("true") or the model's prediction."""
    if target == "true":
        return int(label_id)
    if target == "predicted":
        with torch.no_grad():
            return int(model(input_ids=ids).logits.argmax(-1))
    raise ValueError(f"target must be 'true' or 'predicted', got {target!r}")


@fused_gelu_backward()
def path_conductance(
    model,
    ids: torch.Tensor,
    target: int,
    points: dict,
    n_steps: int = 50,
    method: str = "gausslegendre",
    step_chunk: int | None = None,
    output: str = "logit",
    completeness: dict | None = None,
    baseline_ids: torch.Tensor | None = None,
    memory_gb: float | None = DEFAULT_MEMORY_GB,
    input_ig: bool = False,
) -> dict:
    """Conductance at many points of the network from one set of passes along the input path.

    points: key -> (module, "output" | "input"): the module's output, or its first input (the
    attention context is the input of `attention.output.dense`); the latter equals Captum
    LayerConductance with attribute_to_layer_input=True. Returns key -> (T, features) float64.
    The baseline is `<cls> <pad>... <eos>` unless `baseline_ids` (1 x T) is given. Steps are
    taken `step_chunk` at a time, by default as many as `memory_gb` holds (chunk_rows); the
    result does not depend on it beyond rounding.
    With `input_ig`, key "input" holds the integrated gradients of the path's own input (the
    embedding output, T x D) from the same passes: the Gauss-Legendre rule at the path's
    n_steps + 1 points, which is Captum's LayerIntegratedGradients on the embeddings with
    n_steps + 1 steps.
    """
    if step_chunk is None:
        step_chunk = chunk_rows(model, ids.shape[1], memory_gb)
    model.eval()
    mask = torch.ones_like(ids)
    if baseline_ids is None:
        baseline_ids = pad_baseline(ids, mask, model.config.pad_token_id)
    with torch.no_grad():
        x = model.esm.embeddings(input_ids=ids, attention_mask=mask)
        b = model.esm.embeddings(input_ids=baseline_ids, attention_mask=mask)
    steps_fn, alphas_fn = approximation_parameters(method)
    alphas = torch.tensor(alphas_fn(n_steps + 1), dtype=x.dtype, device=x.device)
    weights = torch.tensor(steps_fn(n_steps + 1), dtype=x.dtype, device=x.device)
    forward = from_embedding_output(model, ids)
    captured: dict = {}

    def keep(key, t):
        t.retain_grad()
        captured[key] = t

    handles = []
    for key, (module, where) in points.items():
        if where == "output":
            handles.append(module.register_forward_hook(lambda _m, _i, o, k=key: keep(k, o)))
        elif where == "input":
            handles.append(module.register_forward_pre_hook(lambda _m, i, k=key: keep(k, i[0])))
        else:
            raise ValueError(f"conductance point must be at a module's 'output' or 'input', got {where!r}")
    # only gradients with respect to the points are needed: parameter gradients would cost
    # about a third of the backward pass
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    out: dict = {}
    prev_eval: dict = {}
    prev_grad: dict = {}
    path_sum, prev_path = 0.0, None
    grad_sum = torch.zeros(x.shape[1:], dtype=torch.float64, device=x.device) if input_ig else None
    with cls_only_last_layer(model):
        try:
            for c0 in range(0, n_steps + 1, step_chunk):
                a = alphas[c0 : c0 + step_chunk]
                path = (b + a.view(-1, 1, 1) * (x - b)).detach().requires_grad_(True)
                target_output(forward(path), target, output).sum().backward()
                p, g = path.detach(), path.grad
                if prev_path is not None:
                    path_sum += float((prev_path[1] * (p[0] - prev_path[0])).double().sum())
                path_sum += float((g[:-1] * (p[1:] - p[:-1])).double().sum())
                prev_path = (p[-1], g[-1])
                if input_ig:
                    grad_sum += (weights[c0 : c0 + step_chunk].view(-1, 1, 1) * g).sum(0).double()
                for key, o in captured.items():
                    ev, gr = o.detach(), o.grad
                    # accumulated where the model runs: a copy to the host per site and chunk
                    # would synchronise a GPU 60 times per protein
                    acc = out.setdefault(
                        key, torch.zeros(ev.shape[1:], dtype=torch.float64, device=ev.device)
                    )
                    if key in prev_eval:  # the step pair across the chunk boundary
                        acc += (prev_grad[key] * (ev[0] - prev_eval[key])).double()
                    # gradient at step k times the change from step k to k+1 (Captum's rule)
                    acc += (gr[:-1] * (ev[1:] - ev[:-1])).sum(0).double()
                    prev_eval[key], prev_grad[key] = ev[-1], gr[-1]
                captured.clear()
        finally:
            for h in handles:
                h.remove()
            for p in trainable:
                p.requires_grad_(True)
    if completeness is not None:
        with torch.no_grad():
            f = target_output(forward(torch.cat([x, b])), target, output).double()
        completeness.update(f_input=float(f[0]), f_baseline=float(f[1]), attribution_sum=path_sum)
    # the last layer's sites computed the <cls> position only: the others are exactly zero
    result = {k: cls_positions(v, ids.shape[1]).cpu() for k, v in out.items()}
    if input_ig:
        result["input"] = (grad_sum * (x - b)[0].double()).cpu()
    return result
