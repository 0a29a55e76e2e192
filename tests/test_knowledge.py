import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import LayerConductance

from plmxai.attribution import pad_baseline
from plmxai.knowledge import (
    agreement,
    conductance_all_sites,
    conductance_scores,
    density,
    select_top,
)
from plmxai.modeling import site_modules


def test_one_pass_conductance_matches_captum_per_site(tiny_model, tiny_tokens):
    model = tiny_model.double()
    try:
        ids = torch.as_tensor(tiny_tokens["input_ids"].iat[0].astype(np.int64))[None]
        mask = torch.ones_like(ids)
        ours = conductance_all_sites(model, ids, target=1, n_steps=20, step_chunk=7)
        with torch.no_grad():
            x = model.esm.embeddings(input_ids=ids, attention_mask=mask)
            b = model.esm.embeddings(input_ids=pad_baseline(ids, mask), attention_mask=mask)

        def forward(emb):  # the model from the embedding output on
            h = model.esm.embeddings.register_forward_hook(lambda m, i, o: emb)
            try:
                return model(input_ids=ids.expand(len(emb), -1), attention_mask=mask.expand(len(emb), -1)).logits
            finally:
                h.remove()

        for key, module in site_modules(model).items():
            ref = LayerConductance(forward, module).attribute(x, baselines=b, target=1, n_steps=20,
                                                              method="gausslegendre")  # fmt: skip
            np.testing.assert_allclose(ours[key].numpy(), ref[0].detach().numpy(), rtol=1e-5, atol=1e-9,
                                       err_msg=str(key))  # fmt: skip
    finally:
        model.float()


def test_scores_selection_density_agreement(tiny_model, tiny_tokens):
    scores = conductance_scores(tiny_model, tiny_tokens, n_steps=8)
    assert len(scores) == 3 * 2 * (3 * 32 + 32 + 64 + 32)
    cls0 = scores[scores["class_id"] == 0].reset_index(drop=True)
    sel = select_top(cls0["score"], cls0, 0.1)
    assert sel.sum() == round(0.1 * len(cls0)) and cls0["score"][sel].min() >= cls0["score"][~sel].max()
    per_layer = select_top(cls0["score"], cls0, 0.1, per_layer=True)
    assert all(per_layer[cls0["layer"] == lay].sum() == round(0.1 * (cls0["layer"] == lay).sum()) for lay in (0, 1))
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


def test_hybrid_models(tiny_model, tiny_tokens):
    from plmxai.knowledge import hybrid_state_dict
    from plmxai.modeling import build_model
    from plmxai.training import predict_logits

    spec = {"source": "random", "architecture": {"hidden_size": 32, "num_layers": 2, "num_heads": 4,
                                                 "intermediate_size": 64}}  # fmt: skip
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
    assert torch.equal(sd["esm.encoder.layer.1.attention.self.key.weight"],
                       initial["esm.encoder.layer.1.attention.self.key.weight"])  # fmt: skip
    assert torch.equal(sd["classifier.out_proj.weight"], finetuned["classifier.out_proj.weight"])
    # ablating one key neuron: its row only
    one = {k: v.copy() for k, v in all_off.items()}
    one[(0, "key")][3] = True
    w = "esm.encoder.layer.0.attention.self.key"
    z = hybrid_state_dict(model, initial, finetuned, one, keep="unselected", mode="zero")
    assert (z[f"{w}.weight"][3] == 0).all() and z[f"{w}.bias"][3] == 0
    assert torch.equal(z[f"{w}.weight"][4], finetuned[f"{w}.weight"][4])
    means = {k: np.full(m.out_features, 0.5, np.float32) for k, m in sites.items()}
    m = hybrid_state_dict(model, initial, finetuned, one, keep="unselected", mode="mean", mean_activation=means)
    assert (m[f"{w}.weight"][3] == 0).all() and m[f"{w}.bias"][3] == 0.5
    r = hybrid_state_dict(model, initial, finetuned, one, keep="unselected", mode="revert")
    assert torch.equal(r[f"{w}.weight"][3], initial[f"{w}.weight"][3])


def test_random_matched_selection_and_weight_change(tiny_model):
    from plmxai.knowledge import neuron_index, random_selection, weight_change

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

    from plmxai.knowledge import knowledge_attribution_all_sites

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
                y, baselines=torch.zeros_like(y), target=2, n_steps=24, method="gausslegendre",
                return_convergence_delta=True)  # fmt: skip
            np.testing.assert_allclose(ours[key].numpy(), ref[0].detach().numpy(), rtol=1e-5, atol=1e-9,
                                       err_msg=str(key))  # fmt: skip
    finally:
        model.float()
