import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import LayerConductance

from plmxai.knowledge.scores import (
    agreement,
    conductance_all_sites,
    density,
    ig_scores,
    knowledge_attribution_all_sites,
    select_top,
)
from plmxai.model.esm import site_modules
from plmxai.model.ig import from_embedding_output, pad_baseline


def test_one_pass_conductance_matches_captum_per_site(tiny_model, tiny_tokens):
    model = tiny_model.double()
    try:
        ids = torch.as_tensor(tiny_tokens["input_ids"].iat[0].astype(np.int64))[None]
        mask = torch.ones_like(ids)
        ours = conductance_all_sites(model, ids, target=1, n_steps=20, step_chunk=7)
        with torch.no_grad():
            x = model.esm.embeddings(input_ids=ids, attention_mask=mask)
            b = model.esm.embeddings(input_ids=pad_baseline(ids, mask), attention_mask=mask)
        forward = from_embedding_output(model, ids)

        for key, module in site_modules(model).items():
            ref = LayerConductance(forward, module).attribute(
                x, baselines=b, target=1, n_steps=20, method="gausslegendre"
            )
            np.testing.assert_allclose(
                ours[key].numpy(), ref[0].detach().numpy(), rtol=1e-5, atol=1e-9, err_msg=str(key)
            )
    finally:
        model.float()


def test_scores_selection_density_agreement(tiny_model, tiny_tokens):
    scores, _ = ig_scores(tiny_model, tiny_tokens, ["conductance"], conductance_steps=8)
    assert len(scores) == 3 * 2 * (3 * 32 + 32 + 64 + 32)
    cls0 = scores[scores["class_id"] == 0].reset_index(drop=True)
    sel = select_top(cls0["score"], cls0, 0.1)
    assert sel.sum() == round(0.1 * len(cls0)) and cls0["score"][sel].min() >= cls0["score"][~sel].max()
    per_layer = select_top(cls0["score"], cls0, 0.1, within="layer")
    # 22.4 per layer of 224, 45 of 448 in all: the leftover neuron goes to the first layer
    assert [per_layer[cls0["layer"] == lay].sum() for lay in (0, 1)] == [23, 22]
    assert all(
        cls0["score"][per_layer & (cls0["layer"] == lay)].min()
        >= cls0["score"][~per_layer & (cls0["layer"] == lay)].max()
        for lay in (0, 1)
    )
    # density: selecting exactly the key neurons makes key dense (1 / fraction) and significant
    index = cls0[["layer", "site", "neuron"]]
    keys = (index["site"] == "key").to_numpy()
    d = density(index, keys).set_index(["site", "layer"])
    assert d.loc[("key", "all"), "density"] == pytest.approx(len(index) / keys.sum())
    assert d.loc[("key", "all"), "q_value"] < 1e-6 and d.loc[("query", "all"), "density"] == 0
    ag = agreement(cls0["score"], cls0["score"].astype("float64") * 2)
    assert ag["spearman"] == pytest.approx(1.0) and ag["jaccard_top0.1"] == 1.0
    rng = np.random.default_rng(0)
    assert abs(agreement(cls0["score"], pd.Series(rng.normal(size=len(cls0))))["spearman"]) < 0.15


