"""Readers for protein inputs other than a UniProt TSV, into the tables `read_uniprot_tsv` gives.

Every reader returns (proteins, annotations, report), as `plmxai.data.uniprot.read_uniprot_tsv`:

- proteins: accession, sequence, length (int32), label, ec, line (int32: where the record starts)
- annotations: accession, feature, type, pair, start, end (int32, 1-based inclusive), note,
  evidence, ligand
- report: a `ReadReport`

`read_structure_folder` also returns a table of chains (accession, path, chain), so that a later
stage computes each chain's contacts from its own coordinates. `read_input` dispatches on a
source name for the data stage.

As in `plmxai.data.uniprot`, every malformed value stops the read with an `InputFormatError` (a
`UniProtFormatError`) naming the file, line and value; lenient policies are options, and what
they did is counted in the report. Inputs without a class label get `UNLABELLED`.

No torch or transformers here: the data stage runs in a light environment. Biotite is imported
only by the structure reader.
"""

from __future__ import annotations

import bisect
import gzip
import inspect
import itertools
import json
import re
from pathlib import Path

import pandas as pd

from plmxai.data.recognise import check, identify, sequence_problem
from plmxai.data.uniprot import (
    FEATURE_TYPES,
    PAIR_FEATURES,
    ReadOptions,
    ReadReport,
    UniProtFormatError,
    _open_text,
    read_uniprot_tsv,
)

UNLABELLED = "unlabelled"
PROTEIN_COLUMNS = ["accession", "sequence", "length", "label", "ec", "line"]
ANNOTATION_COLUMNS = ["accession", "feature", "type", "pair", "start", "end", "note", "evidence", "ligand"]

# TMbed per-residue labels (BernhoferM/TMbed, data/README.md). Neither letter case encodes an
# orientation: in tmbed_alpha.fasta `H` segments run 1->2 (inside to outside) 1,546 times and
# 2->1 1,525 times, `h` segments 18 and 30 times; so a segment's note keeps the letter itself.
TM_LETTERS = {"H": "helix", "h": "helix", "B": "strand", "b": "strand"}
NON_TM_LETTERS = {"S": "signal peptide", "1": "inside", "2": "outside", "U": "unresolved"}
RESIDUE_LABEL_LETTERS = frozenset(TM_LETTERS) | frozenset(NON_TM_LETTERS)

SITES_KEYS = ("id", "primary", "positions", "sites")
_UNIPROT_HEADER_RE = re.compile(r"^(?:sp|tr)\|(?P<acc>[^|\s]+)\|")


class InputFormatError(UniProtFormatError):
    """A value in a protein input file that cannot be read; names the file, line and value."""


def _unreadable(path, err: Exception) -> InputFormatError:
    return InputFormatError(path, None, f"unreadable: {err}")


# errors of a damaged or binary file, which the readers turn into "unreadable" (a missing file
# stays FileNotFoundError)
_READ_ERRORS = (EOFError, gzip.BadGzipFile, UnicodeDecodeError, OSError)


