import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import attention_analysis
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
cfg = {"attention": sm.params.attention, "statistics": {"fdr": sm.params.fdr}, "seed": sm.params.seed,
       "model": {"device": sm.params.device}}  # fmt: skip
with job_log(sm.log[0], sm.output):
    attention_analysis(cfg, sm.input.model, sm.input.tokens, sm.input.proteins, sm.input.annotations,
                       sm.output.properties, sm.output.profiles, sm.output.blosum, sm.output.structures,
                       sm.threads)  # fmt: skip
