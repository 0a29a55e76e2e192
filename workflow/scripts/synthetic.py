from plmxai.pipeline import synthetic_source
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    synthetic_source(
        {"data": {"synthetic": sm.params.synthetic}, "seed": sm.params.seed},
        sm.output.tsv, sm.output.provenance,
    )  # fmt: skip
