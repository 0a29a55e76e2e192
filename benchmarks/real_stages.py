"""Per-stage time, achieved FLOP/s and peak memory of a real-model run at N and 4N proteins.

Runs the workflow twice from empty folders with a real-task config (default
config/esm2_8m_ec.yaml, the real ESM-2 8M): at N = per_class x classes proteins and at 4N,
with the stages' protein caps scaled in proportion (knowledge.max_proteins, and every test
protein attributed and analysed), so that each stage's work grows with the proteins. Every
other setting is the config's. Prints per stage:

  - seconds (summed over variants and chunks) at N and 4N, and their ratio: 4 is linear;
  - the largest job's peak memory at N and 4N (flat: it does not grow with the proteins);
  - for the model stages, their FLOPs at 4N (the matmul and attention FLOPs of the passes the
    stage makes over the proteins it processed: ESM-2's 12 d^2 + 2 L d multiply-adds per token
    and layer) over the time of the stage's own loop (from its log), against the fp32 (bf16
    where the stage runs in bf16) matmul peak measured here at one thread, a variant job's share
    of 2 cores;
  - each stage's share of the 4N run's job-seconds.

    python benchmarks/real_stages.py [--config config/esm2_8m_ec.yaml] [--per-class 5] [--cores 2]
        [--keep DIR | --analyse DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_stages import merged, run_workflow  # noqa: E402
from training_throughput import matmul_peak  # noqa: E402

from plmxai.report.anchors import wall_seconds  # noqa: E402
from plmxai.report.findings import VARIANTS, job_stage  # noqa: E402


def scaled(cfg: dict, per_class: int, scale: int) -> dict:
    n = per_class * scale
    return merged(
        cfg,
        {
            "run": f"scale_{scale}",
            "data": {"max_per_class": n, "min_class_size": n},
            "knowledge": {"max_proteins": scale},
            "attribution": {"max_proteins": 0},  # 0: every test protein
            "attention": {"max_proteins": 0},
        },
    )


def _log_value(log: Path, pattern: str) -> float | None:
    m = re.search(pattern, log.read_text()) if log.is_file() else None
    return float(m.group(1)) if m else None


def jobs(out: Path) -> pd.DataFrame:
    """One row per job: stage, seconds and peak memory (GB), from the jobs' own logs."""
    rows = []
    for log in sorted((out / "logs").glob("*.log")):
        m = re.search(r"done in ([0-9.]+) s, peak memory ([0-9.]+) GB", log.read_text())
        if not m:
            continue
        rows.append(
            {
                "job": log.stem,
                "stage": job_stage(log.stem),
                "seconds": float(m.group(1)),
                "peak_gb": float(m.group(2)),
            }
        )
    return pd.DataFrame(rows)


def layer_forward(n: np.ndarray, d: int, linear: int) -> np.ndarray:
    """FLOPs of one encoder layer's forward pass over proteins of n tokens: its linear maps
    (2 x weights per token) and attention scores and context (2 x 2 n^2 d)."""
    return 2 * linear * n + 4 * n.astype(float) ** 2 * d


