"""Stage `attention`: what the heads attend to. Attention to annotation types, amino acids and
contacts per head against a background, with permutation tests (Vig et al.), layer profiles,
the BLOSUM62 correlation, and probes of the hidden states.

    res = px.attention.properties(model, tokens, annotations, proteins, theta=0.3)
    res.table[res.table["significant"]]
    probes = px.attention.probe(model, train_tokens, test_tokens, annotations, proteins)
    change = px.attention.change(before, after, tokens, annotations, proteins,
                                 contact_set="../shared/data/structures/pdb")
"""

from __future__ import annotations

from typing import NamedTuple


class AttentionProperties(NamedTuple):
    """table: one row per layer, head and property (annotation type, amino acid, contact);
    profiles: per layer; blosum: the BLOSUM62 correlation; structures: each protein's mapped
    structure; proteins, with_structure: how many were counted."""

    table: object
    profiles: object
    blosum: dict
    structures: object
    proteins: int
    with_structure: int


def properties(model, tokens, annotations, proteins, *, seed: int = 0, progress=None, **options):
    """Attention of every head to each property over the proteins of `tokens` (all of them),
    streamed protein by protein. Options are the config's `attention` keys (theta, fdr,
    min_pairs, n_shifts, batch_size, blosum_permutations, structures); contacts come from the
    proteins' own structures or attention.structures. `progress` wraps the protein iterator
    (e.g. tqdm)."""
    import numpy as np
    import pandas as pd

    from plmxai.attention.analysis import (
        AMINO_ACIDS,
        PropertyCounts,
        attention_maps,
        blosum_correlation,
        layer_profiles,
        residue_properties,
    )
    from plmxai.attention.inputs import protein_inputs, structure_lookup
    from plmxai.config import options as section

    a = section("attention", options)
    st = a["structures"]
    seqs = proteins.set_index("accession")["sequence"]
    ann_by_acc = {acc: g for acc, g in annotations.groupby("accession", sort=False)}
    types = sorted(annotations["type"].unique())
    lookup = structure_lookup(st, tokens["accession"], proteins)
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    counts = PropertyCounts(
        n_layers,
        n_heads,
        types + list(AMINO_ACIDS),
        a["theta"],
        a["n_shifts"],
        seed,
        composition_columns=len(types),
    )
    struct_rows = []
    maps = attention_maps(model, tokens, a["batch_size"])
    for row, att in progress(maps) if progress else maps:
        acc = tokens["accession"].iloc[row]
        seq = seqs[acc]
        masks, info, contacts, considered = protein_inputs(acc, seq, ann_by_acc, lookup, st)
        if info is not None:
            struct_rows.append({"accession": acc, **info})
        counts.add(
            acc,
            att,
            residue_properties(seq, masks, types),
            contacts,
            considered,
            np.frombuffer(seq.encode(), dtype=np.uint8),
        )
    kinds = {t: "annotation" for t in types} | {aa: "amino_acid" for aa in AMINO_ACIDS}
    table = counts.table(a["min_pairs"], a["fdr"], kinds)
    blosum, _ = blosum_correlation(table, a["blosum_permutations"], seed)
    columns = ["accession", "path", "chain", "identity", "coverage", "used"]
    return AttentionProperties(
        table,
        layer_profiles(table),
        blosum,
        pd.DataFrame(struct_rows, columns=columns),
        counts.proteins,
        counts.structures,
    )


