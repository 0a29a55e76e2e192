import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import LayerConductance

from plmxai.attribution.heads import head_attribution, head_relevance
from plmxai.model.ig import baseline_ids, from_embedding_output


def test_all_layers_in_one_pass_match_captum_per_layer(tiny_model, tiny_tokens):
    model = tiny_model.double()
    try:
        ids = torch.as_tensor(tiny_tokens["input_ids"].iat[2].astype(np.int64))[None]
        base = baseline_ids(ids, "pad", 1, 0, "P2")
        rel, comp = head_relevance(model, ids, 2, base, n_steps=20)
        assert rel.shape == (2, 4, ids.shape[1])
        mask = torch.ones_like(ids)
        with torch.no_grad():
            x = model.esm.embeddings(input_ids=ids, attention_mask=mask)
            b = model.esm.embeddings(input_ids=base[0], attention_mask=mask)
        forward = from_embedding_output(model, ids)
        for i, layer in enumerate(model.esm.encoder.layer):
            ref = LayerConductance(forward, layer.attention.output.dense).attribute(
                x, baselines=b, target=2, n_steps=20, method="gausslegendre", attribute_to_layer_input=True
            )
            per_head = ref[0].detach().view(ids.shape[1], 4, 8).sum(-1).T.numpy()
            np.testing.assert_allclose(rel[i], per_head, rtol=1e-5, atol=1e-10, err_msg=f"layer {i}")
        # the embedding output is a cut: its conductances converge to F(x) - F(baseline)
        # (Captum's rule pairs the gradient at one step with the change to the next: first order)
        gap = comp["f_input"] - comp["f_baseline"]
        _, fine = head_relevance(model, ids, 2, base, n_steps=200)
        assert abs(fine["attribution_sum"] - gap) < min(
            0.03 * abs(gap), abs(comp["attribution_sum"] - gap) / 5
        )
    finally:
        model.float()


def test_shuffled_baselines_keep_composition_and_are_seeded_by_accession(tiny_tokens):
    ids = torch.as_tensor(tiny_tokens["input_ids"].iat[2].astype(np.int64))[None]
    a = baseline_ids(ids, "shuffled", 3, 0, "P2")
    assert len(a) == 3 and not torch.equal(a[0], a[1])
    for b in a:
        assert b[0, 0] == ids[0, 0] and b[0, -1] == ids[0, -1]
        assert sorted(b[0, 1:-1].tolist()) == sorted(ids[0, 1:-1].tolist())
    assert all(torch.equal(u, v) for u, v in zip(a, baseline_ids(ids, "shuffled", 3, 0, "P2")))
    assert not torch.equal(a[0], baseline_ids(ids, "shuffled", 1, 0, "Q9")[0])
    with pytest.raises(ValueError, match="baseline must be one of"):
        baseline_ids(ids, "mask", 1, 0, "P2")


def test_head_rows_cover_residues_only(tiny_model, tiny_tokens):
    rows, comps = zip(*head_attribution(tiny_model, tiny_tokens.iloc[:2], n_steps=8))
    for r, rec in zip(rows, tiny_tokens.itertuples()):
        assert len(r) == 2 * 4 * rec.n_residues
        one = r[(r["layer"] == "1") & (r["head"] == 3)]
        assert one["position"].tolist() == list(range(1, rec.n_residues + 1))
        assert "".join(one["residue"]) == ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVDAFQ"][rec.Index]
    assert [c["accession"] for c in comps] == ["P0", "P1"]


def test_chunked_attribution_is_identical_for_any_chunk_count(tmp_path, tiny_model, tiny_tokens):
    from plmxai.model.esm import save_model
    from plmxai.stages.attribution import attribution, attribution_chunk
    from plmxai.tables import read_partitioned

    save_model(tiny_model, tmp_path / "model")
    tokens = tmp_path / "tokens.parquet"
    tiny_tokens.to_parquet(tokens)
    preds = tmp_path / "predictions.parquet"
    pd.DataFrame({"accession": tiny_tokens["accession"], "correct": [True, False, True, True]}).to_parquet(
        preds
    )
    base = {
        "split": "test",
        "target": "true",
        "n_steps": 8,
        "method": "gausslegendre",
        "batch_size": 2,
        "completeness_tolerance": 0.05,
        "max_proteins": 0,
        "only_correct": True,
        "heads": True,
        "head_steps": 8,
        "baseline": "shuffled",
        "n_baselines": 2,
        "dtype": "float16",
    }
    tables = {}
    for chunks in (1, 3):
        a = {**base, "chunks": chunks}
        rel, comp = [], []
        for c in range(chunks):
            rel.append(tmp_path / f"r{chunks}_{c}.parquet")
            comp.append(tmp_path / f"c{chunks}_{c}.parquet")
            attribution_chunk(
                model=tmp_path / "model",
                tokens=tokens,
                predictions=preds,
                chunk=c,
                out_relevance=rel[-1],
                out_completeness=comp[-1],
                attribution=a,
                device="cpu",
                seed=0,
            )
        attribution(
            relevance=rel,
            completeness=comp,
            out_relevance=tmp_path / f"rel{chunks}",
            out_completeness=tmp_path / f"comp{chunks}.parquet",
            attribution=a,
        )
        tables[chunks] = (
            read_partitioned(tmp_path / f"rel{chunks}", "layer"),
            pd.read_parquet(tmp_path / f"comp{chunks}.parquet"),
        )
    one, three = tables[1], tables[3]
    pd.testing.assert_frame_equal(one[0], three[0], check_exact=True)
    pd.testing.assert_frame_equal(one[1], three[1], check_exact=True)
    # only the correctly classified proteins, every layer and head, stored as float16
    assert sorted(one[0]["accession"].unique()) == ["P0", "P2", "P3"]
    assert one[0]["relevance"].dtype == np.float16
    assert one[0].groupby("layer")["head"].nunique().to_dict() == {"0": 4, "1": 4, "embedding": 1}
    assert set(one[1]["method"]) == {"embedding_ig", "head_conductance"}


