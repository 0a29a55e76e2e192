# plmxai: what a fine-tuned protein language model learned, and where.
#   snakemake --cores all                                  # the embedded planted-motif demo
#   snakemake --cores all --configfile config/<file>.yaml  # another analysis
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/neurons.smk"
include: "workflow/rules/knowledge.smk"
include: "workflow/rules/attribution.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        R("report.html"),
    default_target: True
