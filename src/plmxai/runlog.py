"""Logging for workflow jobs: everything (logging, warnings, tqdm progress) goes to the rule's
log file, and the last line says what was written and how long it took."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path

AUDIT_ENV = "PLMXAI_IMPORT_AUDIT"


def _record_imports(folder: Path, name: str) -> None:
    """Write which installed distributions the job imported, and its script: the test that
    the conda environment of each rule family (envs/) holds what its rules import."""
    import json
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    dists = sorted({d for m in list(sys.modules) for d in owners.get(m.partition(".")[0], ())})
    # Snakemake runs a copy of the script named tmpXXXXXXXX.<script>.py
    script = Path(sys.argv[0]).name
    script = script.split(".", 1)[1] if script.startswith("tmp") and script.count(".") > 1 else script
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"script": script, "distributions": dists}))


def _peak_gb() -> float:
    """This process's peak resident memory (Linux reports KB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


@contextlib.contextmanager
def job_log(log_path: str | os.PathLike | None, outputs=()):
    start = time.perf_counter()
    stream = open(log_path, "w", buffering=1) if log_path else sys.stderr
    old_err = sys.stderr
    sys.stderr = stream  # tqdm and warnings write here
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    log = logging.getLogger("plmxai")
    try:
        yield log
        sizes = ", ".join(f"{o} ({_size(o)})" for o in outputs)
        log.info(
            "done in %.1f s, peak memory %.2f GB; wrote %s",
            time.perf_counter() - start,
            _peak_gb(),
            sizes or "nothing",
        )
        if os.environ.get(AUDIT_ENV) and log_path:
            _record_imports(Path(os.environ[AUDIT_ENV]), Path(log_path).stem)
    except BaseException:
        log.exception("failed after %.1f s", time.perf_counter() - start)
        raise
    finally:
        sys.stderr = old_err
        root.handlers[:] = []
        if log_path:
            stream.close()


def _size(path) -> str:
    p = Path(path)
    if p.is_dir():
        n = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    elif p.exists():
        n = p.stat().st_size
    else:
        return "missing"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
