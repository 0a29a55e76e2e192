"""The package's layers and the workflow's names, as DESIGN.md's "Layout" states them.

Layers (an import may only point down or sideways within its own layer):

    stages  -> data, model, knowledge, attribution, attention, report, shared
    knowledge, attribution, attention -> model, data, shared   (never each other)
    report  -> plot, shared                                      (tables only, never torch)
    plot    -> shared
    model   -> data, shared                                      (knows no analysis)
    data    -> shared                                            (knows no model)
    shared  = plmxai, _version, config, tables, runlog, stats, metrics, sites, run

Every import counts, at module level or inside a function. A stage is one name: each rule in
workflow/rules/<stage>.smk has workflow/scripts/<rule>.py (the same three lines) and the
function plmxai.stages.<stage>.<rule>, whose keywords are the rule's input names, out_<output
names>, params names and threads.
"""

import ast
import re
from pathlib import Path

import pytest

from plmxai.stages import RULES, STAGES, RuleMismatch, check_signature, stage_function
from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "plmxai"
SHARED = {"plmxai", "_version", "config", "tables", "runlog", "stats", "metrics", "sites", "run"}
ALLOWED = {
    "shared": {"shared"},
    "data": {"data", "shared"},
    "model": {"model", "data", "shared"},
    "knowledge": {"knowledge", "model", "data", "shared"},
    "attribution": {"attribution", "model", "data", "shared"},
    "attention": {"attention", "model", "data", "shared"},
    "plot": {"plot", "shared"},
    "report": {"report", "plot", "shared"},
    "stages": {
        "stages",
        "data",
        "model",
        "knowledge",
        "attribution",
        "attention",
        "report",
        "plot",
        "shared",
    },
}
TORCH = {"torch", "transformers", "captum"}
TORCH_FREE = {"shared", "data", "plot", "report"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in SHARED):
        return "shared"
    return parts[1]


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(plmxai modules, other top-level packages) that a file imports, anywhere in it."""
    ours, others = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the layering test reads absolute ones)"
            mod = node.module
            if mod == "plmxai" or mod.startswith("plmxai."):
                folder = PACKAGE.parent.joinpath(*mod.split("."))
                for a in node.names:  # `from plmxai.data import homology` imports a module
                    is_module = (folder / f"{a.name}.py").exists() or (folder / a.name).is_dir()
                    ours.add(f"{mod}.{a.name}" if is_module else mod)
            else:
                others.add(mod.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                (ours if a.name.startswith("plmxai") else others).add(
                    a.name if a.name.startswith("plmxai") else a.name.split(".")[0]
                )
    return ours, others


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_has_a_standard_library_name():
    import sys

    clashes = sorted(m for m in GRAPH if m.rsplit(".", 1)[-1] in sys.stdlib_module_names)
    assert not clashes


def test_no_import_crosses_a_layer_the_wrong_way():
    wrong = sorted(
        f"{m} ({layer(m)}) -> {t} ({layer(t)})"
        for m, (ours, _) in GRAPH.items()
        for t in ours
        if layer(t) not in ALLOWED[layer(m)]
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    def deps(m):
        return {t for t in GRAPH[m][0] if t in GRAPH and t != m}

    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(deps(m)):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_torch_free_layers_import_no_torch():
    """The data, statistics and report jobs run in conda environments without torch."""
    bad = sorted(
        f"{m} imports {sorted(others & TORCH)}"
        for m, (_, others) in GRAPH.items()
        if layer(m) in TORCH_FREE and others & TORCH
    )
    assert not bad, "\n".join(bad)


# --- the workflow: one name per stage ---------------------------------------------------------

SCRIPT = (
    "import _src  # noqa: F401 (src/ on sys.path: the conda envs do not install plmxai)\n\n"
    "from plmxai.stages import run_rule\n\n"
    "run_rule(snakemake)  # noqa: F821\n"
)


def rule_blocks():
    """(stage, rule, {section: [names]}, text) of every rule in workflow/rules/<stage>.smk."""
    out = []
    for f in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule \w+:)", f.read_text())[1:]:
            rule = re.match(r"rule (\w+):", block).group(1)
            sections: dict = {}
            for sec in ("input", "output", "params"):
                m = re.search(rf"(?m)^    {sec}:\n((?:        .*\n|            .*\n|\n)*)", block)
                body = m.group(1) if m else ""
                sections[sec] = re.findall(r"(?m)^        (\*\*|)(\w+)", body)
            out.append((f.stem, rule, sections, block))
    return out


BLOCKS = rule_blocks()
OPTIONAL_INPUTS = {"structure_inputs": ["structures", "structure_mapping", "alphafold"]}


def test_every_rule_is_in_its_stage_file_with_its_script():
    assert {stage for stage, *_ in BLOCKS} == set(STAGES) | {"common"} - {"common"}
    for stage, rule, _, block in BLOCKS:
        assert RULES[rule] == stage, (
            f"rule {rule} is in {stage}.smk but plmxai.stages.RULES says {RULES[rule]}"
        )
        script = re.search(r'script:\s*"\.\./scripts/(\w+)\.py"', block).group(1)
        assert script == rule, f"rule {rule} runs scripts/{script}.py"
        assert (ROOT / "workflow" / "scripts" / f"{rule}.py").read_text() == SCRIPT
    assert {rule for _, rule, _, _ in BLOCKS} == set(RULES)
    scripts = {p.stem for p in (ROOT / "workflow" / "scripts").glob("*.py")} - {"_src"}
    assert scripts == set(RULES), f"scripts without a rule: {scripts - set(RULES)}"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_names_are_the_stage_function_keywords(rule):
    [(_, _, sections, block)] = [b for b in BLOCKS if b[1] == rule]
    keywords, spread = {"threads": 1}, False
    for sec, prefix in (("input", ""), ("output", "out_"), ("params", "")):
        for star, name in sections[sec]:
            if star:  # **function(): names that exist only in some configurations
                spread |= name not in OPTIONAL_INPUTS
                continue
            keywords[prefix + name] = "x"
    wildcards = dict.fromkeys(re.findall(r"\{(\w+)\}", block), "0")
    fn = stage_function(rule)
    check_signature(fn, keywords, wildcards)
    for star, name in sections["input"]:
        for optional in OPTIONAL_INPUTS.get(name, []) if star else []:
            check_signature(fn, {**keywords, optional: "x"}, wildcards)


def test_a_rule_and_function_that_drift_apart_are_refused():
    def stage(*, tokens, out_table, seed, threads=1):
        pass

    check_signature(stage, {"tokens": "t", "out_table": "o", "seed": 0, "threads": 1})
    with pytest.raises(RuleMismatch, match=r"does not take \['proteins'\].*needs \['tokens'\]"):
        check_signature(stage, {"proteins": "t", "out_table": "o", "seed": 0, "threads": 1})


def test_rules_that_size_work_by_memory_request_it():
    # a function sizing its chunks by mem_mb gets the config's memory_gb only if its rule asks
    # for it; otherwise it would size them by Snakemake's default of 1,000 MB
    import inspect

    sizing = [
        rule for _, rule, _, _ in BLOCKS if "mem_mb" in inspect.signature(stage_function(rule)).parameters
    ]
    assert sorted(sizing) == ["attribution_chunk", "knowledge_scores"]
    for _, rule, _, block in BLOCKS:
        if rule in sizing:
            assert "mem_mb=INTEGRATION_MEM_MB" in block, rule
