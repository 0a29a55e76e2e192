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

from plmxai.data.recognise import InputError, check, is_gzip, sequence_problem

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


_FEATURE_RE = re.compile(r"\s*(?P<key>[A-Z_]+)\s+(?P<loc>[^;\s]+)\s*(?:;|$)")
_QUALIFIER_RE = re.compile(r'\s*/(?P<name>\w+)="(?P<value>[^"]*)"\s*(?:;|$)')
_POS_RE = re.compile(r"^(?P<fuzzy>[<>]?)(?P<num>\d+)$")
# a whole field in CSV quotes, inner quotes doubled: the API's unquoted cells never look like
# this (a feature cell starts with its keyword), so one such field marks a quoted file
_QUOTED_FIELD_RE = re.compile(r'"(?:[^"]|"")*"')


# every reader's error: the message names the file, the line and value where they apply, and
# what to do (the name from when the UniProt reader was the only one)
UniProtFormatError = InputError


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


def ec_numbers(ec_field: str) -> list[str]:
    """The EC numbers of a cell (`; `-separated), each without an `EC ` / `EC:` prefix, as
    spreadsheets and other databases write them."""
    return [_EC_PREFIX.sub("", e.strip()) for e in ec_field.split(";") if e.strip()]


def ec_label(ec_field: str, level: int, multi: str) -> tuple[str | None, str]:
    """EC number(s) -> label at `level`, or (None, reason)."""
    numbers = ec_numbers(ec_field)
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


def _open_text(path: Path):
    # utf-8-sig: a spreadsheet's or editor's byte-order mark is not part of the first field;
    # gzip is read by its content, whatever the file's name (a .tsv that curl saved compressed)
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def recognise(path: Path) -> str:
    """The field separator of a UniProt TSV, or CSV from a spreadsheet; a file of another kind
    (workbook, UTF-16, JSON, FASTA, HTML, ... see plmxai.data.recognise) stops the read, named
    with what to do. gzip and a UTF-8 byte-order mark are read."""
    kind = check(path, "uniprot_tsv")
    if kind.name == "tsv":
        return "\t"
    # the separator that splits the header into UniProt's column labels (a label may hold the
    # other one, quoted)
    with _open_text(path) as fh:
        first = next((line for line in fh if line.strip()), "")
    known = {"Entry", "Sequence", *FEATURE_COLUMNS, "EC number", "Length"}
    return max(
        (",", ";"), key=lambda sep: len(known & {c.strip() for c in next(csv.reader([first], delimiter=sep))})
    )


# REST API field names and other spellings of the columns read, for the message that says
# which column to rename
_COLUMN_NAMES = {
    "accession": "Entry",
    "entry": "Entry",
    "sequence": "Sequence",
    "ec": "EC number",
    "ec number": "EC number",
    "ec_number": "EC number",
    "go_id": "Gene Ontology IDs",
    "keyword": "Keywords",
    "keywordid": "Keyword ID",
}
_REST_FIELD = {
    "Entry": "accession",
    "Sequence": "sequence",
    "EC number": "ec",
    "Gene Ontology IDs": "go_id",
    "Keywords": "keyword",
    "Keyword ID": "keywordid",
}
_AMINO_RUN = re.compile(r"^[ACDEFGHIKLMNPQRSTVWYXBUZOacdefghiklmnpqrstvwyxbuzo]{20,}$")


def _header_problem(header: list[str], missing: list[str]) -> str:
    """Why the columns in `missing` are not in `header`, and what to do."""
    if any(_AMINO_RUN.match(c.strip()) for c in header):
        return (
            "the first line is a data row (it holds a sequence): the header line is missing (a "
            "table written with header=False or col.names=FALSE?). Add UniProt's header line, "
            "e.g. Entry<TAB>Sequence<TAB>EC number, in the columns' order"
        )
    renames = []
    for c in header:
        key = c.strip().lower().replace("ft_", "")
        target = (
            _COLUMN_NAMES.get(key)
            or next((name for name in FEATURE_COLUMNS if name.lower() == key), None)
            or next((m for m in missing if m.lower() == c.strip().lower()), None)
        )
        if target in missing:
            renames.append(f"{c!r} -> {target!r}")
    if renames:
        return (
            f"missing column(s) {missing}; rename {', '.join(renames)} (the TSV's column labels, "
            "as UniProt writes them)"
        )
    fields = ",".join(_REST_FIELD.get(m, m) for m in missing)
    return (
        f"missing column(s) {missing}; the header has {header}. Add them to the download: the "
        f"REST API's fields=...,{fields} or the website's Customize columns"
    )


