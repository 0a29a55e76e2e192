"""What the attention analysis and the probes read beside the model: each protein's annotation
masks and, where a structure is available and maps onto its sequence, its contacts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from plmxai.data.splits import seeded_subset, select_split
from plmxai.tables import parquet_columns


def structure_lookup(st: dict, accessions, proteins_path=None) -> pd.DataFrame:
    """accession -> (path, chain) of the structures available: the proteins' own chains (data
    source `structures`), then the local folder, then AlphaFold DB models already fetched.
    `st` is the config's attention.structures."""
    from plmxai.data.alphafold import cached_model
    from plmxai.data.structures import structure_files

    wanted = set(accessions)
    files = (
        structure_files(st["folder"], st["mapping"])
        if st["folder"]
        else pd.DataFrame(columns=["accession", "path", "chain"])
    )
    own = _own_structures(proteins_path)
    if own is not None:
        files = pd.concat([own, files], ignore_index=True)
    files = files[files["accession"].isin(wanted)]
    if st.get("alphafold"):
        folder = Path(st["alphafold_folder"])
        af = [
            {"accession": a, "path": str(p), "chain": None}
            for a in sorted(wanted - set(files["accession"]))
            if (p := cached_model(folder, a)) is not None
        ]
        files = pd.concat([files, pd.DataFrame(af, columns=files.columns)], ignore_index=True)
    return files.drop_duplicates("accession").set_index("accession")


def _own_structures(proteins) -> pd.DataFrame | None:
    """(accession, path, chain) of the proteins' own chains (a proteins table or its file)."""
    cols = ["accession", "structure_path", "structure_chain"]
    if proteins is None:
        return None
    if isinstance(proteins, pd.DataFrame):
        if "structure_path" not in proteins.columns:
            return None
        own = proteins[cols]
    elif "structure_path" in parquet_columns(proteins):
        own = pd.read_parquet(proteins, columns=cols)
    else:
        return None
    own = own.rename(columns={"structure_path": "path", "structure_chain": "chain"})
    return own.dropna(subset=["path"])


def protein_inputs(acc: str, seq: str, ann_by_acc: dict, lookup: pd.DataFrame, st: dict):
    """(annotation masks, structure mapping summary or None, contacts, pairs considered) of one
    protein; contacts are None without a usable structure."""
    from plmxai.data.structures import mapped_contacts
    from plmxai.stats import annotation_masks

    masks = annotation_masks(ann_by_acc[acc], len(seq)) if acc in ann_by_acc else {}
    if acc not in lookup.index:
        return masks, None, None, None
    rec = lookup.loc[acc]
    info, contacts, considered = mapped_contacts(
        seq,
        rec["path"],
        rec["chain"],
        st["contact_cutoff"],
        st["min_separation"],
        st["min_identity"],
        st["min_coverage"],
    )
    return masks, info, contacts, considered


def structure_accessions(attention: dict, tokens: pd.DataFrame, seed: int) -> list[str]:
    """The proteins whose structures the attention analysis and the probes use."""
    a = attention
    parts = [seeded_subset(select_split(tokens, a["split"]), a["max_proteins"], seed)]
    if a["probes"]["enabled"]:
        parts += [
            seeded_subset(select_split(tokens, "train"), a["probes"]["train_proteins"], seed),
            seeded_subset(select_split(tokens, "test"), a["probes"]["test_proteins"], seed),
        ]
    return sorted(set(pd.concat(parts)["accession"]))
