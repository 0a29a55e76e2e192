rule attribution:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=R("tokens/tokens.parquet"),
    output:
        relevance=R("{variant}/attribution/relevance.parquet"),
        completeness=R("{variant}/attribution/completeness.parquet"),
    params:
        attribution=config["attribution"],
        device=config["model"]["device"],
        seed=config["seed"],
    threads: variant_threads()
    resources:
        mem_mb=8000,
        runtime=480,
    log:
        LOG("attribution_{variant}"),
    benchmark:
        R("benchmarks/attribution_{variant}.tsv")
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/attribution.py"


rule statistics:
    input:
        relevance=R("{variant}/attribution/relevance.parquet"),
        annotations=R("data/annotations.parquet"),
        proteins=R("data/proteins.parquet"),
    output:
        statistics=R("{variant}/statistics/statistics.parquet"),
        correlations=R("{variant}/statistics/protein_correlations.parquet"),
    params:
        statistics=config["statistics"],
    log:
        LOG("statistics_{variant}"),
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/statistics.py"
