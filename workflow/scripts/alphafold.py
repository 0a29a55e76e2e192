import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import fetch_alphafold
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    fetch_alphafold({"attention": sm.params.attention, "seed": sm.params.seed}, sm.input.tokens, sm.output.table)
