import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import init_model
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    init_model(
        {"model": sm.params.model, "seed": sm.params.seed, "data": {"synthetic": sm.params.synthetic}},
        sm.input.tokens, sm.output.initial, threads=sm.threads,
    )  # fmt: skip
