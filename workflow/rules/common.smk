import sys

from snakemake.exceptions import WorkflowError

from plmxai import __version__ as PACKAGE_VERSION
from plmxai.config import ConfigError, tokenizer_source, validate_config

try:
    validate_config(config)
except ConfigError as err:
    sys.exit(f"plmxai: {err}")

RUN = f"results/{config['run']}"


def R(path):
    """A path inside this run's results folder."""
    return f"{RUN}/{path}"


def all_cores():
    """The cores given to this run; 1 where none are (snakemake --report, --lint).

    On a cluster, 1: a job's threads must be the same when Snakemake submits it and inside the
    job, where the cores are the job's own allocation. The profile's set-threads gives rules more.
    """
    if not workflow.local_exec or workflow.remote_exec:
        return 1
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def variant_threads():
    """Threads of a per-variant job: small models use cores better as parallel jobs."""
    return max(1, all_cores() // len(config["variants"]))


# the options of IG scoring: changing a test option (fractions, draws) reuses the scores
KNOWLEDGE_SCORING = (
    "split",
    "max_proteins",
    "estimators",
    "ka_steps",
    "conductance_steps",
    "method",
    "target",
    "output",
    "completeness_tolerance",
)


def knowledge_scoring_params():
    return {k: config["knowledge"][k] for k in KNOWLEDGE_SCORING}


def LOG(name):
    return R(f"logs/{name}.log")


def raw_tsv(wildcards=None):
    source = config["data"]["source"]
    if source == "synthetic":
        return R("data/raw/uniprot.tsv")
    if source == "uniprot_rest":
        return R("data/raw/uniprot.tsv.gz")
    return config["data"]["tsv"]


wildcard_constraints:
    variant="|".join(config["variants"]),


def attribution_chunks(kind):
    """The chunk files of a variant's attribution (attribution.chunks of them)."""
    n = config["attribution"]["chunks"]
    return lambda wc: [
        R(f"{wc.variant}/attribution/chunks/{kind}_{i}.parquet") for i in range(n)
    ]


def has_contrast():
    return "finetuned" in config["variants"] and len(config["variants"]) > 1


def contrast_inputs(wildcards=None):
    return {
        v: R(f"{v}/statistics/protein_correlations.parquet") for v in config["variants"]
    }


def contrast_output():
    """The fine-tuned model against its controls, where the run has both."""
    return [R("comparison/attribution_contrast.parquet")] if has_contrast() else []


def attention_params():
    """The attention options less the probes': a probe option reruns only the probes."""
    return {k: v for k, v in config["attention"].items() if k != "probes"}


def probe_params():
    return {k: config["attention"][k] for k in ("probes", "structures", "batch_size")}


def structure_inputs(wildcards=None):
    """The structure sources of the attention analysis and probes, where configured."""
    st = config["attention"]["structures"]
    out = {}
    if st["folder"]:
        out["structures"] = st["folder"]
    if st["mapping"]:
        out["structure_mapping"] = st["mapping"]
    if st["alphafold"]:
        out["alphafold"] = R("structures/alphafold.parquet")
    return out


def per_variant(path):
    """The path in every variant's folder."""
    return expand(R(f"{{variant}}/{path}"), variant=config["variants"])
