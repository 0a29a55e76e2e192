"""Length policies for sequences longer than the model takes (ESM-2: 1022 residues).

`skip` drops them; `crop` keeps a window of `max_length` residues chosen to hold as many
annotated residues as possible (ties: the window centred closest on the annotated span), and
moves the annotations into window coordinates; `error` stops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plmxai.data.recognise import InputError


class SequenceTooLongError(InputError):
    """A sequence longer than data.max_length under data.overlong: error."""


def best_window(length: int, width: int, positions: np.ndarray) -> int:
    """0-based start of the window of `width` residues holding most of `positions` (1-based);
    among equal windows, the one centred on the annotated residues it holds."""
    if length <= width:
        return 0
    counts = np.zeros(length + 1, dtype=np.int64)
    for p in positions:
        counts[p] += 1
    cum = np.cumsum(counts)
    starts = np.arange(0, length - width + 1)
    held = cum[starts + width] - cum[starts]
    best = np.flatnonzero(held == held.max())
    if len(positions) == 0:
        return int(best[0])
    # centre the window on the annotated residues it holds, not on every annotated residue
    held_pos = positions[(positions > best[0]) & (positions <= best[0] + width)]
    centre = (held_pos.min() + held_pos.max()) / 2
    return int(best[np.argmin(np.abs(best + (width + 1) / 2 - centre))])


def _annotated_positions(ann: pd.DataFrame) -> np.ndarray:
    pos = []
    for rec in ann.itertuples(index=False):
        pos.extend([rec.start, rec.end] if rec.pair else range(rec.start, rec.end + 1))
    return np.asarray(pos, dtype=np.int64)


def apply_length_policy(
    proteins: pd.DataFrame, annotations: pd.DataFrame, max_length: int, policy: str, source=""
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Return (proteins, annotations, counts). Adds `window_start` (1-based position in the
    full sequence of the kept residue 1) and `full_length` to proteins."""
    proteins = proteins.copy()
    proteins["window_start"] = np.int32(1)
    proteins["full_length"] = proteins["length"].astype(np.int32)
    long = proteins["length"] > max_length
    counts = {"overlong": int(long.sum()), "skipped": 0, "cropped": 0, "annotations_outside_window": 0}
    if not long.any():
        return proteins, annotations, counts
    if policy == "error":
        first = proteins[long].iloc[0]
        raise SequenceTooLongError(
            source,
            int(first["line"]) if "line" in proteins else None,
            f"{first['accession']} has {first['length']} residues > "
            f"data.max_length={max_length} ({int(long.sum())} such sequences); "
            "set data.overlong to skip or crop",
        )
    if policy == "skip":
        dropped = set(proteins.loc[long, "accession"])
        counts["skipped"] = len(dropped)
        return (
            proteins[~long].reset_index(drop=True),
            annotations[~annotations["accession"].isin(dropped)].reset_index(drop=True),
            counts,
        )
    if policy != "crop":
        raise ValueError(f"length policy must be skip, crop or error, got {policy!r}")
    by_acc = {a: g for a, g in annotations.groupby("accession", sort=False)}
    keep_ann = [annotations[~annotations["accession"].isin(proteins.loc[long, "accession"])]]
    for i in np.flatnonzero(long.to_numpy()):
        rec = proteins.iloc[i]
        ann = by_acc.get(rec["accession"], annotations.iloc[0:0])
        s = best_window(int(rec["length"]), max_length, _annotated_positions(ann))
        lo, hi = s + 1, s + max_length  # 1-based inclusive window in full coordinates
        proteins.iat[i, proteins.columns.get_loc("sequence")] = rec["sequence"][s : s + max_length]
        proteins.iat[i, proteins.columns.get_loc("length")] = max_length
        proteins.iat[i, proteins.columns.get_loc("window_start")] = lo
        if len(ann):
            inside = np.where(
                ann["pair"],
                (ann["start"] >= lo) & (ann["end"] <= hi),
                (ann["end"] >= lo) & (ann["start"] <= hi),
            )
            counts["annotations_outside_window"] += int((~inside).sum())
            moved = ann[inside].copy()
            moved["start"] = np.maximum(moved["start"], lo) - s
            moved["end"] = np.minimum(moved["end"], hi) - s
            keep_ann.append(moved)
        counts["cropped"] += 1
    out_ann = pd.concat(keep_ann, ignore_index=True).astype({"start": "int32", "end": "int32"})
    order = {a: k for k, a in enumerate(proteins["accession"])}
    out_ann = out_ann.sort_values(
        ["accession", "start"], key=lambda c: c.map(order) if c.name == "accession" else c, kind="stable"
    )
    return proteins, out_ann.reset_index(drop=True), counts
