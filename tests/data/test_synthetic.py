import pandas as pd
import pytest

from plmxai.data.synthetic import DemoSpec, generate, write_tsv
from plmxai.data.uniprot import read_uniprot_tsv


def test_motifs_are_planted_where_annotated(tmp_path):
    spec = DemoSpec(n_proteins=80, n_classes=4, seed=3)
    df, motifs = generate(spec)
    path = tmp_path / "demo.tsv"
    write_tsv(df, path)
    prot, ann, rep = read_uniprot_tsv(path)
    assert len(prot) == 80 and rep.kept == 80
    assert prot["label"].value_counts().to_dict() == {"1": 20, "2": 20, "3": 20, "4": 20}
    seqs = prot.set_index("accession")["sequence"]
    labels = prot.set_index("accession")["label"]
    for acc, g in ann[ann["type"] == "active_site"].groupby("accession"):
        pos = sorted(g["start"])
        assert pos == list(range(pos[0], pos[0] + spec.motif_length))
        planted = seqs[acc][pos[0] - 1 : pos[-1]]
        assert planted == motifs[int(labels[acc]) - 1]
    for rec in ann[ann["type"] == "site"].itertuples():
        decoy = seqs[rec.accession][rec.start - 1 : rec.end]
        assert decoy not in motifs
        source = motifs[int(rec.note.rsplit(" ", 1)[1]) - 1]
        assert sum(a != b for a, b in zip(decoy, source)) == spec.decoy_mutations
    # no protein contains another class's full motif
    for acc, s in seqs.items():
        own = motifs[int(labels[acc]) - 1]
        assert s.count(own) == 1
        assert not any(m in s for m in motifs if m != own)


def test_seeded_and_deterministic():
    a, ma = generate(DemoSpec(n_proteins=30, seed=1))
    b, mb = generate(DemoSpec(n_proteins=30, seed=1))
    c, _ = generate(DemoSpec(n_proteins=30, seed=2))
    pd.testing.assert_frame_equal(a, b)
    assert ma == mb
    assert not a["Sequence"].equals(c["Sequence"])


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"n_classes": 9}, "n_classes"),
        ({"decoy_mutations": 0}, "decoy_mutations"),
        ({"min_length": 11}, "cannot hold"),
        ({"min_length": 90, "max_length": 80}, "min_length"),
        ({"motif_alphabet": "W"}, "motif_alphabet"),
    ],
)
def test_bad_spec(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DemoSpec(**kw)