class _Records:
    """Rows of the two tables and the report, shared by the readers."""

    def __init__(self, path, source: str, lowercase: str):
        if lowercase not in ("upper", "error"):
            raise ValueError(f"lowercase must be 'upper' or 'error', got {lowercase!r}")
        self.path, self.lowercase = path, lowercase
        self.report = ReadReport(path=str(path), source=source)
        self.proteins: list[dict] = []
        self.annotations: list[dict] = []
        self.seen: dict[str, int] = {}

    def accession(self, acc: str, line: int, what: str = "accession") -> None:
        if acc in self.seen:
            raise InputFormatError(
                self.path,
                line,
                f"duplicate {what} {acc!r} (first on line {self.seen[acc]}): every record needs "
                f"its own {what}; rename or remove the repeated record",
            )
        self.seen[acc] = line

    def sequence(self, seq: str, acc: str, line, lines: list[tuple[int, int]] | None = None) -> str:
        """The checked, upper-cased sequence. `lines`: (first residue index, file line) of each
        sequence line, so that a bad letter is reported on its own line."""

        def where(i: int) -> int:
            if not lines:
                return line
            return lines[bisect.bisect_right([s for s, _ in lines], i) - 1][1]

        if seq != seq.upper():
            i = next(k for k, c in enumerate(seq) if c != c.upper())
            if self.lowercase == "error":
                raise InputFormatError(
                    self.path,
                    where(i),
                    f"lower-case letters in the sequence of {acc} ({seq[i]!r} at residue {i + 1})",
                )
            seq = seq.upper()
            self.report.uppercased += 1
        problem = sequence_problem(seq)
        if problem:
            raise InputFormatError(self.path, where(problem[0]), f"{acc}: {problem[1]}")
        return seq

    def protein(self, acc: str, seq: str, label: str, line: int) -> None:
        self.proteins.append(
            {"accession": acc, "sequence": seq, "length": len(seq), "label": label, "ec": "", "line": line}
        )

    def annotation(self, acc: str, feature: str, start: int, end: int, note: str = "") -> None:
        self.annotations.append(
            {
                "accession": acc,
                "feature": feature,
                "type": FEATURE_TYPES[feature],
                "pair": feature in PAIR_FEATURES,
                "start": start,
                "end": end,
                "note": note,
                "evidence": "",
                "ligand": "",
            }
        )
        self.report.features[feature] += 1

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport]:
        prot = pd.DataFrame(self.proteins, columns=PROTEIN_COLUMNS)
        ann = pd.DataFrame(self.annotations, columns=ANNOTATION_COLUMNS)
        self.report.rows = self.report.kept = len(prot)
        prot = prot.astype({"length": "int32", "line": "int32"})
        ann = ann.astype({"start": "int32", "end": "int32", "pair": bool})
        return prot, ann, self.report


def _lines(path: Path):
    """(line number, text without the line break) of a text file, `.gz` allowed."""
    with _open_text(path) as fh:
        for lineno, text in enumerate(fh, start=1):
            yield lineno, text.rstrip("\r\n")


def fasta_accession(header: str) -> str:
    """`sp|P12345|NAME_HUMAN desc` -> P12345 (also `tr|`); otherwise the first word."""
    m = _UNIPROT_HEADER_RE.match(header)
    if m:
        return m.group("acc")
    words = header.split()
    return words[0] if words else ""


def read_fasta(
    path: str | Path, *, lowercase: str = "upper"
) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport]:
    """Read a plain FASTA(.gz) file of unlabelled proteins; sequences may span lines.

    Accession: the header's first word, or the middle field of a UniProt header
    (`sp|P12345|NAME_HUMAN ...`). Blank lines are ignored. One `*` (stop codon) at the very end of
    a sequence is removed and counted (`report.stop_codons_stripped`); a `*` elsewhere is a bad
    letter. `lowercase`: "upper" (upper-cased, counted in `report.uppercased`) or "error".
    """
    path = Path(path)
    check(path, "fasta")
    rec = _Records(path, "fasta", lowercase)
    current: dict | None = None

    def finish(r: dict) -> None:
        seq = "".join(r["parts"])
        if seq.endswith("*"):
            seq = seq[:-1]
            rec.report.stop_codons_stripped += 1
        if not seq:
            raise InputFormatError(
                path, r["line"], f"header {r['header']!r} has no sequence: add it, or remove the header"
            )
        seq = rec.sequence(seq, r["acc"], r["line"], r["starts"])
        rec.protein(r["acc"], seq, UNLABELLED, r["line"])

    try:
        for lineno, text in _lines(path):
            if text.startswith(">"):
                if current is not None:
                    finish(current)
                header = text[1:].strip()
                acc = fasta_accession(header)
                if not acc:
                    raise InputFormatError(path, lineno, f"header {text!r} has no accession")
                rec.accession(acc, lineno)
                current = {"acc": acc, "header": text, "line": lineno, "parts": [], "starts": []}
                continue
            residues = "".join(text.split())
            if not residues:
                continue
            if current is None:
                raise InputFormatError(
                    path,
                    lineno,
                    f"text before the first header: {text[:60]!r}; a FASTA record starts with a "
                    "'>' line: remove the text or add a header",
                )
            current["starts"].append((sum(map(len, current["parts"])), lineno))
            current["parts"].append(residues)
        if current is None:
            raise InputFormatError(path, 1, "empty file: no FASTA record")
        finish(current)
    except _READ_ERRORS as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise _unreadable(path, err) from None
    return rec.tables()


def _runs(labels: str):
    """(letter, start, end) of each maximal run of one letter; 1-based inclusive."""
    pos = 1
    for letter, group in itertools.groupby(labels):
        n = sum(1 for _ in group)
        yield letter, pos, pos + n - 1
        pos += n


