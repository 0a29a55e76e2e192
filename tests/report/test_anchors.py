"""The real-model table of the README, from runs' tables: the right rows, in the right words."""

import pandas as pd

from plmxai.report.anchors import anchor_table, stage_times


def _run(root, name, props, probes, n_tokens):
    run = root / name
    att = run / "given" / "attention"
    att.mkdir(parents=True)
    (run / "model").mkdir()
    (run / "logs").mkdir()
    pd.DataFrame(props).to_parquet(att / "properties.parquet")
    pd.DataFrame(
        {
            "property": [p["property"] for p in [props[0]]],
            "layer": [5],
            "mean_proportion": [0.2],
            "centre_of_gravity": [3.7],
        }
    ).to_parquet(att / "layer_profiles.parquet")
    pd.DataFrame([{"n_heads": 88, "pearson_r": 0.5043, "p_mantel": 1e-4, "proteins": n_tokens}]).to_parquet(
        att / "blosum62.parquet"
    )
    pd.DataFrame(probes).to_parquet(att / "probes.parquet")
    pd.DataFrame({"accession": [f"a{i}" for i in range(n_tokens)]}).to_parquet(
        run / "model" / "tokens.parquet"  # where a run keeps its tokens
    )
    pd.DataFrame({"accession": [f"a{i}" for i in range(n_tokens)]}).to_parquet(att / "structures.parquet")
    (run / "logs" / "attention_given.log").write_text("x\n2026 INFO plmxai: done in 308.8 s; wrote y\n")
    return run


def _head(prop, layer, head, proportion, tested=True, q=0.02, q_comp=None, pairs=500):
    return {
        "property": prop,
        "layer": layer,
        "head": head,
        "proportion": proportion,
        "background": 0.0485,
        "tested": tested,
        "significant": tested and q < 0.05,
        "q_permutation": q,
        "n_high_pairs": pairs,
        "q_composition": q_comp,
        "significant_composition": q_comp is not None and q_comp < 0.05,
    }


def test_anchor_table_reads_the_top_heads(tmp_path):
    probe = [
        {
            "probe": "contact",
            "layer": 6,
            "auprc": 0.03,
            "auprc_baseline": 0.013,
            "precision": 0.118,
            "precision_at": "L/5",
        }
    ]
    c = _run(
        tmp_path,
        "c",
        [
            _head("contact", 5, 10, 0.622),
            _head("contact", 5, 4, 0.498),
            _head("contact", 0, 16, 0.9, tested=False),
        ],
        probe,
        130,
    )
    b = _run(
        tmp_path,
        "b",
        [
            _head("binding_site", 1, 2, 0.983, q_comp=0.18, pairs=362),
            _head("binding_site", 1, 13, 0.533, q_comp=0.009, pairs=7016),
        ],
        [{**probe[0], "probe": "binding_site", "precision_at": "L/20"}],
        1414,
    )
    e = _run(tmp_path, "e", [_head("active_site", 2, 3, 0.4)], [{**probe[0], "probe": "active_site"}], 500)
    table = anchor_table(c, b, e)
    # untested heads never lead, whatever their proportion
    assert "L5 H10: 62.2% (q 0.02, 500 pairs); L5 H4: 49.8%" in table and "L0 H16" not in table
    # the top head fails the composition null: the top head beyond residue identity is named
    assert "L1 H2: 98.3% (q 0.02, q_composition 0.18, 362 pairs)" in table
    assert (
        "; 1 significant beyond amino-acid identity (composition-matched null), the top one L1 H13: 53.3%"
        in table
    )
    assert "| 130 PDB chains |" in table and "| 1414 PDB chains |" in table
    assert "r = 0.50 (Mantel p 0.0001, 88 heads)" in table
    assert stage_times(b) == {"attention_given": 308.8}