def test_selection_within_each_site():
    """Scores on different scales per site: a global top-k takes one site only, the per-site
    top-k takes the top of every site, with the same total count as the random draws."""
    index = pd.DataFrame(
        [
            (layer, site, j)
            for layer in (0, 1)
            for site, n in (("key", 64), ("ffn_in", 128))
            for j in range(n)
        ],
        columns=["layer", "site", "neuron"],
    )
    rng = np.random.default_rng(0)
    # ffn_in on a 100x larger scale than key; within each site the neuron number is the rank
    scale = np.where(index["site"] == "ffn_in", 100.0, 1.0)
    scores = pd.Series(scale * (1 + index["neuron"].to_numpy() + rng.uniform(0, 0.1, len(index))))
    glob = select_top(scores, index, 0.1)
    assert set(index.loc[glob, "site"]) == {"ffn_in"}
    site = select_top(scores, index, 0.1, within="site")
    # 38.4 neurons: 6.4 per key site, 12.8 per ffn_in site -> 6 + 13 + 6 + 13 = 38
    assert site.sum() == 38 == glob.sum()
    per_cell = index[site].groupby(["layer", "site"]).size().to_dict()
    assert per_cell == {(0, "ffn_in"): 13, (0, "key"): 6, (1, "ffn_in"): 13, (1, "key"): 6}
    # the top of each site: its highest-numbered neurons
    for (layer, s), n in per_cell.items():
        cell = (index["layer"] == layer) & (index["site"] == s)
        assert set(index.loc[site & cell, "neuron"]) == set(range(cell.sum() - n, cell.sum()))
    # one neuron in 384: it goes to the group with the largest remainder, the first ffn_in site
    one = select_top(scores, index, 1 / 384, within="site")
    assert one.sum() == 1 and index.loc[one, ["layer", "site"]].values.tolist() == [[0, "ffn_in"]]
    with pytest.raises(ValueError, match="selection scope must be one of"):
        select_top(scores, index, 0.1, within="head")


def test_hybrid_models(tiny_model, tiny_tokens):
    from plmxai.knowledge.preservation import hybrid_state_dict
    from plmxai.model.esm import build_model
    from plmxai.model.training import predict_logits

    spec = {
        "source": "random",
        "architecture": {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64},
    }
    initial = build_model(spec, ["1", "2", "3"], seed=5).state_dict()
    finetuned = tiny_model.state_dict()
    sites = site_modules(tiny_model)
    all_on = {k: np.ones(m.out_features, bool) for k, m in sites.items()}
    all_off = {k: np.zeros(m.out_features, bool) for k, m in sites.items()}
    model = build_model(spec, ["1", "2", "3"], seed=9)
    # preserving every neuron is the fine-tuned model; preserving none reverts every site
    model.load_state_dict(hybrid_state_dict(model, initial, finetuned, all_on))
    np.testing.assert_allclose(predict_logits(model, tiny_tokens), predict_logits(tiny_model, tiny_tokens))
    sd = hybrid_state_dict(model, initial, finetuned, all_off)
    assert torch.equal(
        sd["esm.encoder.layer.1.attention.self.key.weight"],
        initial["esm.encoder.layer.1.attention.self.key.weight"],
    )
    assert torch.equal(sd["classifier.out_proj.weight"], finetuned["classifier.out_proj.weight"])
    # ablating one key neuron: its row only
    one = {k: v.copy() for k, v in all_off.items()}
    one[(0, "key")][3] = True
    w = "esm.encoder.layer.0.attention.self.key"
    z = hybrid_state_dict(model, initial, finetuned, one, keep="unselected", mode="zero")
    assert (z[f"{w}.weight"][3] == 0).all() and z[f"{w}.bias"][3] == 0
    assert torch.equal(z[f"{w}.weight"][4], finetuned[f"{w}.weight"][4])
    means = {k: np.full(m.out_features, 0.5, np.float32) for k, m in sites.items()}
    m = hybrid_state_dict(
        model, initial, finetuned, one, keep="unselected", mode="mean", mean_activation=means
    )
    assert (m[f"{w}.weight"][3] == 0).all() and m[f"{w}.bias"][3] == 0.5
    r = hybrid_state_dict(model, initial, finetuned, one, keep="unselected", mode="revert")
    assert torch.equal(r[f"{w}.weight"][3], initial[f"{w}.weight"][3])