def read_residue_label_fasta(
    path: str | Path, *, label: str = "none", lowercase: str = "upper"
) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport]:
    """Read TMbed's 3-line format: `>header`, sequence, per-residue label string of its length.

    Label letters: `H`/`h` transmembrane helix, `B`/`b` transmembrane strand, `S` signal peptide,
    `1` inside, `2` outside, `U` unresolved. Accession: the header's first `|` field (`5mzs_A` for
    a membrane chain, `Q9BEC7` for a globular protein of the SignalP set). Each maximal run of one
    TM letter is a TRANSMEM annotation with note `helix, H` (kind and letter: the letter's case
    is kept, as it encodes no orientation that the data bear out); each run of `S` is a SIGNAL
    annotation. `1`, `2` and `U` give no annotation.

    `label`: "none" (every protein `UNLABELLED`) or "transmembrane" ("membrane" when any residue
    is H, h, B or b, else "globular"). Blank lines between records are ignored.
    """
    if label not in ("none", "transmembrane"):
        raise ValueError(f"label must be 'none' or 'transmembrane', got {label!r}")
    path = Path(path)
    check(path, "residue_fasta")
    rec = _Records(path, "residue_fasta", lowercase)
    try:
        lines = [(n, t) for n, t in _lines(path) if t.strip()]
    except _READ_ERRORS as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise _unreadable(path, err) from None
    if not lines:
        raise InputFormatError(path, 1, "empty file: no record")
    for k in range(0, len(lines), 3):
        head_line, header = lines[k]
        if not header.startswith(">"):
            raise InputFormatError(
                path,
                head_line,
                f"expected a '>' header (records are header, sequence, labels), got {header[:60]!r}",
            )
        acc = header[1:].split("|")[0].strip()
        if not acc:
            raise InputFormatError(path, head_line, f"header {header!r} has no id")
        record = lines[k + 1 : k + 3]
        for what, (n, text) in zip(("sequence", "label"), record):
            if text.startswith(">"):
                raise InputFormatError(
                    path,
                    n,
                    f"truncated record {acc} (header on line {head_line}): "
                    f"a header {text[:60]!r} where its {what} line should be"
                    + (
                        " (a plain FASTA, without label lines? It is read with data.source: fasta)"
                        if k == 0
                        else ""
                    ),
                )
        if len(record) < 2:
            missing = "sequence and label lines" if not record else "label line"
            raise InputFormatError(
                path,
                (record[-1][0] if record else head_line),
                f"truncated file: record {acc} (header on line {head_line}) has no {missing}",
            )
        rec.accession(acc, head_line, "id")
        (seq_line, seq), (lab_line, labels) = record[0], record[1]
        seq, labels = seq.strip(), labels.strip()
        if len(seq) != len(labels):
            raise InputFormatError(
                path,
                lab_line,
                f"{acc}: the sequence has {len(seq)} residues (line {seq_line}) but the label "
                f"string has {len(labels)} letters: the label line needs one letter per residue",
            )
        for i, c in enumerate(labels):
            if c not in RESIDUE_LABEL_LETTERS:
                raise InputFormatError(
                    path,
                    lab_line,
                    f"{acc}: unknown label letter {c!r} at position {i + 1} (known: "
                    f"{''.join(sorted(RESIDUE_LABEL_LETTERS))})",
                )
        seq = rec.sequence(seq, acc, seq_line)
        membrane = False
        for letter, start, end in _runs(labels):
            if letter in TM_LETTERS:
                membrane = True
                rec.annotation(acc, "TRANSMEM", start, end, f"{TM_LETTERS[letter]}, {letter}")
            elif letter == "S":
                rec.annotation(acc, "SIGNAL", start, end)
        if label == "transmembrane":
            cls = "membrane" if membrane else "globular"
        else:
            cls = UNLABELLED
        rec.protein(acc, seq, cls, head_line)
    return rec.tables()


