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
    assert proc.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out[-3000:]


@pytest.mark.parametrize("tool", ["snakefmt", "ruff"])
def test_formatters_and_linters_are_clean(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (pip install -e '.[test]')")
    cmd = [tool, "--check", *SNAKEFILES] if tool == "snakefmt" else [tool, "check", "src", "tests", "workflow",
                                                                     "benchmarks"]  # fmt: skip
    proc = _run(*cmd)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
