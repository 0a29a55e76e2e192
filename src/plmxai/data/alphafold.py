"""AlphaFold DB models by UniProt accession, with the UniProt download's rules: every request
retried with backoff on transient faults within a total time budget, a file put in place only
when whole (atomic rename), and nothing re-downloaded that is already there.

The prediction API (`<api>/<accession>`) names the model file of the current database
version; an accession without a model (HTTP 404) is recorded as absent, not an error.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import requests

from plmxai.data.download import (
    DownloadError,
    NotFoundError,
    _atomic_path,
    _Deadline,
    _Fetcher,
    _sha256_of,
    _TransientError,
)

log = logging.getLogger("plmxai.data.download")

ALPHAFOLD_API = "https://alphafold.ebi.ac.uk/api/prediction/"


def cached_model(folder: Path, accession: str) -> Path | None:
    found = sorted(folder.glob(f"AF-{accession}-F1-model_v*.pdb"))
    return found[-1] if found else None


def _check_pdb(text: str, url: str) -> None:
    if "\nATOM  " not in text and not text.startswith("ATOM  "):
        raise DownloadError(f"{url}: no ATOM records; not a PDB file")
    if not text.rstrip().endswith("END"):
        raise DownloadError(f"{url}: no END record; the file is incomplete")


def download_alphafold(
    accessions: Iterable[str],
    folder,
    api_url: str = ALPHAFOLD_API,
    max_retries: int = 8,
    backoff: float = 1.0,
    timeout: float = 60.0,
    total_timeout: float = 3600.0,
    session: requests.Session | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> pd.DataFrame:
    """Fetch the AlphaFold DB model (PDB format) of every accession into `folder`.

    Returns one row per accession: status (downloaded, cached, absent), file, sha256, retries.
    Raises DownloadError for anything but a missing model (bad JSON, an incomplete file after
    every retry, the total time budget spent); files fetched before the error stay, whole."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    own = session is None
    session = requests.Session() if own else session
    fetcher = _Fetcher(session, max_retries, backoff, timeout, _Deadline(total_timeout), sleep)
    rows = []
    try:
        for acc in dict.fromkeys(accessions):
            path = cached_model(folder, acc)
            if path is not None:
                rows.append(
                    {"accession": acc, "status": "cached", "file": path.name, "sha256": _sha256_of(path)}
                )
                continue
            try:
                meta = json.loads(fetcher.get(api_url.rstrip("/") + "/" + acc).text)
            except NotFoundError:
                rows.append({"accession": acc, "status": "absent", "file": None, "sha256": None})
                continue
            except json.JSONDecodeError as e:
                raise DownloadError(f"AlphaFold DB API answer for {acc} is not JSON: {e}") from e
            entry = next((m for m in meta if m.get("uniprotAccession") == acc), meta[0] if meta else None)
            if not entry or not entry.get("pdbUrl"):
                rows.append({"accession": acc, "status": "absent", "file": None, "sha256": None})
                continue
            url = entry["pdbUrl"]
            name = url.rsplit("/", 1)[-1]
            text = None
            for attempt in range(max_retries + 1):  # an incomplete body is a transient fault too
                text = fetcher.get(url).text
                try:
                    _check_pdb(text, url)
                    break
                except DownloadError as err:
                    if attempt == max_retries:
                        raise
                    # the UniProt download's backoff, retry count and total time budget
                    fetcher._wait_before_retry(url, attempt, _TransientError(str(err)))
            with _atomic_path(folder / name) as tmp:
                tmp.write_text(text, encoding="utf-8")
            rows.append(
                {"accession": acc, "status": "downloaded", "file": name, "sha256": _sha256_of(folder / name)}
            )
    finally:
        if own:
            session.close()
    table = pd.DataFrame(rows, columns=["accession", "status", "file", "sha256"])
    log.info("AlphaFold DB: %s (%d retries)", table["status"].value_counts().to_dict(), fetcher.retries)
    return table
