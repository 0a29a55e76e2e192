import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.pipeline import write_report
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
shared = ("data_summary", "annotations", "raw", "initial")
inputs = {k: sm.input[k] for k in shared}
inputs["contrast"] = sm.input.contrast[0] if len(sm.input.contrast) else None
inputs["variants"] = {v: {} for v in sm.params.config["variants"]}
for name, path in sm.input.items():
    if "__" in name:  # {variant}__{table}
        variant, table = name.split("__", 1)
        inputs["variants"][variant][table] = path
with job_log(sm.log[0], sm.output):
    write_report(sm.params.config, inputs, sm.output.html, sm.output.figures)
