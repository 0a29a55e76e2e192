import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import attribution_contrast
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    attribution_contrast({"statistics": sm.params.statistics}, sm.params.reference, dict(sm.input.items()),
                         sm.output.contrast)  # fmt: skip
