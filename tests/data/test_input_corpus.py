"""The input corpus: files, config values and model folders as users have them, wrong in the
ways they come wrong (a browser, Excel, pandas, R, git clone, curl), each through the function
the workflow's rule runs. For every one: the message names the file (or config key), the line
where one applies, what the input is and what to do; the stage writes nothing; and once fixed as
the message says, the same call succeeds, with a summary whose counts are its tables' rows.

The files the readers read as they are (gzip, CSV, quoting, R row names, ...) are in
`READ_AS_IS`, checked against the clean export's tables. docs/inputs.md lists both.
"""

from __future__ import annotations

import copy
import functools
import gzip
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from plmxai.config import ConfigError, options, validate_config
from plmxai.data.recognise import InputError
from plmxai.stages.data import data as data_stage

ROOT = Path(__file__).resolve().parents[2]

# a UniProt REST export (its header and cell formats), 30 proteins of 3 EC classes
HEADER_FIELDS = [
    "Entry",
    "Entry Name",
    "Protein names",
    "Length",
    "EC number",
    "Sequence",
    "Active site",
    "Binding site",
]
HEADER = "\t".join(HEADER_FIELDS) + "\n"
_rng = np.random.default_rng(7)
_AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
SEQS = ["M" + "".join(_rng.choice(_AA, 39 + i)) for i in range(30)]


def row(i: int, **over) -> dict:
    seq = over.get("Sequence", SEQS[i])
    cells = {
        "Entry": f"P{i:05d}",
        "Entry Name": f"PROT{i}_HUMAN",
        "Protein names": f"Protein {i}, kinase",
        "Length": str(len(seq)),
        "EC number": f"{i % 3 + 1}.1.1.{i}",
        "Sequence": seq,
        "Active site": f'ACT_SITE {i % 10 + 1}; /note="Nucleophile"; /evidence="ECO:0000269|PubMed:1"',
        "Binding site": f'BINDING {i % 7 + 2}; /ligand="Zn(2+)"; /ligand_id="ChEBI:CHEBI:29105"',
    }
    cells.update(over)
    return cells


def tsv(rows: list[dict] | None = None, header: list[str] = HEADER_FIELDS) -> str:
    rows = [row(i) for i in range(30)] if rows is None else rows
    return "\t".join(header) + "\n" + "".join("\t".join(r[h] for h in header) + "\n" for r in rows)


GOOD = tsv()
LINE = {i: i + 2 for i in range(30)}  # file line of protein i


def good_frame() -> pd.DataFrame:
    return pd.DataFrame([row(i) for i in range(30)], columns=HEADER_FIELDS)


def with_row(i: int, **over) -> str:
    return tsv([row(k, **over) if k == i else row(k) for k in range(30)])


# other formats, 30 unlabelled proteins each
FASTA = "".join(
    f">sp|P{i:05d}|PROT{i}_HUMAN Protein {i}\n{SEQS[i][:30]}\n{SEQS[i][30:]}\n" for i in range(30)
)
RESIDUE_FASTA = "".join(
    f">m{i}|membrane\n{SEQS[i]}\n{'1' * 5 + 'H' * 20 + '2' * (len(SEQS[i]) - 25)}\n" for i in range(30)
)


def sites_record(i: int, **over) -> str:
    seq = SEQS[i]
    rec = {"id": f"1ab{i}.A", "primary": seq, "positions": list(range(1, len(seq) + 1)), "sites": [3, 4]}
    rec.update(over)
    return json.dumps(rec)


SITES = "".join(sites_record(i) + "\n" for i in range(30))
PDB = (
    "".join(
        f"ATOM  {k + 1:5d}  CA  {res} A{k + 1:4d}    {3.8 * k:8.3f}{0.0:8.3f}{0.0:8.3f}  1.00  0.00           C\n"
        for k, res in enumerate(["MET", "LYS", "THR", "ALA", "TYR", "ILE", "ALA", "LYS", "GLN", "ARG"] * 3)
    )
    + "END\n"
)


def write(text: str | bytes) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        if p.is_dir():
            shutil.rmtree(p)
        p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)

    return make


def xlsx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the parts every .xlsx has
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buf.getvalue()


def zip_of(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, text)
    return buf.getvalue()


def unzip(p: Path) -> None:  # `unzip FILE`, and the file inside given
    with zipfile.ZipFile(p) as z:
        inner = z.read(z.namelist()[0])
    p.write_bytes(inner)


def iconv_utf16(p: Path) -> None:
    raw = p.read_bytes()
    enc = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-16-le"
    p.write_text(raw.decode(enc), encoding="utf-8")


def iconv_1252(p: Path) -> None:
    p.write_text(p.read_bytes().decode("cp1252"), encoding="utf-8")


def parquet_to_tsv(p: Path) -> None:  # the message's pandas line
    pd.read_parquet(io.BytesIO(p.read_bytes())).to_csv(p, sep="\t", index=False)


def add_header(p: Path) -> None:
    p.write_text(HEADER + p.read_text())


def rename_columns(p: Path) -> None:
    text = p.read_text()
    first, rest = text.split("\n", 1)
    names = {
        "accession": "Entry",
        "sequence": "Sequence",
        "ec": "EC number",
        "entry": "Entry",
        "ec number": "EC number",
    }
    p.write_text("\t".join(names.get(c, c) for c in first.split("\t")) + "\n" + rest)


def keep_first_header(p: Path) -> None:  # awk 'NR == 1 || $1 != "Entry"'
    lines = p.read_text().splitlines(keepends=True)
    p.write_text(lines[0] + "".join(x for x in lines[1:] if not x.startswith("Entry\t")))


def jq_lines(p: Path) -> None:  # jq -c '.[]'
    p.write_text("".join(json.dumps(o) + "\n" for o in json.loads(p.read_text())))


