import numpy as np
import pandas as pd
import pytest
import torch

from plmxai.attribution.embedding import embedding_ig
from plmxai.knowledge.activation import activation_scores, site_summary
from plmxai.model.esm import build_model, load_model, save_model, site_modules
from plmxai.model.tokens import SequenceTooLongError, esm2_tokenizer, load_tokenizer, tokenize_proteins
from plmxai.model.training import TrainOptions, finetune, predictions_table


def test_tokenizer_offsets_and_policies(shared_data):
    prot = pd.DataFrame(
        {
            "accession": ["A", "B"],
            "sequence": ["MKWAX", "M" * 30],
            "label": "1",
            "label_id": 0,
            "split": "train",
        }
    )
    tok = esm2_tokenizer()
    tokens, summary = tokenize_proteins(prot, tok, max_residues=20, overlong="skip")
    assert tokens["accession"].tolist() == ["A"] and summary["skipped_overlong"] == 1
    assert tokens["input_ids"].iat[0].tolist() == [0, 20, 15, 22, 5, 24, 2]  # <cls> M K W A X <eos>
    with pytest.raises(SequenceTooLongError, match="B: 30 residues > tokenize.max_residues=20"):
        tokenize_proteins(prot, tok, max_residues=20, overlong="error")
    # the built-in alphabet is the real ESM-2 vocabulary
    real = load_tokenizer(str(shared_data / "esm2_configs" / "esm2_t6_8M_UR50D"))
    assert real.get_vocab() == tok.get_vocab()


def test_real_8m_architecture_has_17280_neurons(shared_data):
    spec = {"source": "random", "config_dir": str(shared_data / "esm2_configs" / "esm2_t6_8M_UR50D")}
    model = build_model(spec, ["1", "2"], seed=0)
    assert sum(m.out_features for m in site_modules(model).values()) == 17280


def test_save_load_roundtrip(tmp_path, tiny_model, tiny_tokens):
    save_model(tiny_model, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    loaded = load_model(tmp_path / "m")
    a = predictions_table(tiny_model, tiny_tokens)
    b = predictions_table(loaded, tiny_tokens)
    np.testing.assert_allclose(a["true_prob"], b["true_prob"], rtol=1e-6)


def test_activation_scores_match_per_protein_hooks(tiny_model, tiny_tokens):
    scores = activation_scores(tiny_model, tiny_tokens, batch_size=3)
    assert len(scores) == 3 * 2 * (3 * 32 + 32 + 64 + 32)
    # independent: each protein alone (no padding), hook on layer 1 key, mean over residues
    mod = site_modules(tiny_model)[(1, "key")]
    got = {}
    h = mod.register_forward_hook(lambda m, i, o: got.__setitem__("x", o))
    per_class: dict[int, list] = {}
    with torch.no_grad():
        for rec in tiny_tokens.itertuples():
            ids = torch.as_tensor(rec.input_ids.astype(np.int64))[None]
            tiny_model(input_ids=ids, attention_mask=torch.ones_like(ids))
            per_class.setdefault(rec.label_id, []).append(got["x"][0, 1:-1].mean(0))
    h.remove()
    for c, vals in per_class.items():
        expect = torch.stack(vals).mean(0).numpy()
        sel = scores[(scores.layer == 1) & (scores.site == "key") & (scores.class_id == c)]
        np.testing.assert_allclose(sel.sort_values("neuron")["score"], expect, rtol=1e-4, atol=1e-6)
        assert sel["n_proteins"].iat[0] == len(vals)
    summ = site_summary(scores)
    assert len(summ) == 12 and set(summ["site"].astype(str)) == {
        "query",
        "key",
        "value",
        "attn_out",
        "ffn_in",
        "ffn_out",
    }


def test_embedding_ig_completeness_and_padding_invariance(tiny_model, tiny_tokens):
    rel, comp = zip(*embedding_ig(tiny_model, tiny_tokens, "true", n_steps=64, batch_size=4))
    rel, comp = pd.concat(rel), pd.concat(comp)
    # Gauss-Legendre on a random (smooth) model: completeness to float precision
    assert (comp["relative_error"] < 1e-3).all(), comp
    np.testing.assert_allclose(comp["attribution_sum"], comp["f_input"] - comp["f_baseline"], rtol=1e-3)
    # one row per residue, special tokens excluded, residue letters as in the sequence
    p2 = rel[rel["accession"] == "P2"].sort_values("position")
    assert "".join(p2["residue"]) == "MWCHHYQNACDEFGHIKLMNPQRSTVWY"
    # a protein integrated alone gives the same relevance as in a padded batch
    alone, _ = next(embedding_ig(tiny_model, tiny_tokens.iloc[[1]].reset_index(drop=True), "true", 64))
    batched = rel[rel["accession"] == "P1"].sort_values("position")
    np.testing.assert_allclose(alone["relevance"], batched["relevance"], rtol=1e-4, atol=1e-6)


def test_predicted_target(tiny_model, tiny_tokens):
    _, comp = zip(*embedding_ig(tiny_model, tiny_tokens, "predicted", n_steps=8))
    comp = pd.concat(comp)
    preds = predictions_table(tiny_model, tiny_tokens).set_index("accession")
    assert (
        comp.set_index("accession")["target_id"].sort_index().tolist()
        == preds["pred_id"].sort_index().tolist()
    )
    with pytest.raises(ValueError, match="target must be 'true' or 'predicted'"):
        next(embedding_ig(tiny_model, tiny_tokens, "logit"))


def test_finetune_is_deterministic_and_learns(tiny_tokens):
    spec = {
        "source": "random",
        "architecture": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
    }
    train = pd.concat([tiny_tokens] * 8, ignore_index=True)
    runs = []
    for _ in range(2):
        model = build_model(spec, ["1", "2", "3"], seed=0)
        hist = finetune(model, train, tiny_tokens, TrainOptions(epochs=6, batch_size=8, learning_rate=3e-3))
        runs.append((hist, model.state_dict()))
    pd.testing.assert_frame_equal(runs[0][0].drop(columns="seconds"), runs[1][0].drop(columns="seconds"))
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k]), k
    assert runs[0][0]["train_loss"].iloc[-1] < runs[0][0]["train_loss"].iloc[0]
    assert runs[0][0]["kept"].sum() == 1


