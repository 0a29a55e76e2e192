"""What an input file is, from its first bytes, so that a reader given the wrong file says what
the file is and what to do, rather than failing on its first line.

`identify(path)` names the container or format (gzip is looked into; a UTF-8 byte-order mark is
skipped); `check(path, source)` raises `WrongFileError` when that is not what the data stage's
`source` reads, with the fix in the message. `sequence_problem(seq)` says why a sequence is not
one ESM-2 reads (gaps, numbering, stop codons, nucleotides, other letters), for every reader.

Imports nothing of plmxai: the readers import it.
"""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 65536
GZIP_MAGIC = b"\x1f\x8b"
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def is_gzip(path: str | Path) -> bool:
    """Whether the file is gzip-compressed, by its content, whatever its name."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


# what a reader of each data.source expects, for the messages
EXPECTED = {
    "uniprot_tsv": "a UniProt TSV export",
    "fasta": "a FASTA file",
    "residue_fasta": "a 3-line FASTA with per-residue labels",
    "sites_jsonl": "JSON lines",
    "structures": "a folder of structure files",
}
# the kinds each source reads
READS = {
    "uniprot_tsv": {"tsv", "csv"},
    "fasta": {"fasta"},
    # a record cut short reads as a plain FASTA's: the reader names the record
    "residue_fasta": {"residue_fasta", "fasta"},
    "sites_jsonl": {"jsonl"},
}
HOW_TO_TSV = (
    "download the TSV from UniProt (the website's Download > Format: TSV, or the REST API with format=tsv)"
)


class InputError(ValueError):
    """An input that cannot be read; the message names the file, the line where one applies,
    the value, and what to do."""

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


class WrongFileError(InputError):
    """An input that is another kind of file than its source reads; names both and the fix."""

    def __init__(self, path, message: str):
        super().__init__(path, None, message)


@dataclass(frozen=True)
class Kind:
    name: str  # tsv, csv, fasta, residue_fasta, jsonl, json, fastq, ... (see identify)
    what: str  # how the message names it: "a FASTA file"
    fix: str = ""  # what to do with it, whatever the source expected


def _zip_kind(path: Path) -> Kind:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        return Kind("zip", "a damaged zip file", "download or copy it again")
    if any(n.startswith("xl/") for n in names):
        return Kind(
            "xlsx",
            "an Excel workbook (.xlsx)",
            "in Excel, File > Save As > 'Text (Tab delimited)' (or 'CSV UTF-8'), and give that file",
        )
    if any(n.startswith(("word/", "ppt/")) for n in names) or "content.xml" in names:
        return Kind("document", "an office document", "export the table as tab-separated text")
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return Kind("zip", f"a zip archive holding {shown}", f"unzip it (unzip {path}) and give the file inside")


def _utf16_without_bom(head: bytes) -> bool:
    odd = head[1::2][:2000]
    even = head[0::2][:2000]
    if not odd or not even:
        return False
    # ASCII text in UTF-16: every other byte NUL, the others not
    z_odd, z_even = odd.count(0) / len(odd), even.count(0) / len(even)
    return (z_odd > 0.4 and z_even < 0.05) or (z_even > 0.4 and z_odd < 0.05)


_RESIDUE_LABELS = re.compile(r"^[HhBbS12U]+$")
_UNIPROT_JSON = re.compile(r'^\{\s*"results"\s*:')
_SEQUENCE_LINE = re.compile(r"^[ACDEFGHIKLMNPQRSTVWYXBUZOacdefghiklmnpqrstvwyxbuzo*]{10,}$")


def _text_kind(path: Path, text: str, cut: bool = False) -> Kind:
    """`cut`: the text is the head of a longer file (its last line may be incomplete)."""
    lines = [x for x in text.splitlines() if x.strip()]
    if not lines:
        return Kind(
            "empty", "an empty file (blank lines only)", "the download or copy failed: fetch it again"
        )
    first = lines[0].strip() if lines else ""
    low = first.lower()
    if low.startswith(("<!doctype html", "<html")) or "<html" in low[:200]:
        return Kind(
            "html",
            "a web page (HTML: a browser's 'Save page', or a server's error page saved by curl)",
            "download the file itself, not the page that links to it (on UniProt: the Download button or the REST API)",
        )
    if low.startswith("<?xml") or low.startswith("<uniprot"):
        return Kind("xml", "an XML file (UniProt's format=xml?)", HOW_TO_TSV)
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "messages" in obj:
            said = "; ".join(map(str, obj["messages"]))
            return Kind(
                "json", f"a server's error response (it says: {said})", "fix the query and download again"
            )
        several = any(x.lstrip().startswith("{") for x in lines[1:5])
        # a first record longer than the head: UniProt's JSON starts {"results": ..., a record
        # of JSON lines with its own keys
        long_record = obj is None and cut and len(lines) == 1 and not _UNIPROT_JSON.match(first)
        if (isinstance(obj, dict) and "results" not in obj) or (obj is None and several) or long_record:
            return Kind("jsonl", "JSON lines (one JSON object a line)")
        return Kind("json", "a JSON document (UniProt's format=json download?)", HOW_TO_TSV)
    if first.startswith("["):
        return Kind(
            "json_array",
            "a JSON array",
            f"write one object a line, e.g. jq -c '.[]' {path} > {path.stem}.jsonl",
        )
    if first.startswith(">") or any(x.startswith(">") for x in lines[:20]):
        if len(lines) >= 3 and not lines[2].startswith(">") and _RESIDUE_LABELS.match(lines[2].strip()):
            if len(lines[2].strip()) == len(lines[1].strip()):
                return Kind("residue_fasta", "a 3-line FASTA with per-residue labels (TMbed)")
        return Kind("fasta", "a FASTA file")
    if first.startswith("@") and len(lines) >= 3 and lines[2].startswith("+"):
        return Kind(
            "fastq", "a FASTQ file (sequencing reads)", "give protein sequences (FASTA or a UniProt TSV)"
        )
    if first.startswith("LOCUS "):
        return Kind(
            "genbank",
            "a GenBank flat file",
            "convert it to FASTA (e.g. Biopython SeqIO.convert) or use a TSV",
        )
    if first.startswith("ID   ") and any(x.startswith(("AC   ", "SQ   ", "FT   ")) for x in lines[:50]):
        return Kind("uniprot_text", "a UniProt/EMBL text (flat) file", HOW_TO_TSV)
    if first.startswith(
        ("HEADER", "ATOM  ", "HETATM", "CRYST1", "MODEL ", "data_", "REMARK", "TITLE ", "COMPND", "EXPDTA")
    ):
        return Kind(
            "structure",
            "a structure file (PDB or mmCIF)",
            "put it in a folder and set data.source: structures with data.path: that folder",
        )
    if first.startswith(LFS_POINTER.decode()):
        return _LFS
    if "\t" in first:
        return Kind("tsv", "tab-separated text")
    if "," in first:
        return Kind("csv", "comma-separated text (CSV)")
    if ";" in first:
        return Kind("csv", "semicolon-separated text (CSV)")
    if first.startswith('"') and '" "' in first:
        return Kind(
            "space_separated",
            "space-separated text (R's write.table default separator)",
            'write it with tabs: write.table(df, file, sep = "\\t", row.names = FALSE)',
        )
    if all(_SEQUENCE_LINE.match(x.strip()) for x in lines[:20]):
        return Kind(
            "sequences",
            "bare sequences, one a line, without headers",
            "make it a FASTA file (a '>name' line before each sequence) and set data.source: fasta",
        )
    return Kind(
        "text",
        "text in no format plmxai reads",
        "give a UniProt TSV export, FASTA, JSON lines or a structure folder (docs/inputs.md lists them)",
    )


_LFS = Kind(
    "lfs",
    "a git-lfs pointer (the repository was cloned without git-lfs)",
    "run `git lfs install && git lfs pull` in its folder",
)


def identify(path: str | Path) -> Kind:
    """The kind of file at `path`, from its first bytes (gzip looked into)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if not head:
        return Kind("empty", "an empty file (0 bytes)", "the download or copy failed: fetch it again")
    if head[:2] == GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(HEAD_BYTES)
        except (OSError, EOFError) as err:
            return Kind(
                "gzip",
                f"the gzip stream ends early or is damaged ({err})",
                "the file was cut off (an interrupted download?): download it again",
            )
        if not head:
            return Kind("empty", "an empty file (gzip of 0 bytes)", "the download failed: fetch it again")
    if head[:4] == b"PK\x03\x04":
        return _zip_kind(path)
    if head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return Kind(
            "xls",
            "an Excel 97-2003 workbook (.xls)",
            "in Excel, File > Save As > 'Text (Tab delimited)', and give that file",
        )
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or _utf16_without_bom(head):
        return Kind(
            "utf16",
            "UTF-16 text (what Excel saves as 'Unicode Text')",
            f"re-save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8 {path} > {path.stem}.utf8{path.suffix}",
        )
    if head.startswith(LFS_POINTER):
        return _LFS
    if head[:4] == b"PAR1":
        return Kind(
            "parquet",
            "a Parquet table",
            "write it as text, e.g. pandas.read_parquet(p).to_csv(out, sep='\\t', index=False)",
        )
    if head[:4] == b"%PDF":
        return Kind("pdf", "a PDF document", "give the data file itself")
    if b"\x00" in head:
        return Kind("binary", "a binary file, not text", "give the data as text")
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    return _text_kind(path, text, cut=len(head) == HEAD_BYTES)


