"""Head-level attribution on the ESM-2 8M architecture: all layers from one integration.

Prints, from one run on this machine:
  - conductance at every layer's attention context from one set of passes vs one Captum
    LayerConductance integration per layer, as the original did (goal >= 0.8 x layers), with
    the largest relative difference between the two;
  - bytes per protein of the stored relevance (float32, float16) for the 8M and 650M geometries
    (6 x 20 and 33 x 20 heads, plus the embedding level), written as the pipeline writes it.

    python benchmarks/head_attribution.py [--length 256] [--steps 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from captum.attr import LayerConductance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import ESM2_8M  # noqa: E402

from plmxai.attribution.heads import head_relevance  # noqa: E402
from plmxai.model.esm import build_model  # noqa: E402
from plmxai.model.ig import (
    baseline_ids,  # noqa: E402
    from_embedding_output,  # noqa: E402
)
from plmxai.model.tokens import ESM2_ALPHABET  # noqa: E402
from plmxai.tables import ParquetStreamWriter, write_partitioned  # noqa: E402


def storage_bytes(layers: int, heads: int, length: int, dtype, n_proteins: int = 4) -> float:
    """Bytes per protein of the partitioned relevance dataset for one geometry."""
    rng = np.random.default_rng(0)
    letters = np.array(ESM2_ALPHABET[4:24], dtype=object)
    with tempfile.TemporaryDirectory() as tmp:
        chunk = Path(tmp) / "chunk.parquet"
        with ParquetStreamWriter(chunk) as w:
            for p in range(n_proteins):
                residues = letters[rng.integers(0, 20, length)]
                emb = pd.DataFrame(
                    {
                        "accession": f"P{p:05d}",
                        "layer": "embedding",
                        "head": np.int16(-1),
                        "position": np.arange(1, length + 1, dtype=np.int32),
                        "residue": residues,
                        "relevance": rng.normal(size=length).astype(dtype),
                    }
                )
                w.write(emb)
                w.write(
                    pd.DataFrame(
                        {
                            "accession": f"P{p:05d}",
                            "layer": np.repeat(np.arange(layers).astype(str), heads * length),
                            "head": np.tile(np.repeat(np.arange(heads, dtype=np.int16), length), layers),
                            "position": np.tile(np.arange(1, length + 1, dtype=np.int32), layers * heads),
                            "residue": np.tile(residues, layers * heads),
                            "relevance": rng.normal(size=layers * heads * length).astype(dtype),
                        }
                    )
                )
        write_partitioned([chunk], Path(tmp) / "relevance", "layer")
        size = sum(f.stat().st_size for f in (Path(tmp) / "relevance").rglob("*.parquet"))
    return size / n_proteins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model(
        {"source": "random", "architecture": ESM2_8M}, [str(i) for i in range(7)], seed=0
    ).eval()
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(4, 24, size=(1, args.length)))
    ids[0, 0], ids[0, -1] = 0, 2
    mask = torch.ones_like(ids)
    base = baseline_ids(ids, "pad", 1, 0, "bench")
    print(
        f"ESM-2 8M architecture ({n_layers} layers x {n_heads} heads), L={args.length}, {args.steps} steps, "
        f"{torch.get_num_threads()} threads"
    )

    with torch.no_grad():
        x = model.esm.embeddings(input_ids=ids, attention_mask=mask)
        b = model.esm.embeddings(input_ids=base[0], attention_mask=mask)
    forward = from_embedding_output(model, ids)

    # warm-up: the first passes of a process pay for allocation and kernel selection
    head_relevance(model, ids, 3, base, 25)
    LayerConductance(forward, model.esm.encoder.layer[0].attention.output.dense).attribute(
        x, baselines=b, target=3, n_steps=25, internal_batch_size=26, attribute_to_layer_input=True
    )

    t0 = time.perf_counter()
    ours, _ = head_relevance(model, ids, 3, base, args.steps)
    t_one = time.perf_counter() - t0

    t0 = time.perf_counter()
    worst = 0.0
    for i, layer in enumerate(model.esm.encoder.layer):
        ref = LayerConductance(forward, layer.attention.output.dense).attribute(
            x,
            baselines=b,
            target=3,
            n_steps=args.steps,
            method="gausslegendre",
            internal_batch_size=26,
            attribute_to_layer_input=True,
        )
        per_head = ref[0].detach().double().view(args.length, n_heads, -1).sum(-1).T.numpy()
        worst = max(worst, float(np.abs(ours[i] - per_head).max() / max(np.abs(per_head).max(), 1e-12)))
    t_per_layer = time.perf_counter() - t0
    ratio = t_per_layer / t_one
    print(
        f"head conductance: all layers in one integration {t_one:.1f} s; one Captum integration per layer "
        f"{t_per_layer:.1f} s; speed-up {ratio:.1f}x = {ratio / n_layers:.2f} x layers (goal >= 0.8 x layers); "
        f"max relative difference {worst:.1e}"
    )

    print("stored relevance per protein of 300 residues (partitioned Parquet, snappy):")
    for name, layers in (("ESM-2 8M", 6), ("ESM-2 650M", 33)):
        for dtype in (np.float32, np.float16):
            kb = storage_bytes(layers, 20, 300, dtype) / 1024
            print(f"  {name:10s} {layers * 20 + 1:4d} tracks, {np.dtype(dtype).name}: {kb:8.1f} KB")


if __name__ == "__main__":
    main()
