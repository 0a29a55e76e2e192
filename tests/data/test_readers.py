"""Readers for FASTA, TMbed residue-label FASTA, binding-site JSON lines and structure folders."""

import gzip
import json
import re
from collections import Counter

import pandas as pd
import pytest

from plmxai.data.readers import (
    ANNOTATION_COLUMNS,
    PROTEIN_COLUMNS,
    UNLABELLED,
    InputFormatError,
    read_fasta,
    read_input,
    read_residue_label_fasta,
    read_sites_jsonl,
    read_structure_folder,
)
from plmxai.data.recognise import InputError
from plmxai.data.uniprot import UniProtFormatError


def write(tmp_path, text, name):
    p = tmp_path / name
    p.write_text(text)
    return p


def proteins(rows):
    """The expected proteins table from (accession, sequence, label, line) tuples."""
    df = pd.DataFrame(
        [
            {"accession": a, "sequence": s, "length": len(s), "label": lab, "ec": "", "line": n}
            for a, s, lab, n in rows
        ],
        columns=PROTEIN_COLUMNS,
    )
    return df.astype({"length": "int32", "line": "int32"})


def annotations(rows):
    """The expected annotations table from (accession, feature, type, start, end, note) tuples."""
    df = pd.DataFrame(
        [
            {
                "accession": a,
                "feature": f,
                "type": t,
                "pair": False,
                "start": s,
                "end": e,
                "note": note,
                "evidence": "",
                "ligand": "",
            }
            for a, f, t, s, e, note in rows
        ],
        columns=ANNOTATION_COLUMNS,
    )
    return df.astype({"start": "int32", "end": "int32", "pair": bool})


def assert_error(call, path, message):
    """The reader stops with an InputFormatError (a UniProtFormatError) naming file and value."""
    with pytest.raises(InputError, match=message) as err:
        call(path)
    assert isinstance(err.value, UniProtFormatError)
    assert str(path) in str(err.value)


# ---- plain FASTA ----------------------------------------------------------------------------

FASTA = """>sp|P12345|NAME_HUMAN Some protein OS=Homo sapiens
MKTAYIAK
QRqi*
>tr|Q9XYZ1|Q9XYZ1_MOUSE
ACDE

>plain_id a description
WY*
"""


def test_read_fasta_tables(tmp_path):
    prot, ann, rep = read_fasta(write(tmp_path, FASTA, "x.fasta"))
    expected = proteins(
        [
            ("P12345", "MKTAYIAKQRQI", UNLABELLED, 1),
            ("Q9XYZ1", "ACDE", UNLABELLED, 4),
            ("plain_id", "WY", UNLABELLED, 7),
        ]
    )
    pd.testing.assert_frame_equal(prot, expected)
    pd.testing.assert_frame_equal(ann, annotations([]))
    assert (rep.rows, rep.kept, rep.uppercased, rep.stop_codons_stripped) == (3, 3, 1, 2)
    assert rep.source == "fasta"
    json.dumps(rep.as_dict())
    gz = tmp_path / "x.fasta.gz"
    gz.write_bytes(gzip.compress(FASTA.encode()))
    prot_gz, _, _ = read_fasta(gz)
    pd.testing.assert_frame_equal(prot_gz, expected)


FASTA_BAD = [
    ("", r": an empty file \(0 bytes\): the download or copy failed"),
    ("MKT\n>a\nMK\n", r"line 1: text before the first header: 'MKT'"),
    (">a\n>b\nMK\n", r"line 1: header '>a' has no sequence"),
    (">a\nMK\n>b\n", r"line 3: header '>b' has no sequence"),
    (">a\nMK\n>a\nMK\n", r"line 3: duplicate accession 'a' \(first on line 1\)"),
    (">a\nMKT\nAJK\n", r"line 3: a: 'J' at residue 5 is not an amino-acid letter"),
    (">a\nMK*T\n", r"line 2: a: '\*' at residue 3 is a stop codon inside the sequence"),
    (">sp|P1|X\nMK1\n", r"line 2: P1: '1' at residue 3"),
]