# what to set when the file is of a kind another source reads
_OTHER_SOURCE = {
    "tsv": "set data.source: uniprot_tsv with data.tsv: this file",
    "csv": "set data.source: uniprot_tsv with data.tsv: this file",
    "fasta": "set data.source: fasta (unlabelled sequences: no labels or sites)",
    "residue_fasta": "set data.source: residue_fasta",
    "jsonl": "set data.source: sites_jsonl",
}


def check(path: str | Path, source: str) -> Kind:
    """The file's kind when `source` reads it; else WrongFileError naming what it is and the fix."""
    path = Path(path)
    kind = identify(path)
    if kind.name in READS[source]:
        return kind
    if kind.name in ("empty", "gzip"):  # the right file, broken on the way
        raise WrongFileError(path, f"{kind.what}: {kind.fix}")
    fix = _OTHER_SOURCE.get(kind.name) or kind.fix
    if kind.name in _OTHER_SOURCE and source == "uniprot_tsv":
        fix += f", or {HOW_TO_TSV}"
    raise WrongFileError(
        path, f"{kind.what}, where {EXPECTED[source]} is expected" + (f": {fix}" if fix else "")
    )


# ESM-2's alphabet: the 20 standard amino acids and X, B, U, Z, O
VALID_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWYXBUZO")
_NUCLEOTIDES = frozenset("ACGTUN")
NUCLEOTIDE_MIN_LENGTH = 30


