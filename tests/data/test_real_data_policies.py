"""Feature types, evidence filter, binary labels, length policies, homology splits."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from plmxai.data.homology import cluster, cluster_split, max_identity_to_train
from plmxai.data.lengths import SequenceTooLongError, apply_length_policy, best_window
from plmxai.data.uniprot import ReadOptions, read_uniprot_tsv
from plmxai.stages.data import data as data_stage
from plmxai.stats import annotation_masks
from tests.data.test_uniprot import BAD_INPUTS, HEADER, row

needs_mmseqs = pytest.mark.skipif(shutil.which("mmseqs") is None, reason="mmseqs2 not installed")

FULL_HEADER = [
    "Entry",
    "Sequence",
    "EC number",
    "Keywords",
    "Gene Ontology IDs",
    "Active site",
    "Transmembrane",
    "Disulfide bond",
    "Cross-link",
    "Modified residue",
    "Domain [FT]",
]


def prepare_data(cfg, src, proteins, annotations, summary):
    """The data stage as its rule runs it."""
    data_stage(
        tsv=src,
        out_proteins=proteins,
        out_annotations=annotations,
        out_summary=summary,
        data=cfg["data"],
        seed=cfg["seed"],
    )


def tsv(tmp_path, rows, header=FULL_HEADER, name="x.tsv"):
    p = tmp_path / name
    lines = ["\t".join(header)] + ["\t".join(r.get(h, "") for h in header) for r in rows]
    p.write_text("\n".join(lines) + "\n")
    return p


def test_all_feature_types_pairs_and_evidence(tmp_path):
    seq = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWSTPSELGHAGLNGDILVWNPVLEDAFELSSMGIRVDADTLKHQLALTGDEDRLELEWHQALLRGEMPQTIGGGIGQSRLTMLLLQLPHIGQVQAGVWPAACRESVPALL"
    rows = [
        {
            "Entry": "P1",
            "Sequence": seq,
            "EC number": "6.3.2.1",
            "Keywords": "ATP-binding; Ligase",
            "Gene Ontology IDs": "GO:0005524; GO:0016874",
            "Active site": 'ACT_SITE 44; /evidence="ECO:0000269|PubMed:1"; ACT_SITE 60; /evidence="ECO:0000250|UniProtKB:P2"',
            "Transmembrane": 'TRANSMEM 10..30; /note="Helical"; /evidence="ECO:0000255"',
            "Disulfide bond": 'DISULFID 20..95; /evidence="ECO:0000269|PDB:1ABC"',
            "Cross-link": 'CROSSLNK 48; /note="Glycyl lysine isopeptide (Lys-Gly) (interchain with G-Cter in ubiquitin)"',
            "Modified residue": 'MOD_RES 5; /note="Phosphoserine"; MOD_RES ?; /note="unknown"',
            "Domain [FT]": 'DOMAIN <1..120; /note="ATP-grasp"',
        }
    ]
    prot, ann, rep = read_uniprot_tsv(tsv(tmp_path, rows))
    got = {(r.feature, r.start, r.end, bool(r.pair)) for r in ann.itertuples()}
    assert got == {
        ("ACT_SITE", 44, 44, False),
        ("ACT_SITE", 60, 60, False),
        ("TRANSMEM", 10, 30, False),
        ("DISULFID", 20, 95, True),
        ("CROSSLNK", 48, 48, True),
        ("MOD_RES", 5, 5, False),
        ("DOMAIN", 1, 120, False),
    }
    assert rep.uncertain_positions_skipped == 1
    masks = annotation_masks(ann[ann["accession"] == "P1"], len(seq))
    assert masks["disulfide_bond"].sum() == 2 and masks["disulfide_bond"][[19, 94]].all()
    assert masks["transmembrane"].sum() == 21
    # evidence filter: experimental only
    _, ann2, rep2 = read_uniprot_tsv(tsv(tmp_path, rows), ReadOptions(evidence=("ECO:0000269",)))
    assert sorted(ann2["feature"]) == ["ACT_SITE", "DISULFID"] and rep2.evidence_filtered == 5
    # binary labels from GO ids and keywords
    p_go, _, _ = read_uniprot_tsv(tsv(tmp_path, rows), ReadOptions(label="go", positive="GO:0005524"))
    p_kw, _, _ = read_uniprot_tsv(tsv(tmp_path, rows), ReadOptions(label="keyword", positive="Kinase"))
    assert p_go["label"].tolist() == ["positive"] and p_kw["label"].tolist() == ["negative"]


def test_best_window_and_crop():
    assert best_window(100, 30, np.array([50, 51, 90])) == 35  # both 50, 51; centred on them
    assert best_window(100, 30, np.array([])) == 0
    assert best_window(20, 30, np.array([5])) == 0
    prot = pd.DataFrame(
        {
            "accession": ["A", "B"],
            "sequence": ["M" * 40 + "W" + "M" * 59, "K" * 10],
            "length": [100, 10],
            "label": "1",
            "line": [2, 3],
        }
    )
    ann = pd.DataFrame(
        {
            "accession": ["A", "A", "A", "B"],
            "type": ["active_site", "region", "disulfide_bond", "site"],
            "pair": [False, False, True, False],
            "start": [41, 30, 5, 2],
            "end": [41, 60, 90, 2],
        }
    )
    p, a, counts = apply_length_policy(prot, ann, 20, "crop")
    assert counts == {"overlong": 1, "skipped": 0, "cropped": 1, "annotations_outside_window": 1}
    win = int(p.loc[0, "window_start"])
    assert p.loc[0, "length"] == 20 and p.loc[0, "full_length"] == 100
    assert p.loc[0, "sequence"] == prot.loc[0, "sequence"][win - 1 : win + 19]
    act = a[(a.accession == "A") & (a.type == "active_site")].iloc[0]
    assert p.loc[0, "sequence"][act.start - 1] == "W"  # the annotated residue moved with the window
    reg = a[(a.accession == "A") & (a.type == "region")].iloc[0]
    assert (reg.start, reg.end) == (1, 20)  # clipped to the window
    assert "disulfide_bond" not in set(a[a.accession == "A"].type)  # a partner outside: dropped
    p2, a2, c2 = apply_length_policy(prot, ann, 20, "skip")
    assert p2["accession"].tolist() == ["B"] and a2["accession"].tolist() == ["B"] and c2["skipped"] == 1
    with pytest.raises(SequenceTooLongError, match=r"x.tsv, line 2: A has 100 residues > data.max_length=20"):
        apply_length_policy(prot, ann, 20, "error", source="x.tsv")


def _family(rng, n, length, mut):
    root = rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=length)
    out = []
    for _ in range(n):
        s = root.copy()
        idx = rng.choice(length, size=int(mut * length), replace=False)
        s[idx] = rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=len(idx))
        out.append("".join(s))
    return out


@needs_mmseqs
def test_homology_clusters_stay_in_one_split():
    rng = np.random.default_rng(0)
    seqs, fam, labels = [], [], []
    for f in range(12):  # 12 families of 5 close homologues (~90% identity), 2 classes
        for s in _family(rng, 5, 150, 0.1):
            seqs.append(s)
            fam.append(f)
            labels.append(str(f % 2 + 1))
    prot = pd.DataFrame(
        {"accession": [f"Q{i:03d}" for i in range(len(seqs))], "sequence": seqs, "label": labels}
    )
    cl = cluster(prot, 0.5, 0.8)
    assert cl.nunique() == 12
    # members of a family share a cluster, and clusters do not mix families
    assert pd.crosstab(cl.to_numpy(), np.array(fam)).gt(0).sum(axis=1).eq(1).all()
    split = cluster_split(
        prot["label"], cl.reset_index(drop=True), {"train": 0.5, "val": 0.0, "test": 0.5}, seed=0
    )
    prot["split"], prot["cluster"] = split.to_numpy(), cl.to_numpy()
    assert prot.groupby("cluster")["split"].nunique().eq(1).all()
    assert pd.crosstab(prot["label"], prot["split"]).to_dict() == {
        "test": {"1": 15, "2": 15},
        "train": {"1": 15, "2": 15},
    }
    ident = max_identity_to_train(prot)
    assert ident["max_test_train_identity"] < 0.5  # unrelated random families
    # a random split would leak: homologues on both sides
    prot["split"] = ["train" if i % 2 else "test" for i in range(len(prot))]
    assert max_identity_to_train(prot)["max_test_train_identity"] > 0.8


def _cfg(**data):
    from plmxai.config import validate_config

    return validate_config({"data": {"source": "uniprot_tsv", "tsv": "x", "min_class_size": 1, **data}})


@pytest.mark.parametrize(
    "rows, data, message",
    [
        (
            [{"Entry": "A", "Sequence": "MKV", "EC number": "1.1.1.1"}] * 1
            + [{"Entry": "B", "Sequence": "MKV", "EC number": "1.2.1.1"}],
            {"split": {"method": "random"}},
            r"only class\(es\) \['1'\] left after filtering",
        ),
        (
            [
                {"Entry": "A", "Sequence": "MKV" * 10, "EC number": "1.1.1.1"},
                {"Entry": "B", "Sequence": "MKV", "EC number": "2.1.1.1"},
            ],
            {"max_length": 10, "overlong": "error"},
            r"line 2: A has 30 residues > data.max_length=10",
        ),
        (
            [
                {"Entry": "A", "Sequence": "MKV", "EC number": "1.1.1.1"},
                {"Entry": "B", "Sequence": "MKV", "EC number": "2.1.1.1"},
            ],
            {"label": "keyword", "positive": "Ligase"},
            r"only class\(es\) \['negative'\] left after filtering",
        ),
    ],
)
def test_bad_input_writes_nothing(tmp_path, rows, data, message):
    src = tsv(tmp_path, rows)
    cfg = _cfg(**data)
    outs = [tmp_path / "out" / n for n in ("proteins.parquet", "annotations.parquet", "summary.json")]
    with pytest.raises(ValueError, match=message):
        prepare_data({**cfg, "data": {**cfg["data"], "tsv": str(src)}}, src, *outs)
    assert not any(o.exists() for o in outs)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "text, message",
    BAD_INPUTS + [(HEADER + row(seq="mktayiakqr"), r"line 2: lower-case letters in the sequence of P1")],
)
def test_bad_input_corpus_through_the_data_stage(tmp_path, text, message):
    """Every broken input stops the data stage with its message, and nothing is written."""
    src = tmp_path / "bad.tsv"
    src.write_text(text)
    cfg = _cfg(tsv=str(src), lowercase="error", split={"method": "random"})
    outs = [tmp_path / "out" / n for n in ("proteins.parquet", "annotations.parquet", "summary.json")]
    with pytest.raises(ValueError, match=message):
        prepare_data(cfg, src, *outs)
    assert not (tmp_path / "out").exists()


def test_truncated_gzip_through_the_data_stage(tmp_path):
    import gzip

    src = tmp_path / "bad.tsv.gz"
    src.write_bytes(gzip.compress((HEADER + "".join(row(f"P{i}") for i in range(500))).encode())[:-30])
    outs = [tmp_path / "out" / n for n in ("proteins.parquet", "annotations.parquet", "summary.json")]
    with pytest.raises(ValueError, match=r"bad.tsv.gz: the gzip stream ends early"):
        prepare_data(_cfg(tsv=str(src)), src, *outs)
    assert not (tmp_path / "out").exists()


@needs_mmseqs
def test_prepare_real_subset_homology(shared_data, tmp_path):
    src = shared_data / "uniprot" / "swissprot_enzymes_sites.tsv"
    cfg = _cfg(tsv=str(src), max_per_class=40, min_class_size=20, max_length=400, overlong="crop")
    outs = [tmp_path / n for n in ("proteins.parquet", "annotations.parquet", "summary.json")]
    prepare_data(cfg, src, *outs)
    prot = pd.read_parquet(outs[0])
    summary = json.loads(outs[2].read_text())
    assert prot["label"].value_counts().to_dict() == {
        "1": 40,
        "2": 40,
        "3": 40,
        "4": 40,
        "5": 40,
        "6": 31,
    }  # 7 has 4
    assert summary["classes_dropped"] == ["7"]
    assert prot["length"].max() <= 400 and summary["length_policy"]["cropped"] > 0
    assert prot.groupby("cluster")["split"].nunique().eq(1).all()
    sp = summary["split"]
    assert sp["method"] == "homology" and sp["clusters"] == prot["cluster"].nunique()
    assert 0 <= sp["max_test_train_identity"] <= 1
    ann = pd.read_parquet(outs[1])
    seqs = prot.set_index("accession")["sequence"]
    assert (ann["end"].to_numpy() <= ann["accession"].map(seqs.str.len()).to_numpy()).all()