@pytest.mark.parametrize("text, message", FASTA_BAD)
def test_read_fasta_bad_input_names_file_line_and_value(tmp_path, text, message):
    p = write(tmp_path, text, "bad.fasta")
    assert_error(read_fasta, p, message)


def test_read_fasta_lowercase_error(tmp_path):
    p = write(tmp_path, ">a\nMK\nTAyK\n", "low.fasta")
    message = r"line 3: lower-case letters in the sequence of a \('y' at residue 5\)"
    assert_error(lambda q: read_fasta(q, lowercase="error"), p, message)


# ---- TMbed 3-line residue-label FASTA -------------------------------------------------------

RESIDUE_FASTA = """>5abc_A|P11111|X_HUMAN
MKTAYIAKQRQISFVKSHFS
SSS11HHHH2hhh1BBb22U
>Q99999|EUKARYA|NO_SP|0
ACDEFG
111122
"""


def test_read_residue_label_fasta_tables(tmp_path):
    p = write(tmp_path, RESIDUE_FASTA, "tm.fasta")
    prot, ann, rep = read_residue_label_fasta(p, label="transmembrane")
    pd.testing.assert_frame_equal(
        prot,
        proteins([("5abc_A", "MKTAYIAKQRQISFVKSHFS", "membrane", 1), ("Q99999", "ACDEFG", "globular", 4)]),
    )
    pd.testing.assert_frame_equal(
        ann,
        annotations(
            [
                ("5abc_A", "SIGNAL", "signal_peptide", 1, 3, ""),
                ("5abc_A", "TRANSMEM", "transmembrane", 6, 9, "helix, H"),
                ("5abc_A", "TRANSMEM", "transmembrane", 11, 13, "helix, h"),
                ("5abc_A", "TRANSMEM", "transmembrane", 15, 16, "strand, B"),
                ("5abc_A", "TRANSMEM", "transmembrane", 17, 17, "strand, b"),
            ]
        ),
    )
    assert rep.features == Counter({"TRANSMEM": 4, "SIGNAL": 1})
    prot_none, _, _ = read_residue_label_fasta(p)
    assert prot_none["label"].tolist() == [UNLABELLED, UNLABELLED]
    with pytest.raises(ValueError, match="label must be"):
        read_residue_label_fasta(p, label="ec")


RESIDUE_BAD = [
    ("", r": an empty file \(0 bytes\): the download or copy failed"),
    (">a|x\nMKT\n", r"line 2: truncated file: record a \(header on line 1\) has no label line"),
    (">a|x\n", r"line 1: truncated file: record a \(header on line 1\) has no sequence and label"),
    (
        ">a|x\nMKT\n>b|y\nMK\n11\n",
        r"line 3: truncated record a \(header on line 1\): a header '>b\|y' where its label line",
    ),
    (
        ">a|x\nMKT\n11\n",
        r"line 3: a: the sequence has 3 residues \(line 2\) but the label string has 2 letters",
    ),
    (">a|x\nMKT\n1X1\n", r"line 3: a: unknown label letter 'X' at position 2"),
    (">a|x\nMK\n11\n>a|y\nMK\n22\n", r"line 4: duplicate id 'a' \(first on line 1\)"),
    (">a|x\nMJK\n111\n", r"line 2: a: 'J' at residue 2 is not an amino-acid letter"),
    ("MK\n11\n>a|x\n", r"line 1: expected a '>' header .* got 'MK'"),
]


@pytest.mark.parametrize("text, message", RESIDUE_BAD)
def test_read_residue_label_fasta_bad_input_names_file_line_and_value(tmp_path, text, message):
    p = write(tmp_path, text, "bad_tm.fasta")
    assert_error(read_residue_label_fasta, p, message)


# ---- binding sites, JSON lines --------------------------------------------------------------

SITES = [
    {"id": "1abc.A", "primary": "MKTAYI", "positions": [10, 11, 12, 12, 13, 14], "sites": [12, 14]},
    {"id": "2xyz.B", "primary": "ACD", "positions": [1, 2, 3], "sites": []},
]


def jsonl(tmp_path, records, name="sites.jsonl"):
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return write(tmp_path, "\n".join(lines) + "\n", name)


