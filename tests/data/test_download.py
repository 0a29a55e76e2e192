"""download_uniprot against a real HTTP server on 127.0.0.1 that speaks the UniProt REST API's
paging protocol (TSV pages, Link rel="next" cursors, X-Total-Results) and injects faults."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

import plmxai
from plmxai.data.download import DownloadError, _retry_after_seconds, download_uniprot

HEADER = "Entry\tSequence\tEC number\tActive site"
OTHER_HEADER = "Entry\tSequence\tEC number\tBinding site"
ROWS = [
    f"P{i:05d}\t{'MKTAYIAKQR' * (1 + i % 3)}\t3.1.{i % 4}.{i}\t"
    + (f'ACT_SITE {5 + i}; /note="Nucleophile"; /evidence="ECO:0000255"' if i % 2 else "")
    for i in range(23)
]  # 23 rows, page size 5 -> 5 pages
PAGE_SIZE = 5
QUERY = "ec:* AND reviewed:true"
FIELDS = ["accession", "sequence", "ec", "ft_act_site"]
SEARCH_PATH = "/uniprotkb/search"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


# ---------------------------------------------------------------- the fixture server


class FixtureServer:
    """Serves ROWS as UniProt-style TSV pages; `faults[(page, attempt)]` spoils one response.

    Pages and attempts count from 0. Faults: "500", "503[:RETRY_AFTER]", "429[:RETRY_AFTER]"
    (Retry-After 2 and 1 unless given; "date+N" sends an HTTP date N s ahead), "reset",
    "close", "truncate", "bad_gzip", "stall", "404", "header_mismatch", "short_total".
    """

    def __init__(self, rows=ROWS, faults=None, content_encoding=False):
        self.rows, self.faults = list(rows), dict(faults or {})
        self.content_encoding = content_encoding  # also label gzip pages Content-Encoding: gzip
        self.attempts: Counter[int] = Counter()
        self.requests: list[dict] = []  # the query parameters of every request, in order
        self.cursors: dict[str, int] = {}  # opaque cursor -> page index
        self.lock = threading.Lock()
        self.stop_stalling = threading.Event()
        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.fixture = self
        # A short poll interval: shutdown() waits for the serving loop's next poll.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{SEARCH_PATH}"

    def stop(self) -> None:
        self.stop_stalling.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def next_cursor(self, page: int) -> str:
        cursor = uuid.uuid4().hex  # opaque, as UniProt's are: the client must not build them
        with self.lock:
            self.cursors[cursor] = page
        return cursor


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # broken pipes after injected faults are expected, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms ACK waits

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        fx: FixtureServer = self.server.fixture
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if split.path != SEARCH_PATH:
            return self._send(404, b"no such endpoint", {})
        with fx.lock:
            fx.requests.append(params)
        page = 0 if "cursor" not in params else fx.cursors.get(params["cursor"])
        if page is None:
            return self._send(400, b"Error messages\nInvalid cursor", {})
        with fx.lock:
            attempt = fx.attempts[page]
            fx.attempts[page] += 1
        fault = fx.faults.get((page, attempt), "")
        kind, _, arg = fault.partition(":")

        size = int(params["size"])
        compressed = params.get("compressed") == "true"
        n_pages = max(1, -(-len(fx.rows) // size))
        header = OTHER_HEADER if kind == "header_mismatch" else HEADER
        text = "".join(line + "\n" for line in [header, *fx.rows[page * size : (page + 1) * size]])
        body = gzip.compress(text.encode()) if compressed else text.encode()
        headers = {
            "Content-Type": "text/plain;format=tsv",
            "X-Total-Results": str(len(fx.rows) + (7 if kind == "short_total" else 0)),
            "X-UniProt-Release": "2099_01",
            "X-UniProt-Release-Date": "01-January-2099",
        }
        if compressed and fx.content_encoding:
            headers["Content-Encoding"] = "gzip"
        if page + 1 < n_pages:
            next_params = {k: v for k, v in params.items() if k != "cursor"}
            next_params["cursor"] = fx.next_cursor(page + 1)
            next_url = f"http://{self.headers['Host']}{SEARCH_PATH}?{urlencode(next_params)}"
            headers["Link"] = f'<{next_url}>; rel="next"'

        if kind == "500":
            return self._send(500, b"Internal server error (fixture)", {})
        if kind in ("503", "429"):
            retry_after = arg or ("2" if kind == "503" else "1")
            if retry_after.startswith("date+"):
                retry_after = formatdate(time.time() + float(retry_after[5:]), usegmt=True)
            return self._send(int(kind), b"slow down", {"Retry-After": retry_after})
        if kind == "404":
            return self._send(404, b"Error messages\nResource not found (fixture 404 text)", {})
        if kind == "reset":
            # Linger 0: close() sends RST, the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return self._drop(graceful=False)
        if kind == "close":
            return self._drop()  # RemoteDisconnected: closed without any response
        if kind == "stall":
            fx.stop_stalling.wait(10)  # outlasts the client's read timeout
            return self._drop()
        if kind == "truncate":
            return self._send(200, body[: len(body) // 2], headers, length=len(body))
        if kind == "bad_gzip":
            return self._send(200, gzip.compress(text.encode())[:-20], headers)
        return self._send(200, body, headers)

    def _send(self, status, body, headers, length=None):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        if length is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _drop(self, graceful=True):
        self.close_connection = True
        if graceful:  # FIN; without it, close() with linger 0 sends RST
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # An HTTP proxy from the environment would carry requests for 127.0.0.1 elsewhere.
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def serve():
    servers = []

    def start(**kwargs) -> FixtureServer:
        servers.append(FixtureServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def run(server, folder, out_name="uniprot.tsv", **kwargs):
    """Download from `server` into `folder`; returns (provenance, recorded sleeps)."""
    sleeps = []
    kwargs = {"page_size": PAGE_SIZE, "backoff": 0.5, "timeout": 5.0, "sleep": sleeps.append, **kwargs}
    prov = download_uniprot(
        QUERY, FIELDS, folder / out_name, folder / "provenance.json", base_url=server.url, **kwargs
    )
    return prov, sleeps


def fail(server, folder, out_name="uniprot.tsv", **kwargs):
    """Run a download that must fail; returns (error message, recorded sleeps)."""
    sleeps = []
    with pytest.raises(DownloadError) as info:
        run(server, folder, out_name, sleep=sleeps.append, **kwargs)
    return str(info.value), sleeps


def expected_text(rows=ROWS) -> str:
    return "".join(line + "\n" for line in [HEADER, *rows])


def assert_complete(folder, prov, out_name="uniprot.tsv", rows=ROWS, retries=0):
    out = folder / out_name
    data = out.read_bytes()
    text = gzip.decompress(data).decode() if out_name.endswith(".gz") else data.decode()
    assert text == expected_text(rows)
    assert prov == json.loads((folder / "provenance.json").read_text())
    assert prov["rows"] == len(rows)
    assert prov["pages"] == max(1, -(-len(rows) // PAGE_SIZE))
    assert prov["retries"] == retries
    assert prov["uniprot_release"] == "2099_01"
    assert prov["uniprot_release_date"] == "01-January-2099"
    assert prov["sha256"] == hashlib.sha256(data).hexdigest()
    assert_no_temporaries(folder)


def assert_nothing_written(folder, out_name="uniprot.tsv"):
    assert not (folder / out_name).exists()
    assert not (folder / "provenance.json").exists()
    assert_no_temporaries(folder)


def assert_no_temporaries(folder):
    assert [n for n in os.listdir(folder) if n.endswith(".tmp")] == []


# ---------------------------------------------------------------- 1. clean downloads


@pytest.mark.parametrize("compressed", [True, False])
def test_clean_download(serve, tmp_path, compressed):
    server = serve()
    prov, sleeps = run(server, tmp_path, compressed=compressed)
    assert_complete(tmp_path, prov)
    assert sleeps == []
    assert set(prov) == {
        "source",
        "base_url",
        "query",
        "fields",
        "uniprot_release",
        "uniprot_release_date",
        "retrieved_utc",
        "rows",
        "pages",
        "retries",
        "sha256",
        "plmxai_version",
    }
    assert prov["source"] == "UniProt REST API"
    assert (prov["base_url"], prov["query"], prov["fields"]) == (server.url, QUERY, FIELDS)
    assert prov["plmxai_version"] == plmxai.__version__
    assert prov["retrieved_utc"].endswith("+00:00")
    first, *later = server.requests
    assert first == {
        "query": QUERY,
        "fields": ",".join(FIELDS),
        "format": "tsv",
        "size": str(PAGE_SIZE),
        "compressed": str(compressed).lower(),
    }
    assert len(later) == 4 and all("cursor" in params for params in later)


@pytest.mark.parametrize("content_encoding", [False, True])
def test_gz_output(serve, tmp_path, content_encoding):
    # Content-Encoding: gzip or not, the gzip page must be decompressed exactly once.
    prov, _ = run(serve(content_encoding=content_encoding), tmp_path, out_name="uniprot.tsv.gz")
    assert_complete(tmp_path, prov, out_name="uniprot.tsv.gz")


def test_gz_output_is_reproducible(serve, tmp_path):
    server = serve()
    first, _ = run(server, tmp_path, out_name="a.tsv.gz")
    second, _ = run(server, tmp_path, out_name="b.tsv.gz")
    assert first["sha256"] == second["sha256"]


def test_empty_result(serve, tmp_path):
    prov, _ = run(serve(rows=[]), tmp_path)
    assert_complete(tmp_path, prov, rows=[])


def test_caller_session_is_used_and_left_open(serve, tmp_path):
    with requests.Session() as session:
        prov, _ = run(serve(), tmp_path, session=session)
        assert_complete(tmp_path, prov)
        prov, _ = run(serve(), tmp_path, session=session)  # still usable
        assert_complete(tmp_path, prov)


# ---------------------------------------------------------------- 2. retried HTTP statuses


def test_500_then_success(serve, tmp_path, caplog):
    server = serve(faults={(1, 0): "500"})
    with caplog.at_level(logging.INFO, logger="plmxai.data.download"):
        prov, sleeps = run(server, tmp_path, backoff=0.5)
    assert_complete(tmp_path, prov, retries=1)
    assert sleeps == [0.5]
    assert server.attempts[1] == 2
    retry_logs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(retry_logs) == 1 and "HTTP 500" in retry_logs[0] and "0.5 s" in retry_logs[0]
    assert "23 rows in 5 pages" in caplog.records[-1].getMessage()


def test_backoff_doubles_and_is_capped(serve, tmp_path):
    server = serve(faults={(0, a): "500" for a in range(4)})
    prov, sleeps = run(server, tmp_path, backoff=20.0)
    assert_complete(tmp_path, prov, retries=4)
    assert sleeps == [20.0, 40.0, 60.0, 60.0]


def test_503_honours_retry_after(serve, tmp_path):
    prov, sleeps = run(serve(faults={(2, 0): "503"}), tmp_path, backoff=0.25)
    assert_complete(tmp_path, prov, retries=1)
    assert sleeps == [2.0]


def test_503_without_usable_retry_after_backs_off(serve, tmp_path):
    prov, sleeps = run(serve(faults={(2, 0): "503:soon"}), tmp_path, backoff=0.25)
    assert_complete(tmp_path, prov, retries=1)
    assert sleeps == [0.25]


def test_503_retry_after_http_date(serve, tmp_path):
    prov, sleeps = run(serve(faults={(0, 0): "503:date+10"}), tmp_path, backoff=0.25)
    assert_complete(tmp_path, prov, retries=1)
    assert len(sleeps) == 1 and 8.0 <= sleeps[0] <= 10.0


def test_429_honours_retry_after(serve, tmp_path):
    prov, sleeps = run(serve(faults={(0, 0): "429"}), tmp_path, backoff=0.25)
    assert_complete(tmp_path, prov, retries=1)
    assert sleeps == [1]


def test_retry_after_parsing():
    from datetime import UTC, datetime

    now = datetime(2099, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert _retry_after_seconds("7", now) == 7.0
    assert _retry_after_seconds(" 0 ", now) == 0.0
    assert _retry_after_seconds("Thu, 01 Jan 2099 12:00:30 GMT", now) == 30.0
    assert _retry_after_seconds("Thu, 01 Jan 2099 11:00:00 GMT", now) == 0.0  # in the past
    assert _retry_after_seconds("-3", now) is None
    assert _retry_after_seconds("tomorrow", now) is None
    assert _retry_after_seconds(None, now) is None


# ---------------------------------------------------------------- 3. broken transfers


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("reset", "Connection reset by peer"),
        ("close", "Remote end closed connection without response"),
        ("truncate", "IncompleteRead"),
        ("bad_gzip", "corrupt gzip body"),
        ("stall", "Read timed out"),
    ],
)
def test_broken_transfer_then_success(serve, tmp_path, caplog, fault, reason):
    server = serve(faults={(3, 0): fault})
    with caplog.at_level(logging.WARNING, logger="plmxai.data.download"):
        prov, sleeps = run(server, tmp_path, backoff=0.5, timeout=0.3)
    assert_complete(tmp_path, prov, retries=1)
    assert sleeps == [0.5]
    assert server.attempts[3] == 2
    [retry_log] = [r.getMessage() for r in caplog.records]
    assert reason in retry_log


def test_requests_detects_truncated_body(serve):
    # The downloader relies on this: a body shorter than its Content-Length must raise, not
    # come back as a short page.
    server = serve(faults={(0, 0): "truncate", (0, 1): "truncate"})
    url = f"{server.url}?{urlencode({'query': QUERY, 'size': 5, 'compressed': 'false'})}"
    with requests.Session() as session:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            session.get(url, timeout=5)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            with session.get(url, timeout=5, stream=True) as response:
                b"".join(response.iter_content(1 << 16))


# ---------------------------------------------------------------- 4., 5. giving up


def test_persistent_500_gives_up(serve, tmp_path):
    server = serve(faults={(0, a): "500" for a in range(10)})
    message, sleeps = fail(server, tmp_path, max_retries=2, backoff=0.5)
    assert server.url in message and "HTTP 500" in message and "after 3 attempts" in message
    assert sleeps == [0.5, 1.0]
    assert server.attempts[0] == 3
    assert_nothing_written(tmp_path)


def test_404_fails_at_once_with_server_message(serve, tmp_path):
    server = serve(faults={(2, 0): "404"})
    message, sleeps = fail(server, tmp_path)
    assert "HTTP 404" in message and "Resource not found (fixture 404 text)" in message
    assert "cursor=" in message  # names the page's URL
    assert sleeps == [] and server.attempts[2] == 1
    assert_nothing_written(tmp_path)


def test_400_fails_at_once(serve, tmp_path):
    server = serve()
    sleeps = []
    with pytest.raises(DownloadError, match="(?s)HTTP 400.*Invalid cursor"):
        download_uniprot(
            QUERY,
            FIELDS,
            tmp_path / "uniprot.tsv",
            tmp_path / "provenance.json",
            base_url=server.url + "?cursor=bogus",
            sleep=sleeps.append,
        )
    assert sleeps == [] and len(server.requests) == 1
    assert_nothing_written(tmp_path)


# ---------------------------------------------------------------- 6. inconsistent pages


def test_header_mismatch(serve, tmp_path):
    message, _ = fail(serve(faults={(3, 0): "header_mismatch"}), tmp_path)
    assert "header" in message and "Binding site" in message
    assert_nothing_written(tmp_path)


def test_short_total(serve, tmp_path):
    message, _ = fail(serve(faults={(0, 0): "short_total"}), tmp_path, out_name="u.tsv.gz")
    assert "23" in message and "30" in message
    assert_nothing_written(tmp_path, out_name="u.tsv.gz")


# ---------------------------------------------------------------- 7. total timeout


def test_retry_after_beyond_total_timeout(serve, tmp_path):
    server = serve(faults={(1, 0): "503:3600"})
    message, sleeps = fail(server, tmp_path, total_timeout=5.0)
    assert "total_timeout" in message and "3600" in message
    assert sleeps == []  # failed at once instead of sleeping in vain
    assert_nothing_written(tmp_path)


def test_total_timeout_bounds_a_stalled_read(serve, tmp_path):
    server = serve(faults={(1, 0): "stall"})
    start = time.monotonic()
    message, _ = fail(server, tmp_path, total_timeout=0.5, timeout=60.0)
    assert time.monotonic() - start < 3.0
    assert "total_timeout" in message
    assert_nothing_written(tmp_path)


# ---------------------------------------------------------------- 8. failures keep old output


def test_failed_download_keeps_previous_output(serve, tmp_path):
    prov, _ = run(serve(), tmp_path)
    out, prov_file = tmp_path / "uniprot.tsv", tmp_path / "provenance.json"
    before = out.read_bytes(), prov_file.read_bytes(), out.stat().st_mtime_ns
    fail(serve(faults={(4, 0): "404"}), tmp_path)
    assert (out.read_bytes(), prov_file.read_bytes(), out.stat().st_mtime_ns) == before
    assert_no_temporaries(tmp_path)


def test_interrupt_removes_temporary_file(serve, tmp_path):
    def interrupted_sleep(seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(serve(faults={(2, 0): "500"}), tmp_path, sleep=interrupted_sleep)
    assert_nothing_written(tmp_path)


# ---------------------------------------------------------------- through the workflow


@pytest.mark.integration
def test_workflow_download_rule(serve, tmp_path):
    """`data.source: uniprot_rest` downloads through the fault, then the data stage reads it."""
    import subprocess

    import pandas as pd
    import yaml

    from tests.conftest import snakemake_command

    rows = [
        f'Q{i:05d}\t{"MKTAYIAKQRW" * (2 + i % 3)}\t{1 + i % 2}.1.1.{i}\tACT_SITE {3 + i % 5}; /evidence="ECO:0000269"'
        for i in range(23)
    ]
    server = serve(rows=rows, faults={(1, 0): "500", (3, 0): "reset"})
    cfg = {
        "run": "rest",
        "data": {
            "source": "uniprot_rest",
            "min_class_size": 1,
            "split": {"method": "random"},
            "rest": {"base_url": server.url, "page_size": PAGE_SIZE, "query": QUERY, "fields": FIELDS},
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/rest/data/proteins.parquet"
    proc = subprocess.run(
        snakemake_command(tmp_path, tmp_path / "c.yaml", "--cores", "1", target),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    prov = json.loads((tmp_path / "results/rest/data/raw/provenance.json").read_text())
    assert prov["rows"] == 23 and prov["pages"] == 5 and prov["retries"] == 2
    assert prov["uniprot_release"] == "2099_01"
    prot = pd.read_parquet(tmp_path / target)
    assert len(prot) == 23 and set(prot["label"]) == {"1", "2"}
    log = (tmp_path / "results/rest/logs/download.log").read_text()
    assert "HTTP 500" in log and "done in" in log.splitlines()[-1]