@dataclass
class Case:
    id: str
    make: Callable[[Path], None]  # writes the wrong input at the path
    parts: tuple[str, ...]  # in the message, after the file's name
    fix: Callable[[Path], None] | None = None  # what the message says to do, done to the file
    line: int | None = None
    options: dict = field(default_factory=dict)  # the config's data keys of the wrong run
    fixed: dict = field(default_factory=dict)  # data keys the message says to set
    source: str = "uniprot_tsv"
    name: str = "export.tsv"
    kept: int = 30  # proteins in the fixed run's table
    fixed_path: Callable[[Path], Path] | None = None  # where the message says to point the key
    inside: str = ""  # the file the message names, inside the folder given

    def __post_init__(self):
        if self.fix is None:
            self.fix = write(
                {"uniprot_tsv": GOOD, "fasta": FASTA, "residue_fasta": RESIDUE_FASTA, "sites_jsonl": SITES}[
                    self.source
                ]
            )


# the cases of the other sources, each under its usual file name
FastaCase = functools.partial(Case, source="fasta", name="seqs.fasta")
LabelCase = functools.partial(Case, source="residue_fasta", name="tm.fasta")
SitesCase = functools.partial(Case, source="sites_jsonl", name="sites.jsonl")

_FIELDS_BROKEN = GOOD.replace("Protein 3, kinase", "Protein 3\tkinase")
_SPLIT_ROW = GOOD.replace("Protein 4, kinase", "Protein 4,\nkinase")
_BIG = "".join(
    "\t".join(row(i % 30, Entry=f"Q{i:06d}")[h] for h in HEADER_FIELDS) + "\n" for i in range(3000)
)