def test_alanine_scan_replaces_the_top_residues(tiny_model, tiny_tokens):
    from plmxai.attribution.faithfulness import ALANINE, alanine_scan, faithfulness_summary

    rec = tiny_tokens.iloc[0]  # 22 residues
    rel = pd.DataFrame({"accession": "P0", "position": np.arange(1, 23), "relevance": np.linspace(0, 1, 22)})
    runs = alanine_scan(
        tiny_model, tiny_tokens.iloc[:1], rel, pd.Series({"P0": 1}), ks=(3, 22, 40), n_random=4
    )
    assert set(runs["k"]) == {3}  # k >= length is skipped
    assert runs.groupby("selection").size().to_dict() == {"random": 4, "relevant": 1}
    ids = rec["input_ids"].astype(np.int64).copy()
    ids[[20, 21, 22]] = ALANINE  # residues 20..22 are the most relevant: tokens 20..22
    with torch.no_grad():
        p = torch.softmax(tiny_model(input_ids=torch.as_tensor(ids)[None]).logits, -1)[0, 1].item()
    top = runs[runs["selection"] == "relevant"].iloc[0]
    assert top["p_perturbed"] == pytest.approx(p, rel=1e-5)
    assert top["drop"] == pytest.approx(top["p_original"] - p, rel=1e-5)
    assert runs.loc[runs["selection"] == "random", "p_perturbed"].nunique() > 1
    summary = faithfulness_summary(runs, n_boot=50).set_index("selection")
    rnd = runs.loc[runs["selection"] == "random", "drop"].mean()
    assert summary.loc["relevant - random", "mean_drop"] == pytest.approx(top["drop"] - rnd)
    assert (summary["n_proteins"] == 1).all()


def test_embedding_ig_from_the_head_passes_equals_captum(tiny_model, tiny_tokens):
    """The embedding-level IG read from the head-conductance passes (n_steps + 1 points) is
    Captum's LayerIntegratedGradients on the embeddings with n_steps + 1 Gauss-Legendre steps,
    and attribute() uses it when n_steps equals head_steps."""
    from captum.attr import LayerIntegratedGradients

    import plmxai as px

    model = tiny_model.double()
    try:
        rec = tiny_tokens.iloc[[2]]
        ids = torch.as_tensor(rec["input_ids"].iat[0].astype(np.int64))[None]
        n_res = int(rec["n_residues"].iat[0])
        (rows, comp), *_ = list(head_attribution(model, rec, n_steps=12, embedding=True))
        ours = rows[rows["layer"] == "embedding"]["relevance"].to_numpy()
        base = baseline_ids(ids, "pad", 1, 0, rec["accession"].iat[0])[0]
        lig = LayerIntegratedGradients(lambda i: model(input_ids=i).logits, model.esm.embeddings)
        ref, delta = lig.attribute(
            ids,
            baselines=base,
            target=int(rec["label_id"].iat[0]),
            n_steps=13,
            method="gausslegendre",
            return_convergence_delta=True,
        )
        ref = ref[0].sum(-1).detach().numpy()
        np.testing.assert_allclose(ours, ref[1 : n_res + 1], rtol=1e-4, atol=1e-8)
        emb = comp["embedding"]
        assert emb["attribution_sum"] == pytest.approx(float(ref.sum()), rel=1e-5)
        assert emb["delta"] == pytest.approx(float(delta[0]), rel=1e-4, abs=1e-8)
        # the head rows are unchanged by reading the embedding from the same passes
        (plain, _), *_ = list(head_attribution(model, rec, n_steps=12))
        pd.testing.assert_frame_equal(rows[rows["layer"] != "embedding"].reset_index(drop=True), plain)
        shared = px.attribution.attribute(model, rec, n_steps=12, head_steps=12)
        separate = px.attribution.attribute(model, rec, n_steps=13, head_steps=12)
        for t in (shared, separate):
            assert set(t.completeness["method"]) == {"embedding_ig", "head_conductance"}
        e_shared = shared.relevance.query("layer == 'embedding'")["relevance"].to_numpy()
        e_separate = separate.relevance.query("layer == 'embedding'")["relevance"].to_numpy()
        np.testing.assert_allclose(e_shared, e_separate, rtol=1e-4, atol=1e-6)
    finally:
        model.float()
