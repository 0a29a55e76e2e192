import pytest
import yaml

from plmxai.config import ConfigError, load_config, validate_config
from tests.conftest import ROOT


def test_defaults_filled():
    cfg = validate_config({})
    assert cfg["run"] == "demo" and cfg["attribution"]["statistics"]["fdr"] == 0.05
    assert cfg["model"]["architecture"]["num_layers"] == 2


def test_shipped_config_is_valid():
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg["data"]["source"] == "synthetic"


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            {"statistics": {"fdrr": 0.1}},
            r"'attribution.statistics' \(given as 'statistics'\): Additional properties.*'fdrr' was unexpected",
        ),
        (
            {"statistics": {"fdr": 1.5}},
            r"'attribution.statistics.fdr' \(given as 'statistics.fdr'\): 1.5 is greater than the maximum of 1",
        ),
        (
            {"training": {"epochs": "ten"}},
            r"'model.training.epochs' \(given as 'training.epochs'\): 'ten' is not of type 'integer'",
        ),
        ({"model": {"source": "hub"}}, r"'model.source': 'hub' is not one of"),
        (
            {"data": {"max_length": 300.0}},
            r"'data.max_length': 300.0 is not of type 'integer': write a whole number, e.g. 300",
        ),
        ({"data": {"split": {"train": 0.5}}}, r"'data.split.train/val/test' must sum to 1"),
        ({"data": {"source": "uniprot_tsv"}}, r"'data.tsv' is required"),
        ({"model": {"architecture": {"num_heads": 3}}}, r"'model.architecture.num_heads' \(3\) must divide"),
        ({"run": "a b"}, r"'run': 'a b' does not match"),
        ({"model": {"pretrain": {"enabled": True, "seed": 0}}}, r"'model.pretrain.seed' \(0\) must differ"),
        (
            {"model": {"source": "pretrained", "name_or_path": "x", "pretrain": {"enabled": True}}},
            r"'model.pretrain.enabled' needs model.source random",
        ),
        ({"data": {"source": "fasta"}}, r"'data.path' is required when data.source is fasta: the input file"),
        (
            {"data": {"source": "structures"}},
            r"'data.path' is required when data.source is structures: the input folder",
        ),
        (
            {"data": {"source": "fasta", "path": "x.fa"}},
            r"'data.label': 'ec' is not a label that data.source fasta carries; use one of \['none'\].*data.label: none and variants: \[given\]",
        ),
        (
            {"data": {"source": "residue_fasta", "path": "x", "label": "go"}},
            r"use one of \['none', 'transmembrane'\]",
        ),
        (
            {
                "data": {"source": "sites_jsonl", "path": "x", "label": "none"},
                "model": {"source": "pretrained", "name_or_path": "m"},
            },
            r"'variants': \['finetuned', 'frozen', 'shuffled'\] need a task, and data.label is none",
        ),
        (
            {
                "data": {"source": "sites_jsonl", "path": "x", "label": "none"},
                "variants": ["given"],
                "model": {"source": "pretrained", "name_or_path": "m"},
            },
            r"'attribution.target': an unlabelled set has no true class",
        ),
        (
            {"variants": ["given"]},
            r"'variants': given analyses a loaded model as it is, and model.source is random",
        ),
    ],
)
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_every_option_documented():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            here = f"{path}.{name}".strip(".")
            if sub.get("type") == "object":
                walk(sub, here)
            else:
                assert "description" in sub, here
                assert "default" in sub, here

    walk(schema, "")


@pytest.mark.parametrize("name", ["esm2_8m_contacts", "esm2_8m_binding_sites", "esm2_8m_enzymes_given"])
def test_real_model_configs_are_valid(name):
    cfg = load_config(ROOT / "config" / f"{name}.yaml")
    assert cfg["variants"] == ["given"] and cfg["model"]["source"] == "pretrained"


@pytest.mark.parametrize(
    "old, new",
    [
        ("neurons", ("knowledge", "activation")),
        ("training", ("model", "training")),
        ("statistics", ("attribution", "statistics")),
        ("faithfulness", ("attribution", "faithfulness")),
    ],
)
def test_old_section_names_are_read_as_the_new_ones(old, new, caplog):
    """Configs written before the stages had one section each still run, and say so."""
    value = {"fdr": 0.1} if old == "statistics" else {"batch_size": 7}
    if old == "faithfulness":
        value = {"n_random": 7}
    cfg = validate_config({old: dict(value)})
    assert old not in cfg
    section = cfg[new[0]][new[1]]
    assert all(section[k] == v for k, v in value.items())
    assert f"config section '{old}' read as '{new[0]}.{new[1]}'" in caplog.text


def test_old_and_new_name_of_a_section_together_are_refused():
    with pytest.raises(ConfigError, match=r"'training' and 'model.training' are the same section"):
        validate_config({"training": {"epochs": 2}, "model": {"training": {"epochs": 3}}})


def test_config_readme_is_generated_from_the_schema():
    from plmxai.config import schema_markdown

    readme = ROOT / "config" / "README.md"
    assert readme.read_text() == schema_markdown(), "regenerate: python -m plmxai.config > config/README.md"


def test_config_schema_is_the_package_schema():
    assert (ROOT / "config" / "schema.yaml").read_text() == (
        ROOT / "src" / "plmxai" / "schema.yaml"
    ).read_text()
