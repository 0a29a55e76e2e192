"""The default run, the planted-motif demo of config/config.yaml, from scratch as README's first
command runs it; docs/results-demo.md is its tables, so a figure there cannot drift from what
the code gives."""

import difflib
import subprocess

import pandas as pd
import pytest

from plmxai.report.findings import demo_document, seeds_table
from tests.conftest import ROOT, snakemake_command

pytestmark = pytest.mark.integration

DOC = ROOT / "docs" / "results-demo.md"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    cmd = snakemake_command(work, ROOT / "config" / "config.yaml", "--cores", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return work / "results" / "demo"


def test_results_doc_is_the_demo_run(demo):
    """The committed page equals the page regenerated from a fresh run of the demo."""
    fresh = demo_document(demo)
    committed = DOC.read_text()
    if fresh != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(True), fresh.splitlines(True), "docs/results-demo.md", "this run"
            )
        )
        pytest.fail(
            "docs/results-demo.md differs from the demo's tables on this install. If the change is "
            "meant (new code or versions), regenerate it: snakemake --cores all && python -m "
            f"plmxai.report.findings --demo results/demo > docs/results-demo.md\n{diff[:6000]}"
        )


def test_demo_robust_findings(demo):
    """What the demo advertises as robust over seeds (docs/results-demo-seeds.md) holds here."""
    t = seeds_table([demo]).set_index("finding")
    for finding in (
        "fine-tuned test accuracy above the frozen control's (McNemar p < 0.05)",
        "planted motif: embedding-level relevance, q < 0.01 (Wilcoxon)",
        "planted motif: beyond the residues' identity (composition-matched null)",
        "shuffled control: no test significant beyond residue identity (composition-matched null)",
    ):
        assert t.at[finding, "robust"] == "yes", (finding, t.loc[finding].to_dict())
    proteins = pd.read_parquet(demo / "data" / "proteins.parquet")
    assert len(proteins) == 3000


def test_seeds_table_counts(demo):
    """Each finding is counted over the runs given: the same run twice holds twice or never."""
    t = seeds_table([demo, demo])
    assert set(t["holds on"]) <= {"0 of 2", "2 of 2"}
    assert ((t["holds on"] == "2 of 2") == (t["robust"] == "yes")).all()
