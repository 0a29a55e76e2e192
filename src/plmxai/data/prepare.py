"""The data stage's logic: a source read into proteins and annotations, with the length
policy, class filtering, the per-class cap and the train/val/test split. Knows no model."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from plmxai.data import homology
from plmxai.data.lengths import apply_length_policy
from plmxai.data.readers import read_input
from plmxai.data.recognise import InputError
from plmxai.data.splits import stratified_split, subsample_per_class
from plmxai.data.uniprot import ReadOptions, drop_small_classes, read_uniprot_tsv
from plmxai.tables import config_hash, sha256_file

log = logging.getLogger("plmxai")


def _label_key(label: str):
    parts = str(label).split(".")
    return [int(p) if p.isdigit() else p for p in parts]


def _what_to_relax(report, length_counts: dict, d: dict, largest: int, labels) -> str:
    """The config keys that would keep more proteins, for the message when too few are left."""
    keys = []
    if report.classes_dropped:
        keys.append(f"lower data.min_class_size (now {d['min_class_size']}; the largest class had {largest})")
    if length_counts.get("skipped"):
        keys.append(
            f"{length_counts['skipped']} proteins were longer than data.max_length "
            f"({d['max_length']}): set data.overlong: crop to keep a window of each"
            + (" (or raise data.max_length, up to 1022)" if d["max_length"] < 1022 else "")
        )
    if d["label"] in ("go", "keyword") and "positive" not in set(labels):
        keys.append(
            f"no protein has data.positive {d['positive']!r}: check its spelling (a GO id such as "
            "GO:0005524, a keyword such as ATP-binding, or KW-0067)"
        )
    return "; ".join(keys) or "give more proteins"


def prepare(tsv, d: dict, seed: int, threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """A source file or folder -> (proteins, annotations, summary, provenance): labels, the
    length policy, classes too small, the per-class cap, splits. `d` is the config's `data`
    section; the summary's counts describe the tables returned.
    """
    source = d.get("source", "uniprot_tsv")
    if source in ("synthetic", "uniprot_rest"):  # both arrive as a UniProt TSV export
        source = "uniprot_tsv"
    unlabelled = d["label"] == "none"
    key = "data.tsv" if source == "uniprot_tsv" else "data.path"
    if not Path(tsv).exists():
        raise InputError(
            tsv,
            None,
            f"no such file or folder (config key {key}); a relative path is read from the folder "
            f"the run starts in ({Path.cwd()})",
        )
    if Path(tsv).is_dir() and source != "structures":
        raise InputError(tsv, None, f"a folder, where a file is expected (config key {key}): give the file")
    if source == "uniprot_tsv":
        opts = ReadOptions(
            label=d["label"],
            ec_level=d["ec_level"],
            multi_ec=d["multi_ec"],
            lowercase=d["lowercase"],
            min_class_size=1,
            features=tuple(d["features"]),
            evidence=tuple(d["evidence"]),
            positive=d["positive"],
        )
        proteins, annotations, report = read_uniprot_tsv(tsv, opts)
        chains = None
    else:
        # each reader takes only the options its format has
        options = {
            "fasta": {"lowercase": d["lowercase"]},
            "sites_jsonl": {"outside": d["sites_outside"], "lowercase": d["lowercase"]},
            "structures": {},
            "residue_fasta": {"label": d["label"], "lowercase": d["lowercase"]},
        }[source]
        proteins, annotations, report, chains = read_input(source, tsv, **options)
        annotations = annotations[annotations["feature"].isin(d["features"])].reset_index(drop=True)
    if chains is not None:  # a structure folder: each chain's own coordinates give its contacts
        where = chains.set_index("accession")
        proteins["structure_path"] = proteins["accession"].map(where["path"])
        proteins["structure_chain"] = proteins["accession"].map(where["chain"])
    proteins, annotations, length_counts = apply_length_policy(
        proteins, annotations, d["max_length"], d["overlong"], source=tsv
    )
    largest = int(proteins["label"].value_counts().max()) if len(proteins) else 0
    if not unlabelled:
        proteins, annotations = drop_small_classes(proteins, annotations, d["min_class_size"], report)
    n_before_subsample = len(proteins)
    if d["max_per_class"]:
        proteins = subsample_per_class(proteins, d["max_per_class"], seed)
        annotations = annotations[annotations["accession"].isin(proteins["accession"])]
    if proteins.empty:
        raise InputError(
            tsv,
            None,
            f"no protein left (dropped: {dict(report.dropped)}, classes dropped by "
            f"min_class_size: {report.classes_dropped}, length policy: {length_counts}): "
            + _what_to_relax(report, length_counts, d, largest, proteins["label"]),
        )
    # the summary's counts describe the tables written: rows read = kept + every drop
    if length_counts.get("skipped"):
        report.dropped[f"longer than data.max_length ({d['max_length']})"] += int(length_counts["skipped"])
    report.dropped["over data.max_per_class (seeded subsample)"] += n_before_subsample - len(proteins)
    report.dropped = +report.dropped  # no zero counts
    report.kept = len(proteins)
    report.features = Counter(annotations["feature"])
    if not unlabelled and proteins["label"].nunique() < 2:
        raise InputError(
            tsv,
            None,
            f"only class(es) {sorted(proteins['label'].unique())} left after filtering; "
            f"a classifier needs at least 2 (dropped: {dict(report.dropped)}, classes dropped "
            f"by min_class_size: {report.classes_dropped}, length policy: {length_counts}): "
            + _what_to_relax(report, length_counts, d, largest, proteins["label"]),
        )
    labels = sorted(proteins["label"].unique(), key=_label_key)
    proteins["label_id"] = proteins["label"].map({lab: i for i, lab in enumerate(labels)})
    sp = d["split"]
    fractions = {"train": sp["train"], "val": sp["val"], "test": sp["test"]}
    split_info: dict = {"method": sp["method"]}
    if sp["method"] == "homology":
        clusters = homology.cluster(proteins, sp["min_seq_id"], sp["coverage"], threads)
        proteins["cluster"] = clusters.to_numpy()
        proteins["split"] = homology.cluster_split(
            proteins["label"], proteins["cluster"], fractions, seed
        ).to_numpy()
        empty = [s for s in ("train", "test") if not (proteins["split"] == s).any()]
        if empty:
            raise InputError(
                tsv,
                None,
                f"the homology split left the {' and '.join(empty)} split empty: "
                f"{len(proteins)} proteins fall in {proteins['cluster'].nunique()} cluster(s) at "
                f"data.split.min_seq_id {sp['min_seq_id']} (coverage {sp['coverage']}). For "
                "sequences this similar set data.split.method: random, or raise data.split.min_seq_id",
            )
        split_info.update(
            {
                "clusters": int(proteins["cluster"].nunique()),
                "min_seq_id": sp["min_seq_id"],
                "coverage": sp["coverage"],
                **homology.max_identity_to_train(proteins, threads),
            }
        )
    else:
        # identical sequences under several accessions go to one split together, or the test
        # split would hold proteins the model was trained on: one copy is split, the rest follow
        first = ~proteins["sequence"].duplicated()
        if first.all():
            proteins["split"] = stratified_split(proteins["label"], fractions, seed).to_numpy()
        else:
            rep = proteins.loc[first]
            where = dict(zip(rep["sequence"], stratified_split(rep["label"], fractions, seed)))
            proteins["split"] = proteins["sequence"].map(where).to_numpy()
        proteins["cluster"] = proteins["accession"]  # every protein its own cluster
    shared = proteins["sequence"].duplicated(keep=False)
    split_info["identical_sequences"] = {
        "sequences": int(proteins.loc[shared, "sequence"].nunique()),
        "proteins": int(shared.sum()),
        "splits_shared": int((proteins[shared].groupby("sequence")["split"].nunique() > 1).sum()),
    }
    if shared.any():
        log.warning(
            "%d proteins share %d identical sequences under different accessions; each sequence's "
            "copies are in one split",
            int(shared.sum()),
            split_info["identical_sequences"]["sequences"],
        )
    # a class missing from a split is kept (its proteins still train or test the model), and
    # said with the reason that fits the split method
    missing: dict = {}
    for split in ("train", "val", "test"):
        if not fractions[split]:
            continue
        empty = [c for c in labels if not ((proteins["split"] == split) & (proteins["label"] == c)).any()]
        if empty:
            missing[split] = [str(c) for c in empty]
            sizes = proteins["label"].value_counts()
            why = (
                "its proteins fall in too few clusters for every split"
                if sp["method"] == "homology"
                else f"a class of n proteins reaches every split only with n >= {sum(f > 0 for f in fractions.values())}"
            )
            log.warning(
                "class(es) %s (%s proteins) have no %s proteins: %s; raise data.min_class_size to drop such classes",
                empty,
                ", ".join(str(int(sizes[c])) for c in empty),
                split,
                why,
            )
    split_info["classes_missing"] = missing
    prov = {"stage": "data", "config_hash": config_hash([d, seed]), "source": str(tsv)}
    summary = report.as_dict()
    summary.update(
        {
            "sha256": sha256_file(tsv),
            "labels": labels,
            "length_policy": {"max_length": d["max_length"], "policy": d["overlong"], **length_counts},
            "split": split_info,
            "class_counts": {str(k): int(v) for k, v in proteins["label"].value_counts().items()},
            "split_counts": proteins.groupby(["split", "label"])
            .size()
            .unstack(fill_value=0)
            .to_dict(orient="index"),
            "annotation_counts": {str(k): int(v) for k, v in annotations["type"].value_counts().items()},
            "length": {
                "min": int(proteins["length"].min()),
                "median": float(proteins["length"].median()),
                "max": int(proteins["length"].max()),
            },
        }
    )
    log.info(
        "read %s: kept %d of %d rows (dropped %s); %d annotations; length policy %s; split %s",
        tsv,
        len(proteins),
        report.rows,
        dict(report.dropped),
        len(annotations),
        length_counts,
        split_info,
    )
    return proteins.reset_index(drop=True), annotations.reset_index(drop=True), summary, prov