_NA = frozenset({"NA", "NaN", "nan", "<NA>"})  # R's and pandas' missing values, in optional cells


def _undecodable(path: Path, sep: str = "\t") -> tuple[int, str, bytes] | None:
    """(line, column name, bytes) of the first byte that is not UTF-8, for the error message."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as fh:
        header: list[str] = []
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                fields = raw[: err.start].split(sep.encode())
                column = header[len(fields) - 1] if len(fields) <= len(header) else f"field {len(fields)}"
                return lineno, column, raw[err.start : err.end]
            if lineno == 1:
                header = line.rstrip("\r\n").split(sep)
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
            raise UniProtFormatError(
                path,
                reader.line_num,
                f"bad CSV quoting: {err}: a quote opened and not closed, or a quote inside an "
                "unquoted value? Quote the whole value and double the quotes inside it (as pandas "
                "and R write them)",
            ) from None
        yield last + 1, row
        last = reader.line_num


def _ends_without_newline(path: Path) -> bool:
    if is_gzip(path):
        return False  # a cut gzip fails as gzip
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) not in (b"\n", b"\r")


def _field_count_problem(row: list[str], header: list[str], last: bool, sep: str = "\t") -> str:
    what = {"\t": "tab", ",": "comma", ";": "semicolon"}[sep]
    if len(row) < len(header) and last:
        return (
            f"{len(row)} fields, the header has {len(header)}, on the last line, which has no line "
            "break: the file was cut off (an interrupted download or copy?): download it again"
        )
    if len(row) > len(header):
        return (
            f"{len(row)} fields, the header has {len(header)}: a {what} inside a value? Remove it, or "
            "write the table with quoting (pandas to_csv(sep='\\t') and R write.table quote "
            "such values, and both are read)"
        )
    return (
        f"{len(row)} fields, the header has {len(header)}: a line break inside a value, or a "
        f"value's {what} lost? Fix that row, or write the table with quoting"
    )


def read_uniprot_tsv(
    path: str | Path, options: ReadOptions | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport]:
    """Read a UniProt TSV(.gz) export; return (proteins, annotations, report).

    Also read, as documented in docs/inputs.md: CSV (comma or semicolon) from a spreadsheet;
    fields quoted by pandas, R or a spreadsheet; R's row names (write.table's default: one field
    more than the header, counting 1, 2, ...); R's and pandas' missing values (NA, NaN) in the
    EC and feature cells, read as empty; `EC ` / `EC:` prefixes; a thousands separator in
    Length; one `*` ending a sequence (removed, counted); rows repeated verbatim (dropped,
    counted as "identical duplicate row").
    """
    path = Path(path)
    opt = options or ReadOptions()
    report = ReadReport(path=str(path))
    proteins: list[dict] = []
    annotations: list[dict] = []
    seen: dict[str, tuple[int, list[str]]] = {}
    sep = recognise(path)
    try:
        report.quoted = sep != "\t" or _is_quoted(path)
        fh = _open_text(path)
        with fh:
            if report.quoted:
                reader = csv.reader(fh, delimiter=sep, quoting=csv.QUOTE_MINIMAL, strict=True)
            else:
                reader = csv.reader(fh, delimiter=sep, quoting=csv.QUOTE_NONE)
            rows = _numbered_rows(reader, path)
            header = []
            for _, header in rows:  # blank lines above the header are skipped
                if any(h.strip() for h in header):
                    break
            if not any(h.strip() for h in header):
                raise UniProtFormatError(path, 1, "empty file: no header line")
            header = [h.strip() for h in header]
            label_col = label_column(opt)
            required = ["Entry", "Sequence", label_col]
            missing = [c for c in required if c not in header]
            if missing:
                raise UniProtFormatError(path, 1, _header_problem(header, missing))
            col = {name: i for i, name in enumerate(header)}
            feature_cols = [
                (name, key) for name, key in FEATURE_COLUMNS.items() if name in col and key in opt.features
            ]
            row_names = None  # R's write.table row names: a first field the header does not name
            rows = list(rows)
            for k, (lineno, row) in enumerate(rows):
                if not row or all(not x.strip() for x in row):
                    continue
                if [x.strip() for x in row] == header:
                    raise UniProtFormatError(
                        path,
                        lineno,
                        "the header line again: two exports joined into one file? Keep the first "
                        "header line only, e.g. awk 'NR == 1 || $1 != \"Entry\"' in > out",
                    )
                report.rows += 1
                if row_names is None:
                    # R's row names: 1, 2, ... or the accessions (rownames(df) <- df$Entry)
                    row_names = len(row) == len(header) + 1 and (
                        row[0].strip().isdigit() or row[0].strip() == row[1 + col["Entry"]].strip()
                    )
                if row_names:
                    if len(row) != len(header) + 1:
                        raise UniProtFormatError(
                            path,
                            lineno,
                            f"{len(row)} fields, where the rows above have R's row names and "
                            f"{len(header) + 1}: {_field_count_problem(row[1:], header, False, sep)}",
                        )
                    row = row[1:]
                if len(row) != len(header):
                    last = k == len(rows) - 1 and _ends_without_newline(path)
                    raise UniProtFormatError(path, lineno, _field_count_problem(row, header, last, sep))
                acc = row[col["Entry"]].strip()
                for name in ("Entry", "Sequence"):
                    if row[col[name]].strip() in _NA:
                        raise UniProtFormatError(
                            path,
                            lineno,
                            f"{name} is {row[col[name]].strip()!r}, a missing value (R's NA or pandas' "
                            "NaN): fill it in or remove the row",
                        )
                if not acc:
                    raise UniProtFormatError(
                        path,
                        lineno,
                        "empty Entry: every row needs its accession; fill it in or remove the row",
                    )
                if acc in seen:
                    first_line, first_row = seen[acc]
                    if row == first_row:
                        report.dropped["identical duplicate row"] += 1
                        continue
                    raise UniProtFormatError(
                        path,
                        lineno,
                        f"accession {acc!r} again (first on line {first_line}), with other values: "
                        "keep one row per accession (exports of overlapping queries joined?)",
                    )
                seen[acc] = (lineno, row)
                seq = row[col["Sequence"]].strip()
                if not seq:
                    raise UniProtFormatError(
                        path, lineno, f"empty Sequence for {acc}: fill it in or remove the row"
                    )
                if seq != seq.upper():
                    if opt.lowercase == "error":
                        raise UniProtFormatError(
                            path,
                            lineno,
                            f"lower-case letters in the sequence of {acc}: set data.lowercase: upper "
                            "to read them upper-cased (counted)",
                        )
                    seq = seq.upper()
                    report.uppercased += 1
                if seq.endswith("*") and len(seq) > 1:
                    seq = seq[:-1]
                    report.stop_codons_stripped += 1
                problem = sequence_problem(seq)
                if problem:
                    raise UniProtFormatError(path, lineno, f"{acc}: {problem[1]}")
                if "Length" in col and row[col["Length"]].strip() not in _NA | {""}:
                    stated = row[col["Length"]].strip()
                    number = stated.replace(",", "").replace(" ", "")  # a spreadsheet's 1,234
                    if not number.isdigit() or int(number) != len(seq):
                        why = (
                            "Excel cuts cells at 32,767 characters: export without Excel, or drop the protein"
                            if len(seq) == 32767
                            else "the sequence was edited or cut after export: export it again"
                        )
                        raise UniProtFormatError(
                            path,
                            lineno,
                            f"{acc}: Length {stated!r} but the sequence has {len(seq)} residues: {why}",
                        )
                ec = row[col["EC number"]].strip() if "EC number" in col else ""
                ec = "" if ec in _NA else "; ".join(ec_numbers(ec))
                if opt.label != "ec":
                    label = binary_label(row[col[label_col]], opt.positive)
                else:
                    try:
                        label, reason = ec_label(ec, opt.ec_level, opt.multi_ec)
                    except ValueError as err:
                        raise UniProtFormatError(path, lineno, f"{acc}: {err}") from None
                    if label is None and reason.startswith("malformed"):
                        raise UniProtFormatError(
                            path,
                            lineno,
                            f"{acc}: {reason}: an EC number has four parts, e.g. 3.5.2.6 or 3.5.-.-; "
                            "several are separated by '; '",
                        )
                    if label is None:
                        report.dropped[reason] += 1
                        continue
                feats = []
                for colname, key in feature_cols:
                    cell = row[col[colname]]
                    if not cell.strip() or cell.strip() in _NA:
                        continue
                    try:
                        parsed = parse_features(cell)
                    except ValueError as err:
                        raise UniProtFormatError(
                            path,
                            lineno,
                            f"{acc}, column {colname!r}: {err}: UniProt writes features as "
                            f'{key} 164; /note="..."; /evidence="..." (was the cell edited?)',
                        ) from None
                    for f in parsed:
                        if f["key"] not in ALLOWED_IN_COLUMN.get(colname, {key}):
                            raise UniProtFormatError(
                                path,
                                lineno,
                                f"{acc}, column {colname!r}: feature {f['key']!r}, where the column "
                                f"holds {key}: columns relabelled or shifted? Check the header "
                                "against the cells",
                            )
                        try:
                            loc = parse_location(f["loc"])
                        except ValueError as err:
                            raise UniProtFormatError(
                                path,
                                lineno,
                                f"{acc}, {key}: {err}: a position is 164, 10..17, or with '<', '>' or "
                                "'?' where UniProt is unsure",
                            ) from None
                        if loc is None:
                            report.uncertain_positions_skipped += 1
                            continue
                        start, end = loc
                        if end > len(seq):
                            raise UniProtFormatError(
                                path,
                                lineno,
                                f"{acc}, {key} {f['loc']}: position beyond the sequence ({len(seq)} "
                                "residues): the sequence and the features are from different "
                                "entry versions or isoforms; export them together again",
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
        where = _undecodable(path, sep)
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
    except EOFError:
        raise UniProtFormatError(
            path,
            None,
            "the gzip stream ends early: the file was cut off (an interrupted download?): download it again",
        ) from None
    except (gzip.BadGzipFile, OSError) as err:
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
        raise UniProtFormatError(path, None, _nothing_usable(report, opt))
    report.kept = len(prot)
    ann = ann.astype({"start": "int32", "end": "int32"}).reset_index(drop=True)
    prot = prot.astype({"length": "int32", "line": "int32"}).reset_index(drop=True)
    return prot, ann, report


def _nothing_usable(report: ReadReport, opt: ReadOptions) -> str:
    if not report.rows:
        return (
            "no data rows below the header (the query matched nothing, or the download stopped "
            "after the header): check the query and download again"
        )
    hints = []
    for reason in report.dropped:
        if reason == "no EC number":
            hints.append("no EC number: add ec:* to the query, or choose another data.label")
        elif reason.startswith("EC incomplete"):
            hints.append(f"EC incomplete: lower data.ec_level (now {opt.ec_level})")
        elif reason == "several EC numbers disagree":
            hints.append("EC numbers disagree: data.multi_ec: first takes the first one")
    return f"no usable entries: all {report.rows} rows dropped ({dict(report.dropped)})" + (
        f"; {'; '.join(hints)}" if hints else ""
    )
