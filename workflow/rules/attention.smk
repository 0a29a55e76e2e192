rule alphafold:
    input:
        tokens=R("tokens/tokens.parquet"),
    output:
        table=R("structures/alphafold.parquet"),
    params:
        attention=config["attention"],
        seed=config["seed"],
    resources:
        runtime=240,
    log:
        LOG("alphafold"),
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/alphafold.py"


rule attention:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=R("tokens/tokens.parquet"),
        proteins=R("data/proteins.parquet"),
        annotations=R("data/annotations.parquet"),
        **structure_inputs(),
    output:
        properties=R("{variant}/attention/properties.parquet"),
        profiles=R("{variant}/attention/layer_profiles.parquet"),
        blosum=R("{variant}/attention/blosum62.parquet"),
        structures=R("{variant}/attention/structures.parquet"),
    params:
        attention=attention_params(),
        fdr=config["statistics"]["fdr"],
        device=config["model"]["device"],
        seed=config["seed"],
    threads: variant_threads()
    resources:
        mem_mb=8000,
        runtime=240,
    log:
        LOG("attention_{variant}"),
    benchmark:
        R("benchmarks/attention_{variant}.tsv")
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/attention.py"


rule probes:
    input:
        model=R("{variant}/model/finetuned"),
        tokens=R("tokens/tokens.parquet"),
        proteins=R("data/proteins.parquet"),
        annotations=R("data/annotations.parquet"),
        **structure_inputs(),
    output:
        probes=R("{variant}/attention/probes.parquet"),
    params:
        attention=probe_params(),
        device=config["model"]["device"],
        seed=config["seed"],
    threads: variant_threads()
    resources:
        mem_mb=8000,
        runtime=240,
    log:
        LOG("probes_{variant}"),
    benchmark:
        R("benchmarks/probes_{variant}.tsv")
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/probes.py"
