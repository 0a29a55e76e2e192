rule neuron_activation:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=R("tokens/tokens.parquet"),
    output:
        scores=R("{variant}/neurons/neuron_activation.parquet"),
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
        neurons=config["neurons"],
        device=config["model"]["device"],
    script:
        "../scripts/neurons.py"
