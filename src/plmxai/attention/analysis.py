"""What the attention heads attend to (Vig et al., "BERTology meets biology", ICLR 2021).

For head (l, h) and a property f of a token pair, the proportion of high-confidence attention
that falls on pairs with the property:

    p(f) = sum_ij f(i, j) 1[a_ij > theta] / sum_ij 1[a_ij > theta]

over all proteins, special-token rows and columns dropped without renormalising. Properties:
attention TO annotated residues (f(i, j) = 1 if residue j has the annotation type), TO each
amino acid, and to C-alpha contacts (distance < 8 Å) among pairs with sequence separation
>= 6 and both residues resolved in a mapped structure. Background: the property's frequency
over all pairs considered.

Significance, beside the original's two-proportion z-test: a permutation null per head that
keeps each attention map and moves the property under it. For residue properties the
property track of every protein is shifted circularly (seeded by accession, one offset per
draw), which keeps its composition and runs; for contacts both the contact map and the set of
pairs considered are shifted along the diagonal, which keeps the separation structure. Draw b
gives p_b(f) over the data set; p = (1 + #{p_b >= p}) / (1 + draws). Benjamini-Hochberg over
every head x property tested. Heads with fewer than `min_pairs` high-confidence pairs are not
tested (counted).

Everything streams over proteins: per protein, the head's high-confidence column counts (and,
for contacts, its high-confidence pair map) are folded into small accumulators.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from plmxai.stats import bh_call, permute_within_groups

log = logging.getLogger(__name__)

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def attention_maps(model, tokens: pd.DataFrame, batch_size: int = 4) -> Iterator[tuple[int, np.ndarray]]:
    """(row of `tokens`, attention over residues: layers x heads x L x L, float32) per protein.

    Eager attention for this pass only (sdpa returns no weights); one batch of maps is held
    at a time."""
    from plmxai.model.batching import batches

    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    device = next(model.parameters()).device
    model.eval()
    try:
        for pos, ids, mask in batches(tokens, batch_size):
            with torch.no_grad():
                out = model.esm(
                    input_ids=ids.to(device), attention_mask=mask.to(device), output_attentions=True
                )
            att = torch.stack(out.attentions, 1).float().cpu()  # B x layers x heads x T x T
            for b, row in enumerate(pos):
                first = int(tokens["first_residue_token"].iloc[row])
                n = int(tokens["n_residues"].iloc[row])
                yield int(row), att[b, :, :, first : first + n, first : first + n].numpy()
    finally:
        model.set_attn_implementation(previous)


def _shifts(accession: str, n: int, draws: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(str(accession).encode()), 11])
    return rng.integers(1, n, size=draws) if n > 1 else np.zeros(draws, dtype=int)


class PropertyCounts:
    """Streaming counts for attention-to-property over a data set."""

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        properties: list[str],
        theta: float = 0.3,
        draws: int = 199,
        seed: int = 0,
        composition_columns: int = 0,
    ):
        self.shape = (n_layers, n_heads)
        # the first `composition_columns` properties (annotations) also get a null that keeps
        # each residue's amino acid: is the attention beyond what the residues' identity explains?
        self.n_comp = composition_columns
        self.props = list(properties)
        self.theta, self.draws, self.seed = theta, draws, seed
        nh, p = n_layers * n_heads, len(self.props)
        self.n_high = np.zeros(nh)  # high-confidence residue pairs per head
        self.hits = np.zeros((nh, p))
        self.null_hits = np.zeros((nh, p, draws))
        self.comp_null_hits = np.zeros((nh, composition_columns, draws))
        self.bg_hits = np.zeros(p)  # pairs with the property, over all pairs
        self.bg_pairs = 0.0
        # contacts: their own pair set (separation >= 6, both residues resolved)
        self.c_high = np.zeros(nh)
        self.c_hits = np.zeros(nh)
        self.c_null_high = np.zeros((nh, draws))
        self.c_null_hits = np.zeros((nh, draws))
        self.c_bg_hits = 0.0
        self.c_bg_pairs = 0.0
        self.proteins = 0
        self.structures = 0

    def add(
        self,
        accession: str,
        att: np.ndarray,
        props: np.ndarray,
        contacts: np.ndarray | None = None,
        considered: np.ndarray | None = None,
        residues: np.ndarray | None = None,
    ) -> None:
        """att: layers x heads x L x L; props: L x P (0/1) residue properties (attention TO
        residue j); contacts/considered: L x L booleans where a structure is mapped; residues:
        L amino-acid codes (needed with composition columns)."""
        n = att.shape[-1]
        high = (att > self.theta).reshape(-1, n, n)  # heads x L x L
        col = high.sum(1).astype(np.float64)  # heads x L: high-confidence attention into residue j
        props = props.astype(np.float64)
        self.n_high += col.sum(1)
        self.hits += col @ props
        self.bg_hits += n * props.sum(0)
        self.bg_pairs += n * n
        shifts = _shifts(accession, n, self.draws, self.seed)
        if self.draws:
            idx = (np.arange(n)[:, None] - shifts[None, :]) % n  # L x draws: the property moved by s
            # as matrix products (BLAS), not einsum's loops: counts of 0/1 properties are
            # integers, so the sums are exact in any order
            moved = props[idx]  # L x draws x P
            self.null_hits += (
                (col @ moved.reshape(n, -1)).reshape(len(col), self.draws, -1).transpose(0, 2, 1)
            )
            if self.n_comp:
                rng = np.random.default_rng([self.seed, zlib.crc32(str(accession).encode()), 13])
                moved = permute_within_groups(props[:, : self.n_comp], residues, self.draws, rng)
                k = moved.shape[-1]
                flat = moved.transpose(1, 0, 2).reshape(n, -1)  # L x (draws * K)
                self.comp_null_hits += (col @ flat).reshape(len(col), self.draws, k).transpose(0, 2, 1)
        self.proteins += 1
        if contacts is None:
            return
        self.structures += 1
        hf = high.reshape(high.shape[0], -1).astype(np.float32)
        cons = considered.astype(np.float32)
        hit = (considered & contacts).astype(np.float32)
        self.c_high += hf @ cons.ravel()
        self.c_hits += hf @ hit.ravel()
        self.c_bg_hits += hit.sum()
        self.c_bg_pairs += cons.sum()
        if self.draws:
            null_high, null_hits = diagonal_shift_counts(high, [cons, hit], shifts)
            self.c_null_high += null_high
            self.c_null_hits += null_hits

    def table(self, min_pairs: int = 100, fdr: float = 0.05, kinds: dict | None = None) -> pd.DataFrame:
        """One row per head x property (contact included where structures were mapped)."""
        n_layers, n_heads = self.shape
        layer, head = np.divmod(np.arange(n_layers * n_heads), n_heads)
        parts = []
        with np.errstate(invalid="ignore", divide="ignore"):
            for k, prop in enumerate(self.props):
                part = _rows(
                    layer,
                    head,
                    prop,
                    (kinds or {}).get(prop, "residue"),
                    self.hits[:, k],
                    self.n_high,
                    self.bg_hits[k],
                    self.bg_pairs,
                    self.null_hits[:, k, :],
                    np.broadcast_to(self.n_high[:, None], (len(self.n_high), self.draws)),
                    min_pairs,
                )
                if k < self.n_comp and self.draws:
                    null = self.comp_null_hits[:, k, :] / self.n_high[:, None]
                    part["p_composition"] = np.where(
                        part["tested"], _perm_p(null, part["proportion"].to_numpy()), np.nan
                    )
                parts.append(part)
            if self.structures:
                parts.append(
                    _rows(
                        layer,
                        head,
                        "contact",
                        "contact",
                        self.c_hits,
                        self.c_high,
                        self.c_bg_hits,
                        self.c_bg_pairs,
                        self.c_null_hits,
                        self.c_null_high,
                        min_pairs,
                    )
                )
        out = pd.concat(parts, ignore_index=True)
        bh_call(out, "p_z", "q_z", "significant_z", fdr)
        bh_call(out, "p_permutation", "q_permutation", "significant", fdr)
        bh_call(out, "p_composition", "q_composition", "significant_composition", fdr)
        out["n_tests"] = int(out["p_permutation"].notna().sum())
        return out


def _rows(
    layer, head, prop, kind, hits, high, bg_hits, bg_pairs, null_hits, null_high, min_pairs
) -> pd.DataFrame:
    p = hits / high
    bg = bg_hits / bg_pairs if bg_pairs else np.nan
    # the original's two-proportion z-test: high-confidence pairs against all pairs
    pooled = (hits + bg_hits) / (high + bg_pairs)
    se = np.sqrt(pooled * (1 - pooled) * (1 / high + 1 / bg_pairs)) if bg_pairs else np.nan
    z = (p - bg) / se
    p_z = sps.norm.sf(z)
    p_null = null_hits / null_high
    tested = high >= min_pairs
    p_perm = _perm_p(p_null, p) if null_hits.shape[1] else np.full(len(p), np.nan)
    return pd.DataFrame(
        {
            "layer": layer,
            "head": head,
            "property": prop,
            "kind": kind,
            "n_high_pairs": high.astype(np.int64),
            "proportion": p,
            "background": bg,
            "ratio": p / bg if bg else np.nan,
            "null_mean": np.where(high > 0, p_null.mean(axis=1), np.nan) if null_hits.shape[1] else np.nan,
            "z": np.where(tested, z, np.nan),
            "p_z": np.where(tested, p_z, np.nan),
            "p_permutation": np.where(tested, p_perm, np.nan),
            "tested": tested,
        }
    )


def diagonal_shift_counts(high: np.ndarray, mats: list[np.ndarray], shifts: np.ndarray) -> list[np.ndarray]:
    """For each matrix of `mats`, heads x shifts: sum_ij high[h, i, j] * mat rolled by (s, s),
    for every shift s, by FFT.

    Rolling both axes by s moves every diagonal d = (j - i) mod L along itself, so the sum is,
    diagonal by diagonal, a circular cross-correlation: one FFT over positions per diagonal
    gives all shifts at once (L log L per diagonal instead of L per diagonal and shift)."""
    n = high.shape[-1]
    i = np.arange(n)
    j = (i[None, :] + i[:, None]) % n  # row d: the diagonal at offset d, position i
    spec_high = np.conj(
        np.fft.rfft(high[:, i[None, :], j].astype(np.float32), axis=-1)
    )  # heads x diag x freq
    lags = (-np.asarray(shifts)) % n
    out = []
    for mat in mats:
        spec = np.einsum("hdf,df->hf", spec_high, np.fft.rfft(mat[i[None, :], j].astype(np.float32), axis=-1))
        corr = np.fft.irfft(spec, n=n, axis=-1)  # corr[h, t] = sum_d sum_i high_d[h, i] mat_d[(i + t) % n]
        out.append(np.rint(corr[:, lags]))  # counts of 0/1 products: whole numbers
    return out


def _perm_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(1 + draws at least as large) / (1 + draws), per row."""
    with np.errstate(invalid="ignore"):
        return (1 + np.sum(null >= observed[:, None] - 1e-12, axis=1)) / (1 + null.shape[1])


