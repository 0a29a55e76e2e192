"""Download UniProtKB search results as TSV from the UniProt REST API, with provenance.

The search endpoint pages with a cursor: every page is a complete TSV (header line first) and
the next page's URL is in the `Link: <URL>; rel="next"` response header. The download
survives the faults a long transfer meets (dropped connections, truncated bodies, 5xx, rate
limiting) by retrying each request with exponential backoff, checks that what arrived is
whole (same header on every page, row count equal to `X-Total-Results`), and only then puts
the file in place, so a failed run never leaves a partial TSV where a good one is expected.

    from plmxai.data.download import download_uniprot
    download_uniprot("ec:* AND reviewed:true", ["accession", "sequence", "ec", "ft_act_site"],
                     "uniprot.tsv.gz", "uniprot.provenance.json")
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import hashlib
import json
import logging
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import requests

from plmxai._version import __version__
from plmxai.data.recognise import GZIP_MAGIC

log = logging.getLogger("plmxai.data.download")

DEFAULT_BASE_URL = "https://rest.uniprot.org/uniprotkb/search"
MAX_BACKOFF_S = 60.0
ERROR_BODY_CHARS = 500
CHUNK_BYTES = 1 << 16
# Statuses whose Retry-After header is a promise worth honouring instead of our own backoff.
RETRY_AFTER_STATUSES = frozenset({429, 503})
# Failures of the transfer itself, not of the request: another attempt may well succeed.
TRANSIENT_REQUEST_ERRORS = (
    requests.exceptions.ConnectionError,  # refused, reset, remote closed; also read timeouts
    requests.exceptions.Timeout,  # mid-body
    requests.exceptions.ChunkedEncodingError,  # fewer bytes than Content-Length, broken chunks
    requests.exceptions.ContentDecodingError,  # truncated Content-Encoding stream
)


class DownloadError(RuntimeError):
    """The download could not be completed; nothing was written to the output path."""


class NotFoundError(DownloadError):
    """HTTP 404: the resource does not exist (for AlphaFold DB: no model of that accession)."""


class _TransientError(Exception):
    """One failed attempt that is worth retrying; `retry_after` is the server's requested wait."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class _Page:
    text: str
    headers: requests.structures.CaseInsensitiveDict
    next_url: str | None


class _Deadline:
    """The whole download's time budget, on a monotonic clock so wall-clock jumps don't count."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def check(self, doing: str) -> None:
        if self.remaining() <= 0:
            raise DownloadError(f"total_timeout of {self.seconds:g} s exceeded while {doing}")


def download_uniprot(
    query: str,
    fields: list[str],
    out_path,
    provenance_path,
    base_url: str = DEFAULT_BASE_URL,
    page_size: int = 500,
    compressed: bool = True,
    max_retries: int = 8,
    backoff: float = 1.0,
    timeout: float = 60.0,
    total_timeout: float = 3600.0,
    session: requests.Session | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> dict:
    """Download all UniProtKB entries matching `query` as TSV with the given return `fields`.

    `out_path` is written atomically (gzip if it ends in ".gz"), then `provenance_path` (JSON:
    release, query, row count, sha256, ...). Each request is retried up to `max_retries` times
    on transient failures, waiting `backoff * 2**attempt` seconds (at most 60) or the server's
    Retry-After; the whole download is bounded by `total_timeout` seconds. Returns the
    provenance dict; raises `DownloadError` when the download cannot be completed.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    if max_retries < 0:
        raise ValueError(f"max_retries must not be negative, not {max_retries}")
    out_path, provenance_path = Path(out_path), Path(provenance_path)
    retrieved_utc = datetime.now(UTC).isoformat(timespec="seconds")
    first_url = _search_url(base_url, query, fields, page_size, compressed)
    deadline = _Deadline(total_timeout)
    own_session = session is None
    session = requests.Session() if own_session else session
    fetcher = _Fetcher(session, max_retries, backoff, timeout, deadline, sleep)
    try:
        with _atomic_path(out_path) as tmp:
            result = _download_pages(fetcher, first_url, tmp, gz=out_path.name.endswith(".gz"))
            sha256 = _sha256_of(tmp)  # the bytes that os.replace() is about to put in place
    finally:
        if own_session:
            session.close()

    provenance = {
        "source": "UniProt REST API",
        "base_url": base_url,
        "query": query,
        "fields": list(fields),
        "uniprot_release": result.release,
        "uniprot_release_date": result.release_date,
        "retrieved_utc": retrieved_utc,
        "rows": result.rows,
        "pages": result.pages,
        "retries": fetcher.retries,
        "sha256": sha256,
        "plmxai_version": __version__,
    }
    with _atomic_path(provenance_path) as tmp:
        tmp.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    log.info(
        "downloaded %d rows in %d pages (%d retries, UniProt release %s) to %s",
        result.rows,
        result.pages,
        fetcher.retries,
        result.release,
        out_path,
    )
    return provenance