CASES = [
    # --- containers, encodings, other formats given as the TSV ---
    Case("empty file", write(b""), ("an empty file (0 bytes)", "fetch it again")),
    Case("blank lines only", write("\n\n  \n"), ("an empty file (blank lines only)",)),
    Case("header only", write(HEADER), ("no data rows below the header", "download again")),
    Case(
        "gzip cut off, small",
        write(gzip.compress(GOOD.encode())[:200]),
        ("the gzip stream ends early", "download it again"),
    ),
    Case(
        "gzip cut off, large",
        write(gzip.compress((HEADER + _BIG).encode())[:-40]),
        ("the gzip stream ends early", "download it again"),
    ),
    Case(
        "zip archive",
        write(zip_of("uniprot.tsv", GOOD)),
        ("a zip archive holding uniprot.tsv", "unzip it"),
        fix=unzip,
    ),
    Case(
        "damaged zip", write(b"PK\x03\x04" + bytes(300)), ("a damaged zip file", "download or copy it again")
    ),
    Case("Excel workbook", write(xlsx_bytes()), ("an Excel workbook (.xlsx)", "Text (Tab delimited)")),
    Case(
        "Excel 97 workbook",
        write(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)),
        ("(.xls)", "Text (Tab delimited)"),
    ),
    Case(
        "UTF-16 LE",
        write(GOOD.encode("utf-16")),
        ("UTF-16 text", "iconv -f UTF-16 -t UTF-8"),
        fix=iconv_utf16,
    ),
    Case(
        "UTF-16 BE", write(b"\xfe\xff" + GOOD.encode("utf-16-be")), ("UTF-16 text", "iconv"), fix=iconv_utf16
    ),
    Case("UTF-16 without a mark", write(GOOD.encode("utf-16-le")), ("UTF-16 text", "iconv"), fix=iconv_utf16),
    Case(
        "Latin-1 byte",
        write(GOOD.replace("Protein 5, kinase", "Protéine 5").encode("latin-1")),
        ("column 'Protein names'", "b'\\xe9'", "not UTF-8", "iconv -f WINDOWS-1252 -t UTF-8"),
        fix=iconv_1252,
        line=LINE[5],
    ),
    Case(
        "Windows-1252 quotes",
        write(GOOD.replace("Protein 9, kinase", "\u201cProtein 9\u201d").encode("cp1252")),
        ("column 'Protein names'", "b'\\x93'", "re-save it as UTF-8"),
        fix=iconv_1252,
        line=LINE[9],
    ),
    Case(
        "git-lfs pointer",
        write("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1234567\n"),
        ("a git-lfs pointer", "git lfs pull"),
    ),
    Case(
        "Parquet table",
        lambda p: good_frame().to_parquet(p),
        ("a Parquet table", "to_csv"),
        fix=parquet_to_tsv,
    ),
    Case("PDF", write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), ("a PDF document",)),
    Case(
        "PNG image", write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)), ("a binary file, not text",)
    ),
    Case(
        "HTML page",
        write("<!DOCTYPE html>\n<html><head><title>UniProt</title></head></html>\n"),
        ("a web page (HTML", "Download button"),
    ),
    Case(
        "XML",
        write('<?xml version="1.0"?>\n<uniprot xmlns="http://uniprot.org/uniprot">\n'),
        ("an XML file", "format=tsv"),
    ),
    Case(
        "UniProt text",
        write("ID   PROT0_HUMAN   Reviewed;  40 AA.\nAC   P00000;\nSQ   SEQUENCE\n"),
        ("UniProt/EMBL text (flat) file", "format=tsv"),
    ),
    Case(
        "UniProt JSON",
        write(
            json.dumps({"results": [{"primaryAccession": "P00000", "sequence": {"value": "M" * 150_000}}]})
        ),
        ("a JSON document", "format=tsv"),
    ),
    Case(
        "REST error saved",
        write(
            json.dumps(
                {"url": "https://rest.uniprot.org/uniprotkb/search", "messages": ["Invalid query: ec:"]}
            )
        ),
        ("a server's error response", "Invalid query: ec:", "fix the query"),
    ),
    Case("JSON lines", write(SITES), ("JSON lines", "data.source: sites_jsonl")),
    Case("FASTA", write(FASTA), ("a FASTA file", "data.source: fasta", "format=tsv")),
    Case("FASTQ", write("@read1\nACGTACGT\n+\nIIIIIIII\n"), ("a FASTQ file",)),
    Case(
        "GenBank",
        write("LOCUS       X 120 bp DNA\nORIGIN\n        1 acgt\n//\n"),
        ("a GenBank flat file", "FASTA"),
    ),
    Case("PDB file", write(PDB), ("a structure file", "data.source: structures")),
    # --- the table's shape ---
    Case(
        "header missing",
        write(GOOD.split("\n", 1)[1]),
        ("the header line is missing", "Add UniProt's header line"),
        fix=add_header,
        line=1,
    ),
    Case(
        "REST field names",
        write(
            GOOD.replace("Entry\t", "accession\t", 1)
            .replace("\tSequence\t", "\tsequence\t", 1)
            .replace("\tEC number\t", "\tec\t", 1)
        ),
        ("rename 'accession' -> 'Entry'", "'sequence' -> 'Sequence'", "'ec' -> 'EC number'"),
        fix=rename_columns,
        line=1,
    ),
    Case(
        "lower-case header",
        write(GOOD.replace("Entry\t", "entry\t", 1)),
        ("rename 'entry' -> 'Entry'",),
        fix=rename_columns,
        line=1,
    ),
    Case(
        "no Sequence column",
        write(tsv(header=[h for h in HEADER_FIELDS if h != "Sequence"])),
        ("missing column(s) ['Sequence']", "fields=...,sequence", "Customize columns"),
        line=1,
    ),
    Case(
        "no EC column",
        write(tsv(header=[h for h in HEADER_FIELDS if h != "EC number"])),
        ("missing column(s) ['EC number']", "fields=...,ec"),
        line=1,
    ),
    Case(
        "two exports joined",
        write(
            HEADER
            + GOOD.split("\n", 1)[1][: GOOD.split("\n", 1)[1].index("P00015")]
            + HEADER
            + GOOD[GOOD.index("P00015") :]
        ),
        ("the header line again", "Keep the first header line only"),
        fix=keep_first_header,
        line=17,
    ),
    Case(
        "cut off mid-row",
        write(GOOD[: GOOD.index(SEQS[29]) + 25]),
        ("on the last line, which has no line break", "download it again"),
        line=LINE[29],
    ),
    Case(
        "tab inside a value",
        write(_FIELDS_BROKEN),
        ("9 fields, the header has 8", "a tab inside a value"),
        line=LINE[3],
    ),
    Case("line break inside a value", write(_SPLIT_ROW), ("a line break inside a value",), line=LINE[4]),
    Case(
        "CSV with a bare comma",
        write(GOOD.replace("\t", ",").replace("\n", "\n", 1)),
        ("fields, the header has 8", "a comma inside a value"),
        line=2,
    ),
    Case(
        "bad quoting",
        write(
            GOOD.replace("Protein 2, kinase", '"Protein 2, kinase').replace(
                "Protein 6, kinase", '"Protein 6"'
            )
        ),
        ("bad CSV quoting", "Quote the whole value"),
        line=LINE[2],
    ),
    # --- rows ---
    Case(
        "accession repeated with other values",
        write(GOOD + "\t".join(row(3, **{"EC number": "2.7.1.1"})[h] for h in HEADER_FIELDS) + "\n"),
        ("accession 'P00003' again (first on line 5), with other values", "keep one row per accession"),
        line=32,
    ),
    Case(
        "empty Entry",
        write(with_row(6, Entry="")),
        ("empty Entry", "fill it in or remove the row"),
        line=LINE[6],
    ),
    Case(
        "empty Sequence",
        write(with_row(7, Sequence="", Length="")),
        ("empty Sequence for P00007", "fill it in or remove the row"),
        line=LINE[7],
    ),
    Case(
        "lower case refused",
        write(with_row(8, Sequence=SEQS[8].lower())),
        ("lower-case letters in the sequence of P00008", "set data.lowercase: upper"),
        fix=lambda p: None,
        options={"lowercase": "error"},
        fixed={"lowercase": "upper"},
        line=LINE[8],
    ),
    Case(
        "alignment gaps",
        write(with_row(10, Sequence=SEQS[10][:20] + "--" + SEQS[10][20:], Length="")),
        ("P00010", "'-' at residue 21 is an alignment gap", "give unaligned sequences"),
        line=LINE[10],
    ),
    Case(
        "numbered sequence",
        write(with_row(11, Sequence="1 " + SEQS[11], Length="")),
        ("'1' at residue 1: digits or spaces", "keep only the letters"),
        line=LINE[11],
    ),
    Case(
        "stop codon inside",
        write(with_row(12, Sequence=SEQS[12][:30] + "*" + SEQS[12][30:], Length="")),
        ("'*' at residue 31 is a stop codon inside", "translated DNA"),
        line=LINE[12],
    ),
    Case(
        "unknown letter",
        write(with_row(13, Sequence="J" + SEQS[13][1:])),
        ("'J' at residue 1 is not an amino-acid letter", "replace it with X"),
        line=LINE[13],
    ),
    Case(
        "nucleotides",
        write(with_row(14, Sequence="ATGC" * 15, Length="60")),
        ("all 60 letters are A, C, G, T/U or N", "Translate it"),
        line=LINE[14],
    ),
    Case(
        "Length disagrees",
        write(with_row(15, Length="99")),
        ("P00015: Length '99' but the sequence has", "export it again"),
        line=LINE[15],
    ),
    Case(
        "Excel-cut sequence",
        write(with_row(16, Sequence="M" + "A" * 32766, Length="34350")),
        ("Excel cuts cells at 32,767 characters",),
        line=LINE[16],
    ),
    Case(
        "EC of three parts",
        write(with_row(17, **{"EC number": "3.1.1"})),
        ("malformed EC number '3.1.1'", "four parts"),
        line=LINE[17],
    ),
    Case(
        "feature text edited",
        write(with_row(18, **{"Active site": "nucleophile at 5"})),
        ("column 'Active site'", "cannot parse feature text", "was the cell edited?"),
        line=LINE[18],
    ),
    Case(
        "bad position",
        write(with_row(19, **{"Active site": "ACT_SITE 7x"})),
        ("bad position '7x'", "a position is 164, 10..17"),
        line=LINE[19],
    ),
    Case(
        "position beyond the sequence",
        write(with_row(20, **{"Active site": "ACT_SITE 400"})),
        ("ACT_SITE 400: position beyond the sequence", "export them together again"),
        line=LINE[20],
    ),
    Case(
        "columns shifted",
        write(with_row(21, **{"Active site": "BINDING 5"})),
        ("feature 'BINDING', where the column holds ACT_SITE", "columns relabelled or shifted"),
        line=LINE[21],
    ),
    # --- nothing left to analyse ---
    Case(
        "no EC numbers",
        write(tsv([row(i, **{"EC number": ""}) for i in range(30)])),
        ("all 30 rows dropped", "add ec:* to the query"),
    ),
    Case(
        "EC incomplete at the level",
        write(tsv([row(i, **{"EC number": f"{i % 3 + 1}.-.-.-"}) for i in range(30)])),
        ("EC incomplete: lower data.ec_level (now 2)",),
        fix=lambda p: None,
        options={"ec_level": 2},
        fixed={"ec_level": 1},
    ),
    Case(
        "EC numbers disagree",
        write(
            tsv([row(i, **{"EC number": f"{i % 3 + 1}.1.1.1; {(i + 1) % 3 + 1}.1.1.1"}) for i in range(30)])
        ),
        ("data.multi_ec: first",),
        fix=lambda p: None,
        fixed={"multi_ec": "first"},
    ),
    Case(
        "classes too small",
        write(GOOD),
        ("lower data.min_class_size (now 20; the largest class had 10)",),
        options={"min_class_size": 20},
        fixed={"min_class_size": 10},
    ),
    Case(
        "one class left",
        write(tsv([row(i, **{"EC number": "1.1.1.1" if i < 26 else "2.1.1.1"}) for i in range(30)])),
        ("a classifier needs at least 2", "lower data.min_class_size (now 10; the largest class had 26)"),
        fix=lambda p: None,
        fixed={"min_class_size": 4},
    ),
    Case(
        "every sequence too long",
        write(GOOD),
        (
            "30 proteins were longer than data.max_length (30): set data.overlong: crop",
            "or raise data.max_length, up to 1022",
        ),
        options={"max_length": 30},
        fixed={"overlong": "crop"},
    ),
    Case(
        "too long under error",
        write(GOOD),
        ("P00029 has 69 residues > data.max_length=68", "set data.overlong to skip or crop"),
        options={"max_length": 68, "overlong": "error"},
        fixed={"overlong": "skip"},
        line=LINE[29],
        kept=20,
    ),
    Case(
        "positive term in no protein",
        write(
            tsv(
                [{**row(i), "Gene Ontology IDs": "GO:0005524" if i % 2 else "GO:0016301"} for i in range(30)],
                HEADER_FIELDS + ["Gene Ontology IDs"],
            )
        ),
        ("no protein has data.positive 'GO:0005542'", "check its spelling"),
        fix=lambda p: None,
        options={"label": "go", "positive": "GO:0005542"},
        fixed={"positive": "GO:0005524"},
    ),
    # --- where the file is ---
    Case(
        "no such file",
        lambda p: None,
        ("no such file or folder (config key data.tsv)", "a relative path is read from"),
    ),
    Case("a folder", lambda p: p.mkdir(), ("a folder, where a file is expected (config key data.tsv)",)),
    Case(
        "R write.table with spaces",
        write("".join(" ".join(f'"{c}"' for c in line.split("\t")) + "\n" for line in GOOD.splitlines())),
        ("space-separated text (R's write.table default separator)", 'sep = "\\t"'),
    ),
    Case(
        "NA as an Entry",
        write(with_row(22, Entry="NA")),
        ("Entry is 'NA', a missing value", "fill it in or remove the row"),
        line=LINE[22],
    ),
    Case(
        "no Keywords column",
        write(GOOD),
        ("missing column(s) ['Keywords']", "fields=...,keyword"),
        fix=write(
            tsv(
                [{**row(i), "Keywords": "ATP-binding;Kinase" if i % 2 else "Kinase"} for i in range(30)],
                HEADER_FIELDS + ["Keywords"],
            )
        ),
        options={"label": "keyword", "positive": "ATP-binding"},
        line=1,
    ),
    Case(
        "bare sequences",
        write("".join(s + "\n" for s in SEQS)),
        ("bare sequences, one a line", "a '>name' line before each sequence"),
        source="fasta",
        name="seqs.txt",
    ),
    # --- FASTA ---
    FastaCase(
        "TSV given as FASTA",
        write(GOOD),
        ("tab-separated text, where a FASTA file is expected", "data.source: uniprot_tsv"),
    ),
    FastaCase(
        "text before the first header",
        write("Sequences from my lab\n" + FASTA),
        ("text before the first header", "starts with a '>' line"),
        line=1,
    ),
    FastaCase(
        "header without sequence",
        write(">lonely\n" + FASTA),
        ("header '>lonely' has no sequence", "add it, or remove the header"),
        line=1,
    ),
    FastaCase(
        "FASTA id repeated",
        write(FASTA + f">sp|P00003|X\n{SEQS[3]}\n"),
        ("duplicate accession 'P00003' (first on line 10)", "rename or remove"),
        line=91,
    ),
    FastaCase(
        "nucleotide FASTA",
        write(">gene1\n" + "ATGGCC" * 20 + "\n" + FASTA),
        ("a nucleotide sequence?", "Translate it"),
        line=2,
    ),
    FastaCase(
        "aligned FASTA",
        write(FASTA.replace(SEQS[0][:30], SEQS[0][:10] + "-" + SEQS[0][11:30])),
        ("'-' at residue 11 is an alignment gap",),
        line=2,
    ),
    FastaCase("UTF-16 FASTA", write(FASTA.encode("utf-16")), ("UTF-16 text", "iconv"), fix=iconv_utf16),
    FastaCase("empty FASTA", write(b""), ("an empty file (0 bytes)",)),
    FastaCase(
        "label FASTA given as FASTA",
        write(RESIDUE_FASTA),
        ("a 3-line FASTA with per-residue labels", "data.source: residue_fasta"),
    ),
    # --- per-residue label FASTA ---
    LabelCase(
        "plain FASTA given as label FASTA",
        write(FASTA.replace(SEQS[0][:30] + "\n" + SEQS[0][30:], SEQS[0])),
        ("a plain FASTA, without label lines", "data.source: fasta"),
        line=3,
    ),
    LabelCase(
        "label line too short",
        write(RESIDUE_FASTA.replace("H" * 20 + "2", "H" * 19 + "2", 1)),
        ("the label line needs one letter per residue",),
        line=3,
    ),
    LabelCase(
        "unknown label letter",
        write(RESIDUE_FASTA.replace("H" * 20, "H" * 19 + "M", 1)),
        ("unknown label letter 'M' at position 25",),
        line=3,
    ),
    # --- binding sites, JSON lines ---
    SitesCase(
        "JSON array",
        write(json.dumps([json.loads(x) for x in SITES.splitlines()])),
        ("a JSON array", "jq -c '.[]'"),
        fix=jq_lines,
    ),
    SitesCase(
        "record broken over lines",
        write(SITES.replace(', "sites"', ',\n"sites"', 1)),
        ("invalid JSON", "one whole JSON object"),
        line=1,
    ),
    SitesCase(
        "record without sites",
        write(SITES.replace(', "sites": [3, 4]', "", 1)),
        ("missing key(s) ['sites']", "each record needs id, primary, positions, sites"),
        line=1,
    ),
    SitesCase(
        "site outside the chain",
        write(SITES.replace('"sites": [3, 4]', '"sites": [3, 400]', 1)),
        ("site 400 outside the chain", "set data.sites_outside: skip"),
        fix=lambda p: None,
        fixed={"sites_outside": "skip"},
        line=1,
    ),
    SitesCase(
        "FASTA given as sites",
        write(FASTA),
        ("a FASTA file, where JSON lines is expected", "data.source: fasta"),
    ),
    # --- structure folders ---
    Case(
        "a structure file for the folder",
        write(PDB),
        ("a file, where a folder of structure files is expected", "set data.path to the folder"),
        fix=lambda p: None,
        fixed_path=lambda p: p.parent,
        source="structures",
        name="1abc.pdb",
        kept=1,
    ),
    Case(
        "no structure in the folder",
        lambda p: (p.mkdir(), (p / "notes.txt").write_text("chains to fetch\n")),
        ("no structure file (accepted suffixes", "the folder holds ['notes.txt']"),
        fix=lambda p: structures(p),
        source="structures",
        name="pdb",
        kept=10,
    ),
    Case(
        "a web page saved as .pdb",
        lambda p: (structures(p), (p / "1abc.pdb").write_text("<!DOCTYPE html><html>404 Not Found</html>\n")),
        ("cannot read structure", "the file is a web page (HTML", "download the file itself"),
        fix=lambda p: structures(p),
        inside="/1abc.pdb",
        source="structures",
        name="pdb",
        kept=10,
    ),
]


