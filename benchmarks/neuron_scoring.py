"""Neuron scoring on the ESM-2 8M architecture (or --config-dir): one pass for all 30 sites against Captum.

Prints, from one run on this machine (L=256, 50 Gauss-Legendre steps by default):
  - one-pass conductance of all sites vs one Captum LayerConductance call per site (goal >= 25x),
    with the largest relative difference between the two;
  - activation scoring in one hooked pass vs one Captum LayerActivation call per site;
  - the one pass against its FLOP limit: steps x forward+backward FLOPs / measured fp32 matmul
    peak (goal <= 1.5x).

    python benchmarks/neuron_scoring.py [--length 256] [--steps 50] [--captum-sites 30] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from captum.attr import LayerActivation, LayerConductance
from transformers.models.esm import modeling_esm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import ESM2_8M, matmul_peak, sync, train_flops  # noqa: E402

import plmxai.model.esm  # noqa: E402
from plmxai.knowledge.scores import conductance_all_sites  # noqa: E402
from plmxai.model.esm import build_model, site_modules  # noqa: E402
from plmxai.model.ig import (
    from_embedding_output,  # noqa: E402
    pad_baseline,  # noqa: E402
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--captum-sites", type=int, default=0, help="Captum calls timed (0: every site)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (fp32, TF32 off: the scores' precision)")
    ap.add_argument(
        "--config-dir", help="an ESM-2 config folder (../shared/data/esm2_configs/*) instead of 8M"
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    spec = (
        {"source": "random", "config_dir": args.config_dir}
        if args.config_dir
        else {"source": "random", "architecture": ESM2_8M}
    )
    model = build_model(spec, [str(i) for i in range(7)], seed=0)
    model = model.to(device).eval()
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(4, 24, size=(1, args.length)))
    ids[0, 0], ids[0, -1] = 0, 2
    ids = ids.to(device)
    mask = torch.ones_like(ids)
    sites = site_modules(model)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    )
    name = Path(args.config_dir).name if args.config_dir else "ESM-2 8M architecture"
    print(
        f"{name} ({model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}), L={args.length}, {args.steps} steps, {len(sites)} sites, "
        f"{device.type}: {where}"
    )

    with torch.no_grad():
        x = model.esm.embeddings(input_ids=ids, attention_mask=mask)
        b = model.esm.embeddings(input_ids=pad_baseline(ids, mask), attention_mask=mask)
    forward = from_embedding_output(model, ids)

    # warm-up with the timed shapes: the first passes of a process pay for allocation and
    # kernel selection, per shape
    conductance_all_sites(model, ids, target=3, n_steps=args.steps)
    LayerConductance(forward, next(iter(sites.values()))).attribute(
        x, baselines=b, target=3, n_steps=args.steps, method="gausslegendre", internal_batch_size=16
    )

    def timed_pass(repeats=3):
        times = []
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            result = conductance_all_sites(model, ids, target=3, n_steps=args.steps)
            sync(device)
            times.append(time.perf_counter() - t0)
        return result, float(np.median(times))

    ours, t_one = timed_pass()
    # the same pass with autograd differentiating ESM's GELU op by op, as before the fused
    # backward (plmxai.model.esm.fused_gelu_backward): swap the function it installs
    fused = plmxai.model.esm._EsmGelu
    plmxai.model.esm._EsmGelu = SimpleNamespace(apply=modeling_esm.gelu)
    try:
        _, t_autograd_gelu = timed_pass()
    finally:
        plmxai.model.esm._EsmGelu = fused
    print(
        f"one pass, median of 3: {t_one:.2f} s with the fused GELU backward, "
        f"{t_autograd_gelu:.2f} s with autograd's ({t_autograd_gelu / t_one:.2f}x)"
    )

    keys = list(sites)[: args.captum_sites or None]
    t0 = time.perf_counter()
    worst, worst_key = 0.0, None
    for key in keys:
        ref = LayerConductance(forward, sites[key]).attribute(
            x, baselines=b, target=3, n_steps=args.steps, method="gausslegendre", internal_batch_size=16
        )
        r = ref[0].detach().double().cpu()
        diff = float((ours[key] - r).abs().max() / r.abs().max().clamp(min=1e-12))
        if diff > worst:
            worst, worst_key = diff, key
    sync(device)
    t_captum = (time.perf_counter() - t0) * len(sites) / len(keys)
    print(
        f"conductance: one pass {t_one:.1f} s; Captum LayerConductance per site "
        f"{t_captum:.1f} s{' (extrapolated)' if len(keys) < len(sites) else ''}; "
        f"speed-up {t_captum / t_one:.1f}x (goal 25x); max relative difference {worst:.1e} "
        f"(layer {worst_key[0]} {worst_key[1]})"
    )

    tokens = torch.as_tensor(rng.integers(4, 24, size=(8, args.length)), device=device)
    sync(device)
    t0 = time.perf_counter()
    captured = {}
    hs = [
        m.register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o.mean(1)))
        for k, m in sites.items()
    ]
    with torch.no_grad():
        model(input_ids=tokens)
    for h in hs:
        h.remove()
    sync(device)
    t_act_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in sites.values():
        LayerActivation(lambda t: model(input_ids=t).logits, m).attribute(tokens)
    sync(device)
    t_act_captum = time.perf_counter() - t0
    print(
        f"activations (8 proteins): one hooked pass {t_act_one:.2f} s; Captum LayerActivation per "
        f"site {t_act_captum:.2f} s; speed-up {t_act_captum / t_act_one:.1f}x"
    )

    sizes = (1024, 2048) if device.type == "cpu" else (2048, 4096, 8192)
    peak = max(matmul_peak(device, torch.float32, n) for n in sizes)
    # train_flops counts forward+backward of the whole model for a batch; one step is one sequence
    limit = (args.steps + 1) * train_flops(model, 1, args.length) / peak
    print(
        f"one pass vs its FLOP limit ({args.steps + 1} forward+backward passes at "
        f"{peak / 1e9:.0f} GFLOP/s = {limit:.2f} s): {t_one / limit:.2f}x (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
