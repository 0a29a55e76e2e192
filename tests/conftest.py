import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def peak_rss_kb(script: str, *args) -> int:
    """Peak resident memory (KB) of `script` run in a fresh interpreter; the script prints
    PEAK_KB <value> last (resource.getrusage), so the test process's own memory is not counted."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        raise AssertionError(f"the measured script failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return int(proc.stdout.split("PEAK_KB")[1].split()[0])


def snakemake_command(workdir, configfile, *args) -> list[str]:
    """This checkout's workflow run in `workdir` with `configfile`, as a user runs it."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *map(str, args),
    ]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model():
    """A small random ESM-2 classifier (2 layers, 3 classes), seeded."""
    from plmxai.model.esm import build_model

    spec = {
        "source": "random",
        "architecture": {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64},
    }
    return build_model(spec, ["1", "2", "3"], seed=0).eval()


@pytest.fixture(scope="session")
def tiny_tokens():
    """Tokens of a few proteins of different lengths, with labels."""
    import pandas as pd

    from plmxai.model.tokens import esm2_tokenizer, tokenize_proteins

    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVDAFQ", "MWCHHYQNACDEFGHIKLMNPQRSTVWY", "AC"]
    prot = pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(len(seqs))],
            "sequence": seqs,
            "label": ["1", "2", "3", "1"],
            "label_id": [0, 1, 2, 0],
            "split": "test",
        }
    )
    tokens, _ = tokenize_proteins(prot, esm2_tokenizer())
    return tokens
