rule synthetic:
    output:
        tsv=R("data/raw/uniprot.tsv"),
        provenance=R("data/raw/provenance.json"),
    params:
        synthetic=config["data"]["synthetic"],
        seed=config["seed"],
    log:
        LOG("synthetic"),
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/synthetic.py"


rule data:
    input:
        tsv=raw_tsv(),
    output:
        proteins=R("data/proteins.parquet"),
        annotations=R("data/annotations.parquet"),
        summary=R("data/data_summary.json"),
    params:
        data=config["data"],
        seed=config["seed"],
    log:
        LOG("data"),
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/data.py"


rule tokenize:
    input:
        proteins=R("data/proteins.parquet"),
    output:
        tokens=R("tokens/tokens.parquet"),
        summary=R("tokens/tokenize_summary.json"),
    params:
        tokenize=config["tokenize"],
        tokenizer=tokenizer_source(config["model"]),
    log:
        LOG("tokenize"),
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/tokenize.py"
