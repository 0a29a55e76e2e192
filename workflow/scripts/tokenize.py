import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import tokenize
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    tokenize({"tokenizer": sm.params.tokenizer, "revision": sm.params.revision}, sm.input.proteins,
             sm.output.tokens, sm.output.summary)  # fmt: skip