def model_flops(out: Path, cfg: dict, model_dir: Path) -> dict[str, tuple[float, float, str]]:
    """Stage -> (FLOPs, seconds of the stage's own loop summed over variants, precision)."""
    c = json.loads((model_dir / "config.json").read_text())
    d, layers, inter = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    linear = 4 * d * d + 2 * d * inter
    tokens = pd.read_parquet(out / "model" / "tokens.parquet", columns=["accession", "split", "n_residues"])
    n_of = dict(zip(tokens["accession"], tokens["n_residues"] + 2))
    fwd = lambda n: layers * layer_forward(n, d, linear)  # noqa: E731
    # the classifier reads <cls>: the last layer needs keys and values of every token, the rest
    # of it for <cls> only (plmxai.model.esm.cls_only_last_layer)
    fwd_cls = lambda n: (layers - 1) * layer_forward(n, d, linear) + 2 * 2 * d * d * n  # noqa: E731
    k, a = cfg["knowledge"], cfg["attribution"]
    res: dict[str, list] = {}

    def add(stage, flops, seconds, precision="fp32"):
        f, s, _ = res.get(stage, (0.0, 0.0, precision))
        res[stage] = (f + flops, s + (seconds or 0.0), precision)

    n_train = tokens.loc[tokens["split"] == "train", "n_residues"].to_numpy() + 2
    n_val = tokens.loc[tokens["split"] == "val", "n_residues"].to_numpy() + 2
    n_test = tokens.loc[tokens["split"] == "test", "n_residues"].to_numpy() + 2
    for v in ("finetuned", "shuffled"):  # the frozen control trains its head on cached features
        logs = out / "logs"
        epochs = len(pd.read_parquet(out / v / "model" / "training.parquet"))
        # training passes read <cls> too: forward and backward (2x) of the same graph
        flops = epochs * (3 * fwd_cls(n_train).sum() + fwd_cls(n_val).sum())
        add("finetune", flops, _log_value(logs / f"finetune_{v}.log", r"training took ([0-9.]+) s"))
    for v in VARIANTS:
        logs = out / "logs"
        comp = pd.read_parquet(out / v / "knowledge" / "completeness.parquet", columns=["accession"])
        n = np.array([n_of[x] for x in comp["accession"].unique()])
        per_layer_sites = 6  # query, key, value, attention output, FFN in, FFN out
        last = 2 * 2 * (2 * d * d) * n  # keys and values of the last layer, forward and backward
        step = 2 * layer_forward(n, d, linear)  # a layer's forward and input-gradient backward
        cond = (k["conductance_steps"] + 1) * (step * (layers - 1) + last)
        ka = sum(per_layer_sites * k["ka_steps"] * (step * (layers - 1 - li) + last) for li in range(layers))
        add(
            "knowledge_scores",
            float((cond + ka).sum()),
            _log_value(
                logs / f"knowledge_scores_{v}.log", r"IG scores of \d+ neurons on \d+ proteins in ([0-9.]+) s"
            ),
        )
        comp = pd.read_parquet(
            out / v / "attribution" / "completeness.parquet", columns=["accession", "method"]
        )
        n = np.array([n_of[x] for x in comp.loc[comp["method"] == "embedding_ig", "accession"]])
        # with n_steps == head_steps the embedding IG comes from the heads' passes
        # (plmxai.attribution.attribute); Gauss-Legendre at steps + 1 points
        if a["heads"] and a["n_steps"] == a["head_steps"]:
            steps = a["head_steps"] + 1
        else:
            steps = a["n_steps"] + (a["head_steps"] + 1 if a["heads"] else 0)
        steps *= a.get("n_baselines", 1) if a.get("baseline") == "shuffled" else 1
        add(
            "attribution_chunk",
            float((steps * 2 * fwd(n)).sum()),
            sum(
                _log_value(p, r"attributed \d+ proteins in ([0-9.]+) s") or 0.0
                for p in logs.glob(f"attribution_{v}_*.log")
            ),
        )
        log = logs / f"knowledge_tests_{v}.log"
        hybrids = _log_value(log, r"(\d+) hybrid models evaluated on")
        if hybrids:
            add(
                "knowledge_tests",
                hybrids * float(fwd_cls(n_test).sum()),
                _log_value(log, r"hybrid models evaluated on \d+ test proteins in ([0-9.]+) s"),
                k.get("precision", "auto"),
            )
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "esm2_8m_ec.yaml")
    ap.add_argument("--per-class", type=int, default=5, help="proteins per class at N")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="run in this folder and keep the results")
    ap.add_argument("--analyse", type=Path, help="no runs: the table of the runs kept in this folder")
    a = ap.parse_args(argv)
    from plmxai.config import validate_config

    base = yaml.safe_load(a.config.read_text())
    # relative paths in the config are the repository's
    for key in ("tsv", "path"):
        if isinstance(base.get("data", {}).get(key), str) and not Path(base["data"][key]).is_absolute():
            base["data"][key] = str((ROOT / base["data"][key]).resolve())
    m = base["model"]
    if not Path(m["name_or_path"]).is_absolute() and (ROOT / m["name_or_path"]).exists():
        m["name_or_path"] = str((ROOT / m["name_or_path"]).resolve())
    cs = base.get("attention", {}).get("change", {}).get("contact_set")
    if cs and not Path(cs).is_absolute():
        base["attention"]["change"]["contact_set"] = str((ROOT / cs).resolve())
    torch.set_num_threads(1)
    peaks = {
        "fp32": max(matmul_peak(torch.device("cpu"), torch.float32, s) for s in (1024, 2048)),
        "bf16": max(matmul_peak(torch.device("cpu"), torch.bfloat16, s) for s in (1024, 2048)),
    }
    peaks["auto"] = peaks["fp32"]
    print(
        f"matmul peak at 1 thread: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s"
    )
    root = a.keep or a.analyse or Path(tempfile.mkdtemp(prefix="real_stages_"))
    results = {}
    for scale in (1, 4):
        cfg = scaled(base, a.per_class, scale)
        full = validate_config(copy.deepcopy(cfg))
        out = root / f"scale_{scale}" / "results" / cfg["run"]
        if a.analyse:  # runs kept by an earlier --keep: their wall clock from the jobs' logs
            wall = wall_seconds(out)
        else:
            wall = run_workflow(root / f"scale_{scale}", cfg, a.cores)
        n = len(pd.read_parquet(out / "data" / "proteins.parquet", columns=["accession"]))
        results[scale] = (n, wall, jobs(out), model_flops(out, full, Path(m["name_or_path"])))
        print(f"scale {scale}: {n} proteins, wall {wall / 60:.1f} min", flush=True)
    print(table(results, peaks))


