rule tokenize:
    input:
        proteins=R("data/proteins.parquet"),
    output:
        tokens=TOKENS,
        summary=R("model/tokenize_summary.json"),
    log:
        LOG("tokenize"),
    conda:
        "../../envs/model.yaml"
    params:
        tokenizer=tokenizer_source(config["model"]),
        revision=config["model"]["revision"],
    script:
        "../scripts/tokenize.py"


rule init_model:
    input:
        tokens=TOKENS,
        checkpoint=checkpoint_files(),
    output:
        initial=directory(R("model/initial")),
    log:
        LOG("init_model"),
    # reusable by other workflows (snakemake --cache): no benchmark, which a cache hit cannot fill
    cache: True
    conda:
        "../../envs/model.yaml"
    threads: all_cores()
    params:
        model=section("model", "training"),
        seed=config["seed"],
        package=PACKAGE_VERSION,
        # the demo's pretraining task is drawn with the same generator settings
        synthetic=config["data"]["synthetic"],
    script:
        "../scripts/init_model.py"


rule finetune:
    input:
        tokens=TOKENS,
        initial=R("model/initial"),
    output:
        finetuned=directory(R("{variant}/model/finetuned")),
        training=R("{variant}/model/training.parquet"),
        predictions=R("{variant}/model/predictions.parquet"),
        metrics=R("{variant}/model/metrics.parquet"),
        confusion=R("{variant}/model/confusion.parquet"),
    log:
        LOG("finetune_{variant}"),
    wildcard_constraints:
        variant=TRAINED_VARIANT,
    cache: True
    # every analysis waits on it
    priority: 3
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=720,
    params:
        model=section("model", "training"),
        training=config["model"]["training"],
        seed=config["seed"],
        # the cache key covers the rule, its script, params and inputs, not the package's code
        package=PACKAGE_VERSION,
    script:
        "../scripts/finetune.py"


rule given_model:
    input:
        tokens=TOKENS,
        initial=R("model/initial"),
    output:
        finetuned=directory(R("given/model/finetuned")),
        predictions=R("given/model/predictions.parquet"),
        metrics=R("given/model/metrics.parquet"),
        confusion=R("given/model/confusion.parquet"),
    log:
        LOG("given_model"),
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        mem_mb=8000,
    params:
        model=section("model", "training"),
        bootstrap=config["model"]["training"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/given_model.py"