def structures(p: Path) -> None:
    """A folder of 10 one-chain PDB files (the fix: the folder, with its structures)."""
    if p.is_file():
        p.unlink()
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir()
    for k in range(10):
        (p / f"{k + 1}abc.pdb").write_text(PDB)


LABELLED = {"uniprot_tsv"}


def run_data(path: Path, case: Case, keys: dict, out: Path) -> None:
    """The data rule's function, with the config's data section as the workflow passes it."""
    key = "tsv" if case.source == "uniprot_tsv" else "path"
    label = {} if case.source in LABELLED else {"label": "none"}
    d = options(
        "data", {"source": case.source, key: str(path), "split": {"method": "random"}, **label, **keys}
    )
    data_stage(
        tsv=str(path),
        out_proteins=str(out / "proteins.parquet"),
        out_annotations=str(out / "annotations.parquet"),
        out_summary=str(out / "data_summary.json"),
        data=d,
        seed=0,
    )


def assert_counts_true(out: Path) -> dict:
    summary = json.loads((out / "data_summary.json").read_text())
    proteins = pd.read_parquet(out / "proteins.parquet")
    annotations = pd.read_parquet(out / "annotations.parquet")
    assert summary["kept"] == len(proteins)
    assert summary["rows"] == summary["kept"] + sum(summary["dropped"].values())
    assert sum(summary["class_counts"].values()) == len(proteins)
    assert sum(summary["annotation_counts"].values()) == len(annotations)
    assert sum(summary["features"].values()) == len(annotations)
    return summary


