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