def test_random_matched_selection_and_weight_change(tiny_model):
    from plmxai.knowledge.preservation import random_selection, weight_change
    from plmxai.knowledge.scores import neuron_index

    idx = neuron_index(tiny_model)
    assert len(idx) == 2 * (3 * 32 + 32 + 64 + 32)
    target = (idx["site"] == "key").to_numpy() & (idx["neuron"] < 5).to_numpy()
    rng = np.random.default_rng(0)
    r = random_selection(idx, int(target.sum()), rng, match=target)
    counts = pd.crosstab(idx["layer"].astype(str) + idx["site"], r)[True]
    assert counts[counts > 0].to_dict() == {"0key": 5, "1key": 5}
    assert random_selection(idx, 17, rng).sum() == 17
    sd = tiny_model.state_dict()
    assert (weight_change(tiny_model, sd, sd, idx) == 0).all()
    moved = {k: v.clone() for k, v in sd.items()}
    moved["esm.encoder.layer.1.intermediate.dense.bias"][7] += 3.0
    wc = weight_change(tiny_model, sd, moved, idx)
    hit = (idx["layer"] == 1) & (idx["site"] == "ffn_in") & (idx["neuron"] == 7)
    assert wc[hit].item() == pytest.approx(3.0) and wc[~hit].max() == 0


def test_knowledge_attribution_matches_captum_ig_on_site_output(tiny_model, tiny_tokens):
    from captum.attr import IntegratedGradients

    model = tiny_model.double()
    try:
        ids = torch.as_tensor(tiny_tokens["input_ids"].iat[2].astype(np.int64))[None]
        ours = knowledge_attribution_all_sites(model, ids, target=2, n_steps=24, step_chunk=10)
        captured = {}
        for key in [(0, "query"), (0, "ffn_in"), (1, "key"), (1, "ffn_out")]:
            module = site_modules(model)[key]
            h = module.register_forward_hook(lambda m, i, o: captured.__setitem__("y", o))
            with torch.no_grad():
                model(input_ids=ids)
            h.remove()
            y = captured["y"]

            def forward(site_out, module=module):  # the whole model with the site output replaced
                hook = module.register_forward_hook(lambda m, i, o: site_out)
                try:
                    return model(input_ids=ids.expand(len(site_out), -1)).logits
                finally:
                    hook.remove()

            ref, delta = IntegratedGradients(forward).attribute(
                y,
                baselines=torch.zeros_like(y),
                target=2,
                n_steps=24,
                method="gausslegendre",
                return_convergence_delta=True,
            )
            np.testing.assert_allclose(
                ours[key].numpy(), ref[0].detach().numpy(), rtol=1e-5, atol=1e-9, err_msg=str(key)
            )
    finally:
        model.float()


def test_ig_scores_are_class_means_of_residue_sums_with_completeness(tiny_model, tiny_tokens):
    """Class score = mean over the class's proteins of the attribution summed over residues
    (not <cls>/<eos>); completeness converges with the number of steps."""
    model = tiny_model.double()
    try:
        scores, comp = ig_scores(model, tiny_tokens, ka_steps=64, conductance_steps=400, output="probability")
        cls0 = tiny_tokens[tiny_tokens["label_id"] == 0]  # two proteins of class 0
        per = []
        for rec in cls0.itertuples():
            ids = torch.as_tensor(rec.input_ids.astype(np.int64))[None]
            a = knowledge_attribution_all_sites(model, ids, 0, n_steps=64, output="probability")[(1, "key")]
            per.append(a[1:-1].sum(0).numpy())
        got = scores[
            (scores["method"] == "knowledge_attribution")
            & (scores["layer"] == 1)
            & (scores["site"] == "key")
            & (scores["class_id"] == 0)
        ]
        np.testing.assert_allclose(got["score"].to_numpy(), np.mean(per, 0), rtol=1e-5, atol=1e-9)
        assert (got["n_proteins"] == 2).all()
        # every protein: 12 knowledge-attribution sites and one conductance path
        assert comp.groupby("method").size().to_dict() == {"conductance": 4, "knowledge_attribution": 48}
        ka = comp[comp["method"] == "knowledge_attribution"]
        moved = (ka["f_input"] - ka["f_baseline"]).abs() > 1e-3
        assert ka.loc[moved, "relative_error"].max() < 1e-2
        co = comp[comp["method"] == "conductance"]
        assert co["delta"].abs().max() < 1e-5  # against a |F(x) - F(baseline)| of 6e-6 to 7e-4
        assert co.loc[(co["f_input"] - co["f_baseline"]).abs() > 1e-4, "relative_error"].max() < 0.05
        # a probability target: F(x) is the softmax probability of the true class
        assert co["f_input"].between(0, 1).all()
    finally:
        model.float()
    with pytest.raises(ValueError, match="unknown IG estimator"):
        ig_scores(tiny_model, tiny_tokens, ["gradcam"])


