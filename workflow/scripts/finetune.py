from pathlib import Path

import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import train_model
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
# beside the outputs, not one of them: Snakemake would delete it when the job fails, and it is
# what a restarted job resumes from
checkpoint_dir = Path(sm.output.finetuned).parent / "checkpoint"
with job_log(sm.log[0], sm.output):
    train_model(
        {"model": sm.params.model, "training": sm.params.training, "seed": sm.params.seed},
        sm.wildcards.variant, sm.input.tokens, sm.input.initial, sm.output.finetuned,
        sm.output.training, sm.output.predictions, sm.output.metrics, sm.output.confusion,
        checkpoint_dir=checkpoint_dir, threads=sm.threads,
    )  # fmt: skip
