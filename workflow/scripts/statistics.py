import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import statistics
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    statistics(
        {"statistics": sm.params.statistics, "seed": sm.params.seed},
        sm.input.relevance, sm.input.annotations, sm.input.proteins,
        sm.output.statistics, sm.output.correlations,
    )  # fmt: skip
