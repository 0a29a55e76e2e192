import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import score_neurons
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0], sm.output):
    score_neurons(
        {"neurons": sm.params.neurons, "model": {"device": sm.params.device}},
        sm.input.model, sm.input.tokens, sm.output.scores, threads=sm.threads,
    )  # fmt: skip
