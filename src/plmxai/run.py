"""A finished run, read from results/<run>/: its tables by name, for notebooks.

run = px.Run("results/demo")
run.variants                                   # ['finetuned', 'frozen', 'shuffled']
run.table("statistics", variant="finetuned")   # a DataFrame
run.tables()                                   # what the run holds, with row counts
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from plmxai.tables import read_partitioned, read_provenance

# name -> path inside the run folder, for tables of the run as a whole
RUN_TABLES = {
    "proteins": "data/proteins.parquet",
    "annotations": "data/annotations.parquet",
    "tokens": "model/tokens.parquet",
    "contrast": "attribution/contrast.parquet",
    "alphafold": "attention/alphafold.parquet",
    "attention_change": "attention/change.parquet",
}
# name -> path inside a variant's folder (<run>/<variant>/), by stage
VARIANT_TABLES = {
    # model
    "predictions": "model/predictions.parquet",
    "metrics": "model/metrics.parquet",
    "confusion": "model/confusion.parquet",
    "training": "model/training.parquet",
    # knowledge
    "neuron_activation": "knowledge/neuron_activation.parquet",
    "ig_scores": "knowledge/ig_scores.parquet",
    "knowledge_completeness": "knowledge/completeness.parquet",
    "preservation": "knowledge/preservation.parquet",
    "preservation_runs": "knowledge/preservation_runs.parquet",
    "density": "knowledge/density.parquet",
    "agreement": "knowledge/agreement.parquet",
    # attribution
    "relevance": "attribution/relevance",
    "completeness": "attribution/completeness.parquet",
    "statistics": "attribution/statistics.parquet",
    "protein_correlations": "attribution/protein_correlations.parquet",
    "faithfulness": "attribution/faithfulness.parquet",
    "faithfulness_runs": "attribution/faithfulness_runs.parquet",
    # attention
    "attention": "attention/properties.parquet",
    "layer_profiles": "attention/layer_profiles.parquet",
    "blosum62": "attention/blosum62.parquet",
    "structures": "attention/structures.parquet",
    "probes": "attention/probes.parquet",
}


class Run:
    """The tables of a finished run (results/<run>/), by name: RUN_TABLES for the run as a
    whole, VARIANT_TABLES for each variant."""

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / "data" / "proteins.parquet").is_file():
            raise FileNotFoundError(
                f"{self.path}: not a run folder (no data/proteins.parquet); a run's folder is "
                "results/<run>/, with <run> the config's `run`"
            )

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, variants={self.variants})"

    @property
    def variants(self) -> list[str]:
        """The variants with a model in this run, in the order the workflow runs them."""
        order = ["finetuned", "frozen", "shuffled", "given"]
        found = [p.name for p in self.path.iterdir() if (p / "model" / "predictions.parquet").is_file()]
        return sorted(found, key=lambda v: (order.index(v) if v in order else len(order), v))

    @property
    def summary(self) -> dict:
        """The data stage's summary: counts of what was read, kept and dropped, and why."""
        return json.loads((self.path / "data" / "data_summary.json").read_text())

    def file(self, name: str, variant: str | None = None) -> Path:
        """The path of a table (a folder for the layer-partitioned `relevance`)."""
        if variant is not None and pd.isna(variant):  # as tables() lists a run-wide table
            variant = None
        if name in RUN_TABLES:
            if variant is not None:
                raise ValueError(f"table {name!r} belongs to the run, not to a variant: leave variant out")
            return self.path / RUN_TABLES[name]
        if name not in VARIANT_TABLES:
            raise KeyError(f"no table {name!r}; tables: {sorted(RUN_TABLES) + sorted(VARIANT_TABLES)}")
        if variant is None:
            if len(self.variants) != 1:
                raise ValueError(f"table {name!r} exists per variant: give variant= one of {self.variants}")
            variant = self.variants[0]
        if variant not in self.variants:
            raise ValueError(f"{self.path}: no variant {variant!r}; variants: {self.variants}")
        return self.path / variant / VARIANT_TABLES[name]

    def table(self, name: str, variant: str | None = None, layers: list[str] | None = None) -> pd.DataFrame:
        """A table as a DataFrame; `relevance` can be read for some `layers` only."""
        path = self.file(name, variant)
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: this run has no {name!r} table (its stage was skipped or has not run)"
            )
        if path.is_dir():
            return read_partitioned(path, "layer", layers)
        return pd.read_parquet(path)

    def provenance(self, name: str, variant: str | None = None) -> dict:
        """What made a table: stage, config hash, package version, checkpoint and its sha256."""
        path = self.file(name, variant)
        if path.is_dir():
            path = next(iter(sorted(path.rglob("*.parquet"))))
        return read_provenance(path)

    def tables(self) -> pd.DataFrame:
        """Every table this run holds: name, variant, path, rows."""
        rows = []
        for name, rel in RUN_TABLES.items():
            if (self.path / rel).exists():
                rows.append({"name": name, "variant": None, "path": str(self.path / rel)})
        for v in self.variants:
            for name, rel in VARIANT_TABLES.items():
                if (self.path / v / rel).exists():
                    rows.append({"name": name, "variant": v, "path": str(self.path / v / rel)})
        out = pd.DataFrame(rows, columns=["name", "variant", "path"])
        out["rows"] = [_rows(Path(p)) for p in out["path"]]
        return out


# columns that hold how long something took: never the same twice, not compared
TIMING_COLUMNS = {"seconds"}


def compare(a: Run, b: Run) -> pd.DataFrame:
    """Every table of two runs, side by side: rows in each and whether the contents are
    identical (values, exactly; the provenance in the metadata and the wall-clock columns of
    TIMING_COLUMNS are not compared). Tables in one run only are listed with identical = False."""
    ta, tb = a.tables(), b.tables()
    key = ["name", "variant"]
    both = ta.merge(tb, on=key, how="outer", suffixes=("_a", "_b"), indicator="where")
    identical, detail = [], []
    for rec in both.itertuples():
        if rec.where != "both":
            identical.append(False)
            detail.append(f"only in {'the first' if rec.where == 'left_only' else 'the second'} run")
            continue
        x, y = a.table(rec.name, rec.variant), b.table(rec.name, rec.variant)
        timing = sorted(TIMING_COLUMNS & set(x.columns) & set(y.columns))
        x, y = x.drop(columns=timing), y.drop(columns=timing)
        if rec.name == "relevance":  # partitions come back in file order
            order = ["accession", "layer", "head", "position"]
            x, y = (t.sort_values(order).reset_index(drop=True) for t in (x, y))
        try:
            pd.testing.assert_frame_equal(x, y, check_exact=True, check_categorical=False)
            identical.append(True)
            detail.append(f"not compared: {', '.join(timing)} (wall clock)" if timing else "")
        except AssertionError as err:
            identical.append(False)
            detail.append(" ".join(str(err).split())[:200])
    out = both[key + ["rows_a", "rows_b"]].copy()
    out["identical"] = identical
    out["detail"] = detail
    return out


def main(argv: list[str] | None = None) -> int:
    """python -m plmxai.run RUN_A RUN_B: are two runs' tables identical? Exit 1 if not."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    args = parser.parse_args(argv)
    table = compare(Run(args.run_a), Run(args.run_b))
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 80):
        print(table.to_string(index=False))
    n_diff = int((~table["identical"]).sum())
    print(f"{len(table) - n_diff} of {len(table)} tables identical")
    return 1 if n_diff else 0


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


if __name__ == "__main__":
    raise SystemExit(main())