def residue_properties(sequence: str, masks: dict[str, np.ndarray], types: list[str]) -> np.ndarray:
    """L x (types + 20 amino acids) 0/1: annotation types in `types` order, then A..Y."""
    n = len(sequence)
    seq = np.frombuffer(sequence.encode(), dtype="S1")
    cols = [masks.get(t, np.zeros(n, dtype=bool)) for t in types]
    cols += [seq == aa.encode() for aa in AMINO_ACIDS]
    return np.stack(cols, axis=1)


def layer_profiles(table: pd.DataFrame) -> pd.DataFrame:
    """Per property and layer, the mean proportion over tested heads (and its ratio to
    background); per property the centre of gravity sum_l l p_l / sum_l p_l (layers from 0)."""
    t = table[table["tested"]]
    prof = (
        t.groupby(["property", "kind", "layer"], sort=True)
        .agg(
            mean_proportion=("proportion", "mean"),
            background=("background", "first"),
            n_heads=("head", "size"),
            n_significant=("significant", "sum"),
        )
        .reset_index()
    )
    prof["mean_ratio"] = prof["mean_proportion"] / prof["background"]
    weighted = (prof["layer"] * prof["mean_proportion"]).groupby(prof["property"]).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        cog = (weighted / prof.groupby("property")["mean_proportion"].sum()).rename("centre_of_gravity")
    return prof.merge(cog, left_on="property", right_index=True, how="left")


