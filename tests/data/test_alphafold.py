"""AlphaFold DB downloads against a local HTTP server that speaks the prediction API."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plmxai.data.alphafold import download_alphafold
from plmxai.data.download import DownloadError

PDB = (
    "HEADER    PREDICTED MODEL\n"
    "ATOM      1  CA  MET A   1      11.104  13.207   2.100  1.00 90.00           C\n"
    "ATOM      2  CA  LYS A   2      12.560  16.574   3.112  1.00 90.00           C\n"
    "END\n"
)


class Handler(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    faults: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        n = Handler.hits[self.path]
        Handler.hits[self.path] += 1
        fault = Handler.faults.get((self.path, n))
        if fault == "500":
            return self._send(500, b"busy")
        if self.path == "/api/prediction/P11111":
            body = json.dumps(
                [
                    {
                        "uniprotAccession": "P11111",
                        "pdbUrl": f"http://127.0.0.1:{self.server.server_port}/files/AF-P11111-F1-model_v4.pdb",
                    }
                ]
            )
            return self._send(200, body.encode())
        if self.path == "/files/AF-P11111-F1-model_v4.pdb":
            return self._send(200, (PDB[:100] if fault == "truncate" else PDB).encode())
        if self.path == "/api/prediction/P22222":
            return self._send(200, b"<html>not json</html>")
        return self._send(404, b'{"detail": "no model"}')

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    Handler.hits, Handler.faults = Counter(), {}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/api/prediction/"
    srv.shutdown()


def test_download_retry_absent_and_cache(server, tmp_path):
    Handler.faults = {
        ("/api/prediction/P11111", 0): "500",
        ("/files/AF-P11111-F1-model_v4.pdb", 0): "truncate",
    }
    waits = []
    table = download_alphafold(["P11111", "Q99999", "P11111"], tmp_path, api_url=server, sleep=waits.append)
    assert table.set_index("accession")["status"].to_dict() == {"P11111": "downloaded", "Q99999": "absent"}
    assert (tmp_path / "AF-P11111-F1-model_v4.pdb").read_text() == PDB
    assert len(waits) == 2  # the 500 and the incomplete file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["AF-P11111-F1-model_v4.pdb"]  # no temporaries
    before = sum(Handler.hits.values())
    again = download_alphafold(["P11111"], tmp_path, api_url=server, sleep=waits.append)
    assert again["status"].tolist() == ["cached"] and sum(Handler.hits.values()) == before
    assert again["sha256"].iloc[0] == table.set_index("accession").loc["P11111", "sha256"]


def test_bad_answers_fail_with_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match="P22222 is not JSON"):
        download_alphafold(["P22222"], tmp_path, api_url=server, sleep=lambda s: None)
    Handler.faults = {("/files/AF-P11111-F1-model_v4.pdb", i): "truncate" for i in range(3)}
    with pytest.raises(DownloadError, match="no END record"):
        download_alphafold(["P11111"], tmp_path, api_url=server, max_retries=2, sleep=lambda s: None)
    assert not list(tmp_path.iterdir())


def test_workflow_stage_fetches_the_analysed_proteins_and_finds_them(server, tmp_path):
    import pandas as pd

    from plmxai.attention.inputs import structure_lookup
    from plmxai.config import validate_config
    from plmxai.stages.attention import alphafold

    tokens = pd.DataFrame({"accession": ["P11111", "Q99999", "R00000"], "split": ["test", "test", "val"]})
    tokens.to_parquet(tmp_path / "tokens.parquet")
    folder = tmp_path / "af"
    cfg = validate_config(
        {
            "attention": {
                "structures": {"alphafold": True, "alphafold_folder": str(folder), "alphafold_api": server}
            }
        }
    )
    alphafold(
        tokens=tmp_path / "tokens.parquet",
        out_table=tmp_path / "af.parquet",
        attention=cfg["attention"],
        seed=cfg["seed"],
    )
    table = pd.read_parquet(tmp_path / "af.parquet")
    # R00000 is in neither the attention split (test) nor the probes' (train, test)
    assert table.set_index("accession")["status"].to_dict() == {"P11111": "downloaded", "Q99999": "absent"}
    lookup = structure_lookup(cfg["attention"]["structures"], tokens["accession"])
    assert lookup.index.tolist() == ["P11111"] and lookup.loc["P11111", "path"].endswith(
        "AF-P11111-F1-model_v4.pdb"
    )
