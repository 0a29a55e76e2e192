import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.stages import run_rule

run_rule(snakemake)  # noqa: F821
