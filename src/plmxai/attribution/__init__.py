"""Stage `attribution`: residue relevance by integrated gradients at the embedding output and
at every head (one integration for all layers), its completeness, its statistics against
annotations, and alanine-scan faithfulness.

    res = px.attribution.attribute(model, tokens, n_steps=100, head_steps=100)
    statistics, correlations = px.attribution.test_annotations(
        res.relevance, annotations, proteins, fdr=0.05)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple


class Attribution(NamedTuple):
    """Relevance rows (accession, layer, head, position, residue, relevance) and one
    completeness row per protein and method: F(input) - F(baseline) against the sum of the
    attributions, the check that the integral converged."""

    relevance: object
    completeness: object


def attribution_batches(
    model, tokens, a: dict, seed: int = 0, memory_gb: float | None = None
) -> Iterator[tuple[list, list]]:
    """(relevance parts, completeness parts) per batch of proteins, embedding IG and (option
    `heads`) head conductance of the same proteins together; `a` is the attribution section.
    Each integration is chunked to fit `memory_gb` (on a GPU, its free memory).

    With heads and `n_steps` equal to `head_steps` (the default), both come from one set of
    passes along the embedding path: the head conductance at every layer, and the embedding IG
    from the gradients of the same steps (Gauss-Legendre at their n_steps + 1 points), which
    halves the cost. Otherwise the embedding IG has its own passes (Captum, n_steps)."""
    import pandas as pd

    from plmxai.attribution.embedding import COMPLETENESS_COLUMNS, embedding_ig
    from plmxai.attribution.heads import head_attribution

    if a["heads"] and a["n_steps"] == a["head_steps"]:
        for rows, comp in head_attribution(
            model,
            tokens,
            a["target"],
            a["head_steps"],
            a["method"],
            a["baseline"],
            a["n_baselines"],
            seed,
            memory_gb=memory_gb,
            embedding=True,
        ):
            emb = pd.DataFrame([comp.pop("embedding")], columns=COMPLETENESS_COLUMNS)
            yield (
                [rows],
                [emb.assign(method="embedding_ig"), pd.DataFrame([comp]).assign(method="head_conductance")],
            )
        return
    heads = None
    if a["heads"]:
        heads = head_attribution(
            model,
            tokens,
            a["target"],
            a["head_steps"],
            a["method"],
            a["baseline"],
            a["n_baselines"],
            seed,
            memory_gb=memory_gb,
        )
    for rel, comp in embedding_ig(
        model,
        tokens,
        a["target"],
        a["n_steps"],
        a["method"],
        a["batch_size"],
        a["baseline"],
        a["n_baselines"],
        seed,
        memory_gb,
    ):
        parts, comps = [rel], [comp.assign(method="embedding_ig")]
        for acc in rel["accession"].unique() if heads is not None else []:
            hrel, hcomp = next(heads)
            if hcomp["accession"] != acc:  # both walk the table in order, one protein each
                raise RuntimeError(f"head attribution out of step: {hcomp['accession']} != {acc}")
            parts.append(hrel)
            comps.append(pd.DataFrame([hcomp]).assign(method="head_conductance"))
        yield parts, comps


def attribute(model, tokens, *, seed: int = 0, memory_gb: float | None = None, **options) -> Attribution:
    """Relevance of every residue of every protein in `tokens`, at the embedding and (heads:
    true) every head of every layer. Options are the config's `attribution` keys (target,
    n_steps, head_steps, method, baseline, n_baselines, batch_size, heads,
    completeness_tolerance); the proteins are all of `tokens`. The integrations are chunked to
    fit `memory_gb` (the config's top-level key, 4 by default; on a GPU, its free memory)."""
    import numpy as np
    import pandas as pd

    from plmxai.config import options as section

    a = section("attribution", options)
    # by length, as the embedding integration batches them: the head integration walks the
    # same order, one protein at a time
    tokens = tokens.iloc[np.argsort(tokens["n_residues"].to_numpy(), kind="stable")].reset_index(drop=True)
    rels, comps = [], []
    for parts, comp in attribution_batches(model, tokens, a, seed, memory_gb):
        rels += parts
        comps += comp
    comp = pd.concat(comps, ignore_index=True)
    comp["complete"] = comp["relative_error"] <= a["completeness_tolerance"]
    return Attribution(pd.concat(rels, ignore_index=True), comp)


def test_annotations(table, annotations, proteins, *, seed: int = 0, adjust: bool = True, **options):
    """Per layer, head and annotation type (and class), relevance (`table`, as
    Attribution.relevance) against annotations: each
    protein's point-biserial r, tested by Wilcoxon and two permutation nulls (circular shift,
    composition-matched), Benjamini-Hochberg over every test (adjust: false leaves that to the
    caller, who tests layer by layer). Options: the config's attribution.statistics keys.
    Returns (statistics, correlations)."""
    import pandas as pd

    from plmxai.config import options as section
    from plmxai.stats import adjust as bh
    from plmxai.stats import group_tests, protein_correlations

    s = section("attribution.statistics", options)
    labels = proteins.set_index("accession")["label"]
    corrs, tests = [], []
    for _, rel in table.groupby("layer", sort=True):
        corr, null, comp_null = protein_correlations(
            rel, annotations, labels, s["relevance"], s["n_shifts"], seed
        )
        shifts = bool(s["n_shifts"])
        tests.append(
            group_tests(
                corr,
                null if shifts else None,
                s["min_proteins"],
                s["per_class"],
                comp_null if shifts else None,
            )
        )
        corrs.append(corr)
    out = pd.concat(tests, ignore_index=True)
    return (bh(out, s["fdr"]) if adjust else out), pd.concat(corrs, ignore_index=True)


test_annotations.__test__ = False  # a library function, not a pytest test
