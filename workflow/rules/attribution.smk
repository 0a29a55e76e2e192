rule attribution:
    input:
        model=R("model/finetuned"),
        tokens=R("tokens/tokens.parquet"),
    output:
        relevance=R("attribution/relevance.parquet"),
        completeness=R("attribution/completeness.parquet"),
    params:
        attribution=config["attribution"],
        device=config["model"]["device"],
        seed=config["seed"],
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=480,
    log:
        LOG("attribution"),
    benchmark:
        R("benchmarks/attribution.tsv")
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/attribution.py"


rule statistics:
    input:
        relevance=R("attribution/relevance.parquet"),
        annotations=R("data/annotations.parquet"),
        proteins=R("data/proteins.parquet"),
    output:
        statistics=R("statistics/statistics.parquet"),
        correlations=R("statistics/protein_correlations.parquet"),
    params:
        statistics=config["statistics"],
    log:
        LOG("statistics"),
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/statistics.py"
