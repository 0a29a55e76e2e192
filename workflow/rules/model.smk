rule finetune:
    input:
        tokens=R("tokens/tokens.parquet"),
    output:
        initial=directory(R("model/initial")),
        finetuned=directory(R("model/finetuned")),
        training=R("model/training.parquet"),
        predictions=R("model/predictions.parquet"),
    params:
        model=config["model"],
        training=config["training"],
        seed=config["seed"],
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=240,
    log:
        LOG("finetune"),
    benchmark:
        R("benchmarks/finetune.tsv")
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/finetune.py"
