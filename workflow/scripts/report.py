import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import write_report
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
shared = ("data_summary", "annotations", "raw", "initial")
inputs = {k: sm.input[k] for k in shared}
inputs["contrast"] = sm.input.contrast[0] if len(sm.input.contrast) else None
inputs["variants"] = {
    v: {k: sm.input[k][i] for k in sm.input.keys() if k not in shared + ("contrast",) and len(sm.input[k])}
    for i, v in enumerate(sm.params.config["variants"])
}
with job_log(sm.log[0], sm.output):
    write_report(sm.params.config, inputs, sm.output.html, sm.output.figures)
