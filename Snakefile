# plmxai: what a fine-tuned protein language model learned, and where.
#   snakemake --cores all                                  # the embedded planted-motif demo
#   snakemake --cores all --configfile config/<file>.yaml  # another analysis
from snakemake.utils import min_version

min_version("9.0")


# the demo's settings only when no other config is given: Snakemake would otherwise merge the
# demo's keys (pretraining, step counts, fractions) into a real analysis's config
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/knowledge.smk"
include: "workflow/rules/attribution.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        R("report.html"),