def blosum_correlation(
    table: pd.DataFrame, n_permutations: int = 9999, seed: int = 0
) -> tuple[dict, pd.DataFrame]:
    """Pearson r between the heads' amino-acid attention similarity and BLOSUM62.

    sim(a, b) = Pearson correlation, over tested heads, of the proportions of attention to a
    and to b; r over the 190 pairs a < b. p: Mantel test (amino-acid labels of the similarity
    matrix permuted, `n_permutations` draws). Returns (summary, 20 x 20 similarity)."""
    from Bio.Align import substitution_matrices

    t = table[(table["kind"] == "amino_acid") & table["tested"]]
    prof = t.pivot_table(index=["layer", "head"], columns="property", values="proportion").reindex(
        columns=list(AMINO_ACIDS)
    )
    blosum = substitution_matrices.load("BLOSUM62")
    b = np.array([[blosum[x][y] for y in AMINO_ACIDS] for x in AMINO_ACIDS], dtype=np.float64)
    iu = np.triu_indices(20, 1)
    summary = {"n_heads": len(prof), "n_pairs": len(iu[0]), "pearson_r": np.nan, "p_mantel": np.nan}
    if len(prof) < 3:
        return summary, pd.DataFrame(np.nan, index=list(AMINO_ACIDS), columns=list(AMINO_ACIDS))
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.corrcoef(prof.to_numpy().T)
    x, y = sim[iu], b[iu]
    ok = ~np.isnan(x)
    r = float(np.corrcoef(x[ok], y[ok])[0, 1]) if ok.sum() > 2 else np.nan
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(n_permutations):
        perm = rng.permutation(20)
        xp = sim[np.ix_(perm, perm)][iu]
        okp = ~np.isnan(xp)
        count += np.corrcoef(xp[okp], y[okp])[0, 1] >= r
    summary.update(pearson_r=r, p_mantel=(1 + count) / (1 + n_permutations), n_pairs=int(ok.sum()))
    return summary, pd.DataFrame(sim, index=list(AMINO_ACIDS), columns=list(AMINO_ACIDS))