def test_the_corpus_holds_at_least_60_inputs_a_user_can_get_wrong():
    assert len(CASES) + len(CONFIG_CASES) + len(MODEL_CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wrong_input_says_what_it_is_and_what_to_do(tmp_path, case):
    path = tmp_path / case.name
    case.make(path)
    out = tmp_path / "results" / "data"
    with pytest.raises(InputError) as err:
        run_data(path, case, case.options, out)
    message = str(err.value)
    where = f"{path}{case.inside}" + (f", line {case.line}: " if case.line else ": ")
    assert message.startswith(where), message
    for part in case.parts:
        assert part in message, (part, message)
    assert not out.exists(), "a failed data stage left files"
    case.fix(path)  # as the message says
    if case.fixed_path:
        path = case.fixed_path(path)
    run_data(path, case, {**case.options, **case.fixed}, out)
    summary = assert_counts_true(out)
    assert summary["kept"] == case.kept


# --- files read as they are: the same tables as the clean export ---


def r_write_table(p: Path, names=lambda i: str(i + 1)) -> None:
    """R's write.table(df, sep="\t") defaults: quoted strings, row names (1..n), NA for missing."""
    df = good_frame()
    df.loc[4, "Binding site"] = None
    lines = ["\t".join(f'"{h}"' for h in HEADER_FIELDS)]
    for i, r in df.iterrows():
        cells = ["NA" if v is None else '"' + str(v).replace('"', '""') + '"' for v in r]
        lines.append("\t".join([f'"{names(i)}"'] + cells))
    p.write_text("\n".join(lines) + "\n")


READ_AS_IS = {
    "gzip under a .tsv name": lambda p: p.write_bytes(gzip.compress(GOOD.encode())),
    "UTF-8 byte-order mark": lambda p: p.write_text(GOOD, encoding="utf-8-sig"),
    "Windows line ends": lambda p: p.write_bytes(GOOD.replace("\n", "\r\n").encode()),
    "old Mac line ends": lambda p: p.write_bytes(GOOD.replace("\n", "\r").encode()),
    "pandas to_csv with quoting and its index": lambda p: good_frame().to_csv(p, sep="\t"),
    "R write.table defaults": r_write_table,
    "Excel CSV": lambda p: good_frame().to_csv(p, index=False),
    "semicolon CSV": lambda p: good_frame().to_csv(p, sep=";", index=False),
    "semicolon CSV, a comma in a label": lambda p: (
        good_frame().rename(columns={"Entry Name": "Entry Name, as given"}).to_csv(p, sep=";", index=False)
    ),
    "a row repeated verbatim": lambda p: p.write_text(GOOD + GOOD.splitlines(keepends=True)[4]),
    "EC with a prefix": lambda p: p.write_text(
        GOOD.replace("\t1.1.1.", "\tEC 1.1.1.").replace("\t2.1.1.", "\tEC:2.1.1.")
    ),
    "stop codon at the end": lambda p: p.write_text(GOOD.replace(f"\t{SEQS[2]}\t", f"\t{SEQS[2]}*\t")),
    "trailing blank lines and spaces": lambda p: p.write_text(GOOD + "\n\n   \n"),
    "blank lines above the header": lambda p: p.write_text("\n\n" + GOOD),
    "R row names after subsetting": lambda p: r_write_table(p, names=lambda i: str(3 * i + 5)),
    "R row names that are the accessions": lambda p: r_write_table(p, names=lambda i: f"P{i:05d}"),
    "NA as Length": lambda p: p.write_text(with_row(5, Length="NA")),
}


@pytest.mark.parametrize("kind", list(READ_AS_IS))
def test_read_as_is_gives_the_clean_exports_tables(tmp_path, kind):
    clean, odd = tmp_path / "clean.tsv", tmp_path / "odd.tsv"
    clean.write_text(GOOD)
    READ_AS_IS[kind](odd)
    case = Case(kind, write(""), ())
    run_data(clean, case, {}, tmp_path / "a")
    run_data(odd, case, {}, tmp_path / "b")
    for table in ("proteins", "annotations"):
        a = pd.read_parquet(tmp_path / "a" / f"{table}.parquet").drop(columns=["line"], errors="ignore")
        b = pd.read_parquet(tmp_path / "b" / f"{table}.parquet").drop(columns=["line"], errors="ignore")
        if kind.startswith("R ") and table == "annotations":
            a = a[~((a["accession"] == "P00004") & (a["feature"] == "BINDING"))].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
    summary = assert_counts_true(tmp_path / "b")
    if kind == "a row repeated verbatim":
        assert summary["dropped"] == {"identical duplicate row": 1} and summary["rows"] == 31
    if kind == "stop codon at the end":
        assert summary["stop_codons_stripped"] == 1


def test_thousands_separator_in_length(tmp_path):
    p = tmp_path / "export.tsv"
    long = "M" + "".join(_rng.choice(_AA, 1199))
    rows = [row(i) for i in range(30)] + [row(0, Entry="Q99999", Sequence=long, Length="1,200")]
    p.write_text(tsv(rows))
    run_data(p, Case("x", write(""), ()), {"overlong": "crop"}, tmp_path / "out")
    proteins = pd.read_parquet(tmp_path / "out" / "proteins.parquet")
    assert proteins.set_index("accession").loc["Q99999", "full_length"] == 1200


# --- config mistakes: named by key, refused before anything runs ---


def _config(**data) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["data"].update(data)
    return cfg


CONFIG_CASES = [
    (
        "float for an integer",
        {"max_length": 300.0},
        ("'data.max_length'", "write a whole number, e.g. 300"),
        {"max_length": 300},
    ),
    (
        "above the model's limit",
        {"max_length": 2000},
        ("'data.max_length'", "maximum of 1022"),
        {"max_length": 1000},
    ),
    (
        "misspelt key",
        {"max_lenght": 300},
        ("'max_lenght' was unexpected", "did you mean 'max_length'?"),
        {"max_length": 300},
    ),
    (
        "column label for a feature",
        {"features": ["Active site"]},
        ("'data.features.0'", "did you mean 'ACT_SITE'?"),
        {"features": ["ACT_SITE"]},
    ),
    ("label in capitals", {"label": "EC"}, ("'data.label'", "did you mean 'ec'?"), {"label": "ec"}),
    (
        "source by its format's name",
        {"source": "tsv"},
        ("'data.source'", "did you mean 'uniprot_tsv'?"),
        {"source": "uniprot_tsv", "tsv": "x.tsv"},
    ),
    (
        "TSV source without a file",
        {"source": "uniprot_tsv"},
        ("'data.tsv' is required",),
        {"source": "uniprot_tsv", "tsv": "x.tsv"},
    ),
    (
        "FASTA source without a file",
        {"source": "fasta", "label": "none"},
        ("'data.path' is required",),
        {"source": "fasta", "label": "none", "path": "x.fasta"},
    ),
    (
        "splits not summing to 1",
        {"split": {"train": 0.8, "val": 0.1, "test": 0.2}},
        ("must sum to 1, got 1.1",),
        {"split": {"train": 0.7, "val": 0.1, "test": 0.2}},
    ),
    (
        "GO label without a term",
        {"source": "uniprot_tsv", "tsv": "x.tsv", "label": "go"},
        ("'data.positive' is required",),
        {"source": "uniprot_tsv", "tsv": "x.tsv", "label": "go", "positive": "GO:0005524"},
    ),
    ("EC level 5", {"ec_level": 5}, ("'data.ec_level'", "maximum of 4"), {"ec_level": 4}),
]


@pytest.mark.parametrize("name, wrong, parts, fixed", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_mistake_named_by_key(name, wrong, parts, fixed):
    bad = _config(**wrong)
    with pytest.raises(ConfigError) as err:
        validate_config(copy.deepcopy(bad))
    for part in parts:
        assert part in str(err.value), (part, str(err.value))
    good = _config(**fixed)
    if "max_lenght" in wrong:
        good["data"].pop("max_lenght", None)
    if "label" in fixed and fixed["label"] == "none":
        good["variants"] = ["given"]
        good["model"].update({"source": "pretrained", "name_or_path": "facebook/esm2_t6_8M_UR50D"})
        good["model"]["pretrain"]["enabled"] = False
        good["attribution"].update({"target": "predicted", "only_correct": False})
    if good["data"]["source"] != "synthetic":
        good["model"]["pretrain"]["enabled"] = False
    validate_config(good)


# --- model folders: the init_model rule's loading, nothing saved on failure ---


def _checkpoint(root: Path) -> Path:
    import torch

    from plmxai.model.esm import build_model

    spec = {
        "source": "random",
        "architecture": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
    }
    model = build_model(spec, ["a", "b"], seed=3)
    d = root / "model"
    d.mkdir()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    return d


def _edit_config(d: Path, **keys) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(keys)
    (d / "config.json").write_text(json.dumps(cfg))


MODEL_CASES = [
    ("folder missing", lambda d: shutil.rmtree(d), ("does not exist (config key 'model.name_or_path')",)),
    (
        "git-lfs pointer",
        lambda d: (d / "pytorch_model.bin").write_text(
            "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 31400000\n"
        ),
        ("a git-lfs pointer", "git lfs pull"),
    ),
    (
        "weights cut off",
        lambda d: (d / "pytorch_model.bin").write_bytes((d / "pytorch_model.bin").read_bytes()[:2000]),
        ("not a readable torch checkpoint", "download it again"),
    ),
    (
        "web page saved as weights",
        lambda d: (d / "pytorch_model.bin").write_text("<!DOCTYPE html><html>Not found</html>"),
        ("a web page (HTML", "not weights"),
    ),
    (
        "no weights",
        lambda d: (d / "pytorch_model.bin").unlink(),
        ("no weights (model.safetensors or pytorch_model.bin",),
    ),
    ("no config.json", lambda d: (d / "config.json").unlink(), ("no config.json",)),
    (
        "config.json not JSON",
        lambda d: (d / "config.json").write_text("{'hidden_size': 16,"),
        ("config.json: not valid JSON", "download the model's config.json again"),
    ),
    (
        "not an ESM model",
        lambda d: _edit_config(d, model_type="bert"),
        ("model_type 'bert', not 'esm'", "give an ESM-2 checkpoint"),
    ),
    (
        "config of another size",
        lambda d: _edit_config(d, hidden_size=32, intermediate_size=64),
        ("has shape (33, 16), config.json implies (33, 32)", "the config and the weights disagree"),
    ),
]


@pytest.mark.parametrize("name, breaks, parts", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_model_folder_says_what_to_do_and_saves_nothing(tmp_path, name, breaks, parts):
    from plmxai.model.checkpoint import CheckpointError
    from plmxai.model.esm import build_model, save_model

    d = _checkpoint(tmp_path)
    backup = tmp_path / "backup"
    shutil.copytree(d, backup)
    breaks(d)
    out = tmp_path / "initial"
    spec = {"source": "pretrained", "name_or_path": str(d)}
    with pytest.raises(CheckpointError) as err:
        save_model(build_model(spec, ["a", "b"], seed=0), out)
    message = str(err.value)
    assert str(d) in message
    for part in parts:
        assert part in message, (part, message)
    assert not out.exists()
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(backup, d)  # the model downloaded again
    save_model(build_model(spec, ["a", "b"], seed=0), out)
    assert (out / "config.json").is_file()


def test_every_drop_policy_counted_and_the_counts_are_the_tables(tmp_path):
    """One export meeting every policy that drops a row; each count hand-made, and the counts
    in the summary and the report those of the table written."""
    from plmxai.report.build import _data_section

    long_seq = "M" + "".join(_rng.choice(_AA, 99))
    rows = [row(i, **{"EC number": "1.1.1.1"}) for i in range(12)]
    rows += [row(i, **{"EC number": "2.1.1.1"}) for i in range(12, 24)]
    rows += [row(i, **{"EC number": "4.1.1.1"}) for i in range(24, 27)]  # a class of 3
    rows += [row(27, **{"EC number": ""}), row(28, **{"EC number": ""})]
    rows += [row(29, **{"EC number": "-.-.-.-"})]
    rows += [row(0, Entry="Q00001", **{"EC number": "1.1.1.1; 2.1.1.1"})]
    rows += [row(i, Entry=f"L{i}", Sequence=long_seq, **{"EC number": "1.1.1.1"}) for i in range(2)]
    text = tsv(rows)
    p = tmp_path / "export.tsv"
    p.write_text(text + text.splitlines(keepends=True)[3])  # one row repeated verbatim
    out = tmp_path / "out"
    keys = {"max_length": 80, "max_per_class": 11}
    run_data(p, Case("all", write(""), ()), keys, out)
    summary = assert_counts_true(out)
    assert summary["rows"] == 34 and summary["kept"] == 22
    assert summary["dropped"] == {
        "no EC number": 2,
        "EC incomplete at level 1": 1,
        "several EC numbers disagree": 1,
        "identical duplicate row": 1,
        "longer than data.max_length (80)": 2,
        "class smaller than min_class_size": 3,
        "over data.max_per_class (seeded subsample)": 2,
    }
    assert summary["class_counts"] == {"1": 11, "2": 11}
    config = {"data": options("data", {"source": "uniprot_tsv", "tsv": str(p), **keys})}
    html = _data_section(config, summary)
    assert "<td>proteins kept</td><td>22</td>" in html.replace("\n", "")


def test_vocabulary_that_is_a_git_lfs_pointer_says_what_to_do(tmp_path):
    from plmxai.model.tokens import load_tokenizer

    d = _checkpoint(tmp_path)
    (d / "vocab.txt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 93\n")
    with pytest.raises(ValueError) as err:
        load_tokenizer(str(d))
    message = str(err.value)
    assert message.startswith(f"{d / 'vocab.txt'}: not an ESM vocabulary")
    assert "a git-lfs pointer" in message and "git lfs pull" in message
    (d / "vocab.txt").unlink()  # or pulled: ESM-2's own alphabet is then used
    assert load_tokenizer(str(d))("MKT")["input_ids"] == [0, 20, 15, 11, 2]


# other sources, read as they come: the same tables as the clean file
OTHER_AS_IS = {
    "FASTA, gzip": ("fasta", FASTA, lambda p: p.write_bytes(gzip.compress(FASTA.encode()))),
    "FASTA, Windows line ends": (
        "fasta",
        FASTA,
        lambda p: p.write_bytes(FASTA.replace("\n", "\r\n").encode()),
    ),
    "FASTA, lower case and blank lines": (
        "fasta",
        FASTA,
        lambda p: p.write_text(
            FASTA.lower().replace(">sp|p", ">sp|P").replace("_human", "_HUMAN").replace("\n>", "\n\n>")
        ),
    ),
    "FASTA, a final stop": (
        "fasta",
        FASTA,
        lambda p: p.write_text(FASTA.replace(SEQS[3][30:] + "\n", SEQS[3][30:] + "*\n")),
    ),
    "label FASTA, gzip": (
        "residue_fasta",
        RESIDUE_FASTA,
        lambda p: p.write_bytes(gzip.compress(RESIDUE_FASTA.encode())),
    ),
    "sites, blank lines": ("sites_jsonl", SITES, lambda p: p.write_text(SITES.replace("\n", "\n\n"))),
    "sites, gzip": ("sites_jsonl", SITES, lambda p: p.write_bytes(gzip.compress(SITES.encode()))),
}


@pytest.mark.parametrize("kind", list(OTHER_AS_IS))
def test_other_sources_read_as_they_come(tmp_path, kind):
    source, clean_text, make = OTHER_AS_IS[kind]
    clean, odd = tmp_path / "clean.txt", tmp_path / "odd.txt"
    clean.write_text(clean_text)
    make(odd)
    case = Case(kind, write(""), (), source=source)
    run_data(clean, case, {}, tmp_path / "a")
    run_data(odd, case, {}, tmp_path / "b")
    for table in ("proteins", "annotations"):
        a = pd.read_parquet(tmp_path / "a" / f"{table}.parquet").drop(columns=["line"], errors="ignore")
        b = pd.read_parquet(tmp_path / "b" / f"{table}.parquet").drop(columns=["line"], errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    assert_counts_true(tmp_path / "b")


def test_sites_with_a_first_record_longer_than_the_look_ahead(tmp_path):
    """A chain of 12,000 residues on the first line: more than identify() reads, still JSON lines."""
    long = "".join(_rng.choice(_AA, 12_000))
    first = json.dumps(
        {"id": "9xyz.A", "primary": long, "positions": list(range(1, 12_001)), "sites": [5, 11_000]}
    )
    p = tmp_path / "sites.jsonl"
    p.write_text(first + "\n" + SITES)
    assert len(first) > 65536
    run_data(p, Case("x", write(""), (), source="sites_jsonl"), {"overlong": "crop"}, tmp_path / "out")
    summary = assert_counts_true(tmp_path / "out")
    assert summary["kept"] == 31 and summary["length_policy"]["cropped"] == 1
