"""Stage `report` (workflow/rules/report.smk, config section `report`, outputs report.html and
figures/): one self-contained HTML report from the run's tables. Reads tables only and never
imports torch. Logic in plmxai.report (its figures in plmxai.plot)."""

from __future__ import annotations

import contextlib


def report(
    *,
    data_summary,
    annotations,
    raw,
    initial,
    out_html,
    config: dict,
    out_figures=None,
    contrast=None,
    attention_change=None,
    threads: int = 1,
    **tables,
) -> None:
    """The HTML report; with `out_figures`, its figures also as PNG files (a folder that
    appears only when complete), for Snakemake's own report. `tables`: every variant's tables,
    named `<variant>__<table>` (workflow/rules/common.smk, report_variant_inputs)."""
    from plmxai.report.build import build_report
    from plmxai.tables import atomic_path, write_text

    # the rule's inputs are lists: empty where the run has no contrast or no fine-tuned variant
    if isinstance(contrast, list):
        contrast = contrast[0] if contrast else None
    if isinstance(attention_change, list):
        attention_change = attention_change[0] if attention_change else None
    inputs = {
        "data_summary": data_summary,
        "annotations": annotations,
        "raw": raw,
        "initial": initial,
        "contrast": contrast,
        "attention_change": attention_change,
        "variants": {v: {} for v in config["variants"]},
    }
    for name, path in tables.items():
        variant, table = name.split("__", 1)
        inputs["variants"][variant][table] = path
    r = config["report"]
    with atomic_path(out_figures, is_dir=True) if out_figures else contextlib.nullcontext() as figures:
        text = build_report(config, inputs, r["n_tracks"], r["title"], figures)
    write_text(text, out_html)
