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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plmxai._version import __version__

PROVENANCE_KEY = b"plmxai"


def config_hash(obj: Any) -> str:
    """A stable short hash of a JSON-serialisable config section."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file; of a folder, the sha256 of its files' `<relative path> <sha256>` lines
    in sorted order (an input folder such as a set of structures has one checksum too)."""
    path = Path(path)
    if path.is_dir():
        lines = [
            f"{p.relative_to(path).as_posix()} {sha256_file(p)}\n"
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
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


def parquet_columns(path: str | os.PathLike) -> list[str]:
    """The column names of a Parquet file, read from its schema alone."""
    return pq.read_schema(path).names


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


def write_partitioned(
    chunks: list, path: str | os.PathLike, column: str, provenance: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """Gather Parquet files into a dataset directory partitioned by `column` (hive layout,
    `column=value/part-0.parquet`), streaming one row group at a time: memory holds one row
    group, not the data. Chunks are read in order, so the dataset's row order is theirs.
    Returns rows per partition. The directory appears under its name only when complete."""
    writers: dict[str, pq.ParquetWriter] = {}
    rows: dict[str, int] = {}
    with atomic_path(path, is_dir=True) as tmp:
        try:
            for chunk in chunks:
                f = pq.ParquetFile(chunk)
                for i in range(f.num_row_groups):
                    table = f.read_row_group(i)
                    keys = table.column(column).to_pylist()
                    for value in dict.fromkeys(keys):
                        part = table.filter(pc.equal(table.column(column), value)).drop_columns([column])
                        w = writers.get(value)
                        if w is None:
                            (tmp / f"{column}={value}").mkdir()
                            schema = part.schema.with_metadata(_metadata(provenance))
                            w = writers[value] = pq.ParquetWriter(
                                tmp / f"{column}={value}" / "part-0.parquet", schema
                            )
                        w.write_table(part.replace_schema_metadata(w.schema.metadata))
                        rows[value] = rows.get(value, 0) + len(part)
        finally:
            for w in writers.values():
                w.close()
    return rows


def read_partitioned(
    path: str | os.PathLike, column: str, values: list[str] | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Read a dataset written by `write_partitioned`, or only its partitions in `values`; the
    partition column comes back as strings."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a partitioned dataset directory")
    found = partitions(path, column)
    parts = []
    for value in found if values is None else [v for v in found if v in set(values)]:
        df = pd.read_parquet(path / f"{column}={value}" / "part-0.parquet", columns=columns)
        df.insert(1, column, value)
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=[column] + (columns or []))
    return pd.concat(parts, ignore_index=True)


def partitions(path: str | os.PathLike, column: str) -> list[str]:
    return sorted(p.name.split("=", 1)[1] for p in Path(path).glob(f"{column}=*"))


# beside a saved model: the pretrained checkpoint it came from (plmxai.model.checkpoint), here so
# that stages without torch (the report) can read it
CHECKPOINT_FILE = "plmxai_checkpoint.json"


def write_checkpoint_info(info: Mapping[str, Any], folder: str | os.PathLike) -> None:
    (Path(folder) / CHECKPOINT_FILE).write_text(json.dumps(dict(info), indent=1, sort_keys=True) + "\n")


def read_checkpoint_info(folder: str | os.PathLike) -> dict | None:
    """The checkpoint provenance beside a saved model, or None (random weights)."""
    p = Path(folder) / CHECKPOINT_FILE
    return json.loads(p.read_text()) if p.is_file() else None


def inherited_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint provenance of an input table, carried on by the stages that read it."""
    return {k: v for k, v in read_provenance(path).items() if k.startswith("checkpoint")}
