rule alphafold:
    input:
        tokens=TOKENS,
    output:
        table=R("attention/alphafold.parquet"),
    log:
        LOG("alphafold"),
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=240,
    params:
        attention=config["attention"],
        seed=config["seed"],
    script:
        "../scripts/alphafold.py"


rule attention:
    input:
        **structure_inputs(),
        model=R("{variant}/model/finetuned"),
        tokens=TOKENS,
        proteins=R("data/proteins.parquet"),
        annotations=R("data/annotations.parquet"),
    output:
        properties=R("{variant}/attention/properties.parquet"),
        profiles=R("{variant}/attention/layer_profiles.parquet"),
        blosum=R("{variant}/attention/blosum62.parquet"),
        structures=R("{variant}/attention/structures.parquet"),
    log:
        LOG("attention_{variant}"),
    benchmark:
        R("benchmarks/attention_{variant}.tsv")
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        attention=attention_params(),
        device=config["model"]["device"],
        seed=config["seed"],
    script:
        "../scripts/attention.py"


rule probes:
    input:
        **structure_inputs(),
        model=R("{variant}/model/finetuned"),
        tokens=TOKENS,
        proteins=R("data/proteins.parquet"),
        annotations=R("data/annotations.parquet"),
    output:
        probes=R("{variant}/attention/probes.parquet"),
    log:
        LOG("probes_{variant}"),
    benchmark:
        R("benchmarks/probes_{variant}.tsv")
    conda:
        "../../envs/model.yaml"
    threads: variant_threads()
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        attention=probe_params(),
        device=config["model"]["device"],
        seed=config["seed"],
    script:
        "../scripts/probes.py"


rule attention_change:
    input:
        **structure_inputs(),
        **contact_set_input(),
        before=R("model/initial"),
        after=R("finetuned/model/finetuned"),
        tokens=TOKENS,
        proteins=R("data/proteins.parquet"),
        annotations=R("data/annotations.parquet"),
    output:
        change=R("attention/change.parquet"),
    log:
        LOG("attention_change"),
    benchmark:
        R("benchmarks/attention_change.tsv")
    conda:
        "../../envs/model.yaml"
    threads: all_cores()
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        attention=attention_change_params(),
        device=config["model"]["device"],
        seed=config["seed"],
    script:
        "../scripts/attention_change.py"