def test_vectorised_metrics_equal_sklearn():
    from plmxai.metrics import bootstrap_weights, confusions, metrics, metrics_from_confusions

    rng = np.random.default_rng(1)
    for n_classes in (2, 3, 5):
        for _ in range(10):
            n = int(rng.integers(5, 60))
            yt = rng.integers(0, n_classes, n)
            yp = np.where(rng.random(n) < 0.5, yt, rng.integers(0, n_classes, n))
            w = bootstrap_weights(n, 4, seed=3)
            got = metrics_from_confusions(confusions(yt, yp, n_classes, w))
            for b in range(4):
                idx = np.repeat(np.arange(n), w[b])
                for name, value in metrics(yt[idx], yp[idx], n_classes).items():
                    assert got[name][b] == pytest.approx(value, abs=1e-12), (name, n_classes)


def _planted_change(tiny_model, changed):
    """Initial weights = the tiny model with the rows of `changed` neurons perturbed, so that
    fine-tuning moved exactly those neurons."""
    from plmxai.knowledge.preservation import _site_param_names

    finetuned = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    initial = {k: v.clone() for k, v in finetuned.items()}
    g = torch.Generator().manual_seed(0)
    for (layer, site), prefix in _site_param_names(tiny_model).items():
        rows = [j for (lay, s, j) in changed if (lay, s) == (layer, site)]
        if rows:
            w = initial[f"{prefix}.weight"]
            w[rows] += 3 * torch.randn(len(rows), w.shape[1], generator=g)
    return initial, finetuned


def test_preservation_curves_find_the_moved_neurons(tiny_model):
    """Fine-tuning moved 10 ffn_in neurons only: preserving the top 10 by weight change is the
    fine-tuned model itself, ablating them is the initial one, random draws rarely are."""
    import copy

    from plmxai.knowledge.preservation import HybridEvaluator, preservation_curves, weight_change
    from plmxai.knowledge.scores import neuron_index
    from plmxai.model.tokens import esm2_tokenizer, tokenize_proteins
    from plmxai.model.training import predict_logits

    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(rng.integers(20, 40)))) for _ in range(60)]
    prot = pd.DataFrame(
        {
            "accession": [f"Q{i}" for i in range(60)],
            "sequence": seqs,
            "label": "1",
            "label_id": 0,
            "split": "test",
        }
    )
    tokens, _ = tokenize_proteins(prot, esm2_tokenizer())
    changed = [(1, "ffn_in", j) for j in range(10)]
    initial, finetuned = _planted_change(tiny_model, changed)
    model = copy.deepcopy(tiny_model)
    # labels: what the fine-tuned model predicts, so that it scores 1.0
    tokens["label_id"] = predict_logits(model, tokens).argmax(1)
    index = neuron_index(model)
    wc = weight_change(model, initial, finetuned, index)
    assert set(index[wc > 0].itertuples(index=False, name=None)) == set(changed)
    ev = HybridEvaluator(model, initial, finetuned, tokens, batch_size=16)
    fraction = 10 / len(index)
    runs, summary = preservation_curves(
        ev, index, {"weight_change": wc}, [fraction], ["preserve", "ablate_revert"], n_random=6, n_boot=200
    )
    acc = summary[summary["metric"] == "accuracy"].set_index(["mode", "method"])
    assert acc.loc[("preserve", "weight_change"), "value"] == 1.0 == acc.loc[("preserve", "all"), "value"]
    prob = summary[summary["metric"] == "true_class_probability"].set_index(["mode", "method"])
    p_ft = torch.softmax(torch.as_tensor(predict_logits(model, tokens), dtype=torch.float64), 1).numpy()
    expected = p_ft[np.arange(len(tokens)), tokens["label_id"]].mean()
    assert prob.loc[("preserve", "weight_change"), "value"] == pytest.approx(expected)
    assert prob.loc[("preserve", "all"), "value"] == pytest.approx(expected)
    assert (
        prob.loc[("preserve", "weight_change"), "ci_low"]
        < expected
        < prob.loc[("preserve", "weight_change"), "ci_high"]
    )
    none = acc.loc[("preserve", "none"), "value"]
    assert none < 0.9 and acc.loc[("ablate_revert", "weight_change"), "value"] == none
    row = acc.loc[("preserve", "weight_change")]
    draws = runs[(runs["method"] == "random") & (runs["metric"] == "accuracy") & (runs["mode"] == "preserve")]
    assert len(draws) == 6 and (draws["n_selected"] == 10).all()
    assert row["p_permutation"] == (1 + (draws["value"] >= 1.0).sum()) / 7
    assert row["random_mean"] == pytest.approx(draws["value"].mean())
    # the hybrids depend only on the moved rows: random draws that miss them all share one
    # evaluation with "nothing preserved"
    assert ev.evaluations < 4 + 2 * 6 + 2
    # the model object is the fine-tuned one again afterwards
    for name, t in model.state_dict().items():
        assert torch.equal(t, finetuned[name]), name