def test_read_sites_jsonl_tables(tmp_path):
    # a blank line in between: skipped, line numbers stay the file's
    prot, ann, rep = read_sites_jsonl(jsonl(tmp_path, [SITES[0], "", SITES[1]]))
    pd.testing.assert_frame_equal(
        prot, proteins([("1abc.A", "MKTAYI", UNLABELLED, 1), ("2xyz.B", "ACD", UNLABELLED, 3)])
    )
    # residue number 12 is on residues 3 and 4 (an insertion code): the first is taken, counted
    pd.testing.assert_frame_equal(
        ann,
        annotations(
            [
                ("1abc.A", "BINDING", "binding_site", 3, 3, "PDB residue 12"),
                ("1abc.A", "BINDING", "binding_site", 6, 6, "PDB residue 14"),
            ]
        ),
    )
    assert rep.sites_ambiguous == 1 and rep.sites_outside_skipped == 0


def test_read_sites_jsonl_outside_policy(tmp_path):
    rec = dict(SITES[1], sites=[2, 9])
    p = jsonl(tmp_path, [SITES[0], rec])
    message = r"line 2: 2xyz.B: site 9 outside the chain \(its residue numbers run 1..3\)"
    assert_error(read_sites_jsonl, p, message)
    _, ann, rep = read_sites_jsonl(p, outside="skip")
    assert ann[ann["accession"] == "2xyz.B"]["start"].tolist() == [2]
    assert rep.sites_outside_skipped == 1


GOOD = {"id": "a", "primary": "MK", "positions": [1, 2], "sites": [2]}
SITES_BAD = [
    ([""], r": an empty file \(blank lines only\)"),
    ([GOOD, '{"id": "b", "primary": '], r"line 2: invalid JSON \(.*\): '\{\"id\": \"b\""),
    (['["a", "MK"]'], r": a JSON array, where JSON lines is expected: write one object a line"),
    ([{"id": "a", "primary": "MK", "positions": [1, 2]}], r"line 1: missing key\(s\) \['sites'\]"),
    ([dict(GOOD, positions=[1])], r"line 1: a: 1 positions for a primary sequence of 2 residues"),
    ([GOOD, dict(GOOD, sites=[5])], r"line 2: duplicate id 'a' \(first on line 1\)"),
    ([GOOD, dict(GOOD, id="b", sites=[5])], r"line 2: b: site 5 outside the chain"),
    ([dict(GOOD, primary="MJ")], r"line 1: a: 'J' at residue 2 is not an amino-acid letter"),
    ([dict(GOOD, sites=[[2]])], r"line 1: a: sites holds \[2\], not a residue number"),
]


@pytest.mark.parametrize("records, message", SITES_BAD)
def test_read_sites_jsonl_bad_input_names_file_line_and_value(tmp_path, records, message):
    p = jsonl(tmp_path, records, "bad.jsonl")
    assert_error(read_sites_jsonl, p, message)


# ---- structure folders ----------------------------------------------------------------------


def pdb_atom(serial, name, res, chain, resseq, x, record="ATOM", element="C"):
    """One fixed-column PDB ATOM/HETATM record."""
    return (
        f"{record:<6}{serial:>5} {name:<4} {res:>3} {chain}{resseq:>4}    "
        f"{x:>8.3f}{0.0:>8.3f}{0.0:>8.3f}{1.0:>6.2f}{0.0:>6.2f}"
        f"          {element:>2}"
    )


def pdb(residues):
    """A PDB file of C-alpha (and N) atoms: residues as (chain, residue name, record)."""
    lines, serial = [], 1
    for i, (chain, res, record) in enumerate(residues):
        names = [" N", " CA"] if record == "ATOM" else [" O"]
        for name in names:
            element = name.strip()[0] if record == "ATOM" else "O"
            lines.append(pdb_atom(serial, name, res, chain, i + 1, 3.8 * i, record, element))
            serial += 1
    return "\n".join(lines + ["END"]) + "\n"


COMPLEX = [
    ("A", "MET", "ATOM"),
    ("A", "LYS", "ATOM"),
    ("A", "THR", "ATOM"),
    ("B", "GLY", "ATOM"),
    ("B", "TRP", "ATOM"),
    ("W", "HOH", "HETATM"),
]


