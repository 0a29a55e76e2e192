"""The workflow's stages: one function per Snakemake rule, named as the rule.

Every function takes keyword arguments only: the rule's input names, `out_` + its output
names, its params names, the wildcards it uses, `threads`, and `mem_mb` where it sizes its
work by the job's memory (resources: a cluster profile's value reaches it). Every script under
workflow/scripts/ is the same three lines, `run_rule(snakemake)`, which maps the job onto those
keywords and refuses a job whose names and the function's do not match, so a rule and its
function cannot drift apart silently. A notebook can call the same functions with paths.

Stage modules import the model stack inside the functions that need it: the data, statistics
and report rules run in conda environments without torch (envs/).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

# rule -> stage (the module stages/<stage>.py and the rule file workflow/rules/<stage>.smk)
RULES = {
    "synthetic": "data",
    "download": "data",
    "data": "data",
    "tokenize": "model",
    "init_model": "model",
    "finetune": "model",
    "given_model": "model",
    "neuron_activation": "knowledge",
    "knowledge_scores": "knowledge",
    "knowledge_tests": "knowledge",
    "attribution_chunk": "attribution",
    "attribution": "attribution",
    "statistics": "attribution",
    "faithfulness": "attribution",
    "attribution_contrast": "attribution",
    "alphafold": "attention",
    "attention": "attention",
    "probes": "attention",
    "attention_change": "attention",
    "report": "report",
}
STAGES = ("data", "model", "knowledge", "attribution", "attention", "report")


class RuleMismatch(TypeError):
    """A rule's names and its stage function's keywords disagree."""


def stage_function(rule: str) -> Callable:
    """The function of a rule: `plmxai.stages.<stage>.<rule>`."""
    if rule not in RULES:
        raise RuleMismatch(f"rule {rule!r} has no stage function: add it to plmxai.stages.RULES")
    return getattr(importlib.import_module(f"plmxai.stages.{RULES[rule]}"), rule)


def _plain(value):
    # Snakemake's named lists -> lists; single files stay strings
    return [str(v) for v in value] if isinstance(value, list) else value


def rule_keywords(job) -> tuple[dict, dict]:
    """(keywords every function of the rule must take, keywords it may take) of a Snakemake
    job object: inputs by name, outputs as out_<name>, params by name, threads; the wildcards
    and the job's mem_mb may be taken."""
    kw: dict = {}
    for name, value in job.input.items():
        kw[name] = _plain(value)
    for name, value in job.output.items():
        kw[f"out_{name}"] = _plain(value)
    for name, value in job.params.items():
        kw[name] = value
    kw["threads"] = job.threads
    optional = dict(job.wildcards.items())
    mem = getattr(job.resources, "mem_mb", None)
    if isinstance(mem, (int, float)):
        optional["mem_mb"] = mem
    return kw, optional


def check_signature(fn: Callable, keywords: dict, optional: dict | None = None) -> dict:
    """The keywords to call `fn` with; RuleMismatch naming every name that does not match."""
    sig = inspect.signature(fn)
    params = sig.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    positional = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in keywords if k not in params and not var_kw]
    kw = dict(keywords)
    kw.update({k: v for k, v in (optional or {}).items() if k in params})
    missing = [
        n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and p.default is p.empty and n not in kw
    ]
    problems = []
    if positional:
        problems.append(f"takes positional arguments {positional} (stage functions are keyword-only)")
    if unknown:
        problems.append(f"does not take {unknown}, which the rule gives")
    if missing:
        problems.append(f"needs {missing}, which the rule does not give")
    if problems:
        raise RuleMismatch(
            f"{fn.__module__}.{fn.__name__} " + "; ".join(problems) + ": rename the rule's input, "
            "output (out_<name>) or params, or the function's keywords, so that they match"
        )
    return kw


def job_memory_gb(mem_mb: float | None) -> float | None:
    """The job's memory in GB from Snakemake's mem_mb; None (the library default) outside one."""
    return None if mem_mb is None else mem_mb / 1024


def log_chunking(model, table, memory_gb: float | None, log) -> None:
    """Say how the longest protein's integration is chunked, and warn when one step of it
    exceeds the memory budget."""
    from plmxai.model.ig import DEFAULT_MEMORY_GB, chunk_rows, memory_check

    if not len(table):
        return
    gb = DEFAULT_MEMORY_GB if memory_gb is None else memory_gb
    n = int(table["n_residues"].max()) + 2
    log.info(
        "integration chunks sized for %.1f GB: %d steps per pass at %d tokens",
        gb,
        chunk_rows(model, n, gb),
        n,
    )
    warning = memory_check(model, n, gb)
    if warning:
        log.warning(warning)


def run_rule(job) -> None:
    """Run a Snakemake job through its stage function, its log in the rule's log file."""
    from plmxai.runlog import job_log

    fn = stage_function(job.rule)
    kw = check_signature(fn, *rule_keywords(job))
    with job_log(job.log[0] if len(job.log) else None, job.output):
        fn(**kw)
