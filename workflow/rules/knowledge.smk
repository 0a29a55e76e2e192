rule neuron_activation:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=TOKENS,
    output:
        scores=R("{variant}/knowledge/neuron_activation.parquet"),
    log:
        LOG("neuron_activation_{variant}"),
    benchmark:
        R("benchmarks/neuron_activation_{variant}.tsv")
    wildcard_constraints:
        variant=TRAINED_VARIANT,
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        activation=config["knowledge"]["activation"],
        device=config["model"]["device"],
    script:
        "../scripts/neuron_activation.py"


rule knowledge_scores:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=TOKENS,
    output:
        scores=R("{variant}/knowledge/ig_scores.parquet"),
        completeness=R("{variant}/knowledge/completeness.parquet"),
    log:
        LOG("knowledge_scores_{variant}"),
    benchmark:
        R("benchmarks/knowledge_scores_{variant}.tsv")
    wildcard_constraints:
        variant=TRAINED_VARIANT,
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
        knowledge=knowledge_scoring_params(),
        device=config["model"]["device"],
        seed=config["seed"],
    script:
        "../scripts/knowledge_scores.py"


rule knowledge_tests:
    input:
        initial=R("model/initial"),
        model=R("{variant}/model/finetuned"),
        tokens=TOKENS,
        activation=R("{variant}/knowledge/neuron_activation.parquet"),
        ig=R("{variant}/knowledge/ig_scores.parquet"),
    output:
        runs=R("{variant}/knowledge/preservation_runs.parquet"),
        preservation=R("{variant}/knowledge/preservation.parquet"),
        density=R("{variant}/knowledge/density.parquet"),
        agreement=R("{variant}/knowledge/agreement.parquet"),
    log:
        LOG("knowledge_tests_{variant}"),
    benchmark:
        R("benchmarks/knowledge_tests_{variant}.tsv")
    wildcard_constraints:
        variant=TRAINED_VARIANT,
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        knowledge=config["knowledge"],
        device=config["model"]["device"],
        seed=config["seed"],
    script:
        "../scripts/knowledge_tests.py"
