"""Atomic, provenance-carrying file output.

Every output is written under a temporary name in the destination folder and renamed into
place, so a killed job never leaves a file that looks complete. Parquet files carry their
provenance (config hash, package version, model id) in the schema metadata.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__

PROVENANCE_KEY = b"plmxai"


def config_hash(obj: Any) -> str:
    """A stable short hash of a JSON-serialisable config section."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _metadata(provenance: Mapping[str, Any] | None) -> dict[bytes, bytes]:
    prov = {"package": "plmxai", "version": __version__}
    prov.update(provenance or {})
    return {PROVENANCE_KEY: json.dumps(prov, sort_keys=True, default=str).encode()}


def write_parquet(
    df: pd.DataFrame, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write a DataFrame atomically with provenance in the file metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **_metadata(provenance)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


class ParquetStreamWriter:
    """Append DataFrames as row groups; the file appears under its name only on close().

    Used for tables too big to hold whole (per-residue relevance): each batch of proteins is
    written as it is produced.
    """

    def __init__(self, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.provenance = provenance
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def write(self, df: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(df, preserve_index=False, schema=self._schema)
        if self._writer is None:
            self._schema = table.schema.with_metadata(
                {**(table.schema.metadata or {}), **_metadata(self.provenance)}
            )
            table = table.replace_schema_metadata(self._schema.metadata)
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        self._writer.write_table(table)
        self.rows += len(df)

    def close(self, empty: pd.DataFrame | None = None) -> Path:
        """Finish the file. `empty` gives the schema when no batch was written."""
        if self._writer is None:
            if empty is None:
                raise ValueError(f"{self.path}: no rows written and no empty schema given")
            self.write(empty)
        self._writer.close()
        self._ctx.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def __enter__(self) -> ParquetStreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def write_text(text: str, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
