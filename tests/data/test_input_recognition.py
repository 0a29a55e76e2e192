"""Files the UniProt reader reads as they come (gzip, a byte-order mark, EC prefixes), and the
splits of odd inputs; the wrong files, each with its message, are the corpus in
test_input_corpus.py."""

import gzip
import shutil

import pytest

from plmxai.data.uniprot import ReadOptions, read_uniprot_tsv

HEADER = "Entry\tSequence\tEC number\tActive site\n"
ROWS = "".join(
    f'P{i:05d}\tMKTAYIAKQRQISFVKSHFSRQ{"LEKG"[i % 4] * (i + 1)}\t{i % 3 + 1}.1.1.1\tACT_SITE 5; /note="n"\n'
    for i in range(12)
)
GOOD = HEADER + ROWS


def read(path):
    return read_uniprot_tsv(path, ReadOptions(label="ec", ec_level=1))


def test_gzip_under_a_tsv_name_is_read(tmp_path):
    p = tmp_path / "export.tsv"  # what curl saves from a compressed download
    p.write_bytes(gzip.compress(GOOD.encode()))
    prot, _, _ = read(p)
    assert len(prot) == 12


def test_utf8_byte_order_mark_is_read(tmp_path):
    p = tmp_path / "export.tsv"
    p.write_text(GOOD, encoding="utf-8-sig")
    assert len(read(p)[0]) == 12


def test_ec_number_with_a_prefix_is_read(tmp_path):
    p = tmp_path / "export.tsv"
    p.write_text(GOOD.replace("\t1.1.1.1", "\tEC 1.1.1.1").replace("\t2.1.1.1", "\tEC:2.1.1.1"))
    prot, _, report = read(p)
    assert len(prot) == 12 and not report.dropped
    assert sorted(prot["label"].unique()) == ["1", "2", "3"]


@pytest.mark.skipif(shutil.which("mmseqs") is None, reason="MMseqs2 is not installed")
def test_homology_split_with_an_empty_side_says_what_to_do(tmp_path):
    import plmxai as px

    p = tmp_path / "export.tsv"
    base = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ"
    # 20 variants one substitution apart: one cluster at 50% identity, yet 20 distinct proteins
    same = "".join(f"P{i:05d}\t{base[:i] + 'W' + base[i + 1 :]}\t{i % 2 + 1}.1.1.1\t\n" for i in range(20))
    p.write_text(HEADER + same)
    with pytest.raises(ValueError) as err:
        px.data.read(p, label="ec", min_class_size=1)
    message = str(err.value)
    assert "the homology split left the test split empty" in message
    assert "20 proteins fall in 1 cluster(s) at data.split.min_seq_id 0.5" in message
    assert "data.split.method: random" in message
    proteins, _, _ = px.data.read(p, label="ec", min_class_size=1, split={"method": "random"})
    assert (proteins["split"] == "test").any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identical_sequences_share_one_split(tmp_path, seed):
    """One sequence under 11 accessions (as a user's export can hold) lands in one split, and
    the summary counts it; the other proteins are split as before."""
    import numpy as np

    import plmxai as px

    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    rows = [f"Q{i:05d}\t{''.join(rng.choice(letters, 60))}\t{i % 2 + 1}.1.1.1\t\n" for i in range(60)]
    copy = "".join(rng.choice(letters, 60))
    rows += [f"D{i:05d}\t{copy}\t1.1.1.1\t\n" for i in range(11)]
    p = tmp_path / "export.tsv"
    p.write_text(HEADER + "".join(rows))
    proteins, _, summary = px.data.read(
        p, label="ec", min_class_size=1, split={"method": "random"}, seed=seed
    )
    copies = proteins[proteins["sequence"] == copy]
    assert len(copies) == 11 and copies["split"].nunique() == 1
    assert summary["split"]["identical_sequences"] == {"sequences": 1, "proteins": 11, "splits_shared": 0}
    assert set(proteins["split"]) == {"train", "val", "test"}


def test_a_class_too_small_for_every_split_is_said_with_the_right_reason(tmp_path, caplog):
    import plmxai as px
    from plmxai.report.build import _split_text

    p = tmp_path / "export.tsv"
    p.write_text(GOOD + "P99999\tMKTAYIAKQRQWWWWWWWWW\t4.1.1.1\t\n")  # class 4: one protein
    with caplog.at_level("WARNING", logger="plmxai"):
        proteins, _, summary = px.data.read(p, label="ec", min_class_size=1, split={"method": "random"})
    missing = summary["split"]["classes_missing"]
    assert "4" in missing["test"] and "4" in missing["val"] and "train" not in missing
    assert "a class of n proteins reaches every split only with n >= 3" in caplog.text
    assert "raise data.min_class_size to drop such classes" in caplog.text
    assert "clusters" not in caplog.text  # the homology reason, wrong for a random split
    assert "no test proteins of class(es) 4" in _split_text(summary["split"])
    assert len(proteins) == 13
