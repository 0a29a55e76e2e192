import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import probe_analysis
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
cfg = {"attention": sm.params.attention, "seed": sm.params.seed, "model": {"device": sm.params.device}}
with job_log(sm.log[0], sm.output):
    probe_analysis(cfg, sm.input.model, sm.input.tokens, sm.input.proteins, sm.input.annotations,
                   sm.output.probes, sm.threads)  # fmt: skip
