rule init_model:
    input:
        tokens=R("tokens/tokens.parquet"),
    output:
        initial=directory(R("model/initial")),
    log:
        LOG("init_model"),
    benchmark:
        R("benchmarks/init_model.tsv")
    conda:
        "../../envs/plmxai.yaml"
    threads: all_cores()
    params:
        model=config["model"],
        seed=config["seed"],
        # the demo's pretraining task is drawn with the same generator settings
        synthetic=config["data"]["synthetic"],
    script:
        "../scripts/init_model.py"


rule finetune:
    input:
        tokens=R("tokens/tokens.parquet"),
        initial=R("model/initial"),
    output:
        finetuned=directory(R("{variant}/model/finetuned")),
        training=R("{variant}/model/training.parquet"),
        predictions=R("{variant}/model/predictions.parquet"),
        metrics=R("{variant}/model/metrics.parquet"),
        confusion=R("{variant}/model/confusion.parquet"),
    log:
        LOG("finetune_{variant}"),
    benchmark:
        R("benchmarks/finetune_{variant}.tsv")
    conda:
        "../../envs/plmxai.yaml"
    threads: variant_threads()
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=720,
    params:
        model=config["model"],
        training=config["training"],
        seed=config["seed"],
        # not an output: Snakemake would delete it when the job fails, and it is what a
        # restarted job resumes from
        checkpoint_dir=lambda wc: R(f"{wc.variant}/model/checkpoint"),
    script:
        "../scripts/finetune.py"