def change(before, after, tokens, annotations, proteins, *, contact_set=None, seed: int = 0, **options):
    """What fine-tuning did to each head: attention to every annotation type on the proteins
    of `tokens` and (contact_set: a folder of structures, each protein chain its own protein)
    to C-alpha contacts, `after` against `before` on the same proteins, with a paired
    permutation test per head and property (attention.change). Options are the config's
    `attention` keys (theta, min_pairs, batch_size, structures, change: draws, max_contact_proteins,
    fdr). One row per head x property."""
    import numpy as np

    from plmxai.attention.analysis import residue_properties
    from plmxai.attention.inputs import protein_inputs, structure_lookup
    from plmxai.attention.paired import change_table, protein_counts
    from plmxai.config import options as section

    a = section("attention", options)
    c, st = a["change"], a["structures"]
    seqs = proteins.set_index("accession")["sequence"]
    ann_by_acc = {acc: g for acc, g in annotations.groupby("accession", sort=False)}
    types = sorted(annotations["type"].unique())
    lookup = structure_lookup(st, tokens["accession"], proteins)

    def task_inputs(acc):
        masks, _, contacts, considered = protein_inputs(acc, seqs[acc], ann_by_acc, lookup, st)
        if contact_set is not None:  # contacts from the contact set only: one contact row per head
            contacts = considered = None
        return residue_properties(seqs[acc], masks, types), contacts, considered

    runs = [(tokens, task_inputs)]
    if contact_set is not None:
        set_tokens, set_inputs = _contact_set(contact_set, c["max_contact_proteins"], st, seed)
        runs.append((set_tokens, set_inputs))
    counts = {}
    for name, model in (("before", before), ("after", after)):
        parts = [protein_counts(model, t, f, a["theta"], a["batch_size"]) for t, f in runs]
        counts[name] = {
            "high": parts[0]["high"],
            "hits": parts[0]["hits"],
            "c_high": np.concatenate([p["c_high"] for p in parts]),
            "c_hits": np.concatenate([p["c_hits"] for p in parts]),
            "c_pairs": np.concatenate([p["c_pairs"] for p in parts]),
        }
    return change_table(
        counts["before"],
        counts["after"],
        types,
        after.config.num_attention_heads,
        c["draws"],
        seed,
        a["min_pairs"],
        c["fdr"],
    )


def _contact_set(folder, max_proteins: int, st: dict, seed: int):
    """(tokens, inputs) of a folder of structures: each protein chain its own protein, its
    contacts from its own coordinates."""
    from plmxai.attention.inputs import protein_inputs, structure_lookup
    from plmxai.data import read
    from plmxai.data.splits import seeded_subset
    from plmxai.model import tokenize

    prot, _, _ = read(
        folder,
        source="structures",
        label="none",
        split={"method": "random", "train": 1.0, "val": 0.0, "test": 0.0},
    )
    prot = seeded_subset(prot, max_proteins, seed)
    tokens = tokenize(prot)
    seqs = prot.set_index("accession")["sequence"]
    lookup = structure_lookup({**st, "folder": None, "alphafold": False}, tokens["accession"], prot)

    def inputs(acc):
        _, _, contacts, considered = protein_inputs(acc, seqs[acc], {}, lookup, st)
        return None, contacts, considered

    return tokens, inputs


def probe(model, train, test, annotations, proteins, *, seed: int = 0, **options):
    """Per layer (0 = embeddings), a logistic probe for each annotation type (and contacts,
    where structures are mapped) fitted on the hidden states of the `train` proteins and
    scored on the `test` proteins, streamed protein by protein: one row per probe and layer
    (AUPRC and its baseline, precision at L/20 or L/5). Options are the config's `attention`
    keys (probes, structures, batch_size)."""
    import pandas as pd

    from plmxai.attention.inputs import protein_inputs, structure_lookup
    from plmxai.attention.probes import ProbeData, ProbeScores, hidden_states
    from plmxai.config import options as section

    a = section("attention", options)
    st, p = a["structures"], a["probes"]
    seqs = proteins.set_index("accession")["sequence"]
    ann_by_acc = {acc: g for acc, g in annotations.groupby("accession", sort=False)}
    types = sorted(annotations["type"].unique())
    lookup = structure_lookup(st, pd.concat([train["accession"], test["accession"]]), proteins)

    def inputs(tokens, row):
        acc = tokens["accession"].iloc[row]
        masks, _, contacts, considered = protein_inputs(acc, seqs[acc], ann_by_acc, lookup, st)
        return masks, contacts, considered

    data = ProbeData(model.config.num_hidden_layers + 1, seed, p["negatives_per_positive"], p["max_pairs"])
    for row, states in hidden_states(model, train, a["batch_size"]):
        masks, contacts, considered = inputs(train, row)
        data.add_residues(states, masks, types)
        if contacts is not None:
            data.add_contacts(states, contacts, considered)
    scores = ProbeScores(data.fit(p["C"], seed))
    for row, states in hidden_states(model, test, a["batch_size"]):
        masks, contacts, considered = inputs(test, row)
        scores.add_residues(states, masks)
        if contacts is not None:
            scores.add_contacts(states, contacts, considered)
    return scores.table(data)
