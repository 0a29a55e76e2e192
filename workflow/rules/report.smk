def per_variant(path):
    return expand(R("{variant}/" + path), variant=config["variants"])


rule report:
    input:
        data_summary=R("data/data_summary.json"),
        annotations=R("data/annotations.parquet"),
        raw=raw_tsv(),
        initial=R("model/initial"),
        training=per_variant("model/training.parquet"),
        predictions=per_variant("model/predictions.parquet"),
        metrics=per_variant("model/metrics.parquet"),
        confusion=per_variant("model/confusion.parquet"),
        model=per_variant("model/finetuned"),
        neurons=per_variant("neurons/neuron_activation.parquet"),
        relevance=per_variant("attribution/relevance"),
        completeness=per_variant("attribution/completeness.parquet"),
        statistics=per_variant("statistics/statistics.parquet"),
        contrast=contrast_output(),
        attention=per_variant("attention/properties.parquet"),
        attention_profiles=per_variant("attention/layer_profiles.parquet"),
        blosum=per_variant("attention/blosum62.parquet"),
        probes=per_variant("attention/probes.parquet") if config["attention"]["probes"]["enabled"] else [],
        faithfulness=per_variant("attribution/faithfulness.parquet"),
        knowledge_completeness=per_variant("knowledge/completeness.parquet"),
        preservation=per_variant("knowledge/preservation.parquet"),
        preservation_runs=per_variant("knowledge/preservation_runs.parquet"),
        density=per_variant("knowledge/density.parquet"),
        agreement=per_variant("knowledge/agreement.parquet"),
    output:
        html=R("report.html"),
    params:
        config=config,
    log:
        LOG("report"),
    conda:
        "../../envs/plmxai.yaml"
    script:
        "../scripts/report.py"
