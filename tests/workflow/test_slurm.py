"""The workflow on a real SLURM cluster through profiles/slurm, against a local run.

Runs where a cluster answers (`scontrol ping`); CI starts a single-node one with
.ci/slurm_cluster.sh. Every job must go through sbatch into the partition the profile gives its
rule (the rules asking for gpu=1 with a GPU), and the result tables must equal the local run's.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, snakemake_command
from tests.workflow.test_workflow import SMALL_CONFIG as CONFIG
from tests.workflow.test_workflow import snakemake, write_config

pytestmark = pytest.mark.integration

GPU_RULES = {"finetune", "knowledge_scores", "attribution_chunk"}  # gpu=1 in the rules
PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
# columns that time the run, not its results
TIMING = {"seconds"}


def cluster_up() -> bool:
    if not shutil.which("scontrol"):
        return False
    proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return proc.returncode == 0 and "UP" in proc.stdout


pytest.importorskip("snakemake_executor_plugin_slurm")
if not cluster_up():
    pytest.skip(
        "no SLURM cluster answers scontrol ping (start one: bash .ci/slurm_cluster.sh start)",
        allow_module_level=True,
    )


def slurm_snakemake(workdir: Path, configfile: Path) -> subprocess.CompletedProcess:
    cmd = [
        *snakemake_command(workdir, configfile),
        "--workflow-profile",
        str(ROOT / "profiles" / "slurm"),
        "--jobs",
        "4",
        # without slurmdbd the plugin must ask squeue; the test cluster keeps finished jobs
        # for 10 minutes (MinJobAge), so squeue sees them finish
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        # the threads of the local run (2 cores, one variant), on a node of 2 CPUs
        "--set-threads",
        *(f"{rule}=2" for rule in PROFILE["set-threads"]),
    ]
    # the plugin can ignore SIGTERM while it waits on the cluster: the timeout kills it
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def job_records(workdir: Path) -> pd.DataFrame:
    """One row per SLURM job of the run: rule (from the plugin's kept logs), and the job's
    state, partition and GPU request as slurmctld records them."""
    rows = []
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        rule = next(p.name.removeprefix("rule_") for p in log.parents if p.name.startswith("rule_"))
        job_id = log.stem
        show = subprocess.run(
            ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
        ).stdout
        fields = dict(re.findall(r"(\w+)=(\S*)", show))
        rows.append(
            {
                "rule": rule,
                "job_id": job_id,
                "state": fields.get("JobState"),
                "partition": fields.get("Partition"),
                "workdir": fields.get("WorkDir"),
                "gpu": "gpu" in fields.get("TresPerNode", "") + fields.get("TresPerJob", ""),
            }
        )
    return pd.DataFrame(rows)


def result_tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in sorted(out.rglob("*.parquet")):
        df = pd.read_parquet(path)
        tables[str(path.relative_to(out))] = df.drop(columns=[c for c in TIMING if c in df.columns])
    return tables


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    local, cluster = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    snakemake(local, write_config(local / "config.yaml", CONFIG))
    proc = slurm_snakemake(cluster, write_config(cluster / "config.yaml", CONFIG))
    return local, cluster, proc


def test_every_job_went_through_sbatch(runs):
    _, cluster, proc = runs
    jobs = job_records(cluster)
    done = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout + proc.stderr)
    executed = {rule for rule in done if rule != "all"}
    assert executed and set(jobs["rule"]) == executed
    assert len(jobs) == len([r for r in done if r != "all"])
    assert (jobs["state"] == "COMPLETED").all(), jobs
    assert (jobs["workdir"] == str(cluster)).all()
    # the profile sends the GPU rules to its gpu partition with a GPU, the rest to cpu without
    gpu = jobs["rule"].isin(GPU_RULES)
    assert set(jobs.loc[gpu, "rule"]) == GPU_RULES
    assert (jobs.loc[gpu, "partition"] == "gpu").all() and jobs.loc[gpu, "gpu"].all(), jobs
    assert (jobs.loc[~gpu, "partition"] == "cpu").all() and not jobs.loc[~gpu, "gpu"].any(), jobs


def test_cluster_tables_equal_local_tables(runs):
    local, cluster, _ = runs
    a = result_tables(local / "results" / "small")
    b = result_tables(cluster / "results" / "small")
    assert len(a) >= 20 and a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    assert (cluster / "results" / "small" / "report.html").stat().st_size > 10_000
