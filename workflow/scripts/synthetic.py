import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import synthetic_source
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    synthetic_source(
        {"data": {"synthetic": sm.params.synthetic}, "seed": sm.params.seed},
        sm.output.tsv, sm.output.provenance,
    )  # fmt: skip
