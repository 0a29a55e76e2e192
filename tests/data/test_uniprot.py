import csv
import gzip
import re
from collections import Counter

import pandas as pd
import pytest

from plmxai.data.recognise import InputError
from plmxai.data.uniprot import (
    ReadOptions,
    UniProtFormatError,
    ec_label,
    parse_features,
    parse_location,
    read_uniprot_tsv,
)

HEADER = "Entry\tEntry Name\tLength\tEC number\tSequence\tSite\tBinding site\tActive site\n"


def write(tmp_path, text, name="export.tsv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def row(acc="P1", seq="MKTAYIAKQR", ec="3.1.1.1", site="", binding="", act="", length=None):
    length = len(seq) if length is None else length
    return f"{acc}\t{acc}_X\t{length}\t{ec}\t{seq}\t{site}\t{binding}\t{act}\n"


@pytest.mark.parametrize(
    "loc, expected",
    [
        ("164", (164, 164)),
        ("10..17", (10, 17)),
        ("<1..5", (1, 5)),
        ("3..>250", (3, 250)),
        ("?", None),
        ("?..12", None),
        ("7..?", None),
    ],
)
def test_parse_location(loc, expected):
    assert parse_location(loc) == expected


@pytest.mark.parametrize("loc", ["abc", "5..", "..5", "0", "9..3", "1..2..3", "?x"])
def test_parse_location_rejects(loc):
    with pytest.raises(ValueError, match="bad position"):
        parse_location(loc)


def test_parse_features_keeps_qualifiers_with_semicolons():
    text = (
        'ACT_SITE 164; /note="Nucleophile; via serine"; /evidence="ECO:0000269|PubMed:1"; '
        'BINDING 10..17; /ligand="ATP"; /ligand_id="ChEBI:CHEBI:30616"'
    )
    f = parse_features(text)
    assert [x["key"] for x in f] == ["ACT_SITE", "BINDING"]
    assert f[0]["loc"] == "164" and f[1]["loc"] == "10..17"
    assert f[0]["qualifiers"] == {"note": "Nucleophile; via serine", "evidence": "ECO:0000269|PubMed:1"}
    assert f[1]["qualifiers"]["ligand"] == "ATP"


@pytest.mark.parametrize(
    "ec, level, multi, expected",
    [
        ("3.1.1.74", 1, "drop", "3"),
        ("3.1.1.74", 2, "drop", "3.1"),
        ("2.7.7.108; 3.1.4.-", 1, "drop", None),
        ("2.7.7.108; 3.1.4.-", 1, "first", "2"),
        ("3.1.-.-", 3, "drop", None),
        ("3.1.1.1; 3.1.2.-", 1, "drop", "3"),
        ("", 1, "drop", None),
    ],
)
def test_ec_label(ec, level, multi, expected):
    assert ec_label(ec, level, multi)[0] == expected


def test_read_snippet_with_ranges(tmp_path):
    p = write(
        tmp_path,
        HEADER
        + row(
            "P1",
            "MKTAYIAKQR",
            "3.1.1.1",
            site='SITE 2; /note="x"',
            binding='BINDING 3..5; /ligand="ATP"; /evidence="ECO:0000250|UniProtKB:Q1"',
            act='ACT_SITE 7; /evidence="ECO:0000269"; ACT_SITE 9',
        )
        + row("P2", "ACDEFGH", "1.2.3.4"),
    )
    prot, ann, rep = read_uniprot_tsv(p)
    assert list(prot["accession"]) == ["P1", "P2"]
    assert list(prot["label"]) == ["3", "1"]
    got = sorted(zip(ann["feature"], ann["start"], ann["end"]))
    assert got == [("ACT_SITE", 7, 7), ("ACT_SITE", 9, 9), ("BINDING", 3, 5), ("SITE", 2, 2)]
    b = ann[ann["feature"] == "BINDING"].iloc[0]
    assert b["type"] == "binding_site" and b["ligand"] == "ATP"
    assert b["evidence"] == "ECO:0000250|UniProtKB:Q1"
    assert rep.features == Counter({"ACT_SITE": 2, "BINDING": 1, "SITE": 1})


def test_lowercase_policy(tmp_path):
    p = write(tmp_path, HEADER + row(seq="mktayiakqr"))
    prot, _, rep = read_uniprot_tsv(p)
    assert prot["sequence"].iat[0] == "MKTAYIAKQR" and rep.uppercased == 1
    with pytest.raises(UniProtFormatError, match=r"export.tsv, line 2: lower-case letters"):
        read_uniprot_tsv(p, ReadOptions(lowercase="error"))


def test_min_class_size_drops_and_counts(tmp_path):
    rows = [row(f"P{i}", ec="3.1.1.1") for i in range(3)] + [row("Q1", ec="1.1.1.1")]
    prot, _, rep = read_uniprot_tsv(write(tmp_path, HEADER + "".join(rows)), ReadOptions(min_class_size=2))
    assert set(prot["label"]) == {"3"}
    assert rep.classes_dropped == ["1"] and rep.dropped["class smaller than min_class_size"] == 1


BAD_INPUTS = [
    ("", r": an empty file \(0 bytes\): the download or copy failed"),
    ("Entry\tSequence\n", r"line 1: missing column\(s\) \['EC number'\]"),
    (HEADER + "P1\tP1_X\t10\n", r"line 2: 3 fields, the header has 8: a line break inside a value"),
    (HEADER + row(act="ACT_SITE 7x"), r"line 2: P1, ACT_SITE: bad position '7x'"),
    (HEADER + row(act="ACT_SITE 11"), r"line 2: P1, ACT_SITE 11: position beyond the sequence \(10"),
    (HEADER + row(seq="MKTAJIAKQR"), r"line 2: P1: 'J' at residue 5 is not an amino-acid letter"),
    (HEADER + row(seq="MKTA1IAKQR"), r"line 2: P1: '1' at residue 5"),
    (
        HEADER + row() + row(ec="2.1.1.1"),
        r"line 3: accession 'P1' again \(first on line 2\), with other values",
    ),
    (HEADER + row(length=12), r"line 2: P1: Length '12' but the sequence has 10 residues"),
    (HEADER + row(ec="3.1.1"), r"line 2: P1: malformed EC number '3.1.1'"),
    (HEADER + row(act="garbage here"), r"line 2: P1, column 'Active site': cannot parse"),
    (
        HEADER + row(ec=""),
        r"no usable entries: all 1 rows dropped \(\{'no EC number': 1\}\); no EC number: add ec:\* to the query",
    ),
]


@pytest.mark.parametrize("text, message", BAD_INPUTS)
def test_bad_input_names_file_line_and_value(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as err:
        read_uniprot_tsv(p)
    assert str(p) in str(err.value)


def test_gzip_and_truncated_gzip(tmp_path):
    data = (HEADER + row() + row("P2")).encode()
    good = tmp_path / "x.tsv.gz"
    good.write_bytes(gzip.compress(data))
    prot, _, _ = read_uniprot_tsv(good)
    assert len(prot) == 2
    bad = tmp_path / "y.tsv.gz"
    many = (HEADER + "".join(row(f"P{i}") for i in range(500))).encode()
    bad.write_bytes(gzip.compress(many)[:-30])
    with pytest.raises(InputError, match=r"y.tsv.gz: the gzip stream ends early"):
        read_uniprot_tsv(bad)


def test_real_swissprot_export_every_feature_parsed(shared_data):
    path = shared_data / "uniprot" / "swissprot_enzymes_sites.tsv"
    prot, ann, rep = read_uniprot_tsv(path, ReadOptions(multi_ec="first"))
    assert rep.rows == 2209 and len(prot) == 2209
    # an independent scan of the raw text: every feature with its 1-based positions
    expected = Counter()
    cols = {"Site": "SITE", "Binding site": "BINDING", "Active site": "ACT_SITE"}
    with open(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            cells = dict(zip(header, line.rstrip("\n").split("\t")))
            for col, key in cols.items():
                for m in re.finditer(rf"(?:^|; ){key} (\d+)(?:\.\.(\d+))?(?=;)", cells[col] + ";"):
                    start = int(m.group(1))
                    end = int(m.group(2) or start)
                    expected[(cells["Entry"], key, start, end)] += 1
    got = Counter(zip(ann["accession"], ann["feature"], ann["start"].astype(int), ann["end"].astype(int)))
    assert got == expected
    assert (
        sum(1 for k in expected.elements() if k[1] == "ACT_SITE") == 3873
    )  # grep -oP "(^|\t|; )ACT_SITE \d"
    assert sum(1 for k in expected.elements() if k[1] == "BINDING") == 10505
    assert sum(1 for k in expected.elements() if k[1] == "SITE") == 851
    # positions lie in their sequence; a known entry: cutinase A0A024SC78 nucleophile S164
    seqs = prot.set_index("accession")["sequence"]
    assert (ann["end"].to_numpy() <= ann["accession"].map(seqs.str.len()).to_numpy()).all()
    cut = ann[(ann["accession"] == "A0A024SC78") & (ann["feature"] == "ACT_SITE")]
    assert list(cut["start"]) == [164, 216, 229]
    assert seqs["A0A024SC78"][164 - 1] == "S"
    assert cut["note"].iat[0] == "Nucleophile"
    # the default policy drops entries whose EC numbers disagree at level 1, and counts them
    prot1, _, rep1 = read_uniprot_tsv(path)
    assert len(prot1) + rep1.dropped["several EC numbers disagree"] == 2209


QUOTED_ROWS = (
    HEADER
    + row(
        "P1",
        "MKTAYIAKQR",
        "3.1.1.1",
        site='SITE 2; /note="x; y"',
        binding='BINDING 3..5; /ligand="ATP"; /evidence="ECO:0000250|UniProtKB:Q1"',
        act='ACT_SITE 7; /note="Nucleophile"; ACT_SITE 9',
    )
    + row("P2", "ACDEFGH", "1.2.3.4")
    + row("P3", "MKTAYIAKQR", "2.7.1.1", act='ACT_SITE 3; /evidence="ECO:0000269"')
)


@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])
def test_quoted_tsv_reads_like_the_api_tsv(tmp_path, quoting):
    """pandas (and R, spreadsheets) quote every cell holding a `"`: the same tables result."""
    plain = write(tmp_path, QUOTED_ROWS)
    table = pd.read_csv(plain, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    quoted = tmp_path / "quoted.tsv"
    table.to_csv(quoted, sep="\t", index=False, quoting=quoting)
    assert '"ACT_SITE 7; /note=""Nucleophile""; ACT_SITE 9"' in quoted.read_text()
    prot, ann, rep = read_uniprot_tsv(plain)
    prot_q, ann_q, rep_q = read_uniprot_tsv(quoted)
    pd.testing.assert_frame_equal(prot_q, prot)
    pd.testing.assert_frame_equal(ann_q, ann)
    assert rep_q.quoted and not rep.quoted
    assert {**rep_q.as_dict(), "path": "", "quoted": False} == {**rep.as_dict(), "path": ""}


def test_quoted_tsv_errors_keep_the_file_line(tmp_path):
    # a quoted cell may hold a line break: the next record starts one file line further down
    text = (
        HEADER.replace("\tSite\t", '\t"Site"\t')
        + row("P1", site='"SITE 2; /note=""two\nlines"""')
        + row("P2", act='"ACT_SITE 11; /note=""x"""')
    )
    p = write(tmp_path, text, "quoted.tsv")
    with pytest.raises(
        UniProtFormatError,
        match=r"quoted.tsv, line 4: P2, ACT_SITE 11: position "
        r"beyond the sequence",
    ):
        read_uniprot_tsv(p)
    bad = write(
        tmp_path, HEADER + row("P1", site='"SITE 2; /note=""x"""') + 'P2\t"unclosed\n', "bad_quotes.tsv"
    )
    with pytest.raises(UniProtFormatError, match=r"bad_quotes.tsv, line 3: bad CSV quoting"):
        read_uniprot_tsv(bad)


def test_real_swissprot_export_quoted_by_pandas(shared_data, tmp_path):
    path = shared_data / "uniprot" / "swissprot_enzymes_sites.tsv"
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    quoted = tmp_path / "quoted.tsv"
    table.to_csv(quoted, sep="\t", index=False)
    prot, ann, _ = read_uniprot_tsv(path, ReadOptions(multi_ec="first"))
    prot_q, ann_q, rep_q = read_uniprot_tsv(quoted, ReadOptions(multi_ec="first"))
    assert rep_q.quoted
    pd.testing.assert_frame_equal(prot_q, prot)
    pd.testing.assert_frame_equal(ann_q, ann)


def test_byte_order_mark_and_quoted_header(tmp_path):
    """A spreadsheet's export: UTF-8 byte-order mark, every field quoted (header too)."""
    plain = write(tmp_path, QUOTED_ROWS)
    quoted = tmp_path / "excel.tsv"
    table = pd.read_csv(plain, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    table.to_csv(quoted, sep="\t", index=False, quoting=csv.QUOTE_ALL, encoding="utf-8-sig")
    assert quoted.read_bytes().startswith(b'\xef\xbb\xbf"Entry"\t')
    pd.testing.assert_frame_equal(read_uniprot_tsv(quoted)[1], read_uniprot_tsv(plain)[1])
