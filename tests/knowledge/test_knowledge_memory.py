"""Knowledge-neuron scoring streams over proteins: its peak memory does not grow with them."""

import numpy as np
import pandas as pd

from tests.conftest import peak_rss_kb

SCRIPT = """
import resource, sys
from plmxai.stages.knowledge import knowledge_scores
knowledge = {
    "split": "train", "max_proteins": 0, "estimators": ["knowledge_attribution", "conductance"],
    "ka_steps": 4, "conductance_steps": 8, "method": "gausslegendre", "target": "true",
    "output": "logit", "completeness_tolerance": 0.05}
knowledge_scores(model=sys.argv[1], tokens=sys.argv[2], out_scores=sys.argv[3], out_completeness=sys.argv[4],
                 knowledge=knowledge, device="cpu", seed=0)
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kb(model_dir, tokens_path, tmp_path) -> int:
    return peak_rss_kb(SCRIPT, model_dir, tokens_path, tmp_path / "s.parquet", tmp_path / "c.parquet")


def test_peak_memory_at_n_and_4n_proteins(tiny_model, tmp_path):
    from plmxai.model.esm import save_model
    from plmxai.model.tokens import esm2_tokenizer, tokenize_proteins

    save_model(tiny_model, tmp_path / "model")
    rng = np.random.default_rng(0)
    # 300 residues: a protein's per-token attributions are ~1 MB, so keeping them would show
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 300)) for _ in range(160)]
    prot = pd.DataFrame(
        {
            "accession": [f"M{i}" for i in range(160)],
            "sequence": seqs,
            "label": [str(1 + i % 3) for i in range(160)],
            "label_id": [i % 3 for i in range(160)],
            "split": "train",
        }
    )
    tokens, _ = tokenize_proteins(prot, esm2_tokenizer())
    tokens.iloc[:40].to_parquet(tmp_path / "n.parquet")
    tokens.to_parquet(tmp_path / "4n.parquet")
    small = _peak_kb(tmp_path / "model", tmp_path / "n.parquet", tmp_path)
    large = _peak_kb(tmp_path / "model", tmp_path / "4n.parquet", tmp_path)
    print(f"peak RSS: {small / 1024:.0f} MiB at 40 proteins, {large / 1024:.0f} MiB at 160")
    assert large <= 1.2 * small
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert (scores["n_proteins"].groupby(scores["class_id"]).first().sum()) == 160
