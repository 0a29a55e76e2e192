"""plmxai: what a fine-tuned protein language model learned, and where.

One subpackage per stage of the workflow (data, model, knowledge, attribution, attention,
report), figures in plot, a finished run in Run; each is imported when first used, so
`import plmxai as px` stays light:

    import plmxai as px
    model = px.model.load("facebook/esm2_t6_8M_UR50D", labels=["membrane", "globular"])
    tokens = px.model.tokenize(proteins)
    res = px.attribution.attribute(model, tokens, n_steps=100)
    statistics, _ = px.attribution.test_annotations(res.relevance, annotations, proteins)
    run = px.Run("results/demo"); run.table("statistics", variant="finetuned")
"""

from plmxai._version import __version__  # noqa: F401 (the one place it is written)

_SUBPACKAGES = ("data", "model", "knowledge", "attribution", "attention", "report", "plot", "stages")


def __getattr__(name: str):
    import importlib

    if name in _SUBPACKAGES:
        return importlib.import_module(f"plmxai.{name}")
    if name == "Run":
        from plmxai.run import Run

        return Run
    raise AttributeError(f"module 'plmxai' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBPACKAGES, "Run"])
