import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from plmxai import __version__ as PACKAGE_VERSION
from plmxai.config import ConfigError, input_problem, tokenizer_source, validate_config

try:
    validate_config(config)
except ConfigError as err:
    sys.exit(f"plmxai: {err}")
if problem := input_problem(config):
    sys.exit(f"plmxai: {problem}")

RUN = f"results/{config['run']}"


def R(path):
    """A path inside this run's results folder."""
    return f"{RUN}/{path}"


# the tokenised proteins every model job reads (stage model)
TOKENS = R("model/tokens.parquet")
# what an integration job may use: its chunks are sized to it, and a cluster is asked for it
INTEGRATION_MEM_MB = round(config["memory_gb"] * 1024)


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


def checkpoint_files():
    """The files of a local pretrained checkpoint: new weights in the folder rerun the model
    (a hub name is pinned by model.revision instead)."""
    m = config["model"]
    if m["source"] != "pretrained" or not Path(m["name_or_path"]).expanduser().is_dir():
        return []
    folder = Path(m["name_or_path"]).expanduser()
    names = ("config.json", "model.safetensors", "pytorch_model.bin")
    return [str(folder / n) for n in names if (folder / n).is_file()] + sorted(
        str(p) for p in folder.glob("*.index.json")
    )


def LOG(name):
    return R(f"logs/{name}.log")


def raw_tsv(wildcards=None):
    """The data stage's input: a UniProt export, or the file or folder of another source."""
    source = config["data"]["source"]
    if source == "synthetic":
        return R("data/raw/uniprot.tsv")
    if source == "uniprot_rest":
        return R("data/raw/uniprot.tsv.gz")
    if source == "uniprot_tsv":
        return config["data"]["tsv"]
    return config["data"]["path"]


wildcard_constraints:
    variant="|".join(config["variants"]),


# the variants that are trained here; `given` is the model as loaded, so the stages that need
# training or the weights before fine-tuning (training curves, knowledge neurons) skip it
TRAINED = [v for v in config["variants"] if v != "given"]
TRAINED_VARIANT = "|".join(TRAINED) or "no-trained-variant"


def attribution_chunks(kind):
    """The chunk files of a variant's attribution (attribution.chunks of them)."""
    n = config["attribution"]["chunks"]
    return lambda wc: [
        R(f"{wc.variant}/attribution/chunks/{kind}_{i}.parquet") for i in range(n)
    ]


def has_contrast():
    return (
        "finetuned" in TRAINED and len(TRAINED) > 1 and config["attribution"]["enabled"]
    )


def contrast_inputs():
    """Each trained variant's per-protein correlations, in the order of TRAINED."""
    return [R(f"{v}/attribution/protein_correlations.parquet") for v in TRAINED]


def contrast_output():
    """The fine-tuned model against its controls, where the run has both."""
    return [R("attribution/contrast.parquet")] if has_contrast() else []


def section(name, *subsections):
    """A config section less its subsections, which have rules of their own: changing a
    statistics option reruns the statistics, not the attributions."""
    return {k: v for k, v in config[name].items() if k not in subsections}


def attention_params():
    """The attention options less the probes' and the change's: a probe option reruns only
    the probes."""
    return {
        k: v for k, v in config["attention"].items() if k not in ("probes", "change")
    }


def has_attention_change():
    return "finetuned" in TRAINED and config["attention"]["change"]["enabled"]


def attention_change_output():
    """What fine-tuning did to attention, where the run fine-tunes."""
    return [R("attention/change.parquet")] if has_attention_change() else []


def attention_change_params():
    keys = (
        "change",
        "theta",
        "min_pairs",
        "batch_size",
        "structures",
        "split",
        "max_proteins",
    )
    return {k: config["attention"][k] for k in keys}


def contact_set_input(wildcards=None):
    folder = config["attention"]["change"]["contact_set"]
    return {"contact_set": folder} if folder else {}


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
        out["alphafold"] = R("attention/alphafold.parquet")
    return out


def per_variant(path):
    """The path in every variant's folder."""
    return expand(R(f"{{variant}}/{path}"), variant=config["variants"])


# the report's per-variant inputs: name -> path inside the variant's folder; the second group
# exists for trained variants only
VARIANT_FILES = {
    "predictions": "model/predictions.parquet",
    "metrics": "model/metrics.parquet",
    "confusion": "model/confusion.parquet",
    "model": "model/finetuned",
    "attention": "attention/properties.parquet",
    "attention_profiles": "attention/layer_profiles.parquet",
    "blosum": "attention/blosum62.parquet",
}
ATTRIBUTION_FILES = {
    "relevance": "attribution/relevance",
    "completeness": "attribution/completeness.parquet",
    "statistics": "attribution/statistics.parquet",
    "faithfulness": "attribution/faithfulness.parquet",
}
TRAINED_FILES = {
    "training": "model/training.parquet",
    "neurons": "knowledge/neuron_activation.parquet",
    "knowledge_completeness": "knowledge/completeness.parquet",
    "preservation": "knowledge/preservation.parquet",
    "preservation_runs": "knowledge/preservation_runs.parquet",
    "density": "knowledge/density.parquet",
    "agreement": "knowledge/agreement.parquet",
}


def report_variant_inputs(wildcards=None):
    """{variant}__{name} -> path of every variant's tables the report reads."""
    files = dict(VARIANT_FILES)
    if config["attention"]["probes"]["enabled"]:
        files["probes"] = "attention/probes.parquet"
    if config["attribution"]["enabled"]:
        files.update(ATTRIBUTION_FILES)
    out = {}
    for v in config["variants"]:
        kinds = files if v == "given" else {**files, **TRAINED_FILES}
        out.update({f"{v}__{k}": R(f"{v}/{p}") for k, p in kinds.items()})
    return out
