"""Wrong inputs through `snakemake` itself, as a user meets them: a data file that is not there
(refused at start, by config key), a workbook given as the TSV (the data job fails, its log and
the console say what the file is and what to do, no table is left), and the same command run
again after the fix, with nothing cleaned up by hand, succeeds."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from conftest import snakemake_command

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_input_corpus import GOOD  # noqa: E402


def _config(tmp_path: Path) -> Path:
    cfg = {
        "run": "wrong_inputs",
        "data": {"source": "uniprot_tsv", "tsv": "export.tsv", "split": {"method": "random"}},
        "model": {"pretrain": {"enabled": False}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snakemake(tmp_path: Path, configfile: Path) -> subprocess.CompletedProcess:
    target = "results/wrong_inputs/data/proteins.parquet"
    return subprocess.run(
        snakemake_command(tmp_path, configfile, "--cores", "1", target),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_wrong_inputs_through_snakemake(tmp_path):
    configfile = _config(tmp_path)
    run = tmp_path / "results" / "wrong_inputs"

    missing = _snakemake(tmp_path, configfile)
    assert missing.returncode != 0
    assert "plmxai: config key 'data.tsv': no such file or folder 'export.tsv'" in missing.stderr
    assert not run.exists()

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # an Excel workbook's parts
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    (tmp_path / "export.tsv").write_bytes(buf.getvalue())
    workbook = _snakemake(tmp_path, configfile)
    assert workbook.returncode != 0
    log = (run / "logs" / "data.log").read_text()
    said = "export.tsv: an Excel workbook (.xlsx), where a UniProt TSV export is expected: in Excel, File > Save As > 'Text (Tab delimited)'"
    assert said in log
    assert said in workbook.stderr  # on the console too, not only in the log
    assert not (run / "data").exists() or not any((run / "data").iterdir())

    (tmp_path / "export.tsv").write_text(GOOD)  # saved as the message says
    fixed = _snakemake(tmp_path, configfile)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    summary = json.loads((run / "data" / "data_summary.json").read_text())
    assert summary["kept"] == summary["rows"] == 30
