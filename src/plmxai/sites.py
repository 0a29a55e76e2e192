"""The neuron sites of an ESM layer, in table order (METHODS.md section 1).

Kept apart from `modeling` so that the statistics and report stages read it without
importing torch and transformers (their conda environments do not have them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SITES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")


def site_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, site): mean |score| and class selectivity.

    Selectivity of a neuron = standard deviation of its score across classes divided by the
    mean absolute score across classes; the table gives its median over the site's neurons.
    """
    wide = scores.pivot_table(
        index=["layer", "site", "neuron"], columns="class_id", values="score", observed=True
    )
    mag = wide.abs().mean(axis=1)
    sel = wide.std(axis=1, ddof=0) / mag.replace(0, np.nan)
    df = pd.DataFrame({"mean_abs_score": mag, "selectivity": sel}).reset_index()
    out = (
        df.groupby(["layer", "site"], observed=True)
        .agg(
            n_neurons=("neuron", "size"),
            mean_abs_score=("mean_abs_score", "mean"),
            median_selectivity=("selectivity", "median"),
        )
        .reset_index()
    )
    out["site"] = pd.Categorical(out["site"], categories=list(SITES), ordered=True)
    return out.sort_values(["layer", "site"]).reset_index(drop=True)