def test_read_structure_folder_tables(tmp_path):
    write(tmp_path, pdb(COMPLEX), "cplx.pdb")
    write(tmp_path, pdb([("C", "SER", "ATOM"), ("C", "MSE", "ATOM")]), "solo.pdb")
    write(tmp_path, "not a structure\n", "notes.txt")
    prot, ann, rep, chains = read_structure_folder(tmp_path)
    pd.testing.assert_frame_equal(
        prot,
        proteins(
            [
                ("cplx_A", "MKT", UNLABELLED, 0),
                ("cplx_B", "GW", UNLABELLED, 0),
                ("solo_C", "SM", UNLABELLED, 0),
            ]
        ),
    )
    pd.testing.assert_frame_equal(ann, annotations([]))
    assert chains.to_dict("list") == {
        "accession": ["cplx_A", "cplx_B", "solo_C"],
        "path": [str(tmp_path / "cplx.pdb")] * 2 + [str(tmp_path / "solo.pdb")],
        "chain": ["A", "B", "C"],
    }
    assert rep.rows == rep.kept == 3 and rep.source == "structures"


def test_read_structure_folder_missing_or_empty(tmp_path):
    assert_error(
        read_structure_folder,
        tmp_path / "nope",
        r"nope: no such folder \(expected structure files: \.pdb, \.cif",
    )
    write(tmp_path, "x\n", "notes.txt")
    assert_error(
        read_structure_folder, tmp_path, r"no structure file \(accepted suffixes: \.pdb, \.cif, .*\.cif\.gz"
    )


@pytest.mark.parametrize(
    "residues, message",
    [
        ([("W", "HOH", "HETATM"), ("W", "HOH", "HETATM")], r"bad.pdb: no protein chain"),
        ([("D", "DA", "ATOM"), ("D", "DG", "ATOM")], r"bad.pdb: no protein chain"),
        (
            [("A", "UNK", "ATOM"), ("A", "UNK", "ATOM")],
            r"bad.pdb: chain 'A': all 2 residues are non-standard amino acids \(X\)",
        ),
    ],
)
def test_read_structure_folder_file_without_protein_chain(tmp_path, residues, message):
    write(tmp_path, pdb(COMPLEX), "a_good.pdb")
    write(tmp_path, pdb(residues), "bad.pdb")
    with pytest.raises(InputError, match=message) as err:
        read_structure_folder(tmp_path)
    assert str(tmp_path / "bad.pdb") in str(err.value)


# ---- dispatch -------------------------------------------------------------------------------


def test_read_input_dispatches_by_source(tmp_path):
    fasta = write(tmp_path, FASTA, "x.fasta")
    prot, _, rep, chains = read_input("fasta", fasta, lowercase="upper")
    assert len(prot) == 3 and chains is None and rep.source == "fasta"
    prot, _, _, _ = read_input(
        "residue_fasta", write(tmp_path, RESIDUE_FASTA, "tm.fasta"), label="transmembrane"
    )
    assert prot["label"].tolist() == ["membrane", "globular"]
    prot, ann, _, _ = read_input("sites_jsonl", jsonl(tmp_path, SITES), outside="skip")
    assert len(prot) == 2 and len(ann) == 2
    folder = tmp_path / "structures"
    folder.mkdir()
    write(folder, pdb(COMPLEX), "cplx.pdb")
    prot, _, _, chains = read_input("structures", folder)
    assert prot["accession"].tolist() == chains["accession"].tolist() == ["cplx_A", "cplx_B"]
    tsv = write(tmp_path, "Entry\tEC number\tSequence\nP1\t3.1.1.1; 2.7.1.1\tMKT\n", "u.tsv")
    prot, _, rep, chains = read_input("uniprot_tsv", tsv, multi_ec="first")
    assert prot["label"].tolist() == ["3"] and chains is None and rep.source == "uniprot_tsv"
    with pytest.raises(ValueError, match=r"unknown input source 'pdb'; known: uniprot_tsv, fasta"):
        read_input("pdb", fasta)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['label'\] for source 'fasta'"):
        read_input("fasta", fasta, label="ec")


