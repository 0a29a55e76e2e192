"""Where the demo's time goes: the default run (config/config.yaml) against its earlier settings.

Runs the demo twice from empty folders, one after the other on this machine, and prints per
stage the seconds of its jobs (summed over variants, from the jobs' own logs) for both, the
ratio, and each run's wall clock and peak memory. The baseline is the demo as it was before
issue 20: pretraining for all of its 30 epochs (no stop at a validation accuracy), 35
fine-tuning epochs, 200 attributed test proteins.

    python benchmarks/demo_stages.py [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from plmxai.report.findings import stage_table

ROOT = Path(__file__).resolve().parents[1]
BASELINE = {
    "model": {"pretrain": {"epochs": 30, "stop_accuracy": None}, "training": {"epochs": 35}},
    "attribution": {"max_proteins": 200},
}


def merged(base: dict, change: dict) -> dict:
    out = dict(base)
    for k, v in change.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run_workflow(work: Path, config: dict, cores: int) -> float:
    """Wall seconds of one run of this checkout's workflow with `config`, in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(work), "--configfile", str(cfg), "--cores", str(cores)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall


def peak_gb(out: Path) -> float:
    """The largest job's peak memory, from the jobs' logs."""
    peaks = [
        float(m.group(1))
        for log in (out / "logs").glob("*.log")
        if (m := re.search(r"peak memory ([0-9.]+) GB", log.read_text()))
    ]
    return max(peaks, default=float("nan"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="run in this folder and keep the results")
    a = ap.parse_args(argv)
    current = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    root = a.keep or Path(tempfile.mkdtemp(prefix="demo_stages_"))
    runs = {}
    for name, cfg in (("baseline", merged(current, BASELINE)), ("current", current)):
        wall = run_workflow(root / name, cfg, a.cores)
        out = root / name / "results" / cfg["run"]
        table, peak = stage_table(out).set_index("stage")["seconds"], peak_gb(out)
        runs[name] = (wall, peak, table)
        print(f"{name}: wall {wall / 60:.2f} min, peak memory of the largest job {peak:.2f} GB", flush=True)
    base, cur = runs["baseline"][2], runs["current"][2]
    stages = sorted(set(base.index) | set(cur.index), key=lambda s: -base.get(s, 0))
    print(
        "\n| stage | baseline s | current s | saved s | current / baseline |\n| --- | --- | --- | --- | --- |"
    )
    for s in stages:
        b, c = float(base.get(s, 0)), float(cur.get(s, 0))
        ratio = f"{c / b:.2f}" if b else "n/a"
        print(f"| {s} | {b:.0f} | {c:.0f} | {b - c:.0f} | {ratio} |")
    bw, cw = runs["baseline"][0], runs["current"][0]
    print(
        f"| job-seconds | {base.sum():.0f} | {cur.sum():.0f} | {base.sum() - cur.sum():.0f} | {cur.sum() / base.sum():.2f} |"
    )
    print(f"| wall clock (s, {a.cores} cores) | {bw:.0f} | {cw:.0f} | {bw - cw:.0f} | {cw / bw:.2f} |")


if __name__ == "__main__":
    main()