def test_pretrained_from_local_folder_and_bf16_inference(tmp_path, tiny_model, tiny_tokens):
    """A folder with safetensors weights loads as `source: pretrained` with a new head."""
    save_model(tiny_model, tmp_path / "pre")
    model = build_model({"source": "pretrained", "name_or_path": str(tmp_path / "pre")}, ["a", "b"], seed=1)
    assert model.config.num_labels == 2 and model.config.id2label == {0: "a", 1: "b"}
    for k, v in tiny_model.esm.state_dict().items():
        assert torch.equal(v, model.esm.state_dict()[k]), k
    from plmxai.model.training import predict_logits

    fp32 = predict_logits(model, tiny_tokens, precision="fp32")
    bf16 = predict_logits(model, tiny_tokens, precision="bf16")
    np.testing.assert_allclose(bf16, fp32, atol=0.05)


def test_demo_pretraining_learns_other_motifs_and_keeps_the_head():
    from plmxai.data.synthetic import DemoSpec
    from plmxai.model.pretrain import demo_motifs, pretrain_encoder, pretraining_tokens

    syn = {"n_proteins": 200, "n_classes": 2, "min_length": 20, "max_length": 30, "motif_length": 3}
    with pytest.raises(ValueError, match=r"model.pretrain.seed 0 draws motif\(s\)"):
        pretraining_tokens(DemoSpec(seed=0, **syn), demo_motifs(syn, 0), seed=0)
    spec = {
        "source": "random",
        "architecture": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
    }
    pre = {
        "seed": 3,
        "n_proteins": 400,
        "n_classes": 2,
        "epochs": 20,
        "learning_rate": 0.01,
        "batch_size": 16,
        "motif_alphabet": None,
    }
    runs = []
    for _ in range(2):
        model = build_model(spec, ["a", "b", "c"], seed=0)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        summary = pretrain_encoder(model, syn, pre, demo_motifs(syn, 0), seed=0)
        runs.append((model.state_dict(), summary))
    state, summary = runs[0]
    assert not set(summary["motifs"]) & set(demo_motifs(syn, 0))
    # the encoder learnt the other task (chance: 0.5 on 40 proteins); the demo's own 3-class
    # head is untouched
    assert summary["val_accuracy"] >= 0.65
    assert not torch.equal(
        state["esm.encoder.layer.0.attention.self.key.weight"],
        before["esm.encoder.layer.0.attention.self.key.weight"],
    )
    assert all(torch.equal(state[k], before[k]) for k in before if k.startswith("classifier."))
    assert state["classifier.out_proj.weight"].shape[0] == 3
    assert all(torch.equal(v, runs[1][0][k]) for k, v in state.items())  # seeded: same weights
