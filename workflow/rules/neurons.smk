rule neuron_activation:
    input:
        model=R("model/finetuned"),
        tokens=R("tokens/tokens.parquet"),
    output:
        scores=R("neurons/neuron_activation.parquet"),
    params:
        neurons=config["neurons"],
        device=config["model"]["device"],
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        LOG("neuron_activation"),
    benchmark:
        R("benchmarks/neuron_activation.tsv")
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/neurons.py"