def _search_url(base_url: str, query: str, fields: list[str], page_size: int, compressed: bool) -> str:
    # Built once up front so that error messages can name the exact URL that failed.
    params = {
        "query": query,
        "format": "tsv",
        "size": page_size,
        "compressed": "true" if compressed else "false",
    }
    if fields:  # no fields: the API's default columns
        params["fields"] = ",".join(fields)
    return requests.Request("GET", base_url, params=params).prepare().url


@dataclass
class _Result:
    rows: int = 0
    pages: int = 0
    release: str | None = None
    release_date: str | None = None


def _download_pages(fetcher: _Fetcher, url: str, tmp: Path, gz: bool) -> _Result:
    """Follow the cursor from `url` to the last page, writing header and rows to `tmp`."""
    result = _Result()
    header: str | None = None
    expected_rows: int | None = None
    seen_urls = {url}
    with _open_output(tmp, gz) as out:
        while url is not None:
            page = fetcher.get(url)
            page_header, rows = _split_tsv(page.text)
            if result.pages == 0:
                # The first page's view is the one the whole download is checked against.
                result.release = page.headers.get("X-UniProt-Release")
                result.release_date = page.headers.get("X-UniProt-Release-Date")
                expected_rows = _total_results(page.headers, url)
            if header is None and page_header is not None:
                header = page_header
                out.write(header.encode("utf-8") + b"\n")
            elif page_header is not None and page_header != header:
                raise DownloadError(
                    f"page {result.pages + 1} ({url}) has a different header line than page 1:"
                    f" {page_header!r} instead of {header!r}"
                )
            if rows:
                out.write("".join(row + "\n" for row in rows).encode("utf-8"))
            result.rows += len(rows)
            result.pages += 1
            url = page.next_url
            if url in seen_urls:  # a server bug would otherwise make this loop forever
                raise DownloadError(f"pagination loops back to an earlier page: {url}")
            seen_urls.add(url)
    if expected_rows is not None and result.rows != expected_rows:
        raise DownloadError(
            f"received {result.rows} rows in {result.pages} pages, but the server announced "
            f"X-Total-Results: {expected_rows}"
        )
    return result


def _split_tsv(text: str) -> tuple[str | None, list[str]]:
    """A page's header line and data rows; an empty page has neither."""
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":  # the newline that ends the last row
        lines.pop()
    if not lines:
        return None, []
    return lines[0], lines[1:]


def _total_results(headers, url: str) -> int | None:
    value = headers.get("X-Total-Results")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DownloadError(f"unreadable X-Total-Results header {value!r} from {url}") from None


