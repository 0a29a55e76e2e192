import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import faithfulness
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    faithfulness(
        {"faithfulness": sm.params.faithfulness, "model": {"device": sm.params.device}, "seed": sm.params.seed},
        sm.input.model, sm.input.tokens, sm.input.relevance, sm.input.completeness,
        sm.output.runs, sm.output.summary, threads=sm.threads,
    )  # fmt: skip