def sequence_problem(seq: str) -> tuple[int, str] | None:
    """(0-based index, why and what to do) for a sequence ESM-2 cannot read as a protein; None
    when it can. `seq` is upper-case; a final `*` is the reader's to strip."""
    for i, c in enumerate(seq):
        if c in VALID_RESIDUES:
            continue
        if c in "-.":
            return i, (
                f"{c!r} at residue {i + 1} is an alignment gap: give unaligned sequences (remove "
                "the gaps, e.g. seq.replace('-', '').replace('.', ''))"
            )
        if c.isdigit() or c.isspace():
            return i, (
                f"{c!r} at residue {i + 1}: digits or spaces inside a sequence (copied with its "
                "numbering, GenBank-style?): keep only the letters"
            )
        if c == "*":
            return i, (
                f"'*' at residue {i + 1} is a stop codon inside the sequence (translated DNA?): "
                "give the protein up to its stop"
            )
        return i, (
            f"{c!r} at residue {i + 1} is not an amino-acid letter (ESM-2 reads the 20 standard "
            "ones and X, B, U, Z, O): replace it with X, or drop the protein"
        )
    if len(seq) >= NUCLEOTIDE_MIN_LENGTH and set(seq) <= _NUCLEOTIDES:
        return 0, (
            f"all {len(seq)} letters are A, C, G, T/U or N: a nucleotide sequence? Translate it "
            "(e.g. Biopython Seq.translate) and give the protein"
        )
    return None