def test_frozen_encoder_needs_one_evaluation(tiny_model, tiny_tokens):
    from plmxai.knowledge.preservation import HybridEvaluator, preservation_curves, weight_change
    from plmxai.knowledge.scores import neuron_index

    sd = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    index = neuron_index(tiny_model)
    ev = HybridEvaluator(tiny_model, sd, sd, tiny_tokens)
    _, summary = preservation_curves(
        ev,
        index,
        {"weight_change": weight_change(tiny_model, sd, sd, index)},
        [0.05, 0.5],
        ["preserve"],
        n_random=5,
        n_boot=0,
    )
    assert ev.evaluations == 1 and summary["value"].nunique() <= 4  # one model, four metrics


def test_hybrids_in_bf16_are_the_fp32_probabilities_within_rounding(tiny_model, tiny_tokens):
    """knowledge.precision: bf16 evaluates the hybrids in bf16 autocast (also on a CPU): the
    probabilities move by bf16 rounding only, and they do move (the setting is applied)."""
    import copy

    from plmxai.knowledge.preservation import HybridEvaluator

    sd = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    keep = {k: np.ones(m.out_features, bool) for k, m in site_modules(tiny_model).items()}
    fp32 = HybridEvaluator(copy.deepcopy(tiny_model), sd, sd, tiny_tokens).predict(keep)
    bf16 = HybridEvaluator(copy.deepcopy(tiny_model), sd, sd, tiny_tokens, precision="bf16").predict(keep)
    assert fp32.shape == bf16.shape
    assert np.abs(bf16 - fp32).max() < 0.02
    assert np.abs(bf16 - fp32).max() > 0


def test_mean_ablation_holds_the_neuron_at_its_mean(tiny_model, tiny_tokens):
    import copy

    from plmxai.knowledge.preservation import HybridEvaluator

    sd = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    model = copy.deepcopy(tiny_model)
    sites = site_modules(model)
    means = {k: np.linspace(-1, 1, m.out_features).astype(np.float32) for k, m in sites.items()}
    chosen = {k: np.zeros(m.out_features, bool) for k, m in sites.items()}
    chosen[(0, "value")][[2, 5]] = True
    ev = HybridEvaluator(model, sd, sd, tiny_tokens, mean_activation=means)
    seen = {}
    h = sites[(0, "value")].register_forward_hook(lambda m, i, o: seen.__setitem__("out", o.detach()))
    ev.predict(chosen, keep="unselected", mode="mean")
    h.remove()
    out = seen["out"]
    assert torch.allclose(out[..., 2], torch.tensor(means[(0, "value")][2])) and torch.allclose(
        out[..., 5], torch.tensor(means[(0, "value")][5])
    )
    assert out[..., 3].std() > 0  # other neurons still respond to the input
    with pytest.raises(ValueError, match="test mode must be"):
        from plmxai.knowledge.preservation import _mode_args

        _mode_args("ablate_random")
