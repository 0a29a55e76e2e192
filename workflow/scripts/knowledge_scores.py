import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import knowledge_scores
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    knowledge_scores(
        {"knowledge": sm.params.knowledge, "model": {"device": sm.params.device}, "seed": sm.params.seed},
        sm.input.model, sm.input.tokens, sm.output.scores, sm.output.completeness, threads=sm.threads,
    )  # fmt: skip
