"""Fine-tuning: batching by length, controls, metrics with CIs, and resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch

from plmxai.metrics import bootstrap_ci, metrics_table
from plmxai.model.esm import build_model
from plmxai.model.training import TrainOptions, epoch_plan, finetune, padding_fraction, variant_data

SPEC = {
    "source": "random",
    "architecture": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
}


def demo_tokens(n=120, seed=0):
    from plmxai.data.synthetic import DemoSpec, generate
    from plmxai.model.tokens import esm2_tokenizer

    df, _ = generate(DemoSpec(n_proteins=n, n_classes=3, min_length=30, max_length=90, seed=seed))
    tok = esm2_tokenizer()
    return pd.DataFrame(
        {
            "accession": df["Entry"],
            "input_ids": [np.array(tok(s)["input_ids"], dtype=np.int16) for s in df["Sequence"]],
            "n_residues": df["Sequence"].str.len(),
            "label": df["EC number"].str[0],
            "label_id": df["EC number"].str[0].astype(int) - 1,
            "split": np.where(np.arange(n) % 5 == 0, "val", "train"),
        }
    )


def test_epoch_plan_is_a_seeded_partition_and_length_batching_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(30, 600, size=1000)
    labels = rng.integers(0, 3, size=1000)
    opt = TrainOptions(batch_size=16, seed=3)
    plan = epoch_plan(lengths, labels, opt, epoch=2)
    assert sorted(np.concatenate(plan).tolist()) == list(range(1000))
    assert all((a == b).all() for a, b in zip(plan, epoch_plan(lengths, labels, opt, epoch=2)))
    assert not all((a == b).all() for a, b in zip(plan, epoch_plan(lengths, labels, opt, epoch=3)))
    rand = epoch_plan(lengths, labels, TrainOptions(batch_size=16, seed=3, batching="random"), 2)
    assert padding_fraction(lengths, plan) < 0.1 < 0.3 < padding_fraction(lengths, rand)


def test_batches_capped_by_padded_tokens_and_predictions_unchanged():
    """A batch ends where proteins x its longest would pass max_tokens (1: one protein each);
    the logits do not depend on how the proteins are batched."""
    from plmxai.model.batching import batches
    from plmxai.model.training import predict_logits

    ids = [np.zeros(n, dtype=np.int16) for n in (10, 40, 12, 30, 11)]
    t = pd.DataFrame({"input_ids": ids, "n_residues": [len(x) - 2 for x in ids]})
    # length order 0 (10), 4 (11), 2 (12), 3 (30), 1 (40); 3 x 12 = 36 fits 40, 4 x 30 does not
    got = [pos.tolist() for pos, _, _ in batches(t, 64, max_tokens=40)]
    assert got == [[0, 4, 2], [3], [1]]
    assert [pos.tolist() for pos, _, _ in batches(t, 2, max_tokens=1000)] == [[0, 4], [2, 3], [1]]
    assert [pos.tolist() for pos, _, _ in batches(t, 64, max_tokens=1)] == [[0], [4], [2], [3], [1]]
    assert [pos.tolist() for pos, _, _ in batches(t, 64)] == [[0, 4, 2, 3, 1]]

    tokens = demo_tokens(12)
    model = build_model(SPEC, ["1", "2", "3"], seed=0).eval()
    one = predict_logits(model, tokens, 64)  # on the CPU: batches of at most 2,048 tokens
    from plmxai.model.batching import collate

    with torch.no_grad():
        x, mask = collate(list(tokens["input_ids"]))
        padded = model(input_ids=x, attention_mask=mask).logits.numpy()
    np.testing.assert_allclose(one, padded, atol=1e-5)


def test_balanced_sampler():
    labels = np.array([0] * 900 + [1] * 100)
    plan = epoch_plan(np.full(1000, 50), labels, TrainOptions(class_balance="sampler", seed=0), 1)
    drawn = labels[np.concatenate(plan)]
    assert 0.4 < drawn.mean() < 0.6


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    pred = np.where(rng.random(400) < 0.8, y, (y + 1) % 3)
    ci = bootstrap_ci(y, pred, 3, n_boot=500, seed=1)
    acc = (y == pred).mean()
    assert ci["accuracy"][0] < acc < ci["accuracy"][1]
    assert 0.05 < ci["accuracy"][1] - ci["accuracy"][0] < 0.12  # about 4 standard errors of 0.02
    small = bootstrap_ci(y[:50], pred[:50], 3, n_boot=500, seed=1)
    assert small["accuracy"][1] - small["accuracy"][0] > ci["accuracy"][1] - ci["accuracy"][0]
    preds = pd.DataFrame({"split": "test", "label_id": y, "pred_id": pred})
    mt = metrics_table(preds, ["a", "b", "c"], n_boot=200).set_index(["class", "metric"])
    assert mt.loc[("all", "accuracy"), "value"] == pytest.approx(acc)
    assert mt.loc[("a", "recall"), "value"] == pytest.approx((pred[y == 0] == 0).mean())


def test_frozen_control_keeps_the_encoder_and_shuffled_permutes_labels():
    tokens = demo_tokens()
    train, val = variant_data(tokens, "shuffled", seed=0)
    assert sorted(train["label_id"]) == sorted(tokens[tokens.split == "train"]["label_id"])
    assert (train["label_id"].to_numpy() != tokens[tokens.split == "train"]["label_id"].to_numpy()).any()
    model = build_model(SPEC, ["1", "2", "3"], seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train, val = variant_data(tokens, "frozen", seed=0)
    finetune(model, train, val, TrainOptions(epochs=2, batch_size=16, freeze_encoder=True))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("esm."))
    assert not torch.equal(before["classifier.out_proj.weight"], after["classifier.out_proj.weight"])


def test_frozen_encoder_features_computed_once_train_the_same_head(monkeypatch):
    """The frozen control trains its head on the encoder's features computed once: the same
    losses, validation metrics and head as running the frozen encoder at every step, also with
    freeze_encoder_epochs (cached while frozen, dropped once the encoder trains)."""
    from plmxai.model import training

    tokens = demo_tokens()
    train, val = variant_data(tokens, "frozen", seed=0)
    runs, calls = {}, []
    real = training.encoder_features
    monkeypatch.setattr(training, "encoder_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    for cached in (True, False):
        if not cached:
            assert len(calls) == 4  # train and val, once per cached run
            monkeypatch.setattr(training, "_cacheable", lambda model: False)
        for opt in (
            TrainOptions(epochs=3, batch_size=16, freeze_encoder=True),
            TrainOptions(epochs=3, batch_size=16, freeze_encoder_epochs=1),
        ):
            model = build_model(SPEC, ["1", "2", "3"], seed=0)
            hist = finetune(model, train, val, opt)
            runs[cached, opt.freeze_encoder] = (hist, model.state_dict())
    for frozen in (True, False):
        (h_c, w_c), (h_f, w_f) = runs[True, frozen], runs[False, frozen]
        cols = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]
        np.testing.assert_allclose(h_c[cols].to_numpy(), h_f[cols].to_numpy(), rtol=1e-4, atol=1e-6)
        for k in w_c:
            torch.testing.assert_close(w_c[k], w_f[k], rtol=1e-4, atol=1e-6, msg=k)


def test_early_stopping():
    tokens = demo_tokens()
    model = build_model(SPEC, ["1", "2", "3"], seed=0)
    train, val = variant_data(tokens, "finetuned", seed=0)
    hist = finetune(
        model, train, val, TrainOptions(epochs=10, learning_rate=1e-12, early_stopping_patience=2)
    )
    assert len(hist) == 3 and hist["kept"].tolist() == [True, False, False]


def test_stop_at_accuracy():
    """Training ends after the first epoch whose validation accuracy reaches the target, and
    runs every epoch when none does."""
    tokens = demo_tokens()
    train, val = variant_data(tokens, "finetuned", seed=0)
    full = finetune(build_model(SPEC, ["1", "2", "3"], seed=0), train, val, TrainOptions(epochs=6))
    target = float(full["val_accuracy"].iloc[2])  # reached at epoch 3 at the latest
    first = int(full.loc[full["val_accuracy"] >= target, "epoch"].min())
    hist = finetune(
        build_model(SPEC, ["1", "2", "3"], seed=0),
        train,
        val,
        TrainOptions(epochs=6, stop_at_accuracy=target),
    )
    assert hist["epoch"].tolist() == list(range(1, first + 1))
    # the same epochs as the full run up to the stop (the schedule is the full run's)
    np.testing.assert_allclose(hist["val_accuracy"], full["val_accuracy"].iloc[:first])
    never = finetune(
        build_model(SPEC, ["1", "2", "3"], seed=0), train, val, TrainOptions(epochs=3, stop_at_accuracy=1.01)
    )
    assert len(never) == 3


RUNNER = textwrap.dedent("""
    import logging, sys, torch
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    from tests.model.test_training import SPEC, demo_tokens
    from plmxai.model.esm import build_model
    from plmxai.model.training import variant_data
    from plmxai.model.training import TrainOptions, finetune
    ckpt, out = sys.argv[1], sys.argv[2]
    tokens = demo_tokens(n=600)
    train, val = variant_data(tokens, "finetuned", seed=0)
    model = build_model({**SPEC, "architecture": {**SPEC["architecture"], "hidden_size": 64}}, ["1", "2", "3"], seed=0)
    opt = TrainOptions(epochs=5, batch_size=8, grad_accumulation=2, checkpoint_every=3, learning_rate=2e-3)
    hist = finetune(model, train, val, opt, checkpoint_dir=ckpt if ckpt != "-" else None)
    torch.save(model.state_dict(), out + ".pt")
    hist.drop(columns="seconds").to_parquet(out + ".parquet")
""")


def test_resume_after_sigkill_gives_the_same_model(tmp_path):
    from tests.conftest import ROOT

    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ckpt = tmp_path / "ckpt"
    # uninterrupted reference
    subprocess.run(
        [sys.executable, str(script), "-", str(tmp_path / "ref")], env=env, check=True, capture_output=True
    )
    # killed with SIGKILL once a mid-run checkpoint exists, then started again
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt), str(tmp_path / "run")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (ckpt / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let it run on past the checkpoint, so the restart must discard work
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "run.pt").exists()
    done = subprocess.run(
        [sys.executable, str(script), str(ckpt), str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "resumed from" in done.stderr
    ref, run = torch.load(tmp_path / "ref.pt"), torch.load(tmp_path / "run.pt")
    for k in ref:
        assert torch.equal(ref[k], run[k]), k
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "ref.parquet"), pd.read_parquet(tmp_path / "run.parquet")
    )
