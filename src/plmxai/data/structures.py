"""Protein structures for the attention analysis: C-alpha coordinates from PDB/mmCIF files
(biotite), mapped onto the analysed sequence by alignment (Biopython), and contact maps.

Residue numbering in structure files is not the UniProt numbering (renumbered files, missing
loops, expression tags, insertion codes), so a structure residue is placed on the sequence only
through a pairwise alignment of the chain's sequence, read from its C-alpha records, with the
protein sequence. Residues without an aligned, resolved C-alpha get no contact information.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

STRUCTURE_SUFFIXES = (".pdb", ".cif", ".bcif", ".pdb.gz", ".cif.gz", ".ent")


@dataclass
class Chain:
    """One chain's C-alpha trace: one-letter sequence and coordinates (n x 3, Å), in file order."""

    name: str
    sequence: str
    ca: np.ndarray


def read_chains(path: str | Path) -> dict[str, Chain]:
    """C-alpha traces of every protein chain of the first model of a PDB or mmCIF file.

    Alternate locations keep the first; residues that are not amino acids are skipped; a
    non-standard amino acid becomes X."""
    import biotite.structure as struc
    import biotite.structure.io as strucio
    from biotite.sequence import ProteinSequence

    path = Path(path)
    try:
        with warnings.catch_warnings():  # "elements were guessed from atom name": not used here
            warnings.simplefilter("ignore", UserWarning)
            atoms = strucio.load_structure(str(path), model=1)
    except Exception as e:  # biotite raises several types for malformed files
        raise ValueError(f"{path}: cannot read structure: {e}") from e
    # not by element: files without an element column get CA guessed as calcium
    atoms = atoms[struc.filter_amino_acids(atoms) & (atoms.atom_name == "CA")]
    chains = {}
    for chain_id in dict.fromkeys(atoms.chain_id.tolist()):
        a = atoms[atoms.chain_id == chain_id]
        # one C-alpha per residue (insertion codes are separate residues)
        key = np.char.add(a.res_id.astype(str), a.ins_code.astype(str))
        _, first = np.unique(key, return_index=True)
        a = a[np.sort(first)]
        letters = []
        for name in a.res_name:
            try:
                letters.append(ProteinSequence.convert_letter_3to1(name))
            except KeyError:
                letters.append("X")
        chains[str(chain_id)] = Chain(str(chain_id), "".join(letters), a.coord.astype(np.float64))
    if not chains:
        raise ValueError(f"{path}: no protein chain with C-alpha atoms")
    return chains


def contact_map(ca: np.ndarray, cutoff: float = 8.0, min_separation: int = 6) -> np.ndarray:
    """Boolean n x n: C-alpha distance < cutoff and sequence separation >= min_separation
    (separation in positions of `ca`, both triangles)."""
    d = np.sqrt(((ca[:, None, :] - ca[None, :, :]) ** 2).sum(-1))
    idx = np.arange(len(ca))
    return (d < cutoff) & (np.abs(idx[:, None] - idx[None, :]) >= min_separation)


@dataclass
class Mapping:
    """Sequence position (0-based) -> chain residue index (0-based), -1 where none."""

    chain: str
    to_chain: np.ndarray
    identity: float
    coverage: float


def align_to_chain(sequence: str, chain: Chain) -> Mapping:
    """Global alignment (BLOSUM62, free end gaps) of the protein sequence with the chain's
    C-alpha sequence. identity: identical pairs / aligned pairs; coverage: aligned sequence
    positions / sequence length. Only identical pairs are mapped: a mismatch is as likely a
    misalignment as a variant."""
    from Bio.Align import PairwiseAligner, substitution_matrices

    aligner = PairwiseAligner(
        mode="global",
        substitution_matrix=substitution_matrices.load("BLOSUM62"),
        open_gap_score=-10,
        extend_gap_score=-0.5,
    )
    aligner.end_insertion_score = aligner.end_deletion_score = 0.0  # free end gaps
    seq = sequence.replace("U", "C").replace("O", "K")
    chain_seq = chain.sequence.replace("X", "A") if chain.sequence else "A"
    aln = aligner.align(seq, chain_seq)[0]
    to_chain = np.full(len(sequence), -1, dtype=np.int64)
    pairs = same = 0
    for (s0, s1), (c0, c1) in zip(*aln.aligned):
        for i, j in zip(range(s0, s1), range(c0, c1)):
            pairs += 1
            if sequence[i] == chain.sequence[j]:
                same += 1
                to_chain[i] = j
    return Mapping(chain.name, to_chain, same / pairs if pairs else 0.0, pairs / max(len(sequence), 1))


