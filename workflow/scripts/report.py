from plmxai.pipeline import write_report
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    write_report(sm.params.config, dict(sm.input.items()), sm.output.html)
