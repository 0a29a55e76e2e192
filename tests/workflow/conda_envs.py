"""What the conda environment files (envs/) provide, for the test that each rule's imports
are covered by its family's environment (test_workflow.py::test_rule_imports_covered_by_envs)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CONDA_TO_DIST = {"matplotlib-base": "matplotlib", "pytorch": "torch"}
NOT_PYTHON = {"python", "pip", "mmseqs2"}

# Imported by a library only when installed, and installed here by other packages: an
# environment without them works. Each line names the importer.
OPTIONAL = {
    "jsonpointer",
    "rfc3339-validator",
    "idna",  # jsonschema's format checkers
    "cloudpickle",  # pyarrow
    "charset-normalizer",  # numpy.f2py (through scipy)
    "trio",
    "outcome",
    "sniffio",
    "sortedcontainers",  # anyio backends (huggingface_hub)
    "colorama",
    "psutil",
    "rich",  # tqdm, joblib, scikit-learn
    # captum's notebook visualisation, when IPython is installed
    "ipython",
    "jedi",
    "parso",
    "pexpect",
    "ptyprocess",
    "prompt-toolkit",
    "wcwidth",
    "pickleshare",
    "backcall",
    "decorator",
    "executing",
    "asttokens",
    "pure-eval",
    "stack-data",
    "traitlets",
    "matplotlib-inline",
    "pygments",
    # biotite.visualize, when matplotlib is installed (a class defined under try/except)
    "matplotlib",
    "cycler",
    "kiwisolver",
    "pillow",
    "pyparsing",
    "contourpy",
    "fonttools",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_distributions(path: Path) -> set[str]:
    """Python distributions an environment file names (conda names mapped to PyPI names)."""
    names = []
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            names += [Requirement(r).name for r in dep.get("pip", [])]
        else:
            names.append(re.split(r"[<>=! ]", dep, maxsplit=1)[0])
    return {norm(CONDA_TO_DIST.get(n, n)) for n in names if n not in NOT_PYTHON}


def closure(names: set[str]) -> set[str]:
    """The names and everything they require (installed metadata, no extras): what a solver
    puts into an environment that names them."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in requires:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(norm(req.name))
    return seen


def script_envs() -> dict[str, set[tuple[str, Path]]]:
    """Script file name -> {(rule, environment file)} from the rule files."""
    out: dict = {}
    for f in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule \w+:)", f.read_text())[1:]:
            rule = re.match(r"rule (\w+):", block).group(1)
            env = re.search(r'conda:\s*"([^"]+)"', block)
            script = re.search(r'script:\s*"([^"]+)"', block)
            if env and script:
                out.setdefault(Path(script.group(1)).name, set()).add(
                    (rule, (f.parent / env.group(1)).resolve())
                )
    return out


def interpreter_baseline() -> set[str]:
    """Distributions a job imports before our script runs: the interpreter's start-up hooks
    and Snakemake's script preamble (loaded from Snakemake's own installation)."""
    code = (
        "import sys\nfrom importlib.metadata import packages_distributions\n"
        "import snakemake.iocontainers, snakemake.io, snakemake.logging, snakemake.script\n"
        "owners = packages_distributions()\n"
        "print('\\n'.join({d for m in list(sys.modules) for d in owners.get(m.partition('.')[0], ())}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {norm(n) for n in out.split()}


def import_leaks(audit_folder: Path) -> tuple[dict, set]:
    """(leaks: job -> distributions its family's environment lacks, rules audited) from the
    import records a run wrote under `audit_folder` (runlog.AUDIT_ENV)."""
    import json

    envs = script_envs()
    ignored = interpreter_baseline() | OPTIONAL | {"plmxai", "setuptools", "pip"}
    audited, leaks = set(), {}
    for f in sorted(Path(audit_folder).glob("*.json")):
        rec = json.loads(f.read_text())
        [(rule, env)] = envs[rec["script"]]
        audited.add(rule)
        imported = {norm(d) for d in rec["distributions"]} - ignored
        missing = imported - closure(env_distributions(env))
        if missing:
            leaks[f"{f.stem} ({env.name})"] = sorted(missing)
    return leaks, audited