def best_chain(sequence: str, chains: dict[str, Chain], chain: str | None = None) -> Mapping:
    """The given chain's mapping, or that of the chain with the most identical aligned pairs
    (no chain given: None, NaN or empty, as a table's missing value reads)."""
    if isinstance(chain, str) and chain:
        if chain not in chains:
            raise ValueError(f"chain {chain!r} not in the structure (chains: {', '.join(chains)})")
        return align_to_chain(sequence, chains[chain])
    maps = [align_to_chain(sequence, c) for c in chains.values()]
    return max(maps, key=lambda m: m.identity * m.coverage)


def sequence_contacts(
    sequence: str, chain: Chain, mapping: Mapping, cutoff: float = 8.0, min_separation: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """(contacts L x L over sequence positions, resolved: L) for one mapped chain. Separation
    is counted along the protein sequence, not the chain; pairs with an unresolved residue are
    not contacts and are to be left out of the pairs considered (resolved[i] & resolved[j])."""
    resolved = mapping.to_chain >= 0
    pos = np.flatnonzero(resolved)
    ca = chain.ca[mapping.to_chain[pos]]
    d = np.sqrt(((ca[:, None, :] - ca[None, :, :]) ** 2).sum(-1))
    n = len(sequence)
    contacts = np.zeros((n, n), dtype=bool)
    sub = (d < cutoff) & (np.abs(pos[:, None] - pos[None, :]) >= min_separation)
    contacts[np.ix_(pos, pos)] = sub
    return contacts, resolved


def structure_files(folder: str | Path, mapping_table: str | Path | None = None) -> pd.DataFrame:
    """accession, path, chain for the structures of a folder.

    Without a mapping table, a file belongs to the accession its name starts with (an AlphaFold
    DB file AF-P12345-F1-model_v4.pdb to P12345; P12345.cif to P12345), chain chosen by
    alignment. A mapping table (TSV: accession, file, optional chain) overrides; its files must
    exist (error naming the line)."""
    folder = Path(folder)
    if mapping_table is not None:
        table = pd.read_csv(mapping_table, sep="\t", dtype=str)
        missing = {"accession", "file"} - set(table.columns)
        if missing:
            raise ValueError(f"{mapping_table}: missing column(s) {sorted(missing)}")
        if "chain" not in table.columns:
            table["chain"] = None
        rows = []
        for line, r in enumerate(table.itertuples(index=False), start=2):
            p = folder / r.file
            if not p.is_file():
                raise FileNotFoundError(
                    f"{mapping_table}, line {line}: structure file {r.file!r} not in {folder}"
                )
            rows.append(
                {"accession": r.accession, "path": str(p), "chain": None if pd.isna(r.chain) else r.chain}
            )
        return pd.DataFrame(rows, columns=["accession", "path", "chain"])
    rows = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not p.name.lower().endswith(STRUCTURE_SUFFIXES):
            continue
        stem = p.name.split(".")[0]
        acc = stem.split("-")[1] if stem.startswith("AF-") and stem.count("-") >= 2 else stem
        rows.append({"accession": acc, "path": str(p), "chain": None})
    return pd.DataFrame(rows, columns=["accession", "path", "chain"])


def binding_site_mask(positions: list, sites: list) -> tuple[np.ndarray, int]:
    """Residue mask of binding sites given by structure residue number (`positions`: the
    number of each residue of the sequence, as in PDB-derived site tables). Returns (mask,
    number of distinct sites whose number is not among the positions: counted, not guessed)."""
    index: dict = {}
    for i, p in enumerate(positions):  # a repeated number (insertion codes): its first residue
        index.setdefault(p, i)
    mask = np.zeros(len(positions), dtype=bool)
    missing = 0
    for s in dict.fromkeys(sites):
        if s in index:
            mask[index[s]] = True
        else:
            missing += 1
    return mask, missing


def mapped_contacts(
    sequence: str,
    path: str,
    chain: str | None,
    cutoff: float = 8.0,
    min_separation: int = 6,
    min_identity: float = 0.9,
    min_coverage: float = 0.5,
) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """(mapping summary, contacts, considered pairs) of a protein and its structure file;
    contacts are None when the alignment is below `min_identity` or `min_coverage` (the
    summary says so: `used` False)."""
    chains = read_chains(path)
    m = best_chain(sequence, chains, chain)
    info = {
        "path": str(path),
        "chain": m.chain,
        "identity": m.identity,
        "coverage": m.coverage,
        "used": m.identity >= min_identity and m.coverage >= min_coverage,
    }
    if not info["used"]:
        return info, None, None
    contacts, resolved = sequence_contacts(sequence, chains[m.chain], m, cutoff, min_separation)
    idx = np.arange(len(sequence))
    considered = (
        resolved[:, None] & resolved[None, :] & (np.abs(idx[:, None] - idx[None, :]) >= min_separation)
    )
    return info, contacts, considered
