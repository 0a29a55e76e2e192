rule synthetic:
    output:
        tsv=R("data/raw/uniprot.tsv"),
        provenance=R("data/raw/provenance.json"),
    log:
        LOG("synthetic"),
    conda:
        "../../envs/data.yaml"
    params:
        synthetic=config["data"]["synthetic"],
        seed=config["seed"],
    script:
        "../scripts/synthetic.py"


rule download:
    output:
        tsv=R("data/raw/uniprot.tsv.gz"),
        provenance=R("data/raw/provenance.json"),
    log:
        LOG("download"),
    # the same query gives the same table whatever the software: shared by every workflow that
    # asks it (snakemake --cache download)
    cache: "omit-software"
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=240,
    params:
        rest=config["data"]["rest"],
    script:
        "../scripts/download.py"


rule data:
    input:
        tsv=raw_tsv(),
    output:
        proteins=R("data/proteins.parquet"),
        annotations=R("data/annotations.parquet"),
        summary=R("data/data_summary.json"),
    log:
        LOG("data"),
    conda:
        "../../envs/data.yaml"
    threads: all_cores()
    params:
        data={k: v for k, v in config["data"].items() if k not in ("synthetic", "rest")},
        seed=config["seed"],
    script:
        "../scripts/data.py"
