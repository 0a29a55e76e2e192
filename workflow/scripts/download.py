import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)

from plmxai.download import download_uniprot
from plmxai.runlog import job_log

sm = snakemake  # noqa: F821
rest = sm.params.rest
with job_log(sm.log[0], sm.output):
    download_uniprot(
        rest["query"], rest["fields"], sm.output.tsv, sm.output.provenance,
        base_url=rest["base_url"], page_size=rest["page_size"],
        max_retries=rest["max_retries"], total_timeout=rest["total_timeout"],
    )  # fmt: skip