def read_sites_jsonl(
    path: str | Path, *, outside: str = "error", lowercase: str = "upper"
) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport]:
    """Read PDB chains with binding sites, one JSON object a line (ProVis' binding-site set).

    Keys: `id` (PDB id.chain, the accession), `primary` (sequence), `positions` (the PDB residue
    number of each residue of `primary`), `sites` (binding-site residues by PDB residue number).
    Each distinct site becomes a BINDING annotation (type binding_site) on its residue, note
    `PDB residue <number>`.

    Residue numbers can repeat within a chain (insertion codes, dropped from `positions`): in
    `binding_sites/pdb_chains_binding_sites.jsonl` (1,418 chains) 7 chains repeat a number and 2
    sites (4upi.A 53, 5jsy.B 489) match two residues each. Such a site goes to its first residue,
    as `positions.index(site)` does in the set's own code, and is counted in
    `report.sites_ambiguous`. One site there is not among its chain's positions (3wjp.A 338; the
    chain's numbers end at 337): `outside="error"` (default) stops with its line, `"skip"` drops
    such sites and counts them in `report.sites_outside_skipped`. 402 chains have no site: they
    are proteins without annotations.
    """
    if outside not in ("error", "skip"):
        raise ValueError(f"outside must be 'error' or 'skip', got {outside!r}")
    path = Path(path)
    check(path, "sites_jsonl")
    rec = _Records(path, "sites_jsonl", lowercase)
    try:
        for lineno, text in _lines(path):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise InputFormatError(
                    path,
                    lineno,
                    f"invalid JSON ({err.msg} at column {err.colno}): {text[:60]!r}; each line is "
                    "one whole JSON object (a record broken over lines, or cut off?)",
                ) from None
            if not isinstance(obj, dict):
                raise InputFormatError(path, lineno, f"not a JSON object: {text[:60]!r}")
            missing = [k for k in SITES_KEYS if k not in obj]
            if missing:
                raise InputFormatError(
                    path,
                    lineno,
                    f"missing key(s) {missing} (has {sorted(obj)}); each record needs "
                    f"{', '.join(SITES_KEYS)}",
                )
            acc, seq, positions, sites = (obj[k] for k in SITES_KEYS)
            if not isinstance(acc, str) or not acc.strip():
                raise InputFormatError(path, lineno, f"id must be a non-empty string, got {acc!r}")
            acc = acc.strip()
            for key, value, kind in (
                ("primary", seq, str),
                ("positions", positions, list),
                ("sites", sites, list),
            ):
                if not isinstance(value, kind):
                    raise InputFormatError(
                        path, lineno, f"{acc}: {key} must be a {kind.__name__}, got {value!r:.60}"
                    )
            for key, values in (("positions", positions), ("sites", sites)):
                bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, str))]
                if bad:
                    raise InputFormatError(
                        path, lineno, f"{acc}: {key} holds {bad[0]!r}, not a residue number"
                    )
            rec.accession(acc, lineno, "id")
            if not seq:
                raise InputFormatError(path, lineno, f"{acc}: empty primary sequence")
            if len(positions) != len(seq):
                raise InputFormatError(
                    path,
                    lineno,
                    f"{acc}: {len(positions)} positions for a primary sequence of {len(seq)} residues",
                )
            seq = rec.sequence(seq, acc, lineno)
            counts: dict = {}
            first: dict = {}
            for i, p in enumerate(positions):
                counts[p] = counts.get(p, 0) + 1
                first.setdefault(p, i)
            for site in dict.fromkeys(sites):  # a site listed twice is one annotation
                if site not in first:
                    if outside == "skip":
                        rec.report.sites_outside_skipped += 1
                        continue
                    raise InputFormatError(
                        path,
                        lineno,
                        f"{acc}: site {site!r} outside the chain (its residue numbers run "
                        f"{positions[0]!r}..{positions[-1]!r}): set data.sites_outside: skip to "
                        "drop such sites (counted), or correct the site",
                    )
                if counts[site] > 1:
                    rec.report.sites_ambiguous += 1
                rec.annotation(acc, "BINDING", first[site] + 1, first[site] + 1, f"PDB residue {site}")
            rec.protein(acc, seq, UNLABELLED, lineno)
    except _READ_ERRORS as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise _unreadable(path, err) from None
    if not rec.proteins:
        raise InputFormatError(path, 1, "empty file: no JSON record")
    return rec.tables()


def _structure_stem(name: str, suffixes) -> str | None:
    """The file name without its structure suffix, or None when it has none of them."""
    low = name.lower()
    matches = [s for s in suffixes if low.endswith(s)]
    if not matches:
        return None
    return name[: -len(max(matches, key=len))]


