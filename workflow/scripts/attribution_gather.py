import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import gather_attribution
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    gather_attribution({"attribution": sm.params.attribution}, list(sm.input.relevance),
                       list(sm.input.completeness), sm.output.relevance, sm.output.completeness)  # fmt: skip