class _Fetcher:
    """GETs one page with retries, counting every retried attempt in `retries`."""

    def __init__(
        self,
        session: requests.Session,
        max_retries: int,
        backoff: float,
        timeout: float,
        deadline: _Deadline,
        sleep: Callable[[float], object],
    ):
        self.session, self.max_retries, self.backoff = session, max_retries, backoff
        self.timeout, self.deadline, self.sleep = timeout, deadline, sleep
        self.retries = 0

    def get(self, url: str) -> _Page:
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            self.deadline.check(f"requesting {url}")
            try:
                return self._attempt(url)
            except _TransientError as err:
                if attempt + 1 == attempts:
                    raise DownloadError(
                        f"giving up on {url} after {attempts} attempts; last error: {err}"
                    ) from err
                self._wait_before_retry(url, attempt, err)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_before_retry(self, url: str, attempt: int, err: _TransientError) -> None:
        if err.retry_after is not None:
            wait = err.retry_after
        else:
            wait = min(self.backoff * 2**attempt, MAX_BACKOFF_S)
        left = self.deadline.remaining()
        if wait >= left:
            # Sleeping first and failing afterwards would only waste the caller's time.
            raise DownloadError(
                f"{url} failed ({err}) and the next attempt would start after {wait:g} s, but "
                f"only {max(left, 0):.1f} s of total_timeout={self.deadline.seconds:g} s remain"
            ) from err
        self.retries += 1
        log.warning("retry %d/%d of %s in %g s: %s", attempt + 1, self.max_retries, url, wait, err)
        self.sleep(wait)

    def _attempt(self, url: str) -> _Page:
        # A per-request timeout longer than what is left of the total would overrun it.
        timeout = max(min(self.timeout, self.deadline.remaining()), 0.001)
        try:
            with self.session.get(
                url, timeout=timeout, stream=True, headers={"User-Agent": f"plmxai/{__version__}"}
            ) as response:
                _raise_for_status(response, url)
                body = self._read_body(response, url)
                headers, next_url = response.headers, _next_url(response)
        except TRANSIENT_REQUEST_ERRORS as err:
            raise _TransientError(f"{type(err).__name__}: {err}") from err
        except requests.exceptions.RequestException as err:  # bad URL, too many redirects, ...
            raise DownloadError(f"request to {url} failed: {err}") from err
        try:
            text = _gunzip_if_gzip(body).decode("utf-8")
        except UnicodeDecodeError as err:
            raise DownloadError(f"{url} returned a body that is not UTF-8 text: {err}") from err
        return _Page(text, headers, next_url)

    def _read_body(self, response: requests.Response, url: str) -> bytes:
        # Read in chunks so a server that trickles bytes cannot outlast total_timeout.
        chunks = []
        for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
            chunks.append(chunk)
            self.deadline.check(f"reading {url}")
        return b"".join(chunks)


def _next_url(response: requests.Response) -> str | None:
    link = response.links.get("next", {}).get("url")
    # The API sends absolute URLs; resolving costs nothing and survives a relative one.
    return urljoin(response.url, link) if link else None


def _raise_for_status(response: requests.Response, url: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status >= 500 or status == 429:
        retry_after = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        raise _TransientError(f"HTTP {status} {response.reason}", retry_after)
    cls = NotFoundError if status == 404 else DownloadError
    raise cls(f"HTTP {status} {response.reason} from {url}: {_error_message(response)}")


def _error_message(response: requests.Response) -> str:
    # The body says what was wrong with the query; it is worth having, but not worth failing over.
    try:
        body = _gunzip_if_gzip(response.content)
    except (requests.exceptions.RequestException, _TransientError):
        return "(no readable message body)"
    return body.decode("utf-8", errors="replace").strip()[:ERROR_BODY_CHARS]


def _retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        log.warning("ignoring unreadable Retry-After header %r", value)
        return None
    if when.tzinfo is None:  # HTTP dates are GMT even when they don't say so
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


def _gunzip_if_gzip(body: bytes) -> bytes:
    # compressed=true pages are gzip files, not Content-Encoding: the headers can't be trusted
    # to say so, the magic bytes can.
    if body[:2] != GZIP_MAGIC:
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as err:
        raise _TransientError(f"corrupt gzip body ({len(body)} bytes): {err}") from err


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` that replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so that os.replace() is a rename within one file system, hence atomic.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a data file private by accident
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave a stray partial file
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def _open_output(path: Path, gz: bool) -> Iterator:
    """A binary writer on `path`, gzip if asked, flushed to disk when the block ends."""
    with open(path, "wb") as raw:
        if gz:
            # No file name and mtime 0 in the gzip header: the same rows give the same sha256.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
                yield out
        else:
            yield raw
        raw.flush()
        os.fsync(raw.fileno())  # the rename must not become visible before the data


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
