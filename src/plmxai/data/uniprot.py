"""Read UniProt TSV exports (REST API `format=tsv`, or the website's download) into tidy tables.

`proteins`: accession, sequence, length, label, ec, line
`annotations`: accession, feature, type, pair, start, end, note, evidence, ligand

Positions are 1-based and inclusive, as in UniProt. Every malformed value stops the read
with a `UniProtFormatError` naming the file, line and value; lenient policies (upper-casing,
dropping entries without a usable label) are explicit options and are counted.

The API writes its TSV without quoting, but a TSV that went through pandas (`to_csv`), R or a
spreadsheet quotes every field holding a `"` (so every feature cell): such a file is recognised
by a field that is wholly quoted (`"..."`, inner quotes doubled) and read with CSV quoting into
the same tables; error line numbers stay the file's own (a quoted field may span lines: a
record's line is the one it starts on).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# UniProt feature keyword -> annotation type used in tables and statistics
FEATURE_TYPES = {
    "ACT_SITE": "active_site",
    "BINDING": "binding_site",
    "SITE": "site",
    "METAL": "metal_binding",
    "TRANSMEM": "transmembrane",
    "INTRAMEM": "intramembrane",
    "MOTIF": "motif",
    "REGION": "region",
    "DOMAIN": "domain",
    "ZN_FING": "zinc_finger",
    "DNA_BIND": "dna_binding",
    "MOD_RES": "modified_residue",
    "CARBOHYD": "glycosylation",
    "LIPID": "lipidation",
    "DISULFID": "disulfide_bond",
    "CROSSLNK": "cross_link",
    "SIGNAL": "signal_peptide",
}
# TSV column (the REST API's `format=tsv` header for fields ft_act_site, ft_binding, ...)
# -> the feature keyword its cells carry
FEATURE_COLUMNS = {
    "Active site": "ACT_SITE",
    "Binding site": "BINDING",
    "Site": "SITE",
    "Metal binding": "METAL",
    "Transmembrane": "TRANSMEM",
    "Intramembrane": "INTRAMEM",
    "Motif": "MOTIF",
    "Region": "REGION",
    "Domain [FT]": "DOMAIN",
    "Zinc finger": "ZN_FING",
    "DNA binding": "DNA_BIND",
    "Modified residue": "MOD_RES",
    "Glycosylation": "CARBOHYD",
    "Lipidation": "LIPID",
    "Disulfide bond": "DISULFID",
    "Cross-link": "CROSSLNK",
    "Signal peptide": "SIGNAL",
}
# A range of these is a bond between its two end residues, not a stretch of residues
PAIR_FEATURES = frozenset({"DISULFID", "CROSSLNK"})
ALL_FEATURES = tuple(FEATURE_TYPES)

# ESM-2's alphabet: the 20 standard amino acids and X, B, U, Z, O
VALID_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWYXBUZO")

_FEATURE_RE = re.compile(r"\s*(?P<key>[A-Z_]+)\s+(?P<loc>[^;\s]+)\s*(?:;|$)")
_QUALIFIER_RE = re.compile(r'\s*/(?P<name>\w+)="(?P<value>[^"]*)"\s*(?:;|$)')
_POS_RE = re.compile(r"^(?P<fuzzy>[<>]?)(?P<num>\d+)$")
# a whole field in CSV quotes, inner quotes doubled: the API's unquoted cells never look like
# this (a feature cell starts with its keyword), so one such field marks a quoted file
_QUOTED_FIELD_RE = re.compile(r'"(?:[^"]|"")*"')


class UniProtFormatError(ValueError):
    """A value in a UniProt file that cannot be read; the message names file, line and value."""

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


@dataclass
class ReadOptions:
    label: str = "ec"  # the label column's meaning; EC number at `ec_level`
    ec_level: int = 1
    multi_ec: str = "drop"  # entries whose EC numbers disagree at ec_level: "drop" or "first"
    lowercase: str = "upper"  # lower-case sequence letters: "upper" (counted) or "error"
    min_class_size: int = 1
    features: tuple[str, ...] = ALL_FEATURES
    # keep only features whose evidence carries one of these ECO codes (empty: keep all);
    # e.g. ("ECO:0000269",) for experimental evidence
    evidence: tuple[str, ...] = ()
    positive: str = ""  # label "go" / "keyword": the GO id or keyword that makes a protein positive


@dataclass
class ReadReport:
    """What the reader did to the input, for the log and the report."""

    path: str = ""
    rows: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    uppercased: int = 0
    features: Counter = field(default_factory=Counter)
    uncertain_positions_skipped: int = 0
    evidence_filtered: int = 0
    classes_dropped: list = field(default_factory=list)
    # the readers of other formats (plmxai.data.readers) fill these; a UniProt TSV leaves them empty
    source: str = "uniprot_tsv"
    quoted: bool = False  # the TSV used CSV quoting (pandas, R, spreadsheet)
    stop_codons_stripped: int = 0  # FASTA: a final `*` removed
    sites_ambiguous: int = 0  # site residue numbers matching several residues: first taken
    sites_outside_skipped: int = 0  # site residue numbers not in the chain (policy "skip")

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "rows": self.rows,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "uppercased": self.uppercased,
            "features": dict(self.features),
            "uncertain_positions_skipped": self.uncertain_positions_skipped,
            "evidence_filtered": self.evidence_filtered,
            "classes_dropped": self.classes_dropped,
            "quoted": self.quoted,
            "stop_codons_stripped": self.stop_codons_stripped,
            "sites_ambiguous": self.sites_ambiguous,
            "sites_outside_skipped": self.sites_outside_skipped,
        }


def parse_location(loc: str) -> tuple[int, int] | None:
    """`164` -> (164, 164); `10..17` -> (10, 17); `<1..5` -> (1, 5); `?` parts -> None.

    Raises ValueError for text that is not a UniProt location.
    """
    parts = loc.split("..")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"bad position {loc!r}")
    nums = []
    for part in parts:
        if part.startswith("?"):
            if part != "?" and not part[1:].isdigit():
                raise ValueError(f"bad position {loc!r}")
            return None
        m = _POS_RE.match(part)
        if not m:
            raise ValueError(f"bad position {loc!r}")
        nums.append(int(m.group("num")))
    start, end = nums[0], nums[-1]
    if start < 1 or end < start:
        raise ValueError(f"bad position {loc!r}")
    return start, end


def parse_features(text: str) -> list[dict]:
    """Split one TSV feature cell into features with their qualifiers.

    `ACT_SITE 164; /note="Nucleophile"; /evidence="ECO:0000269|PubMed:1"; BINDING 10..17; ...`
    """
    out: list[dict] = []
    text = text.rstrip()
    pos, n = 0, len(text)
    while pos < n:
        m = _FEATURE_RE.match(text, pos)
        if not m:
            raise ValueError(f"cannot parse feature text at {text[pos : pos + 60]!r}")
        feat = {"key": m.group("key"), "loc": m.group("loc"), "qualifiers": {}}
        pos = m.end()
        while pos < n:
            q = _QUALIFIER_RE.match(text, pos)
            if not q:
                break
            feat["qualifiers"][q.group("name")] = q.group("value")
            pos = q.end()
        out.append(feat)
    return out


_EC_PREFIX = re.compile(r"^EC[\s:]*", re.IGNORECASE)


def ec_label(ec_field: str, level: int, multi: str) -> tuple[str | None, str]:
    """EC number(s) -> label at `level`, or (None, reason)."""
    # "EC 3.5.2.15" or "EC:3.5.2.15" (spreadsheets, other databases): the number after the prefix
    numbers = [_EC_PREFIX.sub("", e.strip()) for e in ec_field.split(";") if e.strip()]
    if not numbers:
        return None, "no EC number"
    labels = []
    for ec in numbers:
        parts = ec.split(".")
        if len(parts) != 4:
            return None, f"malformed EC number {ec!r}"
        head = parts[:level]
        if any(not p.isdigit() for p in head):
            labels.append(None)
        else:
            labels.append(".".join(head))
    complete = [x for x in labels if x is not None]
    if not complete:
        return None, f"EC incomplete at level {level}"
    if len(set(complete)) > 1:
        if multi == "first":
            return complete[0], ""
        return None, "several EC numbers disagree"
    return complete[0], ""


# METAL entries were merged into BINDING by UniProt in 2022; older exports carry them
# in either column
ALLOWED_IN_COLUMN = {"Binding site": {"BINDING", "METAL"}, "Metal binding": {"METAL", "BINDING"}}
_ECO_RE = re.compile(r"ECO:\d{7}")


def _has_evidence(evidence: str, wanted: tuple[str, ...]) -> bool:
    return bool(set(_ECO_RE.findall(evidence)) & set(wanted))


def label_column(opt: ReadOptions) -> str:
    if opt.label == "ec":
        return "EC number"
    if opt.label == "go":
        return "Gene Ontology IDs"
    if opt.label == "keyword":
        return "Keyword ID" if opt.positive.startswith("KW-") else "Keywords"
    raise ValueError(f"label must be 'ec', 'go' or 'keyword', got {opt.label!r}")


def binary_label(cell: str, positive: str) -> str:
    """'positive' when the GO id / keyword is among the cell's `;`-separated terms."""
    terms = {t.strip() for t in cell.split(";")}
    return "positive" if positive in terms else "negative"


