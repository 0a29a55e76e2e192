"""Training throughput of the ESM-2 8M architecture against the machine's matmul peak.

Prints, from one run on this machine:
  - the measured fp32 and bf16 matmul peak (GFLOP/s);
  - training throughput (sequences/s, tokens/s) at L = 128, 256, 512 and the achieved FLOP/s as
    a fraction of the fp32 peak (model FLOPs: 6 x matmul parameters x tokens + attention);
  - bf16 autocast against fp32 training, where the hardware has bf16;
  - length-bucketed against random batching on realistic lengths: padding and speed-up.

    python benchmarks/training_throughput.py [--device cuda] [--steps 6]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from plmxai.model.batching import collate
from plmxai.model.esm import build_model
from plmxai.model.training import TrainOptions, epoch_plan, padding_fraction

ESM2_8M = {"hidden_size": 320, "num_layers": 6, "num_heads": 20, "intermediate_size": 1280}
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device, dtype, n=2048, reps=10) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def train_flops(model, batch: int, length: int) -> float:
    """Forward+backward FLOPs of one step: 3 x (2 x matmul params x tokens + attention)."""
    c = model.config
    matmul_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    tokens = batch * length
    attention = 4 * length * length * c.hidden_size * c.num_hidden_layers * batch
    return 3 * (2 * matmul_params * tokens + attention)


def step_time(model, optim, ids, mask, labels, dtype, steps) -> float:
    device = ids.device
    times = []
    for i in range(steps + 2):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        sync(device)
        if i >= 2:  # warm-up steps excluded
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def random_batch(batch, length, device, rng):
    ids = torch.as_tensor(rng.integers(4, 24, size=(batch, length)), device=device)
    ids[:, 0], ids[:, -1] = 0, 2
    return ids, torch.ones_like(ids), torch.as_tensor(rng.integers(0, 7, size=batch), device=device)


def realistic_lengths(n, rng) -> np.ndarray:
    tsv = SHARED / "uniprot" / "swissprot_enzymes_sites.tsv"
    if tsv.exists():
        import pandas as pd

        lengths = pd.read_csv(tsv, sep="\t", usecols=["Length"])["Length"].to_numpy()
        source = "Swiss-Prot enzymes (../shared/data)"
    else:
        lengths = rng.lognormal(np.log(350), 0.5, size=5000).astype(int)
        source = "log-normal, median 350"
    return np.clip(rng.choice(lengths, size=n), 30, 510), source


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    # the best over sizes: a peak set too low would flatter the model's fraction of it
    sizes = (1024, 2048, 4096)
    peak32 = max(matmul_peak(device, torch.float32, n) for n in sizes)
    has_bf16 = device.type == "cpu" or torch.cuda.is_bf16_supported()
    peak16 = max(matmul_peak(device, torch.bfloat16, n) for n in sizes) if has_bf16 else float("nan")
    print(
        f"matmul peak: fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s "
        f"(bf16/fp32 = {peak16 / peak32:.2f})"
    )

    model = build_model({"source": "random", "architecture": ESM2_8M}, [str(i) for i in range(7)], seed=0).to(
        device
    )
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    print("\nESM-2 8M architecture, batch", args.batch)
    print(f"{'L':>5} {'precision':>9} {'seq/s':>8} {'tokens/s':>10} {'GFLOP/s':>9} {'of fp32 peak':>12}")
    fp32_at = {}
    for length in (128, 256, 512):
        ids, mask, labels = random_batch(args.batch, length, device, rng)
        flops = train_flops(model, args.batch, length)
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            if dtype is not None and not has_bf16:
                continue
            t = step_time(model, optim, ids, mask, labels, dtype, args.steps)
            if dtype is None:
                fp32_at[length] = t
            print(
                f"{length:>5} {name:>9} {args.batch / t:>8.1f} {args.batch * length / t:>10.0f} "
                f"{flops / t / 1e9:>9.0f} {flops / t / peak32:>12.2f}"
            )

    # length-bucketed vs random batching on realistic lengths, same proteins, same model
    lengths, source = realistic_lengths(96, rng)
    labels = rng.integers(0, 7, size=len(lengths))
    print(f"\nbatching, {len(lengths)} proteins with lengths from {source}, fp32, batch {args.batch}")
    times = {}
    for batching in ("random", "length"):
        opt = TrainOptions(batch_size=args.batch, batching=batching, bucket_batches=50, seed=0)
        plan = epoch_plan(lengths + 2, labels, opt, epoch=1)
        t0 = time.perf_counter()
        for pos in plan:
            ids, mask = collate(
                [np.concatenate([[0], rng.integers(4, 24, size=n), [2]]) for n in lengths[pos]]
            )
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels[pos], device=device)).backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
        sync(device)
        times[batching] = time.perf_counter() - t0
        print(
            f"  {batching:>6}: padding {100 * padding_fraction(lengths + 2, plan):5.1f}%, epoch {times[batching]:.1f} s"
        )
    print(f"  speed-up of length batching: {times['random'] / times['length']:.2f}x")
    print(
        f"\nfp32 at L=256 reaches {train_flops(model, args.batch, 256) / fp32_at[256] / peak32:.0%} "
        "of the fp32 matmul peak (goal: 50%)"
    )


if __name__ == "__main__":
    main()
