"""Attention analysis on the ESM-2 8M architecture (random weights), on real structures.

Prints, from one run on this machine, for chains of ../shared/data/structures (as proteins):
  - a plain inference pass (sdpa) over the proteins: the baseline;
  - the eager pass that returns every attention map, and the whole per-protein analysis
    (attention to 20 amino acids and to contacts, with the permutation nulls): time and the
    ratio to the baseline;
  - the share of that time spent on the contact null (diagonal shifts).

    python benchmarks/attention_analysis.py [--proteins 40] [--shifts 199]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import ESM2_8M  # noqa: E402

from plmxai.attention.analysis import AMINO_ACIDS, PropertyCounts, attention_maps, residue_properties  # noqa: E402
from plmxai.data.structures import mapped_contacts  # noqa: E402
from plmxai.model.batching import batches  # noqa: E402
from plmxai.model.esm import build_model  # noqa: E402
from plmxai.model.tokens import esm2_tokenizer, tokenize_proteins  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proteins", type=int, default=40)
    ap.add_argument("--shifts", type=int, default=199)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    torch.set_num_threads(2)
    chains = pd.read_csv(DATA / "chains.tsv", sep="\t")
    chains = chains[chains["n_ca"] <= 400].sort_values(["file", "chain"]).head(args.proteins)
    prot = pd.DataFrame(
        {
            "accession": [f"S{i}" for i in range(len(chains))],
            "sequence": chains["sequence_from_CA_records"].to_numpy(),
            "label": "1",
            "label_id": 0,
            "split": "test",
        }
    )
    tokens, _ = tokenize_proteins(prot, esm2_tokenizer())
    model = build_model({"source": "random", "architecture": ESM2_8M}, ["1", "2"], seed=0).eval()
    n_res = int(tokens["n_residues"].sum())
    print(
        f"ESM-2 8M geometry (random weights), {len(tokens)} chains, {n_res} residues "
        f"(median length {int(tokens['n_residues'].median())}), {args.shifts} null draws, 2 threads"
    )

    def plain():
        with torch.no_grad():
            for _, ids, mask in batches(tokens, args.batch_size):
                model.esm(input_ids=ids, attention_mask=mask)

    plain()  # warm-up
    t0 = time.perf_counter()
    plain()
    base = time.perf_counter() - t0

    contacts = {}
    for r, acc, seq in zip(chains.itertuples(index=False), prot["accession"], prot["sequence"]):
        contacts[acc] = mapped_contacts(seq, DATA / "pdb" / r.file, r.chain)[1:]
    list(attention_maps(model, tokens.head(2), args.batch_size))  # warm-up
    residue_counts = PropertyCounts(6, 20, list(AMINO_ACIDS), draws=args.shifts, seed=0)
    contact_counts = PropertyCounts(6, 20, [], draws=args.shifts, seed=0)
    maps = residue_time = contact_time = 0.0
    t0 = t_maps = time.perf_counter()
    for row, att in attention_maps(model, tokens, args.batch_size):
        maps += time.perf_counter() - t_maps
        acc, seq = prot["accession"].iloc[row], prot["sequence"].iloc[row]
        t1 = time.perf_counter()
        residue_counts.add(acc, att, residue_properties(seq, {}, []))
        t2 = time.perf_counter()
        contact_counts.add(acc, att, np.zeros((len(seq), 0)), *contacts[acc])
        t3 = time.perf_counter()
        residue_time, contact_time = residue_time + t2 - t1, contact_time + t3 - t2
        t_maps = time.perf_counter()
    total = time.perf_counter() - t0
    table = contact_counts.table(min_pairs=100)
    print(f"plain inference (sdpa):            {base:7.2f} s")
    print(f"eager maps only:                   {maps:7.2f} s  ({maps / base:.1f}x the plain pass)")
    print(
        f"whole analysis (maps + counts):    {total:7.2f} s  ({total / base:.1f}x the plain pass, "
        f"{1000 * total / len(tokens):.0f} ms per protein)"
    )
    print(f"  residue properties with null:    {residue_time:7.2f} s  ({residue_time / total:.0%})")
    print(f"  contacts with diagonal-shift null: {contact_time:5.2f} s  ({contact_time / total:.0%})")
    c = table[table["property"] == "contact"]
    print(f"contact background {c['background'].iloc[0]:.4f}; heads tested {int(c['tested'].sum())} of 120")


if __name__ == "__main__":
    main()