def drop_small_classes(prot: pd.DataFrame, ann: pd.DataFrame, min_size: int, report: ReadReport):
    """Drop classes with fewer than min_size proteins, counting them in the report."""
    if min_size <= 1 or prot.empty:
        return prot, ann
    sizes = prot["label"].value_counts()
    small = sorted(sizes[sizes < min_size].index)
    if small:
        report.classes_dropped += [str(s) for s in small]
        report.dropped["class smaller than min_class_size"] += int(sizes[small].sum())
        prot = prot[~prot["label"].isin(small)].reset_index(drop=True)
        ann = ann[ann["accession"].isin(prot["accession"])].reset_index(drop=True)
    return prot, ann


_GZIP_MAGIC = b"\x1f\x8b"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _open_text(path: Path):
    # utf-8-sig: a spreadsheet's or editor's byte-order mark is not part of the first field;
    # gzip is read by its content, whatever the file's name (a .tsv that curl saved compressed)
    if _is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


_HOW_TO_TSV = (
    "download the TSV from UniProt (the website's Download > Format: TSV, or the REST API with "
    "format=tsv), or set data.source to this file's format"
)


def recognise(path: Path) -> None:
    """Stop early, naming what the file is and what to do, where `path` is not a UniProt TSV:
    a workbook, UTF-16 text, JSON or FASTA. gzip and a UTF-8 byte-order mark are read."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[:2] == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(4096)
        except (OSError, EOFError) as err:
            raise UniProtFormatError(
                path, None, f"gzip-compressed but unreadable ({err}): download it again"
            ) from None
    if head[:4] == b"PK\x03\x04" or head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise UniProtFormatError(
            path,
            None,
            "an Excel workbook (or another zip or OLE file), not tab-separated text: in Excel, "
            "File > Save As > 'Text (Tab delimited)' or 'UTF-8 CSV' with tabs; or " + _HOW_TO_TSV,
        )
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UniProtFormatError(
            path,
            None,
            "UTF-16 text (what Excel saves as 'Unicode Text'): re-save it as UTF-8, e.g. "
            f"iconv -f UTF-16 -t UTF-8 {path} > {path.stem}.utf8.tsv",
        )
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:1] in (b"{", b"["):
        raise UniProtFormatError(
            path, None, "a JSON file (UniProt's format=json download), not a TSV export: " + _HOW_TO_TSV
        )
    if text[:1] == b">":
        raise UniProtFormatError(
            path,
            None,
            "a FASTA file, not a TSV export: set data.source: fasta to analyse its sequences "
            "(no labels or sites), or " + _HOW_TO_TSV,
        )


def _undecodable(path: Path) -> tuple[int, str, bytes] | None:
    """(line, column name, bytes) of the first byte that is not UTF-8, for the error message."""
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as fh:
        header: list[str] = []
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                fields = raw[: err.start].split(b"\t")
                column = header[len(fields) - 1] if len(fields) <= len(header) else f"field {len(fields)}"
                return lineno, column, raw[err.start : err.end]
            if lineno == 1:
                header = line.rstrip("\r\n").split("\t")
    return None


def _is_quoted(path: Path) -> bool:
    """Whether the file has a wholly quoted field (header or data), i.e. needs CSV quoting."""
    with _open_text(path) as fh:
        for line in fh:
            if '"' not in line:
                continue
            for cell in line.rstrip("\r\n").split("\t"):
                if len(cell) >= 2 and _QUOTED_FIELD_RE.fullmatch(cell):
                    return True
    return False


def _numbered_rows(reader, path: Path):
    """(first line of the record, fields) for each record; a quoted field may span lines."""
    last = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise UniProtFormatError(path, reader.line_num, f"bad CSV quoting: {err}") from None
        yield last + 1, row
        last = reader.line_num


def read_uniprot_tsv(
    path: str | Path, options: ReadOptions | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport]:
    """Read a UniProt TSV(.gz) export; return (proteins, annotations, report)."""
    path = Path(path)
    opt = options or ReadOptions()
    report = ReadReport(path=str(path))
    proteins: list[dict] = []
    annotations: list[dict] = []
    seen: dict[str, int] = {}
    recognise(path)
    try:
        report.quoted = _is_quoted(path)
        fh = _open_text(path)
        with fh:
            if report.quoted:
                reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_MINIMAL, strict=True)
            else:
                reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            rows = _numbered_rows(reader, path)
            try:
                _, header = next(rows)
            except StopIteration:
                raise UniProtFormatError(path, 1, "empty file: no header line") from None
            label_col = label_column(opt)
            required = ["Entry", "Sequence", label_col]
            missing = [c for c in required if c not in header]
            if missing:
                raise UniProtFormatError(path, 1, f"missing column(s) {missing}; header has {header}")
            col = {name: i for i, name in enumerate(header)}
            feature_cols = [
                (name, key) for name, key in FEATURE_COLUMNS.items() if name in col and key in opt.features
            ]
            for lineno, row in rows:
                if not row or row == [""]:
                    continue
                if row == header:
                    raise UniProtFormatError(
                        path,
                        lineno,
                        "the header line again: two exports joined into one file? Keep the first "
                        "header line only, e.g. awk 'NR == 1 || $1 != \"Entry\"' in > out",
                    )
                report.rows += 1
                if len(row) != len(header):
                    raise UniProtFormatError(path, lineno, f"{len(row)} columns, header has {len(header)}")
                acc = row[col["Entry"]].strip()
                if not acc:
                    raise UniProtFormatError(path, lineno, "empty Entry")
                if acc in seen:
                    raise UniProtFormatError(
                        path, lineno, f"duplicate accession {acc!r} (first on line {seen[acc]})"
                    )
                seen[acc] = lineno
                seq = row[col["Sequence"]].strip()
                if not seq:
                    raise UniProtFormatError(path, lineno, f"empty Sequence for {acc}")
                if seq != seq.upper():
                    if opt.lowercase == "error":
                        raise UniProtFormatError(path, lineno, f"lower-case letters in the sequence of {acc}")
                    seq = seq.upper()
                    report.uppercased += 1
                bad = sorted(set(seq) - VALID_RESIDUES)
                if bad:
                    i = min(seq.index(b) for b in bad)
                    raise UniProtFormatError(
                        path, lineno, f"{acc}: {seq[i]!r} at residue {i + 1} is not an amino-acid letter"
                    )
                if "Length" in col and row[col["Length"]].strip():
                    stated = row[col["Length"]].strip()
                    if not stated.isdigit() or int(stated) != len(seq):
                        raise UniProtFormatError(
                            path, lineno, f"{acc}: Length {stated!r} but the sequence has {len(seq)} residues"
                        )
                ec = row[col["EC number"]].strip() if "EC number" in col else ""
                if opt.label != "ec":
                    label = binary_label(row[col[label_col]], opt.positive)
                else:
                    try:
                        label, reason = ec_label(ec, opt.ec_level, opt.multi_ec)
                    except ValueError as err:
                        raise UniProtFormatError(path, lineno, f"{acc}: {err}") from None
                    if label is None and reason.startswith("malformed"):
                        raise UniProtFormatError(path, lineno, f"{acc}: {reason}")
                    if label is None:
                        report.dropped[reason] += 1
                        continue
                feats = []
                for colname, key in feature_cols:
                    cell = row[col[colname]]
                    if not cell.strip():
                        continue
                    try:
                        parsed = parse_features(cell)
                    except ValueError as err:
                        raise UniProtFormatError(path, lineno, f"{acc}, column {colname!r}: {err}") from None
                    for f in parsed:
                        if f["key"] not in ALLOWED_IN_COLUMN.get(colname, {key}):
                            raise UniProtFormatError(
                                path, lineno, f"{acc}, column {colname!r}: unexpected feature {f['key']!r}"
                            )
                        try:
                            loc = parse_location(f["loc"])
                        except ValueError as err:
                            raise UniProtFormatError(path, lineno, f"{acc}, {key}: {err}") from None
                        if loc is None:
                            report.uncertain_positions_skipped += 1
                            continue
                        start, end = loc
                        if end > len(seq):
                            raise UniProtFormatError(
                                path,
                                lineno,
                                f"{acc}, {key} {f['loc']}: position beyond the sequence ({len(seq)} residues)",
                            )
                        q = f["qualifiers"]
                        if opt.evidence and not _has_evidence(q.get("evidence", ""), opt.evidence):
                            report.evidence_filtered += 1
                            continue
                        feats.append(
                            {
                                "accession": acc,
                                "feature": f["key"],
                                "type": FEATURE_TYPES[f["key"]],
                                "pair": f["key"] in PAIR_FEATURES,
                                "start": start,
                                "end": end,
                                "note": q.get("note", ""),
                                "evidence": q.get("evidence", ""),
                                "ligand": q.get("ligand", ""),
                            }
                        )
                annotations.extend(feats)
                report.features.update(f["feature"] for f in feats)
                proteins.append(
                    {
                        "accession": acc,
                        "sequence": seq,
                        "length": len(seq),
                        "label": label,
                        "ec": ec,
                        "line": lineno,
                    }
                )
    except UnicodeDecodeError:
        where = _undecodable(path)
        if where is None:
            raise UniProtFormatError(path, None, "not UTF-8 text: re-save it as UTF-8") from None
        lineno, column, raw = where
        raise UniProtFormatError(
            path,
            lineno,
            f"column {column!r}: bytes {raw!r} are not UTF-8 (a file saved in Latin-1 or "
            f"Windows-1252?): re-save it as UTF-8, e.g. iconv -f WINDOWS-1252 -t UTF-8 {path} > "
            f"{path.stem}.utf8.tsv",
        ) from None
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise UniProtFormatError(path, None, f"unreadable: {err}") from None

    prot = pd.DataFrame(proteins, columns=["accession", "sequence", "length", "label", "ec", "line"])
    ann = pd.DataFrame(
        annotations,
        columns=["accession", "feature", "type", "pair", "start", "end", "note", "evidence", "ligand"],
    )
    prot, ann = drop_small_classes(prot, ann, opt.min_class_size, report)
    if prot.empty:
        raise UniProtFormatError(path, None, f"no usable entries (dropped: {dict(report.dropped)})")
    report.kept = len(prot)
    ann = ann.astype({"start": "int32", "end": "int32"}).reset_index(drop=True)
    prot = prot.astype({"length": "int32", "line": "int32"}).reset_index(drop=True)
    return prot, ann, report
