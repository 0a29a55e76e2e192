"""plmxai: what a fine-tuned protein language model learned, and where.

The pipeline's stages as functions, for notebooks and for the Snakemake workflow:

    from plmxai import synthetic, uniprot, splits, tokenize, modeling, training
    from plmxai import neurons, attribution, stats, report
"""

__version__ = "0.1.0"