# ---- real data ------------------------------------------------------------------------------


def raw_records(path):
    """(header, sequence, labels) of a 3-line file, read independently of the reader."""
    lines = path.read_text().splitlines()
    return [tuple(lines[i : i + 3]) for i in range(0, len(lines), 3)]


def test_real_tmbed_alpha(shared_data):
    path = shared_data / "transmembrane" / "tmbed_alpha.fasta"
    prot, ann, rep = read_residue_label_fasta(path, label="transmembrane")
    raw = raw_records(path)
    assert len(prot) == len(raw) == 593 and rep.rows == 593
    assert set(prot["label"]) == {"membrane"}
    assert prot["accession"].tolist() == [h[1:].split("|")[0] for h, _, _ in raw]
    # every TM segment: one annotation per run of one of H, h, B, b
    runs = sum(len(re.findall(r"H+|h+|B+|b+", labels)) for _, _, labels in raw)
    assert (ann["feature"] == "TRANSMEM").sum() == runs == 3123
    assert (ann["note"] == "helix, h").sum() == 48
    seqs = prot.set_index("accession")["sequence"]
    first = raw[0]  # 1afo_A: its helix's residues carry H in the label line
    tm = ann[(ann["accession"] == "1afo_A") & (ann["feature"] == "TRANSMEM")].iloc[0]
    assert set(first[2][tm["start"] - 1 : tm["end"]]) == {"H"}
    assert seqs["1afo_A"] == first[1]


def test_real_tmbed_cv_membrane_and_globular(shared_data):
    path = shared_data / "transmembrane" / "tmbed_cv_00.fasta"
    prot, _, _ = read_residue_label_fasta(path, label="transmembrane")
    raw = raw_records(path)
    # headers: pdbchain|accession|name for membrane proteins, accession|kingdom|SP-type|partition
    # for the globular ones of the SignalP set
    by_header = Counter("membrane" if h.count("|") == 2 else "globular" for h, _, _ in raw)
    assert by_header == Counter({"membrane": 134, "globular": 1173})
    assert prot["label"].value_counts().to_dict() == dict(by_header)
    header_class = {h[1:].split("|")[0]: "membrane" if h.count("|") == 2 else "globular" for h, _, _ in raw}
    assert (prot["label"] == prot["accession"].map(header_class)).all()


def test_real_binding_sites(shared_data):
    path = shared_data / "binding_sites" / "pdb_chains_binding_sites.jsonl"
    # one site in the file lies past its chain's residue numbers: the default stops on it
    with pytest.raises(InputFormatError, match=r"line 1204: 3wjp.A: site 338 outside the chain"):
        read_sites_jsonl(path)
    prot, ann, rep = read_sites_jsonl(path, outside="skip")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(prot) == len(records) == 1418
    assert rep.sites_outside_skipped == 1 and rep.sites_ambiguous == 2
    expected = Counter()
    for r in records:
        for s in r["sites"]:
            if s in r["positions"]:
                expected[(r["id"], r["positions"].index(s) + 1)] += 1
    assert Counter(zip(ann["accession"], ann["start"].astype(int))) == expected
    assert len(ann) == 17598


def test_real_structure_folder_matches_chains_tsv(shared_data):
    table = pd.read_csv(shared_data / "structures" / "chains.tsv", sep="\t")
    prot, ann, rep, chains = read_structure_folder(shared_data / "structures" / "pdb")
    assert len(prot) == len(table) == 131 and ann.empty
    expected = {
        f"{f.removesuffix('.pdb')}_{c}": s
        for f, c, s in zip(table["file"], table["chain"], table["sequence_from_CA_records"])
    }
    assert dict(zip(prot["accession"], prot["sequence"])) == expected
    assert "1AVX_l_b_COMPLEX_B" in expected
    paths = dict(zip(chains["accession"], chains["path"]))
    assert all(
        paths[f"{f.removesuffix('.pdb')}_{c}"].endswith("/" + f)
        for f, c in zip(table["file"], table["chain"])
    )
