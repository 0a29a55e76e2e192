import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import prepare_data
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    prepare_data(
        {"data": sm.params.data, "seed": sm.params.seed},
        sm.input.tsv, sm.output.proteins, sm.output.annotations, sm.output.summary,
        threads=sm.threads,
    )  # fmt: skip