def table(results: dict, peaks: dict) -> str:
    """The Markdown table: per stage, time and work at N and 4N, memory, FLOP/s, share."""
    (n1, w1, j1, f1), (n4, w4, j4, f4) = results[1], results[4]
    s1, s4 = j1.groupby("stage")["seconds"].sum(), j4.groupby("stage")["seconds"].sum()
    m1, m4 = j1.groupby("stage")["peak_gb"].max(), j4.groupby("stage")["peak_gb"].max()
    total = s4.sum()
    lines = [
        f"\n| stage | seconds at N = {n1} | at 4N = {n4} | time ratio | work ratio (FLOPs) | peak GB at N "
        "| at 4N | TFLOP at 4N | GFLOP/s | of the 1-thread matmul peak | share of 4N |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for stage in s4.sort_values(ascending=False).index:
        flops, loop_s, prec = f4.get(stage, (None, None, None))
        flops1 = f1.get(stage, (None,))[0]
        rate = flops / loop_s if flops and loop_s else None
        cells = [
            stage,
            f"{s1.get(stage, np.nan):.0f}",
            f"{s4[stage]:.0f}",
            f"{s4[stage] / s1[stage]:.2f}" if s1.get(stage) else "n/a",
            f"{flops / flops1:.2f}" if flops and flops1 else "",
            f"{m1.get(stage, np.nan):.2f}",
            f"{m4[stage]:.2f}",
            f"{flops / 1e12:.2f}" if flops else "",
            f"{rate / 1e9:.0f}" if rate else "",
            f"{rate / peaks[prec]:.0%} ({prec})" if rate else "",
            f"{s4[stage] / total:.0%}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"| whole run (wall clock) | {w1:.0f} | {w4:.0f} | {w4 / w1:.2f} | | {j1['peak_gb'].max():.2f} "
        f"| {j4['peak_gb'].max():.2f} | | | | |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
