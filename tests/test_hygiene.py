"""Workflow hygiene: Snakemake's linter, snakefmt and ruff find nothing."""

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SNAKEFILES = [str(ROOT / "Snakefile"), *map(str, sorted((ROOT / "workflow" / "rules").glob("*.smk")))]


def _run(*cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_snakemake_lint_is_clean():
    proc = _run(sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(ROOT / "Snakefile"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out[
        -3000:
    ]


PYTHON = ["src", "tests", "workflow", "benchmarks"]
CHECKS = {
    "snakefmt": ["snakefmt", "--check", *SNAKEFILES],
    "ruff check": ["ruff", "check", *PYTHON],
    # one formatter for the whole tree, no exceptions marked in the code
    "ruff format": ["ruff", "format", "--check", *PYTHON],
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_formatters_and_linters_are_clean(check):
    cmd = CHECKS[check]
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} not installed (pip install -e '.[test]')")
    proc = _run(*cmd)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_no_formatter_exceptions():
    marked = [
        str(p.relative_to(ROOT))
        for d in PYTHON
        for p in sorted((ROOT / d).rglob("*.py"))
        if any(f"fmt: {m}" in p.read_text() for m in ("skip", "off"))
    ]
    assert not marked, marked
