import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import given_model
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    given_model(
        {"model": sm.params.model, "training": {"bootstrap": sm.params.bootstrap}, "seed": sm.params.seed},
        sm.input.tokens, sm.input.initial, sm.output.finetuned, sm.output.predictions,
        sm.output.metrics, sm.output.confusion, threads=sm.threads,
    )  # fmt: skip
