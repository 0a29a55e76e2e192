"""How the report embeds figures and tables: a Figure as an inline PNG (also saved as a file
where the report's figures folder is set), a table with its first rows in view."""

from __future__ import annotations

import base64
import contextvars
import html
import io
import re

import matplotlib.pyplot as plt
import pandas as pd

from plmxai.report.table import html_table

# where figures are also saved as files (Snakemake's own report shows them), while a report is built
_FIGURE_DIR: contextvars.ContextVar = contextvars.ContextVar("figure_dir", default=None)


def figure_img(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    target = _FIGURE_DIR.get()
    if target is not None:  # numbered in report order: names repeat across variants
        n = len(list(target.glob("*.png"))) + 1
        slug = re.sub(r"[^a-z0-9]+", "-", alt.lower()).strip("-")[:80]
        (target / f"{n:03d}-{slug}.png").write_bytes(buf.getvalue())
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(df: pd.DataFrame, float_fmt="{:.3g}", row_class=None, max_rows: int | None = None) -> str:
    """The first `max_rows` rows (default 15) in view, the whole table sortable one click away."""
    return html_table(df, top=15 if max_rows is None else max_rows, float_fmt=float_fmt, row_class=row_class)


def kv(d: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in d.items()
    )
    return f'<table class="kv">{rows}</table>'