def read_structure_folder(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport, pd.DataFrame]:
    """Every protein chain of the structure files directly in a folder, as unlabelled proteins.

    Files: those with a suffix in `plmxai.data.structures.STRUCTURE_SUFFIXES`, by name. Each protein
    chain of a file's first model (`plmxai.data.structures.read_chains`) is a protein with accession
    `<file name without suffix>_<chain id>`, its sequence read from the C-alpha records
    (non-standard amino acids X), line 0 and no annotations. Also returns `chains` (accession,
    path, chain), so that a later stage computes each chain's contacts from its own coordinates.
    """
    from plmxai.data.structures import STRUCTURE_SUFFIXES, read_chains

    folder = Path(folder)
    accepted = ", ".join(STRUCTURE_SUFFIXES)
    if folder.is_file():
        raise InputFormatError(
            folder,
            None,
            f"a file, where a folder of structure files is expected: set data.path to the folder "
            f"holding it ({folder.parent})",
        )
    if not folder.is_dir():
        raise InputFormatError(folder, None, f"no such folder (expected structure files: {accepted})")
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and _structure_stem(p.name, STRUCTURE_SUFFIXES)),
        key=lambda p: p.name,
    )
    if not files:
        present = sorted(p.name for p in folder.iterdir())[:5]
        raise InputFormatError(
            folder,
            None,
            f"no structure file (accepted suffixes: {accepted}); the folder holds {present or 'nothing'}",
        )
    rec = _Records(folder, "structures", "upper")
    chain_rows = []
    owner: dict[str, str] = {}
    for p in files:
        try:
            chains = read_chains(p)
        except ValueError as err:
            # read_chains' message starts with the path already
            msg = str(err).removeprefix(f"{p}: ")
            kind = identify(p)
            if kind.name not in ("structure", "text", "binary", "gzip"):  # a file of another kind
                msg += f"; the file is {kind.what}" + (f": {kind.fix}" if kind.fix else "")
            raise InputFormatError(p, None, msg) from None
        for chain_id, chain in chains.items():
            acc = f"{_structure_stem(p.name, STRUCTURE_SUFFIXES)}_{chain_id}"
            if acc in owner:
                raise InputFormatError(p, None, f"duplicate accession {acc!r} (also from {owner[acc]})")
            owner[acc] = p.name
            if set(chain.sequence) <= {"X"}:
                raise InputFormatError(
                    p,
                    None,
                    f"chain {chain_id!r}: all {len(chain.sequence)} residues are non-standard amino acids (X)",
                )
            seq = rec.sequence(chain.sequence, acc, None)
            rec.protein(acc, seq, UNLABELLED, 0)
            chain_rows.append({"accession": acc, "path": str(p), "chain": chain_id})
    prot, ann, report = rec.tables()
    return prot, ann, report, pd.DataFrame(chain_rows, columns=["accession", "path", "chain"])


READERS = {
    "uniprot_tsv": read_uniprot_tsv,
    "fasta": read_fasta,
    "residue_fasta": read_residue_label_fasta,
    "sites_jsonl": read_sites_jsonl,
    "structures": read_structure_folder,
}
SOURCES = tuple(READERS)


def read_input(
    source: str, path: str | Path, **options
) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport, pd.DataFrame | None]:
    """Read one input by source name; returns (proteins, annotations, report, chains or None).

    `uniprot_tsv` takes the fields of `ReadOptions` as options; the others their reader's keyword
    arguments. `chains` is the structure reader's table, None for the other sources.
    """
    if source not in READERS:
        raise ValueError(f"unknown input source {source!r}; known: {', '.join(SOURCES)}")
    if source == "uniprot_tsv":
        allowed = set(inspect.signature(ReadOptions).parameters)
    else:
        allowed = {
            name
            for name, p in inspect.signature(READERS[source]).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for source {source!r}; known: {sorted(allowed) or 'none'}"
        )
    if source == "uniprot_tsv":
        prot, ann, report = read_uniprot_tsv(path, ReadOptions(**options))
        return prot, ann, report, None
    if source == "structures":
        return read_structure_folder(path)
    prot, ann, report = READERS[source](path, **options)
    return prot, ann, report, None


__all__ = [
    "UNLABELLED",
    "InputFormatError",
    "SOURCES",
    "fasta_accession",
    "read_fasta",
    "read_residue_label_fasta",
    "read_sites_jsonl",
    "read_structure_folder",
    "read_input",
]
