rule attribution_chunk:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=TOKENS,
        predictions=R("{variant}/model/predictions.parquet"),
    output:
        relevance=temp(R("{variant}/attribution/chunks/relevance_{chunk}.parquet")),
        completeness=temp(
            R("{variant}/attribution/chunks/completeness_{chunk}.parquet")
        ),
    log:
        LOG("attribution_{variant}_{chunk}"),
    benchmark:
        R("benchmarks/attribution_{variant}_{chunk}.tsv")
    wildcard_constraints:
        chunk=r"\d+",
    # the long integrations start as soon as their model exists and the short jobs fill
    # the other cores around them (on the real tasks they otherwise started last, alone)
    priority: 2
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        gpu=1,
        mem_mb=INTEGRATION_MEM_MB,
        runtime=480,
    params:
        attribution=section("attribution", "statistics", "faithfulness"),
        device=config["model"]["device"],
        seed=config["seed"],
    script:
        "../scripts/attribution_chunk.py"


rule attribution:
    input:
        relevance=attribution_chunks("relevance"),
        completeness=attribution_chunks("completeness"),
    output:
        relevance=directory(R("{variant}/attribution/relevance")),
        completeness=R("{variant}/attribution/completeness.parquet"),
    log:
        LOG("attribution_{variant}"),
    conda:
        "../../envs/stats.yaml"
    params:
        attribution=section("attribution", "statistics", "faithfulness"),
    script:
        "../scripts/attribution.py"


rule statistics:
    input:
        relevance=R("{variant}/attribution/relevance"),
        annotations=R("data/annotations.parquet"),
        proteins=R("data/proteins.parquet"),
    output:
        statistics=R("{variant}/attribution/statistics.parquet"),
        correlations=R("{variant}/attribution/protein_correlations.parquet"),
    log:
        LOG("statistics_{variant}"),
    conda:
        "../../envs/stats.yaml"
    params:
        statistics=config["attribution"]["statistics"],
        seed=config["seed"],
    script:
        "../scripts/statistics.py"


rule faithfulness:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=TOKENS,
        relevance=R("{variant}/attribution/relevance"),
        completeness=R("{variant}/attribution/completeness.parquet"),
    output:
        runs=R("{variant}/attribution/faithfulness_runs.parquet"),
        summary=R("{variant}/attribution/faithfulness.parquet"),
    log:
        LOG("faithfulness_{variant}"),
    benchmark:
        R("benchmarks/faithfulness_{variant}.tsv")
    # after the integrations, before the short jobs (see attribution_chunk)
    priority: 1
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        faithfulness=config["attribution"]["faithfulness"],
        device=config["model"]["device"],
        seed=config["seed"],
    script:
        "../scripts/faithfulness.py"


rule attribution_contrast:
    input:
        correlations=contrast_inputs(),
    output:
        contrast=R("attribution/contrast.parquet"),
    log:
        LOG("attribution_contrast"),
    conda:
        "../../envs/stats.yaml"
    params:
        statistics=config["attribution"]["statistics"],
        variants=TRAINED,
        reference="finetuned",
    script:
        "../scripts/attribution_contrast.py"
