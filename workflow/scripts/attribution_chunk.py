import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import attribute_chunk
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    attribute_chunk(
        {"attribution": sm.params.attribution, "model": {"device": sm.params.device}, "seed": sm.params.seed},
        sm.input.model, sm.input.tokens, sm.input.predictions, int(sm.wildcards.chunk),
        sm.output.relevance, sm.output.completeness, threads=sm.threads,
    )  # fmt: skip
