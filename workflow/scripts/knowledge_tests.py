import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import knowledge_tests
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    knowledge_tests(
        {"knowledge": sm.params.knowledge, "model": {"device": sm.params.device}, "seed": sm.params.seed},
        sm.input.initial, sm.input.model, sm.input.tokens, sm.input.activation, sm.input.ig,
        sm.output.runs, sm.output.preservation, sm.output.density, sm.output.agreement,
        threads=sm.threads,
    )  # fmt: skip
