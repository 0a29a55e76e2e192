"""Stage `knowledge`: knowledge neurons. Activation scores, integrated-gradients scores of every
neuron (knowledge attribution, Dai et al.; conductance), selection, density, and the
preservation and ablation tests against random selections.

    scores, completeness = px.knowledge.score(model, tokens, estimators=["conductance"])
    activation = px.knowledge.activation(model, tokens, reduce="max")
"""

from __future__ import annotations


def score(model, tokens, *, memory_gb: float | None = None, **options):
    """Per-class IG scores of every neuron of every site, and each protein's completeness
    check: (scores, completeness). Options are the config's `knowledge` keys that scoring
    uses (estimators, ka_steps, conductance_steps, method, target, output); the integrations
    are chunked to fit `memory_gb` (the config's top-level key; on a GPU its free memory)."""
    from plmxai.config import options as section
    from plmxai.knowledge.scores import ig_scores

    k = section("knowledge", options)
    return ig_scores(
        model,
        tokens,
        k["estimators"],
        k["ka_steps"],
        k["conductance_steps"],
        k["method"],
        k["target"],
        k["output"],
        memory_gb,
    )


def activation(model, tokens, **options):
    """Per-class activation score of every neuron of every site (knowledge.activation keys:
    reduce, absolute, batch_size; `split` is the caller's choice of tokens)."""
    from plmxai.config import options as section
    from plmxai.knowledge.activation import activation_scores

    a = section("knowledge.activation", options)
    return activation_scores(model, tokens, a["reduce"], a["absolute"], a["batch_size"])
